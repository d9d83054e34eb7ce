"""How much of a case the state keeps, so that no stream of commands can make it too large to query or to
carry across continue-as-new (Temporal refuses payloads over 2 MB).

Two mechanisms, both pure:
- `trim` runs at the end of every rule: the timeline keeps its recent entries (every entry already went out
  as an event, so nothing is lost; the brief says how many earlier ones there were), and lists that grow on
  their own (routing offers, a stint's owners, a callback's missed reps) keep their recent items.
- `require_room` refuses a command that would grow a case already at `STATE_BYTES`: only people add text,
  so only commands are refused, never the clock's own steps.
"""

from __future__ import annotations

from typing import Any

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.models import CaseState, TimelineEntry
from escalation.domain.rules.violation import RuleViolation

TIMELINE_KEPT = 200  # recent timeline entries kept in the state
TIMELINE_CHARS = 100_000  # and at most this much of their text
# Routing offers, owners of one stint, reps who missed one callback. Routing leaves out the reps a stint was
# offered to and a callback's missed reps: with more qualified reps than this at a tier, offers go round again.
RECENT_KEPT = 100
# A command that would take the state past this is refused. What the clock adds afterwards is trimmed, so the
# carried state stays under STATE_BYTES plus one command's input (escalation.client.converter.MAX_INPUT_BYTES).
STATE_BYTES = 768 * 1024


def _chars(entry: TimelineEntry) -> int:
    return 80 + sum(len(v) if isinstance(v, str) else len(str(v)) for v in entry.detail.values())


def trim(state: CaseState) -> CaseState:
    """Drop what the state no longer needs to keep (in place; returns `state`). The latest timeline entry is
    always kept: the next entry's number follows it."""
    timeline = state.timeline
    keep, chars = 0, 0
    for entry in reversed(timeline):
        chars += _chars(entry)
        if keep >= TIMELINE_KEPT or (keep > 0 and chars > TIMELINE_CHARS):
            break
        keep += 1
    if keep < len(timeline):
        state.timeline_earlier += len(timeline) - keep
        del timeline[: len(timeline) - keep]
    if len(state.assignments) > RECENT_KEPT:
        del state.assignments[:-RECENT_KEPT]
    for stint in state.stints:
        if len(stint.owners) > RECENT_KEPT:
            del stint.owners[:-RECENT_KEPT]
    for callback in state.callbacks:
        if len(callback.missed_by) > RECENT_KEPT:
            del callback.missed_by[:-RECENT_KEPT]
    return state


def size(value: Any) -> int:
    """Bytes of a contract model as JSON, the way it travels."""
    return len(value.__pydantic_serializer__.to_json(value))


def require_room(before: CaseState, after: CaseState) -> None:
    """Refuse a command that leaves the state over `STATE_BYTES` and larger than it found it."""
    grown = size(after)
    if grown > STATE_BYTES and grown > size(before):  # `before` measured only when it matters
        raise RuleViolation(
            "case",
            f"case {after.case_id} would hold {grown:,} bytes, over the {STATE_BYTES:,} a "
            "case may hold; nothing more can be added to it: close it and open a new case that "
            "refers to it",
            type=ERR_INVALID_STATE,
        )
