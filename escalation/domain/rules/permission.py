"""Who may do what on a case: the verified sender of a command against the policy's permissions.

A rep acts by the policy's table (escalation.domain.policy.Permission: the owner, reps at the case's tier
or above, a floor); a service by the commands the roster gives it; the customer only answers for their own
case. A rep acting on someone else's case is recorded as an override of the owner. Commands taken before
identity existed (no sender) replay as they were."""

from __future__ import annotations

from typing import TYPE_CHECKING

from escalation.constants import ERR_NOT_PERMITTED
from escalation.domain.models import Tier
from escalation.domain.principal import CUSTOMER, Principal
from escalation.domain.rules.violation import RuleViolation

if TYPE_CHECKING:
    from escalation.domain.rules.step import Step

TIERS = list(Tier)  # the ladder's order, whatever tiers a policy uses
CUSTOMER_COMMANDS = frozenset({"customer_replied", "followup_response"})


def rank(tier: Tier) -> int:
    return TIERS.index(tier)


def refuse(message: str, field: str = "actor") -> RuleViolation:
    return RuleViolation(field, message, type=ERR_NOT_PERMITTED)


def permit(step: Step, command: str, cmd: object) -> None:
    """Refuse unless the step's sender may send `command` (its argument `cmd`); note an override of the owner."""
    by = step.by
    if by is None:
        return
    case = step.state.case_id
    actor = getattr(cmd, "actor", None)
    if actor is not None and actor != by.id:
        raise refuse(f"'{actor}' is not who sent this: the credential names {by.label}")
    if by.kind == "customer":
        if command not in CUSTOMER_COMMANDS:
            raise refuse(f"a customer cannot {command.replace('_', ' ')}")
        if by.case_id != case:
            raise refuse(f"the customer credential is for case {by.case_id}, not {case}")
        return
    if command == "followup_response":
        raise refuse(f"only the customer answers a check-in (through the signed inbound endpoint), not {by.label}")
    if by.kind == "service":
        if "*" in by.may or command in by.may:
            return
        raise refuse(
            f"service {by.id} may not {command.replace('_', ' ')} (the roster gives it: {', '.join(by.may) or 'nothing'})"
        )
    _rep_may(step, command, by, getattr(cmd, "callback_id", None))


# Commands the rep a case is offered to (and does not own yet) may send as if they held it: taking it up.
OFFERED_MAY = frozenset({"acknowledge", "add_note"})
# Commands about one callback: the rep who makes the call holds it.
CALLBACK_COMMANDS = frozenset({"reschedule_callback", "cancel_callback", "record_callback_outcome"})


def _holder(step: Step, command: str, callback_id: str | None) -> str | None:
    """Who holds what the command is about: the callback's caller, the case's owner, or (for taking it up) the
    rep it is offered to."""
    s = step.state
    if command in CALLBACK_COMMANDS and callback_id is not None:
        callback = next((c for c in s.callbacks if c.id == callback_id), None)
        if callback is not None:
            return callback.owner.id
    if s.owner is not None:
        return s.owner.id
    if s.pending_assignment is not None and command in OFFERED_MAY:
        return s.pending_assignment.rep.id
    return None


def _rep_may(step: Step, command: str, by: Principal, callback_id: str | None) -> None:
    if command == "accept":
        return  # only the rep the case is offered to: the rule itself says so
    assert by.tier is not None
    s = step.state
    rule = step.policy.permission(command)
    holder = _holder(step, command, callback_id)
    what = command.replace("_", " ")
    if rule.at_least is not None and rank(by.tier) < rank(rule.at_least):
        raise refuse(
            f"{by.label} may not {what}: it needs a {rule.at_least.value} or above "
            f"(policy '{step.policy.name}' permissions.{command})"
        )
    if rule.owner and by.id == holder:
        return
    tier = s.current_tier
    # At the top of the ladder nobody is above: there "above" means the top tier itself.
    others = "case" if rule.others == "above" and step.policy.above(tier) is None else rule.others
    if (others == "case" and rank(by.tier) >= rank(tier)) or (others == "above" and rank(by.tier) > rank(tier)):
        if holder is not None and holder != by.id:
            step.override_of = holder
        return
    calls = command in CALLBACK_COMMANDS and holder is not None and holder != (s.owner.id if s.owner else None)
    owner = f"{'the caller' if calls else 'its owner'} ({holder})" if holder else "its owner"
    who = {
        "case": f"{owner} or a rep at {tier.value} or above",
        "above": f"{owner} or a rep above {tier.value}",
        "none": owner,
    }[others]
    if not rule.owner:
        who = who.replace(f"{owner} or a", "a").replace(owner, "nobody")
    raise refuse(f"{by.label} may not {what} on case {s.case_id} at {tier.value}: only {who} may")


def may_open(by: Principal, opened_by: str) -> None:
    """Any rep of the roster may open a case; a service when the roster gives it `open`; never the customer."""
    if opened_by != by.id:
        raise refuse(f"'{opened_by}' is not who opens this case: the credential names {by.label}", field="opened_by")
    if by.kind == "customer" or (by.kind == "service" and not ("*" in by.may or "open" in by.may)):
        raise refuse(f"{by.label} may not open cases", field="opened_by")


def customer_checkin(step: Step, checkin: int | None) -> None:
    """A customer credential minted for one check-in answers that one."""
    by = step.by
    if by is not None and by.id == CUSTOMER and by.checkin is not None and checkin not in (None, by.checkin):
        raise refuse(f"the customer credential answers check-in {by.checkin}, not {checkin}", field="checkin")
