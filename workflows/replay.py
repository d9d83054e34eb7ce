"""Replaying cases as the worker ran them (the doctor, the chaos run, the replay tests)."""

from temporalio.worker import Interceptor

from workflows.arguments import OneArgument
from workflows.once import AnsweredOnce
from workflows.verified import Verified


def replay_interceptors() -> list[Interceptor]:
    """The workflow interceptors that shape a case's history (its start's credential, the recorded credentials of
    commands, commands answered in an earlier run), with nothing to verify: validators do not run on replay."""
    return [OneArgument(), Verified.for_replay(), AnsweredOnce()]
