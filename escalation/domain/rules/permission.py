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


def permit(step: Step, command: str, actor: str | None) -> None:
    """Refuse unless the step's sender may send `command` naming `actor`; note an override of the owner."""
    by = step.by
    if by is None:
        return
    case = step.state.case_id
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
    _rep_may(step, command, by)


def _rep_may(step: Step, command: str, by: Principal) -> None:
    if command == "accept":
        return  # only the rep the case is offered to: the rule itself says so
    assert by.tier is not None
    s = step.state
    rule = step.policy.permission(command)
    holders = {s.owner.id if s.owner else None, s.pending_assignment.rep.id if s.pending_assignment else None}
    what = command.replace("_", " ")
    if rule.at_least is not None and rank(by.tier) < rank(rule.at_least):
        raise refuse(
            f"{by.label} may not {what}: it needs a {rule.at_least.value} or above "
            f"(policy '{step.policy.name}' permissions.{command})"
        )
    if rule.owner and by.id in holders:
        return
    tier = s.current_tier
    if (rule.others == "case" and rank(by.tier) >= rank(tier)) or (
        rule.others == "above" and rank(by.tier) > rank(tier)
    ):
        if s.owner is not None and s.owner.id != by.id:
            step.override_of = s.owner.id
        return
    owner = f"its owner ({s.owner.id})" if s.owner else "its owner"
    who = {
        "case": f"{owner} or a rep at {tier.value} or above",
        "above": f"{owner} or a rep above {tier.value}",
        "none": owner,
    }[rule.others]
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
