"""Who a command comes from: the person or service a verified credential names, as the roster knows them.

Pure: the worker verifies the credential (escalation.identity) and hands the claims to
`Roster.identify`; the rules decide with the `Principal` what that person may do (escalation.domain.rules.permission).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from escalation.domain.models import Contract, Money, Tier

SYSTEM = "system"  # the workflow itself: never a caller
CUSTOMER = "customer"  # only through the signed customer path (the inbound endpoint's short-lived credential)
RESERVED = frozenset({SYSTEM, CUSTOMER})

# Every command a caller can send, by its update name ("open" starts a case).
# A service's right, besides its commands, to close a case as customer_lost or legal (never given by "*").
CLOSE_LOST = "close_lost"
COMMANDS = (
    "open",
    "acknowledge",
    "accept",
    "escalate",
    "de_escalate",
    "add_note",
    "propose_offer",
    "record_offer_response",
    "wait_on_customer",
    "customer_replied",
    "resolve",
    "close",
    "reassign",
    "schedule_callback",
    "reschedule_callback",
    "cancel_callback",
    "record_callback_outcome",
    "followup_response",
    "forget",
)


class Principal(Contract):
    """A verified caller, with what the roster said about them when the command was taken."""

    id: str  # the rep's or service's id, or "customer"
    kind: Literal["rep", "service", "customer"]
    name: str | None = None
    tier: Tier | None = None  # a rep's tier
    authority_limit: Money | None = None  # a rep's own limit (else their tier's); a service's limit (else none)
    via: str | None = None  # the service that acts for the rep (a CRM for its logged-in rep)
    may: list[str] = Field(default_factory=list)  # a service's own commands
    case_id: str | None = None  # a customer: the one case their credential is for
    checkin: int | None = None  # a customer: the check-in their credential answers

    @property
    def label(self) -> str:
        """Who acted, for refusals: 'ana (team_lead)', 'crm (service)', 'ana (agent) through crm'."""
        what = self.tier.value if self.tier else self.kind
        return f"{self.id} ({what})" + (f" through {self.via}" if self.via else "")


class NotIdentified(ValueError):
    """The credential is genuine but names nobody who may act now; the message says why (no secrets)."""


class Identity(Contract):
    """The claims of a verified credential that matter here (escalation.identity.Claims, without its keys)."""

    subject: str
    acting_service: str | None = None
    case_id: str | None = None
    checkin: int | None = None
    key_id: str | None = None  # the key that signed it ("kid"): a service's own key names that service only


class Service(Contract):
    """A system that acts by its own credential (the roster's [[services]]), with the commands it may send."""

    id: str
    name: str
    may: list[str] = Field(default_factory=list)  # command names; "*" for all
    # It may act for the reps of the roster (a CRM or helpdesk minting credentials for its logged-in reps).
    acts_for_reps: bool = False
    # Compensation or goodwill it may offer by itself; none unless set.
    authority_limit: Money | None = None
    active: bool = True
    # The ids of the keys it signs with (its JWKS entries): a credential signed by one of them may name this service
    # only, by itself or acting for a rep; never another service, a rep alone, or a customer.
    kids: list[str] = Field(default_factory=list)


__all__ = [
    "COMMANDS",
    "CUSTOMER",
    "RESERVED",
    "SYSTEM",
    "Identity",
    "NotIdentified",
    "Principal",
    "Service",
]
