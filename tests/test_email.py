"""Email over SMTP against a real aiosmtpd server on loopback: content, TLS, refusals, outages."""

from __future__ import annotations

import pytest
import trustme
from temporalio.exceptions import ApplicationError

from activities.email import SmtpEmail, message_id
from activities.render import Templates
from escalation.client import case_state, open_case
from escalation.constants import ERR_DELIVERY_REJECTED, ERR_DELIVERY_UNAVAILABLE, MESSAGE_KEY_HEADER
from escalation.delivery.settings import DeliverySettings, SmtpSecurity, SmtpSettings
from escalation.domain.models import ContactChannel
from escalation.domain.rules.step import Message, MessageKind, Recipient
from tests.cases import case_input, eventually, owned
from tests.servers import LOOPBACK, Accounts, MailHandler, free_port, server_tls, smtp_server
from worker import build_worker

SENDER = "Customer Care <care@escalations.example>"


def plain(port: int, **overrides) -> SmtpSettings:
    return SmtpSettings(host=LOOPBACK, port=port, security=SmtpSecurity.NONE, sender=SENDER, timeout=5, **overrides)


def owner_message(body: str = "Problem: charged twice\nWants: a refund") -> Message:
    return Message(
        key="C-7/run-1/4/owner_assigned/ana",
        case_id="C-7",
        kind=MessageKind.OWNER_ASSIGNED,
        to=Recipient(kind="owner", id="ana", name="Ana Alves", email="ana@example.com"),
        channel=ContactChannel.EMAIL,
        subject="[C-7] high escalation for you: charged twice",
        body=body,
    )


@pytest.fixture
def mail():
    handler = MailHandler()
    server = smtp_server(handler)
    handler.port = server.port
    yield handler
    server.stop()


async def test_email_has_a_text_and_an_html_part_and_ids_derived_from_the_key(mail):
    sender = SmtpEmail(plain(mail.port), Templates())
    message = owner_message("Problem: charged twice\nNote: customer wrote <script>alert(1)</script>")
    receipt = await sender.deliver(message)
    await sender.deliver(message)  # a retried activity: same ids, so the repeat is recognisable

    first, again = mail.mails
    assert first.recipients == ["ana@example.com"] and first.sender == "care@escalations.example"
    m = first.message
    assert m["Subject"] == message.subject and m["To"] == "Ana Alves <ana@example.com>"
    assert m["Message-ID"] == message_id(message.key, SENDER) == again.message["Message-ID"]
    assert m["Message-ID"].endswith("@escalations.example>") and receipt == f"smtp:{m['Message-ID']}"
    assert m[MESSAGE_KEY_HEADER].strip() == message.key  # long values are folded onto the next line
    text, html = first.part("plain"), first.part("html")
    assert "case C-7 is yours now" in text and "Problem: charged twice" in text
    assert "<script>alert(1)</script>" in text  # plain text is not escaped...
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>" not in html  # ...HTML is
    assert "Case C-7 is yours" in html


async def test_a_subject_quoting_a_multi_line_summary_is_one_line(mail):
    message = owner_message().model_copy(
        update={"subject": "[C-7] high escalation for you: charged twice\r\nand again"}
    )
    await SmtpEmail(plain(mail.port), Templates()).deliver(message)
    [sent] = mail.mails
    assert sent.message["Subject"] == "[C-7] high escalation for you: charged twice and again"


@pytest.mark.parametrize("address", ["a,b@example.com", "ana@exa mple.com"])
async def test_an_address_no_mail_system_takes_is_refused_at_once(mail, address):
    message = owner_message().model_copy(update={"to": Recipient(kind="owner", id="ana", name="Ana", email=address)})
    with pytest.raises(ApplicationError) as caught:
        await SmtpEmail(plain(mail.port), Templates()).deliver(message)
    assert caught.value.type == ERR_DELIVERY_REJECTED and caught.value.non_retryable  # the fallback route goes next
    assert f"'{address}' is not a usable email address" in caught.value.message and mail.mails == []


async def test_every_message_kind_has_its_own_templates():
    templates = Templates()
    names = set(templates.env.list_templates())
    for kind in MessageKind:
        assert {f"{kind.value}.txt", f"{kind.value}.html"} <= names
    assert {"callback_reminder.txt", "callback_reminder.html"} <= names


async def test_a_template_folder_overrides_the_built_in_templates(tmp_path):
    (tmp_path / "owner_assigned.txt").write_text("Yours: {{ case_id }} ({{ to.name }})\n")
    rendered = Templates(tmp_path).render(owner_message())
    assert rendered.text == "Yours: C-7 (Ana Alves)\n"
    assert "Case C-7 is yours" in rendered.html  # not overridden: the built-in one


