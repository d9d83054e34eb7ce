"""Callbacks: a promised call to the customer, inside their contact window, with a reminder to the caller,
retries when nobody answers, a hand-over when the caller lets the window pass, and cancellation when the
case resolves. Each pending callback contributes its own deadlines to the case's one timer loop.

Times are kept as UTC instants and shown on the customer's wall clock and the caller's. A time given
without a UTC offset is the customer's wall-clock time, so "10:00" stays 10:00 for them across a DST change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.calendar import WorkingCalendar
from escalation.domain.formatting import duration, duration_in_days, instant, local, wall
from escalation.domain.models import (
    Callback,
    CallbackAttempt,
    CallbackChannel,
    CallbackOutcome,
    CallbackOutcomeInput,
    CallbackStatus,
    CallbackTime,
    CancelCallbackInput,
    CaseState,
    ContactChannel,
    EscalationReason,
    Owner,
    RescheduleCallbackInput,
    ScheduleCallbackInput,
    Status,
    TimelineEntry,
)
from escalation.domain.rules import routing
from escalation.domain.rules.step import SYSTEM, MessageKind, Recipient, RuleViolation, Step, command
from escalation.domain.rules.tier import move

LONGEST_WINDOW = timedelta(days=1)
RETRYABLE = {CallbackOutcome.NO_ANSWER, CallbackOutcome.VOICEMAIL}
ANSWERED = {CallbackOutcome.REACHED, CallbackOutcome.DECLINED}


def _hours_text(hours: dict[str, list[str]] | None) -> str:
    if not hours:
        return "any time"
    spans = {day: ", ".join(v) for day, v in hours.items() if v}
    if len(spans) == 7 and len(set(spans.values())) == 1:
        return f"daily {next(iter(spans.values()))}"
    return "; ".join(f"{day} {v}" for day, v in spans.items())


# ----- checks shared by schedule and reschedule


def _contact(step: Step) -> WorkingCalendar:
    """The customer's contact window, on their own clock."""
    return step.policy.customer_window(step.state.input.customer.time_zone)


def when(step: Step, at: CallbackTime, field: str = "at") -> datetime:
    """The instant a callback asked for at `at` is due, or a RuleViolation saying why it cannot be."""
    s, policy = step.state, step.policy
    zone = s.input.customer.time_zone
    window = _contact(step)
    if at == "earliest":
        due = window.next_open(step.now)
    else:
        if at.tzinfo is None:  # the customer's wall clock
            due = at.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
            if due.astimezone(ZoneInfo(zone)).replace(tzinfo=None) != at:
                raise RuleViolation(
                    field,
                    f"{wall(at)} does not exist in {zone} (the clocks go forward that night); pick another time",
                )
        else:
            due = at.astimezone(UTC)
        if due < step.now:
            raise RuleViolation(
                field,
                f"{local(due, zone)} is in the past (it is {local(step.now, zone)} for the "
                "customer); pick a later time, or 'earliest'",
            )
        if not window.is_open(due):
            raise RuleViolation(
                field,
                f"{local(due, zone)} is outside the customer's contact window "
                f"({_hours_text(policy.contact_hours)}, {zone}); the window next opens "
                f"{local(window.next_open(due), zone)} ('earliest' picks it)",
            )
    horizon = policy.callbacks.horizon
    if due > step.now + horizon:
        raise RuleViolation(
            field,
            f"{local(due, zone)} is more than {duration_in_days(horizon)} ahead; policy "
            f"'{policy.name}' books callbacks up to {duration_in_days(horizon)} ahead",
        )
    return due


def _window(step: Step, given: timedelta | None) -> timedelta:
    window = given if given is not None else step.policy.callbacks.window
    if not timedelta(0) < window <= LONGEST_WINDOW:
        raise RuleViolation("window", f"must be longer than zero and at most {LONGEST_WINDOW} (got {window})")
    return window


def _number(step: Step, channel: CallbackChannel, phone: str | None) -> str | None:
    cust = step.state.input.customer
    if channel == CallbackChannel.CALL and not (phone or cust.phone):
        raise RuleViolation(
            "phone", f"customer {cust.id} has no phone number on the case; give the number to call in phone"
        )
    if channel == CallbackChannel.VIDEO and not cust.email:
        raise RuleViolation(
            "channel",
            f"a video call needs an email address for the invitation and customer "
            f"{cust.id} has none; use channel 'call'",
        )
    return phone or cust.phone


