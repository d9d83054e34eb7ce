"""How the CLI shows cases to a person: a case's state and brief, timeline lines, the queue table."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from escalation.client.errors import Ending
from escalation.domain.formatting import duration, instant, stamp, with_offset
from escalation.domain.models import Brief, Callback, CaseState, Clock, Offer, TimelineEntry
from escalation.search import CaseSummary

if TYPE_CHECKING:
    from escalation.board import Board, BoardCase
    from escalation.cli.doctor import Report


# What must never reach a terminal as it is, from text people typed (or old cases stored before input was
# checked): C0 controls but newline and tab (ESC starts a terminal sequence; CR overwrites the line), DEL, the
# C1 controls (U+009B is a one-character CSI), the line and paragraph separators and the bidirectional
# overrides and isolates (which reorder what is shown).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` safe for a terminal: every control character but newline and tab shown as its escape
    ('\\x1b[2J' prints as the six characters, it does not clear the screen)."""
    return _UNSAFE.sub(_escaped, text)


def json_printable(text: str) -> str:
    """JSON safe for a terminal, meaning the same: the characters `printable` escapes may stand raw only inside
    JSON strings (JSON itself escapes the C0 ones), where a \\u escape is the same character."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _cell(value: object) -> Text:
    """A table cell: printable, and never read as rich markup ('[link=...]' stays text)."""
    return Text(printable(str(value)))


def when(at: datetime | None, now: datetime) -> str:
    """'2026-11-24 09:05 UTC (in 12m)' or '(3h05m ago)'."""
    if at is None:
        return "-"
    rel = f"in {duration(at - now)}" if at > now else f"{duration(now - at)} ago"
    return f"{instant(at)} ({rel})"


def _details(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", [], {}))


def entry_line(entry: TimelineEntry) -> str:
    """'#5 2026-11-24 09:05:12 escalated at team_lead by ana: reason=needs_authority'"""
    detail = _details(entry.detail)
    return f"#{entry.seq} {stamp(entry.at, seconds=True)} {entry.kind} at {entry.tier.value} by {entry.actor}" + (
        f": {detail}" if detail else ""
    )


def offer_line(offer: Offer) -> str:
    line = (
        f'{offer.id} {offer.amount} {offer.currency} {offer.kind.value} "{offer.description}" '
        f"{offer.status.value} (proposed at {offer.tier.value} by {offer.proposed_by})"
    )
    return line + (f": {offer.answer_note}" if offer.answer_note else "")


def callback_line(cb: Callback) -> str:
    """'callback-1 scheduled: sol calls 2026-11-24 15:00 +0100 customer's time (09:00 -0500 theirs), within 30m'"""
    tries = f", attempt {len(cb.attempts) + 1}" if cb.attempts and cb.status == "scheduled" else ""
    line = (
        f"{cb.id} {cb.status.value}: {cb.owner.id} calls {with_offset(cb.customer_time)} customer's time "
        f"({with_offset(cb.owner_time, day=False)} theirs), within {duration(cb.window)} by {cb.channel.value}{tries}"
    )
    return line + (f"; {cb.end_reason}" if cb.end_reason else "")


def _clock(name: str, clock: Clock | None, now: datetime) -> str | None:
    if clock is None:
        return None
    if clock.breached_at:
        return f"{name} breached {when(clock.breached_at, now)}"
    if clock.stopped_at:
        return f"{name} met {when(clock.stopped_at, now)}"
    if clock.paused_at:
        left = f", {duration(clock.remaining)} of working time left" if clock.remaining is not None else ""
        return f"{name} paused (waiting on the customer){left}"
    return f"{name} due {when(clock.due_at, now)}"