async def test_starttls_with_login_trusts_a_self_signed_certificate_only_when_told(tmp_path):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = MailHandler()
    server = smtp_server(
        handler,
        tls_context=server_tls(ca),
        require_starttls=True,
        authenticator=Accounts({"notifier": "s3cret"}),
        auth_require_tls=True,
    )
    try:
        settings = SmtpSettings(
            host=LOOPBACK,
            port=server.port,
            security=SmtpSecurity.STARTTLS,
            sender=SENDER,
            username="notifier",
            password="s3cret",
            timeout=5,
        )
        # Without the CA the certificate is not trusted: a passing failure (the operator can fix it).
        with pytest.raises(ApplicationError) as caught:
            await SmtpEmail(settings, Templates()).deliver(owner_message())
        assert caught.value.type == ERR_DELIVERY_UNAVAILABLE and not caught.value.non_retryable
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.message
        assert handler.mails == []

        trusted = settings.model_copy(update={"ca_file": ca_file})
        await SmtpEmail(trusted, Templates()).deliver(owner_message())
        [mail] = handler.mails
        assert mail.tls and mail.login == "notifier"
        assert "charged twice" in mail.part("plain")
    finally:
        server.stop()


async def test_implicit_tls(tmp_path):
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = MailHandler()
    server = smtp_server(handler, ssl_context=server_tls(ca))
    try:
        settings = SmtpSettings(
            host=LOOPBACK, port=server.port, security=SmtpSecurity.TLS, sender=SENDER, ca_file=ca_file, timeout=5
        )
        await SmtpEmail(settings, Templates()).deliver(owner_message())
        [mail] = handler.mails
        assert mail.tls
    finally:
        server.stop()


@pytest.mark.parametrize(
    "reply, error_type, retried",
    [
        ("550 5.1.1 <ana@example.com>: no such mailbox", ERR_DELIVERY_REJECTED, False),
        ("452 4.2.2 mailbox full, try later", ERR_DELIVERY_UNAVAILABLE, True),
    ],
)
async def test_smtp_5xx_is_permanent_and_4xx_is_retried(mail, reply, error_type, retried):
    mail.refuse["ana@example.com"] = reply
    with pytest.raises(ApplicationError) as caught:
        await SmtpEmail(plain(mail.port), Templates()).deliver(owner_message())
    assert caught.value.type == error_type and caught.value.non_retryable is not retried
    assert reply.split(" ", 1)[0] in caught.value.message and "email to ana" in caught.value.message


async def test_a_server_that_is_not_there_is_retried():
    with pytest.raises(ApplicationError) as caught:
        await SmtpEmail(plain(free_port()), Templates()).deliver(owner_message())
    assert caught.value.type == ERR_DELIVERY_UNAVAILABLE and not caught.value.non_retryable


async def test_no_address_is_permanent(mail):
    message = owner_message().model_copy(
        update={"to": Recipient(kind="owner", id="ana", name="Ana", phone="+1 555 0100")}
    )
    with pytest.raises(ApplicationError) as caught:
        await SmtpEmail(plain(mail.port), Templates()).deliver(message)
    assert caught.value.non_retryable and "ana has no email address" in caught.value.message


# ----- through the workflow


async def test_mail_server_down_then_up_delivers_the_owner_email_once(env, settings):
    port = free_port()
    configured = settings.model_copy(update={"delivery": DeliverySettings(smtp=plain(port))})
    handler = MailHandler()
    server = None
    try:
        async with build_worker(env.client, configured):
            handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)

            async def retrying():
                described = await handle.describe()
                pending = [
                    a for a in described.raw_description.pending_activities if a.activity_type.name == "send_message"
                ]
                return pending if pending and pending[0].attempt >= 2 else None

            [pending] = await eventually(retrying, timeout=20)
            assert (
                "ConnectionRefused" in pending.last_failure.message or "connect" in pending.last_failure.message.lower()
            )

            server = smtp_server(handler, port=port)  # the relay comes back
            owner = (await owned(handle)).owner
            await eventually(lambda: _async(handler.mails), timeout=30)
            state = await case_state(handle)
        [mail] = handler.mails
        assert mail.recipients == [owner.email]
        assert mail.message[MESSAGE_KEY_HEADER].endswith(f"/owner_assigned/{owner.id}")
        assert not [e for e in state.timeline if e.kind == "delivery_failed"]
    finally:
        if server:
            server.stop()


async def test_owner_refused_by_the_mail_server_is_reached_through_the_team_address(env, settings, mail):
    for agent in ("ana", "ben"):  # whoever routing picks
        mail.refuse[f"{agent}@example.com"] = "550 5.1.1 mailbox disabled"
    configured = settings.model_copy(
        update={"delivery": DeliverySettings(smtp=plain(mail.port), teams={"agent": "agent-desk@example.com"})}
    )
    async with build_worker(env.client, configured):
        handle = await open_case(env.client, case_input(), task_queue_name=settings.task_queue)
        owner = (await owned(handle)).owner
        await eventually(lambda: _async(mail.to("agent-desk@example.com")))
        state = await case_state(handle)
    [failed] = [e for e in state.timeline if e.kind == "delivery_failed"]
    assert failed.detail["to"] == owner.id and failed.detail["permanent"] is True
    assert failed.detail["fallback_to"] == "team-agent" and failed.detail["fallback_channel"] == "email"
    assert "550" in failed.detail["error"]
    [team] = mail.to("agent-desk@example.com")
    assert team.message["Subject"].startswith(f"[{owner.name} unreachable]")
    assert f"{owner.name} could not be reached by email" in team.part("plain")
    assert (
        team.message[MESSAGE_KEY_HEADER].strip()
        == f"{state.case_id}/{state.opening_id}/{failed.seq}/owner_assigned/team-agent"
    )


async def _async(value):
    return value