def caller(step: Step, wanted: str | None, found: Owner | None) -> Owner:
    """Who calls: the rep named (looked up in the roster by the workflow), else the case owner."""
    s = step.state
    if wanted is None:
        if s.owner is None:
            raise RuleViolation("owner", f"case {s.case_id} has no owner yet; name who calls in owner")
        return s.owner
    if found is not None and found.id == wanted:
        return found
    raise RuleViolation("owner", f"'{wanted}' is not an active rep in the roster; name someone who is")


def _find(step: Step, callback_id: str) -> Callback:
    s = step.state
    cb = next((c for c in s.callbacks if c.id == callback_id), None)
    if cb is None:
        known = ", ".join(c.id for c in s.callbacks) or "none yet"
        raise RuleViolation("callback_id", f"no callback '{callback_id}' on case {s.case_id} (callbacks: {known})")
    if cb.status != CallbackStatus.SCHEDULED:
        since = f" since {instant(cb.ended_at)}" if cb.ended_at else ""
        raise RuleViolation(
            "callback_id",
            f"{cb.id} is {cb.status.value}{since} ({cb.end_reason}); schedule a new one",
            type=ERR_INVALID_STATE,
        )
    return cb


# ----- messages


def _tell_owner(step: Step, entry: TimelineEntry, cb: Callback, kind: MessageKind, subject: str, lead: str) -> None:
    """Callers hear at once (they booked the time), with the time on both clocks."""
    s = step.state
    zone = cb.owner.time_zone or "UTC"
    body = (
        f"{lead}\n\nCustomer: {s.input.customer.name}, {cb.channel.value} {cb.phone or ''}\n"
        f"When: {local(cb.due_at, zone)} your time = {local(cb.due_at, s.input.customer.time_zone)} for the "
        f"customer; within {duration(cb.window)}\n"
        + (f"Notes: {cb.notes}\n" if cb.notes else "")
        + f"Record the outcome with record_callback_outcome (case {s.case_id}, {cb.id})."
    )
    step.send(
        entry,
        kind,
        routing.recipient(cb.owner),
        routing.channel(cb.owner),
        f"[{s.case_id}] {subject}",
        body,
        at=step.now,
    )


def _tell_customer(
    step: Step, entry: TimelineEntry, kind: MessageKind, subject: str, body: str, announcing: Callback | None = None
) -> None:
    """In writing (the preferred channel when it is email or SMS, else email, else SMS); held until the
    customer's contact window opens. A confirmation (`announcing`) still held when its callback is cancelled
    or moved is dropped."""
    s = step.state
    cust = s.input.customer
    channel = cust.written_channel()
    step.send(
        entry,
        kind,
        step.customer(),
        channel,
        f"{subject} (case {s.case_id})",
        f"Hello {cust.name},\n\n{body}\n\nReference: case {s.case_id}.",
        about=announcing.id if announcing else None,
        announces=announcing.due_at if announcing else None,
    )


def _customer_told(step: Step, cb: Callback) -> bool:
    """Whether the customer has heard of this callback: its first confirmation went out when their
    contact window next opened after booking. Not yet: there is nothing to call off with them."""
    return _contact(step).next_open(cb.scheduled_at) <= step.now


def _announce_move(step: Step, entry: TimelineEntry, cb: Callback, why: str | None = None) -> None:
    """Every change to a promised call reaches the customer, in their contact window, with the new time on
    their clock. A confirmation of the old time still held is dropped (it announces a time no longer
    planned), so a customer who never heard of the call just hears when it comes."""
    at = local(cb.due_at, step.state.input.customer.time_zone)
    if _customer_told(step, cb):
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_SCHEDULED,
            "Your callback has moved",
            (f"{why} " if why else "") + f"{cb.owner.name} will now call you on {at}.",
            announcing=cb,
        )
    else:
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_SCHEDULED,
            "We will call you back",
            f"{cb.owner.name} will call you on {at}.",
            announcing=cb,
        )


# ----- commands


def _plan(step: Step, cb: Callback, due: datetime) -> None:
    """Set the time of the next attempt, its reminder and its display times."""
    s, remind = step.state, step.policy.callbacks.remind_before
    cb.due_at = due
    cb.customer_time = due.astimezone(ZoneInfo(s.input.customer.time_zone))
    cb.owner_time = due.astimezone(ZoneInfo(cb.owner.time_zone or "UTC"))
    cb.remind_at = due - remind if remind is not None and due - remind > step.now else None
    cb.due_told = False


