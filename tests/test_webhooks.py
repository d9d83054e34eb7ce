"""Signed event webhooks: the signature scheme, and every change of a case POSTed to a real HTTP server."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.webhooks import WebhookEvents
from escalation.client import open_case
from escalation.constants import (
    ERR_DELIVERY_REJECTED,
    EVENT_TYPE_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WORKFLOW_ID_PREFIX,
)
from escalation.delivery.settings import DeliverySettings, WebhookSettings
from escalation.delivery.signature import SignatureError, sign, verify
from escalation.domain.events import EVENT_TYPES, WebhookEvent
from escalation.domain.models import (
    AcknowledgeInput,
    CaseEvent,
    FollowUpResponseInput,
    NoteInput,
    ResolveInput,
    TimelineEntry,
)
from tests.cases import case_input, eventually, owned
from tests.servers import HttpServer
from worker import build_worker

SECRET = "whsec-test-7c1f"
BODY = b'{"id":"escalation-C-1/run-1/1","type":"escalation.opened"}'
NOW = 1_795_000_000


# ----- the signature scheme


def test_a_good_signature_verifies_and_returns_its_timestamp():
    assert verify(SECRET, sign(SECRET, BODY, NOW), BODY, now=NOW + 10) == NOW


@pytest.mark.parametrize(
    "header, body, now, reason",
    [
        (sign(SECRET, BODY, NOW), BODY.replace(b"opened", b"closed"), NOW, "does not match"),  # tampered body
        (sign("another-secret", BODY, NOW), BODY, NOW, "does not match"),  # signed by someone else
        (sign(SECRET, BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "does not match"),  # moved timestamp
        (sign(SECRET, BODY, NOW), BODY, NOW + 301, "stale"),  # replayed later
        (sign(SECRET, BODY, NOW + 600), BODY, NOW, "stale"),  # from a clock far ahead
        (None, BODY, NOW, "missing"),
        ("", BODY, NOW, "missing"),
        ("v1=abc", BODY, NOW, "no timestamp"),
        ("t=soon,v1=abc", BODY, NOW, "no timestamp"),
        (f"t={NOW}", BODY, NOW, "does not match"),
        (f"t={NOW},v1=\u00e9t\u00e9", BODY, NOW, "does not match"),  # non-ASCII: refused, not a crash
    ],
)
def test_bad_signatures_are_refused_with_the_reason(header, body, now, reason):
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, header, body, now=now)


def test_secret_rotation_accepts_either_secret_and_any_listed_signature():
    assert verify(["new-secret", SECRET], sign(SECRET, BODY, NOW), BODY, now=NOW) == NOW
    both = f"{sign('new-secret', BODY, NOW)},v1={sign(SECRET, BODY, NOW).split('v1=')[1]}"
    assert verify(SECRET, both, BODY, now=NOW) == NOW


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


# ----- the catalogue


def test_every_timeline_kind_the_rules_write_is_in_the_event_catalogue():
    source = "\n".join(p.read_text() for p in (Path(__file__).parent.parent / "escalation" / "rules").glob("*.py"))
    kinds = set(re.findall(r'step\.log\(\s*"(\w+)"', source)) | set(
        re.findall(r'move\(step, [^)]*?kind="(\w+)"', source)
    )
    kinds |= {f"offer_{answer}" for answer in ("accepted", "declined")}  # step.log(f"offer_{answer}")
    assert kinds, "found no timeline kinds: the scan is broken"
    missing = {f"escalation.{k}" for k in kinds} - set(EVENT_TYPES)
    assert not missing, f"add to escalation.domain.events.EVENT_TYPES: {sorted(missing)}"


def test_the_readme_documents_every_event_type_with_a_valid_example_payload():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    table = dict(re.findall(r"^\| `(escalation\.\w+)` \| (.*) \|$", readme, re.M))
    assert table == EVENT_TYPES, "the README's event catalogue differs from escalation.domain.events.EVENT_TYPES"
    examples = [
        WebhookEvent.model_validate_json(line)
        for line in readme.splitlines()
        if line.startswith('{"id":"escalation-') and not line.endswith(",...}")
    ]  # (an abridged one)
    missing = set(EVENT_TYPES) - {e.type for e in examples}
    assert not missing, f"the README has no example payload for {sorted(missing)}"
    for e in examples:
        assert e.id == f"{WORKFLOW_ID_PREFIX}{e.case_id}/{e.id.split('/')[1]}/{e.seq}", e.id


# ----- posting events


def event(seq: int, type_: str = "escalation.note") -> CaseEvent:
    return CaseEvent(
        id=f"escalation-C-5/run-1/{seq}",
        type=type_,
        case_id="C-5",
        seq=seq,
        at=datetime(2026, 11, 23, 9, seq, tzinfo=UTC),
        actor="ana",
        tier="agent",
        status="open",
        owner="ana",
        detail={"text": f"note {seq}"},
    )


@pytest.fixture
async def receiver():
    server = await HttpServer().start()
    yield server
    await server.stop()


def verified(request) -> WebhookEvent:
    """What a receiver does: check the signature over the raw body, then parse."""
    verify(SECRET, request.headers.get(SIGNATURE_HEADER), request.body, now=time.time())
    return WebhookEvent.model_validate_json(request.body)


async def test_a_refused_event_is_kept_as_a_dead_letter_and_the_others_still_go(receiver, tmp_path):
    receiver.respond = lambda request, number: 422 if request.json()["seq"] == 2 else 200
    sink = WebhookEvents(WebhookSettings(url=f"{receiver.url}/hooks", secret=SECRET), tmp_path / "dead.jsonl")
    with pytest.raises(ApplicationError) as caught:
        await sink.publish([event(1), event(2), event(3)])
    assert caught.value.type == ERR_DELIVERY_REJECTED and caught.value.non_retryable
    assert "escalation-C-5/run-1/2" in caught.value.message
    assert [verified(r).seq for r in receiver.requests] == [1, 2, 3]
    [dead] = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert dead["id"] == "escalation-C-5/run-1/2" and "HTTP 422" in dead["error"]


async def test_a_5xx_fails_the_batch_for_a_retry(receiver, tmp_path):
    receiver.respond = lambda request, number: 503 if request.json()["seq"] == 2 else 200
    sink = WebhookEvents(WebhookSettings(url=receiver.url, secret=SECRET), tmp_path / "dead.jsonl")
    with pytest.raises(ApplicationError) as caught:
        await sink.publish([event(1), event(2), event(3)])
    assert not caught.value.non_retryable and "HTTP 503" in caught.value.message
    assert [verified(r).seq for r in receiver.requests] == [1, 2]  # in order; the retry sends 1 again
    assert not (tmp_path / "dead.jsonl").exists()


async def test_every_change_of_a_case_is_posted_signed_in_order_and_retries_dedupe_by_id(env, settings, receiver):
    # The receiver takes the first request but answers 503: the batch is retried, and it drops the repeat.
    receiver.respond = lambda request, number: 503 if number == 1 else 200
    configured = settings.model_copy(
        update={"delivery": DeliverySettings(webhook=WebhookSettings(url=f"{receiver.url}/escalations", secret=SECRET))}
    )
    async with build_worker(env.client, configured):
        handle = await open_case(env.client, case_input("fast"), task_queue_name=settings.task_queue)
        owner = (await owned(handle)).owner.id
        for name, arg in [
            ("acknowledge", AcknowledgeInput(actor=owner)),
            ("add_note", NoteInput(actor=owner, text="Customer calmer <after> apology & refund")),
            (
                "resolve",
                ResolveInput(actor=owner, resolution="Refunded", root_cause="billing_error", kb_article="KB-1"),
            ),
        ]:
            await handle.execute_update(name, arg, result_type=TimelineEntry)

        async def checked_in():
            return any(r.headers[EVENT_TYPE_HEADER] == "escalation.followup_sent" for r in receiver.requests)

        await eventually(checked_in, timeout=20)
        await handle.execute_update(
            "followup_response", FollowUpResponseInput(answer="fixed"), result_type=TimelineEntry
        )
        await handle.result()

        async def closed_posted():
            return any(r.headers[EVENT_TYPE_HEADER] == "escalation.closed" for r in receiver.requests)

        await eventually(closed_posted, timeout=20)

    assert len(receiver.requests) > len(receiver.delivered)  # the retry sent at least one event twice
    events = [verified(r) for r in receiver.delivered]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))  # each once, in order
    assert [e.type for e in events][:4] == [
        "escalation.opened",
        "escalation.assigned",
        "escalation.acknowledged",
        "escalation.note",
    ]
    assert {"escalation.resolved", "escalation.followup_sent", "escalation.followup_answered"} <= {
        e.type for e in events
    }
    assert events[-1].type == "escalation.closed" and events[-1].detail["outcome"] == "resolved"
    assert all(e.type in EVENT_TYPES for e in events)
    assert len({e.id for e in events}) == len(events)
    for request, e in zip(receiver.delivered, events):
        assert request.path == "/escalations"
        assert request.headers[IDEMPOTENCY_HEADER] == e.id and request.headers[EVENT_TYPE_HEADER] == e.type
        assert request.headers["Content-Type"] == "application/json"
    note = next(e for e in events if e.type == "escalation.note")
    assert note.detail["text"] == "Customer calmer <after> apology & refund" and note.actor == owner
    # No events file when the webhook is configured; nothing refused.
    assert not (settings.data_dir / "events.jsonl").exists()
    assert not (settings.data_dir / "webhook-dead-letters.jsonl").exists()


# ----- the record activity: progress across retries, dead letters when retries run out


async def test_a_retry_starts_after_the_events_an_earlier_attempt_handed_over(receiver, tmp_path):
    """A batch to a slow or flaky receiver makes progress: each event handed over is heartbeated, and the
    next attempt (the SDK's ActivityEnvironment plays the server's part) starts after the last one."""
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.record import RecordActivities

    receiver.respond = lambda request, number: 503 if request.json()["seq"] == 3 and number == 3 else 200
    sink = WebhookEvents(WebhookSettings(url=receiver.url, secret=SECRET), tmp_path / "dead.jsonl")
    record = RecordActivities(sink, tmp_path / "events-dead.jsonl")
    batch = [event(1), event(2), event(3), event(4)]

    first = ActivityEnvironment()
    beats: list[int] = []
    first.on_heartbeat = lambda *details: beats.append(details[0])
    with pytest.raises(ApplicationError, match="HTTP 503"):
        await first.run(record.record_events, batch)
    assert beats == [1, 2]

    retry = ActivityEnvironment()
    retry.info = dataclasses.replace(retry.info, heartbeat_details=[beats[-1]], attempt=2)
    retry.on_heartbeat = lambda *details: beats.append(details[0])
    await retry.run(record.record_events, batch)
    assert beats == [1, 2, 3, 4]
    # Events 1 and 2 went once; only the refused 3 was sent again.
    assert [verified(r).seq for r in receiver.requests] == [1, 2, 3, 3, 4]


async def test_a_batch_given_up_on_is_kept_in_the_events_dead_letter_file_once(tmp_path):
    """The workflow hands a batch that ran out of retries to `dead_letter_events`; kept by event id, so a
    retried hand-over does not write it twice."""
    from temporalio.testing import ActivityEnvironment

    from activities.record import RecordActivities

    record = RecordActivities(
        WebhookEvents(WebhookSettings(url="http://127.0.0.1:9", secret=SECRET), tmp_path / "dead.jsonl"),
        tmp_path / "events-dead.jsonl",
    )
    for _ in range(2):
        await ActivityEnvironment().run(record.dead_letter_events, [event(1), event(2)])
    kept = [json.loads(line) for line in (tmp_path / "events-dead.jsonl").read_text().splitlines()]
    assert [k["id"] for k in kept] == ["escalation-C-5/run-1/1", "escalation-C-5/run-1/2"]
