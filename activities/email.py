"""Email over SMTP (STARTTLS, implicit TLS or plain; optional login) with a text and an HTML part.

The Message-ID is derived from the message key, and the key itself travels in the Escalation-Key
header: a retried activity sends the same ids, so mail systems and people can spot the repeat.
SMTP 4xx and connection trouble are retried by the activity; 5xx is a permanent refusal. What the
server answered is kept in the error (at most 200 characters, credentials redacted: escalation/delivery/redact.py).
"""

from __future__ import annotations

import hashlib
import ssl
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from activities.delivery import address_of, rejected, unavailable
from activities.render import Templates
from escalation.constants import MESSAGE_KEY_HEADER
from escalation.delivery.redact import excerpt
from escalation.delivery.settings import SmtpSecurity, SmtpSettings
from escalation.domain.rules.step import Message


def message_id(key: str, sender: str) -> str:
    """`<digest@sender-domain>`: the key has characters a Message-ID may not carry, so it is hashed."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


class SmtpEmail:
    def __init__(self, settings: SmtpSettings, templates: Templates) -> None:
        self.settings = settings
        self.templates = templates

    def compose(self, message: Message, address: str) -> EmailMessage:
        rendered = self.templates.render(message)
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = Address(display_name=" ".join(message.to.name.split()), addr_spec=address)
        # A header may not hold line breaks, and subjects quote the customer's summary, which may.
        mail["Subject"] = " ".join(rendered.subject.split())
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = message_id(message.key, self.settings.sender)
        mail[MESSAGE_KEY_HEADER] = message.key
        mail.set_content(rendered.text)
        mail.add_alternative(rendered.html, subtype="html")
        return mail

    def _tls_context(self) -> ssl.SSLContext | None:
        if self.settings.security == SmtpSecurity.NONE:
            return None
        context = ssl.create_default_context()
        if self.settings.ca_file:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        return context

    async def deliver(self, message: Message) -> str:
        address, what = address_of(message)
        s = self.settings
        try:
            mail = self.compose(message, address)
        except (ValueError, MessageError) as err:  # an address no mail system takes: retrying cannot help
            raise rejected(what, f"'{address}' is not a usable email address: {err}") from None
        try:
            await aiosmtplib.send(
                mail,
                hostname=s.host,
                port=s.effective_port,
                use_tls=s.security == SmtpSecurity.TLS,
                start_tls=s.security == SmtpSecurity.STARTTLS,  # False, not None: no upgrade unless asked for
                tls_context=self._tls_context(),
                username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            codes = [r.code for r in err.recipients]
            detail = excerpt("; ".join(f"{r.code} {r.message}" for r in err.recipients))
            raise (rejected if any(c >= 500 for c in codes) else unavailable)(what, detail) from None
        except aiosmtplib.SMTPResponseException as err:
            raise (rejected if err.code >= 500 else unavailable)(what, excerpt(f"{err.code} {err.message}")) from None
        except (aiosmtplib.SMTPException, OSError) as err:  # refused connection, timeout, TLS failure
            raise unavailable(what, excerpt(f"{type(err).__name__}: {err}")) from None
        return f"smtp:{mail['Message-ID']}"