@command
def schedule_callback(step: Step, cmd: ScheduleCallbackInput, owner: Owner | None = None) -> None:
    """`owner` is the rep `cmd.owner` names, as the roster knows them (the workflow looks them up)."""
    step.require_open()
    s = step.state
    rep = caller(step, cmd.owner, owner)
    due = when(step, cmd.at)
    cb = Callback(
        id=f"callback-{len(s.callbacks) + 1}",
        due_at=due,
        window=_window(step, cmd.window),
        customer_time=due,
        owner_time=due,
        owner=rep,
        channel=cmd.channel,
        phone=_number(step, cmd.channel, cmd.phone),
        notes=cmd.notes,
        scheduled_by=cmd.actor,
        scheduled_at=step.now,
    )
    _plan(step, cb, due)
    s.callbacks.append(cb)
    entry = step.log(
        "callback_scheduled",
        cmd.actor,
        callback_id=cb.id,
        owner=rep.id,
        at=due.isoformat(),
        customer_time=cb.customer_time.isoformat(),
        owner_time=cb.owner_time.isoformat(),
        window_minutes=cb.window.total_seconds() / 60,
        channel=cb.channel.value,
    )
    _tell_owner(
        step,
        entry,
        cb,
        MessageKind.CALLBACK_SCHEDULED,
        f"callback booked ({cb.id})",
        f"{cmd.actor} booked a callback for you to make.",
    )
    _tell_customer(
        step,
        entry,
        MessageKind.CALLBACK_SCHEDULED,
        "We will call you back",
        f"{rep.name} will call you on {local(due, s.input.customer.time_zone)}"
        + (f" on {cb.phone}." if cb.channel == CallbackChannel.CALL else " by video (invitation to follow)."),
        announcing=cb,
    )


@command
def reschedule_callback(step: Step, cmd: RescheduleCallbackInput, owner: Owner | None = None) -> None:
    """`owner` is the rep `cmd.owner` names, as the roster knows them (the workflow looks them up)."""
    step.require_open()
    cb = _find(step, cmd.callback_id)
    rep = caller(step, cmd.owner, owner) if cmd.owner is not None else cb.owner
    due = when(step, cmd.at)
    window = _window(step, cmd.window if cmd.window is not None else cb.window)
    before, before_owner = cb.due_at, cb.owner.id
    cb.owner, cb.window, cb.handing_over = rep, window, False
    cb.notes = cmd.notes or cb.notes
    _plan(step, cb, due)
    entry = step.log(
        "callback_rescheduled",
        cmd.actor,
        callback_id=cb.id,
        from_at=before.isoformat(),
        at=due.isoformat(),
        customer_time=cb.customer_time.isoformat(),
        owner=rep.id,
        from_owner=before_owner if before_owner != rep.id else None,
    )
    _tell_owner(
        step,
        entry,
        cb,
        MessageKind.CALLBACK_SCHEDULED,
        f"callback moved ({cb.id})",
        f"{cmd.actor} moved this callback (it was due {local(before, rep.time_zone or 'UTC')}).",
    )
    _announce_move(step, entry, cb)


@command
def cancel_callback(step: Step, cmd: CancelCallbackInput) -> None:
    step.require_open()
    cb = _find(step, cmd.callback_id)
    _end(step, cb, CallbackStatus.CANCELLED, cmd.reason)
    entry = step.log("callback_cancelled", cmd.actor, callback_id=cb.id, reason=cmd.reason)
    _tell_owner(
        step,
        entry,
        cb,
        MessageKind.CALLBACK_CANCELLED,
        f"callback cancelled ({cb.id})",
        f"{cmd.actor} cancelled this callback: {cmd.reason}",
    )
    if _customer_told(step, cb):
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_CANCELLED,
            "Your callback is cancelled",
            f"We will not call you on {local(cb.due_at, step.state.input.customer.time_zone)} as planned.",
        )


