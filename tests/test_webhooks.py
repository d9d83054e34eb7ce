"""Signed event webhooks: the signature scheme (Standard Webhooks, and the legacy header for this release), and
every change of a case POSTed to a real HTTP server, verified there by the `standardwebhooks` library."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.exceptions import ApplicationError

from activities.webhooks import WebhookEvents
from escalation.client import open_case
from escalation.constants import (
    ERR_DELIVERY_REJECTED,
    EVENT_TYPE_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    WEBHOOK_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
    WORKFLOW_ID_PREFIX,
)
from escalation.delivery.settings import DeliverySettings, WebhookSettings
from escalation.delivery.signature import SignatureError, Verified, sign, sign_legacy, signed_headers, verify
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

SECRET = "whsec_" + base64.b64encode(b"test-key-of-the-crm-receiver-7c1f").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"test-key-being-rotated-out-42a9d").decode()
BODY = b'{"id":"escalation-C-1/run-1/1","type":"escalation.opened"}'
ID = "escalation-C-1/run-1/1"
NOW = 1_795_000_000


def headers(secrets: str | list[str] = SECRET, body: bytes = BODY, at: int = NOW, msg_id: str = ID) -> dict[str, str]:
    return signed_headers([secrets] if isinstance(secrets, str) else secrets, msg_id, body, at)


# ----- the signature scheme: Standard Webhooks


def test_the_signature_reproduces_the_standard_webhooks_test_vector():
    """The specification's published vector: any Standard Webhooks library verifies what we sign."""
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            b'{"test": 2432232314}',
            1614265330,
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_the_signature_is_hmac_sha256_over_id_timestamp_and_body_in_base64():
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{ID}.{NOW}.".encode() + BODY, hashlib.sha256).digest()).decode()
    assert headers() | {SIGNATURE_HEADER: "(legacy)"} == {
        WEBHOOK_ID_HEADER: ID,
        WEBHOOK_TIMESTAMP_HEADER: str(NOW),
        WEBHOOK_SIGNATURE_HEADER: f"v1,{expected}",
        SIGNATURE_HEADER: "(legacy)",
    }


def test_a_secret_without_the_whsec_prefix_is_a_raw_key():
    """Secrets configured before this format keep working: their UTF-8 bytes are the key."""
    legacy = "an-older-secret-of-at-least-32-characters"
    expected = hmac.new(legacy.encode(), f"{ID}.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    assert sign(legacy, ID, BODY, NOW) == f"v1,{base64.b64encode(expected).decode()}"
    Webhook(legacy.encode()).verify(BODY, headers(legacy, at=int(time.time())))


def test_a_good_signature_verifies_and_says_what_signed_it():
    assert verify(SECRET, headers(), BODY, now=NOW + 10) == Verified(NOW, ID)
    # Header names are case-insensitive, as in HTTP.
    shouted = {name.upper(): value for name, value in headers().items()}
    assert verify(SECRET, shouted, BODY, now=NOW) == Verified(NOW, ID)


def test_an_off_the_shelf_receiver_verifies_our_signature():
    now = int(time.time())
    assert Webhook(SECRET).verify(BODY, headers(at=now)) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD_SECRET).verify(BODY, headers(at=now))


def test_while_a_secret_rotates_each_request_carries_a_signature_per_secret():
    now = int(time.time())
    rotating = headers([SECRET, OLD_SECRET], at=now)
    assert len(rotating[WEBHOOK_SIGNATURE_HEADER].split(" ")) == 2  # space-separated, the current one first
    assert rotating[WEBHOOK_SIGNATURE_HEADER].split(" ")[0] == sign(SECRET, ID, BODY, now)
    # A receiver still on the old secret and one already on the new both verify, with the library.
    for receiver_secret in (SECRET, OLD_SECRET):
        Webhook(receiver_secret).verify(BODY, rotating)
    # ... and ours: any configured secret, any listed signature.
    assert verify([OLD_SECRET], rotating, BODY, now=now).timestamp == now
    assert verify(["whsec_b3RoZXItc2VjcmV0LW9mLTI0LWJ5dGVz", SECRET], headers(at=now), BODY, now=now).id == ID
    # The legacy header lists one v1 per secret as well.
    assert rotating[SIGNATURE_HEADER].count("v1=") == 2


def without(name: str) -> dict[str, str]:
    return {k: v for k, v in headers().items() if k != name}


def replaced(name: str, value: str) -> dict[str, str]:
    return headers() | {name: value}


