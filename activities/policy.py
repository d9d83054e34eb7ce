"""Reading policy data. Runs as an activity so the policy a case uses is recorded in its history."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_UNKNOWN_POLICY
from escalation.policy import Policy, PolicyError, PolicyStore


class PolicyActivities:
    def __init__(self, store: PolicyStore) -> None:
        self.store = store

    @activity.defn(name="load_policy")
    async def load_policy(self, name: str) -> Policy:
        try:
            return self.store.get(name)
        except PolicyError as err:
            # Retrying cannot fix a missing or broken policy file: fail the case with the reason.
            raise ApplicationError(str(err), type=ERR_UNKNOWN_POLICY, non_retryable=True) from err