@command
def record_callback_outcome(
    step: Step, cmd: CallbackOutcomeInput, *, announce_moves: bool = True, not_early: bool = True
) -> None:
    """How the call went. Refused before the attempt is due (`not_early`); a retry's new time is announced to
    the customer (`announce_moves`). Both can be turned off for histories recorded before they existed."""
    step.require_open()
    cp = step.policy.callbacks
    cb = _find(step, cmd.callback_id)
    number = len(cb.attempts) + 1
    if not_early and step.now < cb.due_at:
        zone = step.state.input.customer.time_zone
        raise RuleViolation(
            "callback_id",
            f"{cb.id} is not due yet: attempt {number} is due "
            f"{instant(cb.due_at)} ({local(cb.due_at, zone)} for the customer) and it is "
            f"{instant(step.now)} now; record the outcome once the call has been made, or "
            "move the callback with reschedule_callback",
            type=ERR_INVALID_STATE,
        )
    cb.attempts.append(
        CallbackAttempt(
            number=number, due_at=cb.due_at, outcome=cmd.outcome, by=cmd.actor, recorded_at=step.now, note=cmd.note
        )
    )
    cb.handing_over = False  # a late call still counts; a hand-over under way is dropped
    retry = cmd.outcome in RETRYABLE and number < cp.max_attempts
    if retry:
        # Counted from the booked time when the caller tried early (histories from before early outcomes
        # were refused): a retry never comes before it.
        _plan(step, cb, _contact(step).next_open(max(step.now, cb.due_at) + cp.retry_after))
    entry = step.log(
        "callback_outcome",
        cmd.actor,
        callback_id=cb.id,
        attempt=number,
        outcome=cmd.outcome.value,
        note=cmd.note,
        next_attempt_at=cb.due_at.isoformat() if retry else None,
    )
    if retry and announce_moves:
        _announce_move(step, entry, cb, "We tried to call you but could not reach you.")
    if cmd.outcome in ANSWERED:
        _end(step, cb, CallbackStatus.COMPLETED, cmd.outcome.value)
    elif cmd.outcome == CallbackOutcome.WRONG_NUMBER:
        _end(step, cb, CallbackStatus.FAILED, "wrong number")
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_UNREACHABLE,
            "We could not reach you",
            f"We tried to call you on {cb.phone} but it was not your number. Please reply with the "
            "number we should call.",
        )
    elif not retry:
        _unreachable(step, cb, entry)


def _unreachable(step: Step, cb: Callback, entry: TimelineEntry) -> None:
    """Every attempt went unanswered: say so in writing, then escalate or reassign as the policy says."""
    s, policy = step.state, step.policy
    tries = len(cb.attempts)
    _end(step, cb, CallbackStatus.FAILED, f"no answer after {tries} attempts")
    _tell_customer(
        step,
        entry,
        MessageKind.CALLBACK_UNREACHABLE,
        "We tried to call you",
        f"We tried to call you {tries} times but could not reach you. Reply to this message, or call "
        "us, and we will pick your case up straight away.",
    )
    detail = f"{cb.id}: customer not reached after {tries} attempts"
    above = policy.above(s.current_tier)
    if policy.callbacks.on_unreachable == "escalate" and above is not None:
        move(step, above, kind="escalated", reason=EscalationReason.CUSTOMER_UNREACHABLE.value, detail=detail)
    else:
        routing.reassign(step, SYSTEM, detail)


def _end(step: Step, cb: Callback, status: CallbackStatus, reason: str) -> None:
    cb.status, cb.ended_at, cb.end_reason = status, step.now, reason
    cb.remind_at, cb.handing_over = None, False


def cancel_all(step: Step, reason: str) -> None:
    """The case resolved or closed: every pending callback is called off and its caller told."""
    pending = [c for c in step.state.callbacks if c.status == CallbackStatus.SCHEDULED]
    if not pending:
        return
    for cb in pending:
        _end(step, cb, CallbackStatus.CANCELLED, reason)
    entry = step.log("callbacks_cancelled", SYSTEM, callback_ids=[c.id for c in pending], reason=reason)
    for cb in pending:
        _tell_owner(
            step,
            entry,
            cb,
            MessageKind.CALLBACK_CANCELLED,
            f"callback cancelled ({cb.id})",
            f"No need to call: {reason}.",
        )
    # The customer was promised these calls: say they will not come (unless the promise never went out).
    promised = [cb for cb in pending if _customer_told(step, cb)]
    if promised:
        zone = step.state.input.customer.time_zone
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_CANCELLED,
            "No need for our call",
            f"We will not call you on {' or '.join(local(cb.due_at, zone) for cb in promised)} as planned: {reason}.",
        )


# ----- time passing


def advance(step: Step) -> None:
    """Reminders, due notices and missed windows of every pending callback."""
    for cb in step.state.callbacks:
        if cb.status != CallbackStatus.SCHEDULED or cb.handing_over:
            continue
        if cb.remind_at is not None and cb.remind_at <= step.now:
            cb.remind_at = None
            if cb.due_at > step.now:
                entry = step.log("callback_reminder", SYSTEM, callback_id=cb.id, owner=cb.owner.id)
                _tell_owner(
                    step,
                    entry,
                    cb,
                    MessageKind.CALLBACK_REMINDER,
                    f"callback soon ({cb.id})",
                    "You have a callback coming up.",
                )
        if not cb.due_told and cb.due_at <= step.now:
            cb.due_told = True
            entry = step.log("callback_due", SYSTEM, callback_id=cb.id, owner=cb.owner.id, attempt=len(cb.attempts) + 1)
            _tell_owner(
                step,
                entry,
                cb,
                MessageKind.CALLBACK_DUE,
                f"call the customer now ({cb.id})",
                "This callback is due now.",
            )
        if cb.closes_at <= step.now:
            _missed(step, cb)


