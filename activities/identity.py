"""Who a credential names: verified with the worker's keys and looked up in the roster (escalation.identity,
escalation.domain.roster.Roster.identify).

The same check serves two callers. An update validator calls it directly through the workflow interceptor
(workflows.verified), before a command can enter history. The workflow calls it as a local activity, so the
answer is recorded: a handler looks up the principal of a command the validator already verified, and a case's
first run verifies the credential it was started with, as of its start. Neither depends on keys or roster
when the history replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from temporalio import activity

from escalation.domain.models import Contract
from escalation.domain.principal import Identity, NotIdentified, Principal
from escalation.domain.roster import RosterError, RosterStore
from escalation.identity import CredentialRefused, Verifier

log = structlog.get_logger()


class IdentifyRequest(Contract):
    """Either a token to verify as of `at` (a case's start) or the recorded claims of a verified one."""

    token: str | None = None
    at: datetime | None = None
    claims: Identity | None = None


class Identified(Contract):
    principal: Principal | None = None
    refusal: str | None = None  # why not, fit to show the caller (never the token)


class IdentityActivities:
    def __init__(self, verifier: Verifier, roster: RosterStore) -> None:
        self.verifier = verifier
        self.roster = roster
        # The roster valid now stays in force should its file break later (RosterStore.in_force).
        self.roster.warm()

    def check(self, token: str) -> tuple[dict[str, Any] | None, str | None]:
        """For the validator (workflows.verified.EXTERN): the principal as JSON, or why the token is refused."""
        try:
            found = self.identify_now(IdentifyRequest(token=token))
        except RosterError as err:  # no valid roster since the worker started: nobody can be checked now
            log.error("roster_unreadable", error=err.summary)
            return None, "the roster cannot be read right now to check who you are; try again"
        return (found.principal.model_dump(mode="json") if found.principal else None), found.refusal

    def identify_now(self, req: IdentifyRequest) -> Identified:
        """Who `req` names, or why nobody. Raises RosterError while no valid roster can be read (the local
        activity retries: a case opening then waits for the roster rather than failing)."""
        try:
            if req.token is not None:
                claims = self.verifier.verify(req.token, now=req.at)
                who = Identity(
                    subject=claims.subject,
                    acting_service=claims.acting_service,
                    case_id=claims.case_id,
                    checkin=claims.checkin,
                    key_id=claims.key_id,
                )
            elif req.claims is not None:
                who = req.claims
            else:
                return Identified(refusal="the command carries no credential")
            return Identified(principal=self.roster.in_force().identify(who))
        except (CredentialRefused, NotIdentified) as err:
            log.info("credential_refused", reason=str(err))
            return Identified(refusal=str(err))

    @activity.defn(name="identify")
    async def identify(self, req: IdentifyRequest) -> Identified:
        return self.identify_now(req)
