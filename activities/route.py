"""Choosing who owns a case at a tier, from the roster."""

from __future__ import annotations

import structlog
from temporalio import activity

from escalation.models import Owner
from escalation.roster import RosterStore
from escalation.rules.step import Assign

log = structlog.get_logger()


class RouteActivities:
    def __init__(self, roster: RosterStore) -> None:
        self.roster = roster

    @activity.defn(name="assign_owner")
    async def assign_owner(self, req: Assign) -> Owner | None:
        rep = self.roster.get().choose(req.case_id, req.tier, req.skills, req.language, req.prefer, req.exclude)
        log.info("owner_chosen", case_id=req.case_id, tier=req.tier.value, owner=rep.id if rep else None)
        return rep.owner() if rep else None
