"""Check-ins after a resolution: ask whether the fix works, reopen when it does not."""

from __future__ import annotations

from escalation.constants import ERR_INVALID_STATE
from escalation.domain.formatting import instant
from escalation.domain.models import CheckIn, FollowUpAnswer, FollowUpResponseInput, Status
from escalation.domain.rules.step import SYSTEM, MessageKind, RuleViolation, Step


def schedule(step: Step) -> None:
    """Plan the check-ins at the policy's offsets from now (the resolution), each moved into the
    customer's contact window on their own wall clock (a check-in due at 03:00 goes out when it opens)."""
    s, fp = step.state, step.policy.followups
    cust = s.input.customer
    window = step.policy.customer_window(cust.time_zone)
    last = None
    for offset in fp.offsets:
        due = window.next_open(step.now + offset)
        if last is not None and due <= last:
            continue  # two check-ins in one closed stretch would arrive together: send one
        s.checkins.append(
            CheckIn(
                number=len(s.checkins) + 1, resolution=len(s.resolutions), due_at=due, channel=cust.preferred_channel
            )
        )
        last = due
    # No check-ins at all: the follow-up is over at once.
    s.followup_ends_at = last + fp.response_window if last is not None else step.now


def cancel_pending(step: Step) -> None:
    for c in step.state.checkins:
        if c.sent_at is None and not c.cancelled:
            c.cancelled = True
    step.state.followup_ends_at = None


def send_due(step: Step) -> None:
    s = step.state
    for c in s.checkins:
        if c.sent_at is None and not c.cancelled and c.due_at <= step.now:
            for earlier in s.checkins:
                if earlier.sent_at and earlier.answer is None and not earlier.cancelled:
                    earlier.expired = True
            c.sent_at = step.now
            entry = step.log("followup_sent", SYSTEM, checkin=c.number, channel=c.channel.value)
            cust = s.input.customer
            resolution = s.resolution.resolution if s.resolution else ""
            step.send(
                entry,
                MessageKind.FOLLOWUP_CHECKIN,
                step.customer(),
                c.channel,
                f"Is everything working now? (case {s.case_id})",
                f"Hello {cust.name},\n\nwe recently fixed your problem: {resolution}\n"
                "Is it still working? Reply 'fixed' or 'not fixed' and we will act on it straight away.\n\n"
                f"Reference: case {s.case_id}, check-in {c.number}.",
            )


def answer(step: Step, cmd: FollowUpResponseInput) -> CheckIn:
    s = step.state
    if s.status != Status.RESOLVED:
        raise RuleViolation(
            "status",
            f"case {s.case_id} is {s.status.value}; follow-up answers are taken only "
            "while a resolved case is in follow-up",
            type=ERR_INVALID_STATE,
        )
    # Only this resolution's check-ins: an answer about an earlier fix says nothing about this one.
    sent = [c for c in s.checkins if c.sent_at and not c.cancelled and c.resolution == len(s.resolutions)]
    if not sent:
        upcoming = next((c for c in s.checkins if not c.cancelled and c.sent_at is None), None)
        when = f"; the first goes out at {instant(upcoming.due_at)}" if upcoming else ""
        raise RuleViolation(
            "checkin", f"no check-in has been sent on case {s.case_id} yet{when}", type=ERR_INVALID_STATE
        )
    target = sent[-1] if cmd.checkin is None else next((c for c in sent if c.number == cmd.checkin), None)
    if target is None:
        raise RuleViolation(
            "checkin",
            f"check-in {cmd.checkin} is not one sent about the current resolution "
            f"of case {s.case_id} (those are: {', '.join(str(c.number) for c in sent)})",
        )
    if target.answer is not None:
        raise RuleViolation(
            "checkin", f"check-in {target.number} was already answered '{target.answer.value}'", type=ERR_INVALID_STATE
        )
    target.answer = cmd.answer
    target.answered_at = step.now
    target.comment = cmd.comment
    step.log(
        "followup_answered",
        "customer",
        checkin=target.number,
        answer=cmd.answer.value,
        comment=cmd.comment,
        channel=(cmd.channel or target.channel).value,
    )
    return target


def is_negative(c: CheckIn) -> bool:
    return c.answer == FollowUpAnswer.NOT_FIXED
