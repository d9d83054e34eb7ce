"""SMS and voice calls through the HTTP gateway, against a real HTTP server on loopback."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError

from activities.gateway import HttpGateway
from activities.render import Templates
from escalation.client import case_state, open_case
from escalation.constants import ERR_DELIVERY_REJECTED, ERR_DELIVERY_UNAVAILABLE, IDEMPOTENCY_HEADER
from escalation.delivery.settings import GATEWAY_FIELDS, DeliverySettings, GatewaySettings
from escalation.domain.models import ContactChannel, ResolveInput, TimelineEntry
from escalation.domain.rules.step import Message, MessageKind, Recipient
from tests.cases import case_input, eventually, owned
from tests.servers import HttpServer, free_port
from worker import build_worker

CUSTOMER = Recipient(kind="customer", id="cust-42", name="Dana Doe", email="dana@example.org", phone="+49 30 1234567")


def checkin(channel: ContactChannel = ContactChannel.SMS) -> Message:
    return Message(
        key="C-9/run-1/12/followup_checkin/cust-42",
        case_id="C-9",
        kind=MessageKind.FOLLOWUP_CHECKIN,
        to=CUSTOMER,
        channel=channel,
        subject="Is everything working now? (case C-9)",
        body="Hello Dana Doe,\n\nwe recently fixed your problem: refund issued\nReply 'fixed' or 'not fixed'.",
    )


@pytest.fixture
async def gateway():
    server = await HttpServer().start()
    yield server
    await server.stop()


async def test_sms_and_call_requests_follow_the_configured_url_auth_and_body(gateway):
    settings = GatewaySettings(
        url=f"{gateway.url}/sms",
        call_url=f"{gateway.url}/voice",
        auth_header="X-Api-Key",
        auth="k-123",
        body={
            "To": "{{ to }}",
            "Body": "{{ text }}",
            "meta": {"ref": "{{ key }}", "case": "{{ case_id }}"},
            "tags": ["escalation", "{{ kind }}"],
            "priority": 1,
        },
    )
    sender = HttpGateway(settings, Templates())
    assert await sender.deliver(checkin()) == "gateway:200"
    await sender.deliver(checkin(ContactChannel.CALL))

    sms, call = gateway.requests
    assert sms.path == "/sms" and call.path == "/voice"
    assert sms.headers["X-Api-Key"] == "k-123" and sms.headers[IDEMPOTENCY_HEADER] == checkin().key
    body = sms.json()
    assert body["To"] == "+49 30 1234567"
    assert body["Body"].startswith("Hello Dana Doe,") and "Reply 'fixed' or 'not fixed'" in body["Body"]
    assert body["meta"] == {"ref": checkin().key, "case": "C-9"}
    assert body["tags"] == ["escalation", "followup_checkin"] and body["priority"] == 1


async def test_default_body_carries_recipient_channel_text_and_reference(gateway):
    await HttpGateway(GatewaySettings(url=gateway.url), Templates()).deliver(checkin(ContactChannel.CALL))
    [request] = gateway.requests
    assert "Authorization" not in request.headers
    body = request.json()
    assert body["to"] == "+49 30 1234567" and body["channel"] == "call" and body["reference"] == checkin().key
    assert body["case_id"] == "C-9" and "refund issued" in body["text"]


async def test_every_field_a_body_template_may_use_is_filled(gateway):
    body = {name: f"{{{{ {name} }}}}" for name in GATEWAY_FIELDS}  # what the settings accept
    await HttpGateway(GatewaySettings(url=gateway.url, body=body), Templates()).deliver(checkin())
    sent = gateway.requests[0].json()
    assert all(sent[name] for name in GATEWAY_FIELDS), sent
    assert sent["recipient"] == "Dana Doe" and sent["kind"] == "followup_checkin"


async def test_text_with_quotes_and_braces_stays_valid_json(gateway):
    tricky = checkin().model_copy(update={"body": 'He said "no" {{ not a template }} \\ done'})
    await HttpGateway(GatewaySettings(url=gateway.url), Templates()).deliver(tricky)
    assert gateway.requests[0].json()["text"] == 'He said "no" {{ not a template }} \\ done'


@pytest.mark.parametrize(
    "status, error_type, retried",
    [
        (400, ERR_DELIVERY_REJECTED, False),
        (404, ERR_DELIVERY_REJECTED, False),
        (422, ERR_DELIVERY_REJECTED, False),
        (408, ERR_DELIVERY_UNAVAILABLE, True),
        (429, ERR_DELIVERY_UNAVAILABLE, True),
        (500, ERR_DELIVERY_UNAVAILABLE, True),
        (503, ERR_DELIVERY_UNAVAILABLE, True),
    ],
)
async def test_4xx_is_permanent_and_5xx_is_retried(gateway, status, error_type, retried):
    gateway.respond = lambda request, number: status
    with pytest.raises(ApplicationError) as caught:
        await HttpGateway(GatewaySettings(url=gateway.url), Templates()).deliver(checkin())
    assert caught.value.type == error_type and caught.value.non_retryable is not retried
    assert f"HTTP {status}" in caught.value.message and "sms to cust-42" in caught.value.message


async def test_a_gateway_that_is_not_there_is_retried():
    with pytest.raises(ApplicationError) as caught:
        await HttpGateway(GatewaySettings(url=f"http://127.0.0.1:{free_port()}", timeout=2), Templates()).deliver(
            checkin()
        )
    assert caught.value.type == ERR_DELIVERY_UNAVAILABLE and not caught.value.non_retryable


async def test_no_phone_number_is_permanent(gateway):
    no_phone = checkin().model_copy(update={"to": CUSTOMER.model_copy(update={"phone": None})})
    with pytest.raises(ApplicationError) as caught:
        await HttpGateway(GatewaySettings(url=gateway.url), Templates()).deliver(no_phone)
    assert caught.value.non_retryable and gateway.requests == []


# ----- through the workflow: the customer's check-in goes by SMS


async def resolved_for_sms(env, settings, gateway):
    """A case whose customer prefers SMS, resolved under the fast policy: the check-in is due in 1 s."""
    customer = {**case_input().customer.model_dump(mode="json"), "preferred_channel": "sms"}
    handle = await open_case(env.client, case_input("fast", customer=customer), task_queue_name=settings.task_queue)
    owner = (await owned(handle)).owner
    await handle.execute_update(
        "resolve",
        ResolveInput(actor=owner.id, resolution="Refund issued", root_cause="billing_error", kb_article="KB-7"),
        result_type=TimelineEntry,
    )
    return handle


def with_gateway(settings, gateway):
    return settings.model_copy(update={"delivery": DeliverySettings(gateway=GatewaySettings(url=f"{gateway.url}/sms"))})


async def test_503_twice_then_200_reaches_the_customer_once(env, settings, gateway):
    # The gateway takes each request but answers 503 to the first two of every key (as when its reply is lost).
    def flaky(request, number):
        tries = [r for r in gateway.requests if r.headers[IDEMPOTENCY_HEADER] == request.headers[IDEMPOTENCY_HEADER]]
        return 503 if len(tries) <= 2 else 200

    gateway.respond = flaky
    async with build_worker(env.client, with_gateway(settings, gateway)):
        handle = await resolved_for_sms(env, settings, gateway)

        async def three_tries_of_the_first_checkin():
            s = await case_state(handle)
            if not s.checkins or not s.checkins[0].sent_at:
                return None
            key = f"{s.case_id}/{s.opening_id}/{_sent_seq(s)}/followup_checkin/cust-42"
            tries = [r for r in gateway.requests if r.headers[IDEMPOTENCY_HEADER] == key]
            return (s, tries) if len(tries) >= 3 else None

        state, tries = await eventually(three_tries_of_the_first_checkin, timeout=30)
    assert len(tries) == 3 and len({r.body for r in tries}) == 1  # the same request every time
    first = [r for r in gateway.delivered if r.headers[IDEMPOTENCY_HEADER] == tries[0].headers[IDEMPOTENCY_HEADER]]
    assert len(first) == 1 and first[0].json()["to"] == "+49 30 1234567"  # deduped: the customer gets one text
    assert not [e for e in state.timeline if e.kind == "delivery_failed"]


async def test_400_falls_back_to_the_next_channel_and_the_timeline_says_so(env, settings, gateway):
    gateway.respond = lambda request, number: 400
    async with build_worker(env.client, with_gateway(settings, gateway)):
        handle = await resolved_for_sms(env, settings, gateway)

        async def failed():
            s = await case_state(handle)
            return [e for e in s.timeline if e.kind == "delivery_failed"] and _outbox(settings)

        await eventually(failed, timeout=20)
        state = await case_state(handle)
    [failure] = [e for e in state.timeline if e.kind == "delivery_failed"]
    assert failure.detail["channel"] == "sms" and failure.detail["permanent"] is True
    assert failure.detail["fallback_channel"] == "email" and failure.detail["fallback_to"] == "cust-42"
    assert "HTTP 400" in failure.detail["error"]
    [request] = gateway.requests  # refused for good: not retried
    # No SMTP configured, so the email goes to the outbox, keyed on the failure, remembering what failed.
    [email] = _outbox(settings)
    assert email["channel"] == "email" and email["kind"] == "followup_checkin" and email["attempted"] == ["sms"]
    assert email["key"] == f"{state.case_id}/{state.opening_id}/{failure.seq}/followup_checkin/cust-42"
    assert email["to"]["email"] == "dana@example.org" and "Reply 'fixed' or 'not fixed'" in email["body"]
    assert request.json()["channel"] == "sms"


def _sent_seq(state) -> int:
    return next(e.seq for e in state.timeline if e.kind == "followup_sent")


def _outbox(settings) -> list[dict]:
    path = settings.data_dir / "outbox.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [m for m in map(json.loads, lines) if m["kind"] == "followup_checkin"]