@pytest.mark.parametrize(
    "given, body, now, reason",
    [
        (headers(), BODY.replace(b"opened", b"closed"), NOW, "does not match"),  # tampered body
        (headers("whsec_YW5vdGhlci1zZWNyZXQtb2YtMjQtYnl0ZXM="), BODY, NOW, "does not match"),  # someone else's
        (replaced(WEBHOOK_TIMESTAMP_HEADER, str(NOW + 1)), BODY, NOW, "does not match"),  # moved timestamp
        (replaced(WEBHOOK_ID_HEADER, "escalation-C-1/run-1/2"), BODY, NOW, "does not match"),  # another id
        (headers(), BODY, NOW + 301, "stale"),  # replayed later
        (headers(at=NOW + 600), BODY, NOW, "stale"),  # from a clock far ahead
        ({}, BODY, NOW, "missing: webhook-id, webhook-timestamp, webhook-signature"),
        (without(WEBHOOK_ID_HEADER), BODY, NOW, "missing: webhook-id"),
        (without(WEBHOOK_SIGNATURE_HEADER), BODY, NOW, "missing: webhook-signature"),
        (replaced(WEBHOOK_SIGNATURE_HEADER, ""), BODY, NOW, "missing: webhook-signature"),
        (replaced(WEBHOOK_TIMESTAMP_HEADER, "soon"), BODY, NOW, "not a time in unix seconds"),
        (replaced(WEBHOOK_TIMESTAMP_HEADER, f"{NOW}.5"), BODY, NOW, "not a time in unix seconds"),
        (replaced(WEBHOOK_SIGNATURE_HEADER, "v1,abc"), BODY, NOW, "does not match"),  # not base64
        (replaced(WEBHOOK_SIGNATURE_HEADER, "v1"), BODY, NOW, "does not match"),
        (replaced(WEBHOOK_SIGNATURE_HEADER, "v1,\u00e9t\u00e9"), BODY, NOW, "does not match"),  # non-ASCII
        (
            replaced(WEBHOOK_SIGNATURE_HEADER, headers()[WEBHOOK_SIGNATURE_HEADER].replace("v1,", "v2,")),
            BODY,
            NOW,
            "does not match",
        ),
        (headers(), b"caf\xe9", NOW, "not UTF-8"),  # bytes no Standard Webhooks library reads
    ],
)
def test_bad_signatures_are_refused_with_the_reason(given, body, now, reason):
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, given, body, now=now)


# ----- the legacy header: sent, and accepted, this release only


def test_the_legacy_header_is_still_hmac_sha256_over_timestamp_dot_body_in_hex():
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_legacy([SECRET], BODY, NOW) == f"t={NOW},v1={expected}"
    assert headers()[SIGNATURE_HEADER] == f"t={NOW},v1={expected}"


def test_a_request_with_only_the_legacy_header_verifies_as_legacy():
    legacy = {SIGNATURE_HEADER: sign_legacy([SECRET], BODY, NOW)}
    assert verify(SECRET, legacy, BODY, now=NOW + 10) == Verified(NOW, None, legacy=True)
    assert verify([SECRET, OLD_SECRET], {SIGNATURE_HEADER: sign_legacy([OLD_SECRET], BODY, NOW)}, BODY, now=NOW)


@pytest.mark.parametrize(
    "header, body, now, reason",
    [
        (sign_legacy([SECRET], BODY, NOW), BODY.replace(b"opened", b"closed"), NOW, "does not match"),
        (sign_legacy(["another-secret"], BODY, NOW), BODY, NOW, "does not match"),
        (sign_legacy([SECRET], BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "does not match"),
        (sign_legacy([SECRET], BODY, NOW), BODY, NOW + 301, "stale"),
        ("", BODY, NOW, "missing"),
        ("v1=abc", BODY, NOW, "no timestamp"),
        (f"t={NOW}", BODY, NOW, "does not match"),
        (f"t={NOW},v1=\u00e9t\u00e9", BODY, NOW, "does not match"),  # non-ASCII: refused, not a crash
    ],
)
def test_bad_legacy_signatures_are_refused_with_the_reason(header, body, now, reason):
    with pytest.raises(SignatureError, match=reason):
        verify(SECRET, {SIGNATURE_HEADER: header}, body, now=now)


def test_standard_headers_win_over_the_legacy_one():
    """A request with both is judged by the standard headers: a good legacy one does not rescue a bad one."""
    both = replaced(WEBHOOK_SIGNATURE_HEADER, sign("whsec_YW5vdGhlci1zZWNyZXQtb2YtMjQtYnl0ZXM=", ID, BODY, NOW))
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, both, BODY, now=NOW)