def case_text(
    state: CaseState, brief: Brief | None, now: datetime, *, timeline: int = 10, ending: Ending | None = None
) -> str:
    """`ending`: how the case's workflow ended, if it has; one that ended without closing (terminated on the
    server) is shown as such, its last state below."""
    c = state.input.customer
    owner = f"{state.owner.name} ({state.owner.id})" if state.owner else "unassigned"
    stopped = ending if ending is not None and ending.status not in ("completed", "continued as new") else None
    status = f"{stopped.status} (was {state.status.value})" if stopped else state.status.value
    lines = [
        f"Case {state.case_id}: {status} {_where(state)}, owner {owner}",
        *([f"  ENDED      {stopped}; no outcome, takes no more commands"] if stopped else []),
        f"  customer   {c.name} ({c.id}), {c.time_zone}, lifetime value {c.lifetime_value}"
        f"{' ' + brief.currency if brief and brief.currency else ''}, prefers {c.preferred_channel.value}",
        f"  severity   {state.input.severity.value}{', THREAT' if state.input.threat else ''}; sentiment {state.sentiment.value}; "
        f"policy {state.policy_name} {state.policy_version or '(loading)'}",
        f"  opened     {when(state.opened_at, now)} by {state.input.opened_by} via {state.input.channel.value}",
    ]
    clocks = [
        t
        for t in (_clock("acknowledge", state.acknowledge_clock, now), _clock("resolve", state.resolve_clock, now))
        if t
    ]
    if clocks:
        lines.append("  SLA        " + "; ".join(clocks))
    if state.waiting is not None:
        lines.append(
            f"  waiting    on the customer since {when(state.waiting.started_at, now)}: {state.waiting.reason}"
        )
    if (pending := state.pending_assignment) is not None:
        lines.append(f"  offered    to {pending.rep.name} ({pending.rep.id}), accept by {when(pending.accept_by, now)}")
    lines.append(f"  counts     escalations {state.escalations}, breaches {state.breaches}, reopens {state.reopens}")
    if state.outcome is not None:
        lines.append(f"  outcome    {state.outcome.value} {when(state.closed_at, now)}: {state.close_reason or ''}")
    if state.offers:
        lines += ["Offers"] + [f"  {offer_line(o)}" for o in state.offers]
    if state.callbacks:
        lines += ["Callbacks"] + [f"  {callback_line(cb)}" for cb in state.callbacks]
    if state.checkins:
        lines.append("Follow-up check-ins")
        lines += [
            f"  #{ch.number} by {ch.channel.value} due {when(ch.due_at, now)}"
            + (f", sent {stamp(ch.sent_at)}" if ch.sent_at else "")
            + (f", answered {ch.answer.value}" if ch.answer else "")
            for ch in state.checkins
        ]
    shown = state.timeline[-timeline:] if timeline > 0 else []
    if shown:
        total = state.timeline_earlier + len(state.timeline)  # older entries left the state as events
        more = total - len(shown)
        lines.append("Timeline" + (f" (last {len(shown)} of {total})" if more else ""))
        lines += [f"  {entry_line(e)}" for e in shown]
    if brief is not None:
        lines += ["Brief", *(f"  {line}" if line else "" for line in brief.text.splitlines())]
    return "\n".join(lines)


def status_line(state: CaseState, now: datetime) -> str:
    """One line for `watch`: what a supervisor glances at."""
    owner = state.owner.id if state.owner else "unassigned"
    due = f", SLA due {when(state.sla_due_at, now)}" if state.sla_due_at else ""
    waiting = ", waiting on the customer" if state.waiting else ""
    if state.sla_paused_remaining is not None:
        waiting += f" (resolve clock paused, {duration(state.sla_paused_remaining)} of working time left)"
    return f"== {state.case_id}: {state.status.value} {_where(state)}, owner {owner}{waiting}{due}"


def _where(state: CaseState) -> str:
    """'at team_lead', or while the case is opening (no tier yet) which policy it is loading."""
    return f"at {state.tier.value}" if state.tier is not None else f"(loading policy '{state.policy_name}')"


def cases_table(cases: list[CaseSummary], now: datetime) -> Table:
    """Most urgent first: a missed SLA target nobody owns, then by SLA due instant (a missed one is in the
    past), then the oldest."""
    table = Table(
        "case",
        "tier",
        "status",
        "owner",
        "customer",
        "severity",
        "age",
        "SLA due",
        title=f"{len(cases)} case(s)",
        title_justify="left",
    )
    far = datetime.max.replace(tzinfo=now.tzinfo)
    for c in sorted(cases, key=lambda c: (c.sla_breach != "unowned", c.sla_due_at or far, c.opened_at)):
        due = (
            "-"
            if c.sla_due_at is None
            else (
                f"in {duration(c.sla_due_at - now)}" if c.sla_due_at > now else f"{duration(now - c.sla_due_at)} late"
            )
        )
        if c.sla_breach is not None:
            due = f"{due}, BREACHED" + (", unowned" if c.sla_breach == "unowned" else "")
        status = c.status.value if c.status else "-"
        if c.execution != "running":
            status = f"{status} ({c.execution})"
        table.add_row(
            *map(
                _cell,
                (
                    c.case_id,
                    c.tier.value if c.tier else "-",
                    status,
                    c.owner or "-",
                    c.customer or "-",
                    c.severity.value if c.severity else "-",
                    duration(now - c.opened_at),
                    due,
                ),
            )
        )
    return table


