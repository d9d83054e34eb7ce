"""Cases follow the roster: when a rep is marked inactive, every open case they hold (as owner, or
offered to them) is reassigned. Runs beside the worker; finds the cases through visibility (the `Owner`
search attribute), so it needs no list of its own. Several workers may run it at once: each reassign
names the rep it takes the case from, so a repeat is refused by the case and changes nothing."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta

import structlog
from temporalio.client import Client, WorkflowUpdateFailedError

from escalation.client import execute_update
from escalation.domain.models import ReassignInput, TimelineEntry
from escalation.domain.roster import Roster, RosterStore
from escalation.search import OWNER, holding_query

log = structlog.get_logger()

ACTOR = "roster"
# The pass runs when the roster file changes and again this often, for cases routed to a rep in the
# instant the roster changed.
INTERVAL = timedelta(minutes=1)


async def reassign_inactive(client: Client, roster: Roster) -> list[str]:
    """Send `reassign` to each open case an inactive rep holds; returns the workflow ids reassigned."""
    inactive = [r.id for r in roster.reps if not r.active]
    if not inactive:
        return []
    moved = []
    async for case in client.list_workflows(holding_query(inactive)):
        rep = case.typed_search_attributes.get(OWNER)
        if rep not in inactive:
            continue
        try:
            await execute_update(
                client.get_workflow_handle(case.id),
                "reassign",
                ReassignInput(actor=ACTOR, reason=f"{rep} is inactive in the roster", from_owner=rep),
                result_type=TimelineEntry,
            )
            moved.append(case.id)
            log.info("case_reassigned", workflow_id=case.id, from_owner=rep, reason="inactive")
        except WorkflowUpdateFailedError as err:  # moved on meanwhile, or another worker got there first
            log.info("reassign_skipped", workflow_id=case.id, from_owner=rep, reason=str(err.cause or err))
    return moved


async def watch_roster(client: Client, store: RosterStore, stop: asyncio.Event, interval: timedelta = INTERVAL) -> None:
    """Until `stop` is set: reassign inactive reps' cases whenever the roster changes, and every `interval`."""
    seen: Roster | None = None
    waited = timedelta(0)
    tick = min(interval, timedelta(seconds=5))
    while not stop.is_set():
        try:
            roster = store.in_force()  # the same object while the file is unchanged (or broken)
            if roster is not seen or waited >= interval:
                await reassign_inactive(client, roster)
                seen, waited = roster, timedelta(0)
        except Exception as err:  # a broken roster edit or a server hiccup: try again on the next tick
            log.warning("roster_watch_failed", error=f"{type(err).__name__}: {err}")
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), tick.total_seconds())
        waited += tick
