"""The worker's load index (activities/load.py): its counts from a listing and its own choices, without a
server; then on the dev server, cases opened all at once against capped reps: no cap passed, the index's
counts equal visibility's, and a restarted worker's fresh index counts the same."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest

from activities.load import Listing, LoadIndex
from activities.route import RouteActivities
from escalation.client import case_state, open_case
from escalation.constants import workflow_id
from escalation.domain import rules as R
from escalation.domain.roster import RosterStore
from escalation.search import holding_query
from tests.cases import case_input, eventually
from tests.test_routing import rep, write_roster
from worker import build_worker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def indexed(holders: dict[str, str], clock: Clock, started: float | None = None) -> LoadIndex:
    index = LoadIndex(refresh_every=2, settle=30, clock=clock)
    at = clock.now if started is None else started
    index.listing = Listing(started=at, holders=dict(holders), counts=Counter(holders.values()))
    return index


def test_counts_are_the_listing_plus_this_workers_own_choices():
    clock = Clock()
    index = indexed({workflow_id("C-1"): "ana", workflow_id("C-2"): "ana", workflow_id("C-3"): "ben"}, clock)
    assert index.counts(["ana", "ben", "cy"]) == {"ana": 2, "ben": 1, "cy": 0}
    clock.now += 1
    index.chose("C-4", "ben")
    index.chose("C-5", "cy")
    index.chose("C-1", "ana")  # the listing shows it with ana already: not counted twice
    assert index.counts(["ana", "ben", "cy"]) == {"ana": 2, "ben": 2, "cy": 1}
    index.chose("C-2", "cy")  # moved on after the listing: it leaves ana's count and joins cy's
    assert index.counts(["ana", "ben", "cy"]) == {"ana": 1, "ben": 2, "cy": 2}


def test_a_choice_made_before_a_listing_that_misses_it_still_counts():
    clock = Clock()
    index = indexed({workflow_id("C-1"): "ana"}, clock, started=90.0)
    index.chose("C-2", "ana")
    # A listing that began before the case's upsert reached visibility: the choice still counts, once.
    index.listing = Listing(started=clock.now, holders={workflow_id("C-1"): "ana"}, counts=Counter({"ana": 1}))
    assert index.counts(["ana"]) == {"ana": 2}
    # A choice older than `settle` before the listing began is the listing's business alone.
    clock.now += 31
    index.listing = Listing(started=clock.now, holders={workflow_id("C-1"): "ana"}, counts=Counter({"ana": 1}))
    index.mine = {w: c for w, c in index.mine.items() if c.at > index.listing.started - index.settle}
    assert index.counts(["ana"]) == {"ana": 1}


async def test_decisions_read_the_index_and_list_in_the_background_only_when_it_is_stale():
    clock = Clock()
    index = indexed({}, clock)
    listed: list[float] = []

    async def fake_list(client) -> None:  # stands in for the visibility listing
        listed.append(clock.now)
        index.listing = Listing(started=clock.now)

    index._list = fake_list  # type: ignore[method-assign]
    await index.loads(None, ["ana"])  # type: ignore[arg-type]
    clock.now += 1
    await index.loads(None, ["ana"])  # type: ignore[arg-type]
    assert listed == []  # fresh enough: no listing
    clock.now += 2
    await index.loads(None, ["ana"])  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert listed == [103.0]  # stale: one listing, in the background
    clock.now += 100
    await index.loads(None, ["ana"])  # type: ignore[arg-type]  # past max_age: the decision waits for it
    assert listed == [103.0, 203.0]


async def test_a_warmed_index_has_its_listing_before_the_first_decision():
    clock = Clock()
    index = LoadIndex(clock=clock)
    listed: list[float] = []

    async def fake_list(client) -> None:
        listed.append(clock.now)
        index.listing = Listing(started=clock.now, counts=Counter({"ana": 2}))

    index._list = fake_list  # type: ignore[method-assign]
    index.warm(None)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert listed == [100.0]
    assert await index.loads(None, ["ana"]) == {"ana": 2}  # type: ignore[arg-type]
    assert listed == [100.0]  # no second listing for the decision


@pytest.fixture
def capped(settings, tmp_path: Path):
    """Three agents capped at 3 open cases each, a team lead, a supervisor and a manager (uncapped), with a
    skill of this test's own so no other test's cases count."""
    tag = uuid.uuid4().hex[:6]
    skill = f"load-{tag}"
    agents = [f"{n}-{tag}" for n in ("ana", "ben", "cy")]
    reps = [rep(a, skills=[skill], max_cases=3) for a in agents] + [
        rep(f"{name}-{tag}", tier, skills=[skill])
        for name, tier in (("tara", "team_lead"), ("sam", "supervisor"), ("maya", "manager"))
    ]
    settings.roster_path = write_roster(tmp_path / "roster.toml", reps)
    return agents, skill, [r["id"] for r in reps]


async def _held(handle) -> str | None:
    return R.holder(await case_state(handle))


async def test_concurrent_assignments_honour_max_cases_and_the_index_matches_visibility(env, settings, capped):
    agents, skill, reps = capped
    route = RouteActivities(RosterStore(settings.roster_path))
    async with build_worker(env.client, settings, route=route):
        handles = await asyncio.gather(
            *(
                open_case(
                    env.client,
                    case_input("routing", skills=[skill], opened_by=agents[0]),
                    task_queue_name=settings.task_queue,
                )
                for _ in range(12)
            )
        )
        holders = await asyncio.gather(*(eventually(lambda h=h: _held(h), timeout=60) for h in handles))

        async def visible() -> dict[str, int]:
            counts = {r: (await env.client.count_workflows(holding_query([r]))).count for r in reps}
            return counts if sum(counts.values()) == len(handles) else {}

        counts = await eventually(visible, timeout=30)
        assert counts == dict(Counter(holders)) | {r: 0 for r in reps if r not in holders}
        # Nine places at agent, all taken, none over the cap; the other three went up with no_capacity.
        assert [counts[a] for a in agents] == [3, 3, 3]
        assert sum(counts[r] for r in reps if r not in agents) == 3
        # The worker's index counts what visibility counts, once it lists again (as the next decision does).
        await route.index._start(env.client)
        assert await route.index.loads(env.client, reps) == counts
        # A worker that restarts (a fresh index) starts from visibility: the same counts.
        assert await RouteActivities(RosterStore(settings.roster_path)).index.loads(env.client, reps) == counts
        for h in handles:
            await h.terminate("test finished")


async def test_a_recount_answered_after_a_listing_began_keeps_counting_what_it_saw(env, settings, capped):
    """A recount and a listing run at once: a listing that began while the recount waited can carry an older view
    than the recount's answer. A case the recount saw must not be taken for released because that listing lacks
    it (it gave a capped rep a fourth case once)."""
    agents, skill, _ = capped
    async with build_worker(env.client, settings):
        handle = await open_case(
            env.client, case_input("routing", skills=[skill], opened_by=agents[0]), task_queue_name=settings.task_queue
        )
        held = await eventually(lambda: _held(handle), timeout=60)
        await eventually(lambda: _visible(env.client, held, 1), timeout=30)
        clock = Clock()
        index = indexed({}, clock, started=90.0)
        index.chose(handle.id.removeprefix("escalation-"), held)

        async def later() -> None:  # the clock moves on while the recount waits for visibility
            await asyncio.sleep(0)
            clock.now = 105.0

        moving = asyncio.create_task(later())
        assert await index.recount(env.client, [held]) == {held: 1}
        await moving
        # A listing begun at 102, during the recount, whose view predates the case.
        index.listing = Listing(started=102.0)
        assert index.counts([held]) == {held: 1}
        # A listing begun after the recount answered, without the case: released since.
        index.listing = Listing(started=106.0)
        assert index.counts([held]) == {held: 0}
        await handle.terminate("test finished")


async def _visible(client, rep: str, n: int) -> bool:
    return (await client.count_workflows(holding_query([rep]))).count == n
