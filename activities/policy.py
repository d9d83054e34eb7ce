"""Reading policy data. Runs as an activity so the policy a case uses is recorded in its history."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from escalation.constants import ERR_UNKNOWN_POLICY
from escalation.domain.policy import Policy, PolicyError, PolicyStore, UnknownPolicyName

# A policy file that cannot be used when a case opens may be in the middle of being rewritten: the activity
# tries this many times (the workflow's retry policy spaces them 1 s, then 2 s apart) before the case fails.
# A name with no file, and never had one since the worker started, fails at once.
UNREADABLE_ATTEMPTS = 3
ERR_POLICY_UNREADABLE = "PolicyUnreadable"


class PolicyActivities:
    def __init__(self, store: PolicyStore) -> None:
        self.store = store
        # What is valid now stays in force should its file break later (PolicyStore.in_force).
        self.store.warm()

    @activity.defn(name="load_policy")
    async def load_policy(self, name: str) -> Policy:
        try:
            return self.store.in_force(name)
        except PolicyError as err:
            # A file never valid since the worker started (or gone): tried again a few times in case it is
            # being written, then the case fails with the reason.
            transient = not isinstance(err, UnknownPolicyName) or self.store.seen(name)
            if transient and activity.info().attempt < UNREADABLE_ATTEMPTS:
                raise ApplicationError(str(err), type=ERR_POLICY_UNREADABLE) from err
            raise ApplicationError(str(err), type=ERR_UNKNOWN_POLICY, non_retryable=True) from err