def _board_cases(title: str, cases: list[BoardCase], now: datetime) -> Table:
    from escalation.board import CASE_COLUMNS  # the board module reads visibility: only the board's views need it

    table = Table(*CASE_COLUMNS, title=title, title_justify="left")
    for c in cases:
        table.add_row(*map(_cell, c.row(now)))
    return table


def board_view(board: Board, now: datetime) -> Group:
    """The wallboard: cases per tier and status, what breaches next, unowned cases, each rep's load. Ids, tiers,
    severities and owner ids only: nothing about the customer."""
    statuses = list(next(iter(board.counts.values()), {}))
    counts = Table("tier", *(s.value for s in statuses), title=f"{board.running} running case(s)", title_justify="left")
    for tier, by_status in board.counts.items():
        counts.add_row(tier.value, *(str(by_status[s]) for s in statuses))
    reps = Table("rep", "tier", "open cases", "state", title="Reps", title_justify="left")
    for rep in board.reps:
        held = f"{rep.open_cases}/{rep.max_cases}" if rep.max_cases is not None else str(rep.open_cases)
        reps.add_row(*map(_cell, (rep.rep_id, rep.tier.value if rep.tier else "-", held, rep.state or "-")))
    notes = []
    if not board.complete:
        notes.append(f"lists below the counts are from the first {board.listed} of {board.running} running cases")
    if board.roster_problem is not None:
        notes.append(f"roster not readable, rep states missing: {board.roster_problem}")
    hour = []
    if (last := board.last_hour) is not None:
        span = "in the last hour" if last.full_hour else f"since {instant(last.since, seconds=True)}"
        hour.append(Text(f"{last.breaches} SLA breach(es) and {last.escalations} escalation(s) {span}"))
        if last.unreachable:
            notes.append(f"metrics not reachable: {', '.join(last.unreachable)}")
    return Group(
        Text(f"Escalations board at {instant(board.at, seconds=True)}", style="bold"),
        *hour,
        counts,
        _board_cases("Next breaches", board.next_breaches, now),
        _board_cases(f"Unowned: {len(board.unowned)}", board.unowned, now),
        reps,
        *(_cell(note) for note in notes),
    )


def doctor_table(report: Report, now: datetime) -> Table | Text:
    """The doctor's findings, one row per case; `doctor_commands` says how to repair each."""
    deep = ", every history replayed" if report.deep else ""
    if not report.cases:
        return Text(f"nothing stuck: {report.checked} running case(s) checked{deep}")
    latent = sum(f.state == "latent" for f in report.cases)
    counts = f"{len(report.cases) - latent} stuck" + (f", {latent} that would fail replay" if latent else "")
    table = Table(
        "case",
        "state",
        "cause",
        "message",
        "failing for",
        "attempt",
        "reset to event",
        title=f"{counts}, of {report.checked} running case(s){deep}",
        title_justify="left",
    )
    for f in report.cases:
        table.add_row(
            *map(
                _cell,
                (
                    f.case_id,
                    f.state if f.state == "stuck" else "latent (would fail replay)",
                    f.cause,
                    f.message,
                    duration(now - f.failing_since) if f.failing_since else "-",
                    str(f.attempt or "-"),
                    str(f.reset_event_id) if f.reset_event_id else "none",
                ),
            )
        )
    return table


NO_GOOD_POINT = (
    "no reset helps: no earlier workflow task of this run replays with this code; fix the workflow "
    "code the workers run (a case that never completed a task then carries on by itself)"
)


def doctor_commands(report: Report) -> str:
    """One line per case, never wrapped, to copy: the `temporal` command that resets it to its last good point."""
    lines = [f"{f.case_id}: " + (f.reset_command or NO_GOOD_POINT) for f in report.cases]
    header = "to repair, run (`escalations doctor --repair` does it for the stuck ones):"
    return "\n".join([header, *lines]) if lines else ""
