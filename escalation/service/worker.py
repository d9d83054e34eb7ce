"""The escalation worker behind `escalations-worker` (and `python worker.py`).

Connects with the settings of escalation.config (client config profile, TEMPORAL_* variables for
address, namespace, TLS and API key), polls the task queue and runs the Escalation workflow and its
activities, tuned by ESCALATIONS_MAX_* and ESCALATIONS_GRACEFUL_SHUTDOWN_TIMEOUT. SIGINT/SIGTERM
shut it down gracefully.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import structlog
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.channels import build_delivery, build_events
from activities.delivery import MessageDelivery
from activities.identity import IdentityActivities
from activities.insight import InsightActivities
from activities.notify import NotifyActivities
from activities.policy import PolicyActivities
from activities.record import RecordActivities
from activities.route import RouteActivities
from escalation import logs
from escalation.client import connect
from escalation.client.errors import Unreachable
from escalation.config import ConfigError, Settings
from escalation.constants import SEARCH_ATTRIBUTES
from escalation.domain.policy import PolicyError, PolicyStore
from escalation.domain.roster import RosterError, RosterStore
from escalation.identity import KeyProblem, Signer, Verifier
from escalation.protect import announce
from escalation.service.log_context import LogContext
from escalation.service.roster_watch import watch_roster
from workflows import Escalation
from workflows.arguments import OneArgument
from workflows.once import AnsweredOnce
from workflows.verified import Verified

log = structlog.get_logger()


def build_identity(settings: Settings) -> IdentityActivities:
    """Who a credential names: the settings' keys (escalation.identity) and the roster."""
    try:
        verifier = Verifier.from_settings(settings.identity)
    except KeyProblem as err:
        raise ConfigError(f"identity: {err}") from None
    return IdentityActivities(verifier, RosterStore(settings.roster_path))


def build_activities(
    settings: Settings,
    delivery: MessageDelivery | None = None,
    identity: IdentityActivities | None = None,
    route: RouteActivities | None = None,
    insight: InsightActivities | None = None,
) -> list:
    """All activities, wired to the backends the settings name (or the delivery, identity or routing given).
    Without `insight` (which needs the worker's client) new cases are scored but learn no earlier cases."""
    policies = PolicyActivities(PolicyStore(settings.policy_dir))
    route = route or RouteActivities(RosterStore(settings.roster_path))
    notify = NotifyActivities(delivery or build_delivery(settings.delivery, settings.outbox_path))
    record = RecordActivities(
        build_events(settings.delivery, settings.events_path),
        settings.events_path.with_name("events-dead-letters.jsonl"),
    )
    return [
        policies.load_policy,
        route.find_owner,
        route.find_rep,
        route.assign_owner,
        notify.send_message,
        record.record_events,
        record.dead_letter_events,
        (identity or build_identity(settings)).identify,
        (insight or InsightActivities(None, settings.risk_model_path)).look_back,
    ]


def interceptors(identity: IdentityActivities) -> list:
    """The worker's interceptors, outermost first. They bind each activity's case to its log lines
    (escalation.service.log_context); name the case of a failing workflow task that core reports by run id
    alone (escalation.logs); refuse an update sent without its one argument as InvalidArgument
    (workflows.arguments); verify the credential of every command (workflows.verified); answer an update resent
    to a later run of the case with its first answer (workflows.once)."""
    return [LogContext(), logs.RunNames(), OneArgument(), Verified(identity.check), AnsweredOnce()]


def workflow_runner(sandbox: str) -> WorkflowRunner:
    """The runner for `sandbox` (WorkerOptions.workflow_sandbox): the SDK's sandbox ("strict"), or none ("off")."""
    return SandboxedWorkflowRunner() if sandbox == "strict" else UnsandboxedWorkflowRunner()


