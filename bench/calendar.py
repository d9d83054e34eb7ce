"""What business time costs the rules. Prints ratios against wall-clock baselines measured in the same
run (absolute times on shared machines say little).

    python -m bench.calendar [--rounds N]

- deadline: `WorkingCalendar.add` (office hours with holidays, in a DST zone) vs `start + duration`
- open: `rules.open_case` under a business-hours policy vs the same ladder on 24x7 time
- pause: wait_on_customer + customer_replied (two business-time conversions) vs add_note twice
"""

from __future__ import annotations

import argparse
import operator
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from escalation.domain import rules
from escalation.domain.calendar import WorkingCalendar
from escalation.domain.models import CustomerRepliedInput, EscalationInput, NoteInput, WaitOnCustomerInput
from escalation.domain.policy import load_policy_file

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 6, 21, 55, tzinfo=UTC)  # a Friday evening in New York, two days before DST


def case_input(policy: str) -> EscalationInput:
    """A case as the first agent opens it (the benchmark imports no test code)."""
    return EscalationInput.model_validate(
        {
            "case_id": "BENCH-1",
            "channel": "call",
            "category": "billing",
            "skills": ["billing"],
            "severity": "high",
            "customer": {
                "id": "cust-42",
                "name": "Dana Doe",
                "email": "dana@example.org",
                "time_zone": "Europe/Berlin",
            },
            "summary": "Charged twice",
            "desired_outcome": "Refund",
            "opened_by": "ana",
            "policy": policy,
        }
    )


def best(fn: Callable[[], object], rounds: int, inner: int) -> float:
    """Best-of-`rounds` seconds per call (the minimum is the least noisy estimate)."""
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t) / inner)
    return min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    office = WorkingCalendar.model_validate(
        {
            "time_zone": "America/New_York",
            "hours": {d: ["09:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": {"country": "US", "subdivision": "NY"},
        }
    ).with_holidays(range(2025, 2029))
    rows: list[tuple[str, float, float]] = []
    for label, duration in (("10m", timedelta(minutes=10)), ("8h", timedelta(hours=8)), ("5d", timedelta(days=5))):
        base = best(partial(operator.add, START, duration), args.rounds, 2000)
        cost = best(partial(office.add, START, duration), args.rounds, 200)
        rows.append((f"deadline {label} business", cost, base))

    standard = load_policy_file(ROOT / "tests" / "policies" / "standard.toml")
    hours = load_policy_file(ROOT / "tests" / "policies" / "office.toml")
    inp_std, inp_hours = case_input("standard"), case_input("office")
    base = best(lambda: rules.open_case(inp_std, standard, START, "bench"), args.rounds, 100)
    cost = best(lambda: rules.open_case(inp_hours, hours, START, "bench"), args.rounds, 100)
    rows.append(("open_case, business hours", cost, base))

    state, _ = rules.open_case(inp_hours, hours, START, "bench")
    later = START + timedelta(days=3)
    wait = WaitOnCustomerInput(actor="ana", reason="photo")
    reply = CustomerRepliedInput(actor="ana")
    note = NoteInput(actor="ana", text="called")

    def pause_cycle() -> None:
        waiting, _ = rules.wait_on_customer(state, hours, wait, START)
        rules.customer_replied(waiting, hours, reply, later)

    def note_cycle() -> None:
        noted, _ = rules.add_note(state, hours, note, START)
        rules.add_note(noted, hours, note, later)

    rows.append(("wait + reply vs two notes", best(pause_cycle, args.rounds, 100), best(note_cycle, args.rounds, 100)))

    print(f"{'measure':34} {'µs/call':>10} {'baseline µs':>12} {'ratio':>8}")
    for name, cost, base in rows:
        print(f"{name:34} {cost * 1e6:10.1f} {base * 1e6:12.2f} {cost / base:8.1f}x")
    print(f"(best of {args.rounds} rounds; for scale, one workflow task on a local server takes milliseconds)")


if __name__ == "__main__":
    main()
