"""Each rep's load as routing reads it: open cases held (owned, or offered and not yet answered), kept per
worker so that a decision costs the same with 200 or 10,000 cases open.

The record of who holds a case stays where it was: the `Owner` search attribute every open case carries,
set in the workflow task that changes it. The index only reads it, so there is nothing to keep in step and
nothing to repair after a crash: a worker that starts (or restarts) lists it afresh.

- **One listing for every decision.** At most every `refresh_every` seconds (or ten times the last listing's
  duration, when that is longer) the worker lists the holder of every open case with one visibility query
  (a page per 1,000 cases) in the background; decisions read the counts it left in memory. Only the first
  decision of a worker, and one that finds the listing older than `max_age` (visibility failing for that
  long), waits for a listing.
- **Its own decisions at once.** Each owner this worker chose is counted from the decision on, until a
  listing shows the case with that rep (or `settle` seconds have passed: the case took the offer, or moved on,
  long ago); a case it moved from one rep to another after the listing began no longer counts for the first.
- **A cap is checked against the source.** A rep the index counts at or over their `max_cases` is counted
  again from visibility at the decision (their own open cases only, a few dozen at most), so a released case
  frees the rep at once and a full rep is never offered a case on the index's word alone.

The bound. A decision sees every case visible in the last listing (begun at most `interval` plus one
listing's duration ago, plus visibility's own lag: milliseconds on SQL) and every choice of its own worker.
What it can miss are offers other workers made since that listing began: with one worker the count is
never below the truth, and `max_cases` holds exactly; with several, a rep can go over their cap by at most
the offers the other workers made to them within that window (with a cap checked only when the index
already counts them full). Cases released since the listing count until the next one: they only make a
rep look busier (the least-loaded order may lag a listing behind), never let a cap be passed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from escalation.constants import SA_OWNER, WORKFLOW_TYPE, workflow_id
from escalation.domain.models import Status
from escalation.search import OWNER, STATUS, holding_query

log = structlog.get_logger()

# Every open case that someone holds: the cases routing counts (escalation.search.holding_query, for all reps).
HELD_QUERY = (
    f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running" '
    f'AND {STATUS.name} = "{Status.OPEN.value}" AND {OWNER.name} IS NOT NULL'
)


class NoVisibility(Exception):
    """The server cannot list workflows (the time-skipping test server): routing goes on without loads."""


def _holder(payload_data: bytes) -> str | None:
    value = json.loads(payload_data)
    if isinstance(value, list):  # a keyword list, should anyone ever register Owner so
        value = value[0] if value else None
    return value if isinstance(value, str) else None


async def list_holders(client: Client, query: str = HELD_QUERY) -> dict[str, str]:
    """Workflow id -> the rep holding it, for every case the query finds. Reads the raw listing and decodes
    only the `Owner` attribute: ten thousand cases list in about a second where full decoding takes several."""
    holders: dict[str, str] = {}
    token = b""
    while True:
        try:
            page = await client.workflow_service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace=client.namespace, query=query, page_size=1000, next_page_token=token
                )
            )
        except RPCError as err:
            if err.status == RPCStatusCode.UNIMPLEMENTED:
                raise NoVisibility(str(err)) from None
            raise
        for case in page.executions:
            owner = case.search_attributes.indexed_fields.get(SA_OWNER)
            rep = _holder(owner.data) if owner is not None else None
            if rep is not None:
                holders[case.execution.workflow_id] = rep
        token = page.next_page_token
        if not token:
            return holders


@dataclass
class Listing:
    started: float  # monotonic instant the listing began: it shows every case visible by then
    holders: dict[str, str] = field(default_factory=dict)  # workflow id -> rep
    counts: Counter[str] = field(default_factory=Counter)  # rep -> open cases held


@dataclass
class Choice:
    """An owner this worker chose for a case, counted until visibility shows it."""

    rep: str
    at: float  # monotonic instant of the decision
    # When a recount that showed the case with the rep answered. Its answer, not its start: a recount and a listing
    # run concurrently, and only a listing begun after the answer is sure to see later than the recount did.
    seen_at: float | None = None


class LoadIndex:
    """Open cases per rep for one worker's routing decisions (see the module's docstring for the bound)."""

    def __init__(
        self,
        *,
        refresh_every: float = 2.0,
        max_age: float = 60.0,
        settle: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refresh_every = refresh_every
        self.max_age = max_age
        self.settle = settle
        self.clock = clock
        self.listing: Listing | None = None
        self.mine: dict[str, Choice] = {}  # workflow id -> this worker's latest choice for the case
        self.listings = 0  # listings done (for tests and the benchmark)
        self.took = 0.0  # seconds the last listing took
        self._refresh: asyncio.Task[None] | None = None

    async def loads(self, client: Client, reps: Iterable[str]) -> dict[str, int]:
        """Each rep's open cases, as this worker knows them now (`counts`, once there is a listing). Waits only
        for a worker's first listing or when visibility has failed for `max_age`; raises NoVisibility when the
        server cannot list."""
        listing = self.listing
        age = None if listing is None else self.clock() - listing.started
        if age is None or age > self.max_age:
            await asyncio.shield(self._start(client))
        elif age > self.interval:
            self._start(client)
        return self.counts(list(reps))

    @property
    def interval(self) -> float:
        """Seconds between listings: `refresh_every`, or ten times what the last listing took when that is
        longer, so that listing takes at most a tenth of the worker's time however many cases are open."""
        return max(self.refresh_every, 10 * self.took)

    def counts(self, reps: list[str]) -> dict[str, int]:
        """Each rep's open cases: the last listing's count with this worker's choices since. Read it and
        choose with no `await` in between, so that concurrent decisions of the worker see each other."""
        listing = self.listing
        assert listing is not None
        loads = {rep: listing.counts.get(rep, 0) for rep in reps}
        for wid, choice in self.mine.items():
            listed = listing.holders.get(wid)
            if listed == choice.rep:
                continue  # the listing already counts it
            # Seen by a recount that answered before the listing began, and not in the listing: released since.
            if choice.rep in loads and (choice.seen_at is None or choice.seen_at > listing.started):
                loads[choice.rep] += 1
            if listed is not None and listed in loads and choice.at > listing.started:
                loads[listed] -= 1  # this worker moved it on after the listing saw it there
        return loads

    def warm(self, client: Client) -> None:
        """Begin the first listing now (a worker starting), so that its first decision need not wait for it."""
        self._start(client)

    def chose(self, case_id: str, rep: str) -> None:
        """This worker offered (or gave) the case to `rep`: count it from now on."""
        self.mine[workflow_id(case_id)] = Choice(rep, self.clock())

    async def recount(self, client: Client, reps: list[str]) -> dict[str, int]:
        """The reps' open cases straight from visibility (their own cases only: a few dozen), with this
        worker's choices that visibility has never shown. Counted after the last answer arrives, with no
        `await` between it and the caller's choice, so choices made meanwhile by this worker count too."""
        found = await asyncio.gather(*(list_holders(client, holding_query([rep])) for rep in reps))
        answered = self.clock()
        counts = {}
        for rep, holders in zip(reps, found, strict=True):
            held = {wid for wid, r in holders.items() if r == rep}
            for wid, choice in self.mine.items():
                if choice.rep != rep:
                    continue
                if wid in held:
                    choice.seen_at = choice.seen_at or answered  # visibility has it: from now on it decides
                elif choice.seen_at is None:
                    held.add(wid)  # not visible yet
            counts[rep] = len(held)
        return counts

    def _start(self, client: Client) -> asyncio.Task[None]:
        """The listing under way, or a new one: one at a time, whoever asks."""
        if self._refresh is None or self._refresh.done():
            task = asyncio.create_task(self._list(client))
            task.add_done_callback(self._done)
            self._refresh = task
        return self._refresh

    def _done(self, task: asyncio.Task[None]) -> None:
        if self._refresh is task:
            self._refresh = None
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, NoVisibility):
            # The next decision lists again; past max_age a decision waits for a listing and fails with it.
            log.warning("load_listing_failed", error=str(error))

    async def _list(self, client: Client) -> None:
        started = self.clock()
        holders = await list_holders(client)
        listing = Listing(started=started, holders=holders, counts=Counter(holders.values()))
        self.listing = listing
        self.listings += 1
        self.took = self.clock() - started
        # Choices the listing shows, or old enough to have reached visibility long ago, need no extra count.
        self.mine = {
            wid: choice
            for wid, choice in self.mine.items()
            if holders.get(wid) != choice.rep and choice.at > started - self.settle
        }