# ----- secrets in the settings


def test_previous_secrets_come_from_the_environment_as_a_json_list_and_bad_secrets_stop_start_up():
    env = {
        "ESCALATIONS_WEBHOOK__URL": "https://crm.example.com/hooks",
        "ESCALATIONS_WEBHOOK__SECRET": SECRET,
        "ESCALATIONS_WEBHOOK__PREVIOUS_SECRETS": json.dumps([OLD_SECRET]),
        "ESCALATIONS_INBOUND__PREVIOUS_SECRETS": json.dumps([OLD_SECRET, "x" * 32]),
    }
    loaded = DeliverySettings.load(env)
    assert loaded.webhook is not None
    assert [s.get_secret_value() for s in loaded.webhook.previous_secrets] == [OLD_SECRET]
    assert [s.get_secret_value() for s in loaded.inbound.previous_secrets] == [OLD_SECRET, "x" * 32]
    assert WebhookSettings(url="https://crm.example.com", secret=SECRET).previous_secrets == []
    for bad, field in [
        ({"ESCALATIONS_WEBHOOK__SECRET": "whsec_not base64!"}, "webhook.secret"),
        ({"ESCALATIONS_WEBHOOK__PREVIOUS_SECRETS": OLD_SECRET}, "webhook.previous_secrets"),
        ({"ESCALATIONS_INBOUND__PREVIOUS_SECRETS": '["whsec_%%%"]'}, "inbound.previous_secrets"),
    ]:
        with pytest.raises(ValidationError, match=field) as caught:
            DeliverySettings.load(env | bad)
        assert "whsec_" in str(caught.value) or "JSON list" in str(caught.value)


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


def verified(request, secret: str = SECRET) -> WebhookEvent:
    """What a receiver does, with an off-the-shelf Standard Webhooks library: check the signature over the raw
    body, then parse. The legacy header, sent this release too, still verifies the earlier way."""
    Webhook(secret).verify(request.body, request.headers)
    verify(secret, {SIGNATURE_HEADER: request.headers[SIGNATURE_HEADER]}, request.body, now=time.time())
    event = WebhookEvent.model_validate_json(request.body)
    assert request.headers[WEBHOOK_ID_HEADER] == request.headers[IDEMPOTENCY_HEADER] == event.id
    return event


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


async def test_while_the_secret_rotates_a_receiver_with_only_the_old_secret_still_verifies(receiver, tmp_path):
    settings = WebhookSettings(url=f"{receiver.url}/hooks", secret=SECRET, previous_secrets=[OLD_SECRET])
    await WebhookEvents(settings, tmp_path / "dead.jsonl").publish([event(1), event(2)])
    assert [verified(r, OLD_SECRET).seq for r in receiver.requests] == [1, 2]  # not yet moved to the new one
    assert [verified(r, SECRET).seq for r in receiver.requests] == [1, 2]  # already moved
    for request in receiver.requests:
        assert len(request.headers[WEBHOOK_SIGNATURE_HEADER].split(" ")) == 2
    # Once the old secret is dropped from the settings, a receiver still on it refuses the requests.
    receiver.requests.clear()
    current = WebhookSettings(url=f"{receiver.url}/hooks", secret=SECRET)
    await WebhookEvents(current, tmp_path / "dead.jsonl").publish([event(3)])
    with pytest.raises(WebhookVerificationError):
        verified(receiver.requests[0], OLD_SECRET)


async def test_a_refusal_that_echoes_the_signature_headers_keeps_none_of_them(tmp_path):
    def echo(request, number: int) -> str:
        return "refused: " + json.dumps(request.headers)

    receiver = await HttpServer(respond=lambda request, number: 401, reply=echo).start()
    try:
        sink = WebhookEvents(WebhookSettings(url=receiver.url, secret=SECRET), tmp_path / "dead.jsonl")
        with pytest.raises(ApplicationError):
            await sink.publish([event(1)])
    finally:
        await receiver.stop()
    [request] = receiver.requests
    dead = (tmp_path / "dead.jsonl").read_text()
    assert "HTTP 401" in dead
    assert request.headers[WEBHOOK_SIGNATURE_HEADER].removeprefix("v1,") not in dead
    assert request.headers[SIGNATURE_HEADER].split("v1=")[1] not in dead


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
    for request, e in zip(receiver.delivered, events, strict=True):
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