def _missed(step: Step, cb: Callback) -> None:
    """Nobody recorded an outcome within the window: a breach, and the next qualified rep is asked."""
    s = step.state
    s.breaches += 1
    cb.missed_by.append(cb.owner.id)
    cb.handing_over = True
    step.log("breached", SYSTEM, clock="callback", callback_id=cb.id, owner=cb.owner.id, due_at=cb.due_at.isoformat())
    tier = cb.owner.tier if cb.owner.tier in step.policy.ladder else s.current_tier
    routing.request_owner(step, callback_id=cb.id, exclude=cb.missed_by, tier=tier)


def handed_over(step: Step, routed: routing.Routed, *, announce: bool = True) -> None:
    """Routing's answer for a missed callback: the next rep takes it now, or nobody can and it is missed.
    The customer hears of the new time (`announce`; histories from before that replay without it)."""
    s = step.state
    cb = next((c for c in s.callbacks if c.id == routed.callback_id), None)
    if cb is None or not cb.handing_over or cb.status != CallbackStatus.SCHEDULED:
        return  # an outcome, reschedule or cancellation got there first
    cb.handing_over = False
    if routed.owner is None:
        _end(step, cb, CallbackStatus.MISSED, f"nobody else could take it: {routed.reason}")
        entry = step.log("callback_missed", SYSTEM, callback_id=cb.id, missed_by=cb.missed_by, reason=routed.reason)
        tier = cb.owner.tier
        team = Recipient(kind="team", id=f"team-{tier.value}", name=f"{tier.value} queue", tier=tier)
        step.send(
            entry,
            MessageKind.UNASSIGNED,
            team,
            ContactChannel.EMAIL,
            f"[{s.case_id}] missed callback {cb.id}: nobody to take it",
            f"{cb.id} was due {instant(cb.due_at)}; missed by {', '.join(cb.missed_by)}. {routed.reason}.",
            at=step.now,
        )
        _tell_customer(
            step,
            entry,
            MessageKind.CALLBACK_UNREACHABLE,
            "Sorry we missed your callback",
            "We did not call you back when we promised. Your case stays open and we will be in touch; "
            "reply to this message to tell us a good time.",
        )
        return
    previous, promised = cb.owner.id, cb.due_at
    cb.owner = routed.owner
    start = max(step.now, routed.starts_at or step.now)
    _plan(step, cb, _contact(step).next_open(start))
    cb.due_told = cb.due_at <= step.now
    entry = step.log(
        "callback_reassigned",
        SYSTEM,
        callback_id=cb.id,
        from_owner=previous,
        owner=cb.owner.id,
        at=cb.due_at.isoformat(),
    )
    _tell_owner(
        step,
        entry,
        cb,
        MessageKind.CALLBACK_DUE,
        f"take over callback {cb.id}",
        f"{previous} did not make this callback in its window; it is yours now.",
    )
    if announce:
        _announce_move(
            step,
            entry,
            cb,
            f"We did not call you on {local(promised, s.input.customer.time_zone)} as promised; we are sorry.",
        )


def deadlines(state: CaseState) -> list[datetime]:
    if state.status != Status.OPEN:
        return []
    due: list[datetime] = []
    for cb in state.callbacks:
        if cb.status != CallbackStatus.SCHEDULED or cb.handing_over:
            continue
        if cb.remind_at is not None:
            due.append(cb.remind_at)
        if not cb.due_told:
            due.append(cb.due_at)
        due.append(cb.closes_at)
    return due


def describe(state: CaseState, deadline: datetime) -> str | None:
    """What a deadline of a callback is, for the timer's summary in the UI."""
    for cb in state.callbacks:
        if cb.status != CallbackStatus.SCHEDULED:
            continue
        if cb.remind_at == deadline:
            return f"reminder for {cb.id}"
        if cb.due_at == deadline and not cb.due_told:
            return f"{cb.id} due ({cb.owner.id})"
        if cb.closes_at == deadline:
            return f"{cb.id} window closes"
    return None