def build_worker(
    client: Client,
    settings: Settings,
    *,
    delivery: MessageDelivery | None = None,
    identity: IdentityActivities | None = None,
    route: RouteActivities | None = None,
    **options,
) -> Worker:
    """The worker for `settings`; `options` override the settings' worker options (Worker keyword arguments)."""
    # Fail fast on missing or broken policy or roster files rather than at the first case.
    policies = PolicyStore(settings.policy_dir)
    if not policies.names():
        raise ConfigError(f"policy_dir: no policies (*.toml) in {settings.policy_dir} (set by ESCALATIONS_POLICY_DIR)")
    if not settings.roster_path.is_file():
        raise ConfigError(f"roster_path: roster file not found: {settings.roster_path} (set by ESCALATIONS_ROSTER)")
    policies.validate_all()
    RosterStore(settings.roster_path).get()
    identity = identity or build_identity(settings)
    wiring: dict[str, Any] = {
        "interceptors": interceptors(identity),
        "workflow_runner": workflow_runner(settings.worker.workflow_sandbox),
    }
    wiring |= settings.worker.worker_kwargs() | options
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[Escalation],
        activities=build_activities(
            settings, delivery, identity, route, InsightActivities(client, settings.risk_model_path)
        ),
        **wiring,
    )


async def check_search_attributes(client: Client, namespace: str) -> None:
    """Refuse to start on a namespace without this version's search attributes: a case upserting one the
    namespace does not have fails its workflow task, over and over. A server that will not say (no operator
    rights) is taken at its word, with a warning."""
    try:
        known = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    except RPCError as err:
        log.warning("search_attributes_unchecked", namespace=namespace, error=err.message)
        return
    missing = {name: kind for name, kind in SEARCH_ATTRIBUTES.items() if name not in known.custom_attributes}
    if missing:
        names = " ".join(f"--name {name} --type {kind}" for name, kind in missing.items())
        raise ConfigError(
            f"namespace {namespace} lacks the search attributes {', '.join(missing)}: register them before "
            f"starting workers of this version (temporal operator search-attribute create --namespace {namespace} "
            f"{names})"
        )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    announce(settings)  # payloads encrypted, or a warning that customer data goes to Temporal in plain text
    client = await connect(settings)
    await check_search_attributes(client, settings.namespace)
    identity = build_identity(settings)
    if Signer.from_settings(settings.identity) is None:
        log.warning(
            "roster_watch_cannot_sign",
            reason="no signing key (ESCALATIONS_IDENTITY__SIGNING_KEYS): cases of inactive reps are not reassigned",
        )
    route = RouteActivities(RosterStore(settings.roster_path))
    worker = build_worker(client, settings, identity=identity, route=route)
    route.index.warm(client)  # with thousands of cases open, the first listing takes seconds: begin it now
    log.info(
        "worker_started",
        address=settings.address,
        namespace=settings.namespace,
        task_queue=settings.task_queue,
        tls=settings.uses_tls,
        **settings.worker.model_dump(mode="json"),
        **(settings.delivery.describe() if settings.delivery else {}),
    )
    async with worker:
        # Keys added to or removed from the JWKS (a rotation) take effect without a restart.
        keys = asyncio.create_task(identity.verifier.keep_fresh(stop))
        # Cases of reps the roster marks inactive are reassigned from here.
        await watch_roster(client, RosterStore(settings.roster_path), stop)
        await keys
    log.info("worker_stopped")


def main() -> None:
    logs.configure()
    try:
        settings = Settings.from_env()
        logs.serve_metrics(settings.metrics_address)  # before any client connects
    except (ConfigError, ValueError) as err:
        log.error("worker_config_invalid", error=str(err))
        sys.exit(f"escalations-worker: {err}")

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    code = 0
    try:
        asyncio.run(_main())
    except (ConfigError, Unreachable, PolicyError, RosterError) as err:
        log.error("worker_cannot_start", error=str(err))
        print(f"escalations-worker: {err}", file=sys.stderr)
        code = 1
    logs.leave(code)


if __name__ == "__main__":
    main()
