"""Choosing who owns a case at a tier: the roster file, and each rep's open cases counted in Temporal
visibility (the `Owner` search attribute every open case carries), not in a second database. The worker
keeps those counts in a load index (activities/load.py) so that a decision does not list every open case."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.load import LoadIndex, NoVisibility
from escalation import metrics
from escalation.domain.models import Owner
from escalation.domain.roster import Roster, RosterStore
from escalation.domain.rules.routing import Routed, choose
from escalation.domain.rules.step import Assign
from escalation.search import OWNER, holding_query

log = structlog.get_logger()


async def open_cases(client: Client, rep_ids: list[str]) -> dict[str, int] | None:
    """Open cases each rep holds, from one visibility list query over all of them: what each decision read
    before the load index (kept for comparison in the benchmark). None when the server cannot list."""
    loads = dict.fromkeys(rep_ids, 0)
    try:
        async for case in client.list_workflows(holding_query(rep_ids), page_size=1000):
            rep = case.typed_search_attributes.get(OWNER)
            if rep in loads:
                loads[rep] += 1
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise  # the activity retries
        log.warning("load_unknown", reason="this Temporal server cannot list workflows", error=str(err))
        return None
    return loads


class RouteActivities:
    def __init__(self, roster: RosterStore, index: LoadIndex | None = None) -> None:
        self.roster = roster
        # The roster valid now stays in force should its file break later (RosterStore.in_force).
        self.roster.warm()
        self.index = index or LoadIndex()

    async def loads(self, client: Client, roster: Roster, candidates: list[str]) -> dict[str, int] | None:
        """The candidates' open cases from the worker's load index; a rep it counts at or over their cap is
        counted again from visibility, so a cap is never passed on the index's word alone. None when the
        server cannot list (the time-skipping test server has no visibility store): routing then goes on
        without load rather than leave a customer waiting."""
        try:
            loads = await self.index.loads(client, candidates)
        except NoVisibility as err:
            log.warning("load_unknown", reason="this Temporal server cannot list workflows", error=str(err))
            return None
        full = [
            rep.id
            for rep in (roster.rep(r) for r in candidates)
            if rep is not None and rep.max_cases is not None and loads[rep.id] >= rep.max_cases
        ]
        if full:
            recounted = await self.index.recount(client, full)
            # Other decisions of this worker may have chosen meanwhile: count the rest again after the await.
            loads = self.index.counts(candidates) | recounted
        return loads

    @activity.defn(name="find_owner")
    async def find_owner(self, req: Assign) -> Routed:
        started = time.monotonic()
        roster = self.roster.in_force()
        candidates = [r.id for r in roster.qualified(req.tier, req.skills, req.language) if r.id not in req.exclude]
        loads = await self.loads(activity.client(), roster, candidates) if candidates else {}
        routed = choose(roster, req, loads, req.at or datetime.now(UTC))
        if routed.owner is not None and req.callback_id is None:  # a callback's rep does not hold the case
            self.index.chose(req.case_id, routed.owner.id)
        meter = activity.metric_meter()
        outcome = "owner" if routed.owner else "nobody"
        meter.create_counter(metrics.ROUTING_DECISIONS).add(1, {"tier": req.tier.value, "outcome": outcome})
        latency = meter.create_histogram_float(metrics.ROUTING_LATENCY)
        latency.record(time.monotonic() - started, {"tier": req.tier.value})
        log.info(
            "owner_chosen",
            case_id=req.case_id,
            tier=req.tier.value,
            callback_id=req.callback_id,
            owner=routed.owner.id if routed.owner else None,
            load=routed.load,
            loads=loads,
            reason=routed.reason,
        )
        return routed

    @activity.defn(name="find_rep")
    async def find_rep(self, rep_id: str) -> Owner | None:
        """An active rep by id (who calls back), or None."""
        roster = self.roster.in_force()
        rep = roster.rep(rep_id)
        return roster.owner(rep) if rep is not None and rep.active else None

    @activity.defn(name="assign_owner")
    async def assign_owner(self, req: Assign) -> Owner | None:
        """Routing of cases that started before offers (their histories call this activity)."""
        return (await self.find_owner(req)).owner
