"""`escalations`: open, drive, show, list and watch cases from a terminal.

Every command goes through `EscalationClient`, so the CLI refuses exactly what the workflow refuses, with
the same words. Connection settings are those of the worker (client config profile, TEMPORAL_*), with
--address, --namespace, --profile and --config-file on top. A command is one small function over the
contract table: adding an update means adding its entry in escalation.client.contract and a command here.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar
from zoneinfo import ZoneInfo

import typer
from pydantic import BaseModel, SecretStr, ValidationError
from rich.console import Console
from rich.live import Live

from escalation.board import gather_board
from escalation.cli import doctor, views
from escalation.client import Case, EscalationClient, contract
from escalation.client.contract import Update
from escalation.client.errors import (
    CaseAlreadyOpen,
    CaseNotFound,
    CaseUnavailable,
    Ending,
    EscalationError,
    InvalidArgument,
    InvalidState,
    NotPermitted,
    Unauthenticated,
    UnknownPolicy,
    Unreachable,
    from_validation_error,
)
from escalation.config import ConfigError, Settings
from escalation.domain.models import (
    Callback,
    CallbackChannel,
    CallbackOutcome,
    Channel,
    EscalationReason,
    FollowUpAnswer,
    OfferAnswer,
    OfferKind,
    Outcome,
    RootCause,
    Sentiment,
    Severity,
    Status,
    Tier,
    TimelineEntry,
    parse_duration,
)
from escalation.identity import (
    ALGORITHMS,
    CREDENTIAL_ENV,
    CUSTOMER,
    CredentialRefused,
    IdentitySettings,
    KeyProblem,
    Signer,
    Verifier,
    new_key,
    unverified_claims,
)
from escalation.identity.keys import write_public
from escalation.identity.settings import IDENTITY_PREFIX
from escalation.logs import leave
from escalation.protect.settings import CODEC_PREFIX

T = TypeVar("T")

# Set (to anything but empty or 0) to see the traceback behind an unexpected error instead of its one line.
DEBUG_ENV = "ESCALATIONS_DEBUG"


class Code(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # bad options (from the option parser)
    INVALID_ARGUMENT = 3  # refused: fix the input
    INVALID_STATE = 4  # refused: the case is not in a state for that (or has completed)
    NOT_FOUND = 5
    ALREADY_OPEN = 6  # open --fail-if-open
    UNKNOWN_POLICY = 7
    UNREACHABLE = 8  # connection or configuration (keys included), or no worker answering
    UNAVAILABLE = 9  # the case cannot take commands for now (workflow task failing): retry with --update-id
    STUCK = 10  # doctor: stuck cases (or, with --deep, cases that would fail replay) left as they are
    UNAUTHENTICATED = 11  # no credential, or one that does not verify or names nobody of the roster
    NOT_PERMITTED = 12  # the verified sender may not do that on this case (permissions, own authority)


EXIT_CODES: list[tuple[type[Exception], Code]] = [
    (InvalidArgument, Code.INVALID_ARGUMENT),
    (InvalidState, Code.INVALID_STATE),
    (CaseNotFound, Code.NOT_FOUND),
    (CaseAlreadyOpen, Code.ALREADY_OPEN),
    (UnknownPolicy, Code.UNKNOWN_POLICY),
    (Unauthenticated, Code.UNAUTHENTICATED),
    (NotPermitted, Code.NOT_PERMITTED),
    (Unreachable, Code.UNREACHABLE),
    (ConfigError, Code.UNREACHABLE),
    (KeyProblem, Code.UNREACHABLE),
    (CredentialRefused, Code.INVALID_ARGUMENT),
    (CaseUnavailable, Code.UNAVAILABLE),
]

EXAMPLES = """\
Examples:

  escalations open examples/case.json

  escalations ack C-1001 --as ana

  escalations credential mint --as ana --for-service crm

  escalations offer C-1001 --actor ana --kind compensation --amount 20 --description "Refund of the fee"

  escalations escalate C-1001 --actor ana --reason needs_authority --detail "refund above my limit"

  escalations callback schedule C-1001 --actor sam --at earliest --notes "explain the refund"

  escalations show C-1001

  escalations list --tier team_lead --due-before 30m

  escalations watch C-1001

  escalations doctor --repair

  escalations forget cust-42 --as sam --reference GDPR-2026-117

  escalations codec-server --listen 127.0.0.1:8234 --ui-origin http://localhost:8233

Exit codes: 0 done, 2 bad options, 3 refused (fix the input), 4 refused (the case is not in a state for
that), 5 case not found, 6 already open (open --fail-if-open), 7 unknown policy, 8 cannot connect, bad
connection settings or no worker answering, 9 the case cannot take commands for now (its workflow task is
failing; send the same command again with the --update-id printed), 10 doctor found stuck cases and
left them so, 1 anything else (ESCALATIONS_DEBUG=1 shows the traceback of an unexpected error)."""

app = typer.Typer(
    name="escalations",
    help="Open, drive, show, list and watch escalation cases from a terminal.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class ManualReason(StrEnum):
    """The reasons a person may give (MANUAL_REASONS, in the contract's order; a test keeps them equal): the only
    choices `escalate --reason` lists and completes (sla_breach, no_capacity and the other system reasons are
    refused by the case for API callers)."""

    CUSTOMER_REQUEST = EscalationReason.CUSTOMER_REQUEST.value
    THREAT = EscalationReason.THREAT.value
    NEEDS_AUTHORITY = EscalationReason.NEEDS_AUTHORITY.value
    COMPLEXITY = EscalationReason.COMPLEXITY.value


CaseId = Annotated[str, typer.Argument(help="The case id (the workflow id without 'escalation-').")]
ActorOpt = Annotated[
    str,
    typer.Option(
        "--actor",
        "--as",
        "-a",
        envvar="ESCALATIONS_ACTOR",
        help="Who does this (rep id); with a signing key the command carries a credential signed for them.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
UpdateIdOpt = Annotated[
    str | None,
    typer.Option(
        "--update-id",
        help="Idempotency key: the case applies a command with the same key once and answers a repeat "
        "with the first result (default: a new one; printed when a failed command may be retried).",
    ),
]


# ----- plumbing


class Options(BaseModel):
    """Connection options given on the command line; None leaves the environment's setting."""

    address: str | None = None
    namespace: str | None = None
    profile: str | None = None
    config_file: Path | None = None
    task_queue: str | None = None
    retry_timeout: float | None = None
    policy_dir: Path | None = None
    credential: str | None = None

    def settings(self) -> Settings:
        settings = Settings.from_env(
            profile=self.profile,
            config_file=self.config_file,
            address=self.address,
            namespace=self.namespace,
            task_queue=self.task_queue,
            policy_dir=self.policy_dir,
        )
        if self.credential is None:
            return settings
        identity = settings.identity.model_copy(update={"credential": SecretStr(self.credential)})
        return settings.model_copy(update={"identity": identity})


def read_credential(value: str) -> str:
    """--credential: the token itself, or @FILE (read, surrounding whitespace dropped), or - for stdin."""
    if value == "-":
        return sys.stdin.read().strip()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(
                f"--credential {value[:80]}: cannot read: {getattr(err, 'strerror', None) or err}"
            ) from None
    return value.strip()


def finite(value: float | None) -> float | None:
    """Option callback: a number of seconds must be a finite number ('nan' and 'inf' parse as floats)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number of seconds (got {value})")
    return value


@app.callback()
def main(
    ctx: typer.Context,
    address: Annotated[
        str | None, typer.Option(help="Temporal frontend host:port (else TEMPORAL_ADDRESS or the profile).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option(help="Temporal namespace (else TEMPORAL_NAMESPACE or the profile).")
    ] = None,
    profile: Annotated[
        str | None, typer.Option(help="Client config profile (else TEMPORAL_PROFILE, 'default').")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option(help="Client config TOML (else TEMPORAL_CONFIG_FILE or the default location).")
    ] = None,
    task_queue: Annotated[
        str | None, typer.Option(help="Task queue new cases start on (else ESCALATIONS_TASK_QUEUE, 'escalations').")
    ] = None,
    retry_timeout: Annotated[
        float | None,
        typer.Option(
            min=0,
            max=3600,
            callback=finite,
            help="Seconds to keep resending a command the case cannot take for now (same update id; default 30, 0: fail at once).",
        ),
    ] = None,
    policy_dir: Annotated[
        Path | None,
        typer.Option(
            help="The workers' policies folder (else ESCALATIONS_POLICY_DIR): `open` refuses a policy it has no file for before starting anything."
        ),
    ] = None,
    credential: Annotated[
        str | None,
        typer.Option(
            envvar=CREDENTIAL_ENV,
            show_envvar=True,
            help="A signed credential (JWT) to send with every command as it is, @FILE to read it from a file, or - "
            f"for stdin (else one is signed for --as with the key {IDENTITY_PREFIX}KEYS or SIGNING_KEYS names).",
        ),
    ] = None,
) -> None:
    ctx.obj = Options(
        address=address,
        namespace=namespace,
        profile=profile,
        config_file=config_file,
        task_queue=task_queue,
        retry_timeout=retry_timeout,
        policy_dir=policy_dir,
        credential=_given_credential(credential),
    )


def _given_credential(value: str | None) -> str | None:
    """--credential read once (a file or stdin is read here, before the command runs)."""
    if value is None:
        return None
    try:
        return read_credential(value)
    except ConfigError as err:
        fail(str(err), Code.UNREACHABLE)


def say(text: str, *, err: bool = False) -> None:
    """Print text that may carry what people typed (notes, names, a refusal quoting them): control characters
    are shown escaped, never sent to the terminal."""
    typer.echo(views.printable(text), err=err)


def fail(message: str, code: Code) -> NoReturn:
    say(f"error: {message}", err=True)
    raise typer.Exit(int(code))


def unexpected(err: BaseException) -> NoReturn:
    """Any error nobody foresaw: one line and exit 1; the traceback only when ESCALATIONS_DEBUG is set."""
    if Settings.read().debug:
        traceback.print_exception(err)
    text = " ".join(str(err).split())[:500]
    fail(
        f"unexpected {type(err).__name__}"
        + (f": {text}" if text else "")
        + f" (set {DEBUG_ENV}=1 to see the traceback)",
        Code.ERROR,
    )


def run(ctx: typer.Context, work: Callable[[EscalationClient], Awaitable[T]]) -> T:
    """Connect and run `work`; typed errors become a message on stderr and their exit code."""

    async def go() -> T:
        retry = {} if ctx.obj.retry_timeout is None else {"retry_timeout": ctx.obj.retry_timeout}
        esc = await EscalationClient.connect(ctx.obj.settings(), **retry)
        return await work(esc)

    try:
        return asyncio.run(go())
    except (EscalationError, ConfigError, KeyProblem, CredentialRefused) as err:
        code = next((c for kind, c in EXIT_CODES if isinstance(err, kind)), Code.ERROR)
        retry_with = getattr(err, "update_id", None) if getattr(err, "retryable", False) else None
        fail(
            str(err)
            + (
                f"\nto retry safely, send the same command with --update-id {retry_with} (the case applies it once)"
                if retry_with
                else ""
            ),
            code,
        )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except ValidationError as err:  # input checked outside the client's own checks
        fail(str(from_validation_error(err)), Code.INVALID_ARGUMENT)
    except Exception as err:
        unexpected(err)


def emit(result: BaseModel | Sequence[BaseModel] | Mapping[str, Any], as_json: bool, human: str) -> None:
    if not as_json:
        say(human)
    elif isinstance(result, BaseModel):
        typer.echo(views.json_printable(result.model_dump_json(indent=2)))
    elif isinstance(result, list):
        typer.echo(json.dumps([r.model_dump(mode="json") for r in result], indent=2))  # ensure_ascii: all escaped
    else:
        typer.echo(json.dumps(result, indent=2, default=str))


def command(
    ctx: typer.Context,
    case_id: str,
    op: Update,
    fields: dict[str, Any],
    as_json: bool,
    update_id: str | None = None,
    credential: Callable[[], str | None] | None = None,
) -> None:
    """Send one update (with `update_id` as its idempotency key, and `credential` instead of the client's own
    when given); print what it recorded (the timeline entry, or the offer)."""
    arg = {k: v for k, v in fields.items() if v is not None}
    result = run(ctx, lambda esc: esc.case(case_id, credential=credential).update(op, arg, update_id=update_id))
    line = (
        views.entry_line(result)
        if isinstance(result, TimelineEntry)
        else views.callback_line(result)
        if isinstance(result, Callback)
        else views.offer_line(result)
    )
    emit(result, as_json, line)


# ----- opening


@app.command("open", epilog="Example: escalations open examples/case.json   (or - to read stdin)")
def open_case(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="JSON file with the case (EscalationInput), or - for stdin.")],
    fail_if_open: Annotated[
        bool, typer.Option(help="Exit 6 if the case is already open instead of reusing it.")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            max=300,
            callback=finite,
            help="Seconds to wait for a worker to open the case (load its policy): a case the workers refuse at once (unknown policy, bad input) is reported with its exit code; 0: do not wait.",
        ),
    ] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """Open a case from its JSON description. Opening an open case again changes nothing."""
    payload = read_case_file(file)
    case = run(ctx, lambda esc: esc.open(payload, if_open="fail" if fail_if_open else "return", wait=wait))
    human = (
        f"opened case {case.case_id} (workflow {case.workflow_id})"
        if case.opened
        else f"case {case.case_id} is already open (workflow {case.workflow_id}); nothing started"
    )
    if case.still_opening:
        human += f"; no worker has opened it yet (within {wait:g}s): it opens when a worker on its task queue runs"
    emit(
        {"case_id": case.case_id, "workflow_id": case.workflow_id, "opened": case.opened}
        | ({"still_opening": True} if case.still_opening else {}),
        as_json,
        human,
    )


def read_case_file(file: str) -> Any:
    """The JSON a case file (or stdin, '-') holds; anything unreadable is refused naming the file and why."""
    name = "stdin" if file == "-" else file
    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as err:
        fail(f"{name}: cannot read: {err.strerror or err}", Code.INVALID_ARGUMENT)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        fail(
            f"{name}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the file as UTF-8",
            Code.INVALID_ARGUMENT,
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{name}: not valid JSON: {err}", Code.INVALID_ARGUMENT)
    except RecursionError:
        fail(f"{name}: not valid JSON: nested too deeply", Code.INVALID_ARGUMENT)


# ----- commands on a case (one update each)


@app.command("ack", epilog="Example: escalations ack C-1001 --actor ana --note 'calling back now'")
def ack(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    note: Annotated[str | None, typer.Option(help="A note for the timeline.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Acknowledge the case at its tier: stops the acknowledge clock."""
    command(ctx, case_id, contract.ACKNOWLEDGE, {"actor": actor, "note": note}, as_json, update_id)


@app.command("escalate", epilog="Example: escalations escalate C-1001 -a ana --reason customer_request")
def escalate(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    reason: Annotated[ManualReason, typer.Option(help="Why (customer_request, threat, needs_authority, complexity).")],
    detail: Annotated[str | None, typer.Option(help="What the next tier should know.")] = None,
    to: Annotated[Tier | None, typer.Option("--to", help="Target tier (a skip needs a skip reason).")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Move the case up the ladder (one tier, unless --to and the reason allow a skip)."""
    command(
        ctx,
        case_id,
        contract.ESCALATE,
        {"actor": actor, "reason": EscalationReason(reason.value), "detail": detail, "target_tier": to},
        as_json,
        update_id,
    )


@app.command(
    "de-escalate", epilog="Example: escalations de-escalate C-1001 -a tara --reason 'customer calm, agent follows up'"
)
def de_escalate(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    reason: Annotated[str, typer.Option(help="Why the case goes back down.")],
    to: Annotated[Tier | None, typer.Option("--to", help="Target tier (default: one below).")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Move the case down the ladder."""
    command(
        ctx, case_id, contract.DE_ESCALATE, {"actor": actor, "reason": reason, "target_tier": to}, as_json, update_id
    )


@app.command(
    "note", epilog="Example: escalations note C-1001 -a ana 'Customer calmer after the apology' --sentiment upset"
)
def note(
    ctx: typer.Context,
    case_id: CaseId,
    text: Annotated[str, typer.Argument(help="The note.")],
    actor: ActorOpt,
    sentiment: Annotated[Sentiment | None, typer.Option(help="The customer's mood now.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Add a note to the case (it goes into every brief)."""
    command(ctx, case_id, contract.ADD_NOTE, {"actor": actor, "text": text, "sentiment": sentiment}, as_json, update_id)


@app.command(
    "offer",
    epilog="Example: escalations offer C-1001 -a ana --kind compensation --amount 20 --description 'Fee refund'",
)
def offer(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    kind: Annotated[OfferKind, typer.Option(help="compensation (money back) or goodwill (a gesture).")],
    amount: Annotated[str, typer.Option(help="Amount, e.g. 19.99 (0 for a gesture without money).")],
    description: Annotated[str, typer.Option(help="What is offered.")],
    currency: Annotated[str | None, typer.Option(help="ISO code; default the policy's.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Propose an offer to the customer, within the authority limit of the tier (or the owner)."""
    command(
        ctx,
        case_id,
        contract.PROPOSE_OFFER,
        {"actor": actor, "kind": kind, "amount": amount, "currency": currency, "description": description},
        as_json,
        update_id,
    )


@app.command("offer-response", epilog="Example: escalations offer-response C-1001 offer-1 accepted -a ana")
def offer_response(
    ctx: typer.Context,
    case_id: CaseId,
    offer_id: Annotated[str, typer.Argument(help="The offer (offer-N, see `show`).")],
    answer: Annotated[OfferAnswer, typer.Argument(help="accepted or declined.")],
    actor: ActorOpt,
    note: Annotated[str | None, typer.Option(help="What the customer said.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Record the customer's answer to an offer."""
    command(
        ctx,
        case_id,
        contract.RECORD_OFFER_RESPONSE,
        {"actor": actor, "offer_id": offer_id, "answer": answer, "note": note},
        as_json,
        update_id,
    )


@app.command("wait", epilog="Example: escalations wait C-1001 -a ana --reason 'photo of the meter' --limit 2d")
def wait(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    reason: Annotated[str, typer.Option(help="What the customer has to give.")],
    limit: Annotated[str | None, typer.Option(help="Give up after (e.g. 2d); at most the policy's limit.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Wait on the customer: the resolve clock stops and keeps the time it had left."""
    command(
        ctx, case_id, contract.WAIT_ON_CUSTOMER, {"actor": actor, "reason": reason, "limit": limit}, as_json, update_id
    )


@app.command("replied", epilog="Example: escalations replied C-1001 -a ana --channel email --note 'photo received'")
def replied(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    channel: Annotated[str | None, typer.Option(help="email, sms, call or chat.")] = None,
    note: Annotated[str | None, typer.Option(help="What came in.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """The customer came back: the resolve clock runs again."""
    command(
        ctx, case_id, contract.CUSTOMER_REPLIED, {"actor": actor, "channel": channel, "note": note}, as_json, update_id
    )


@app.command(
    "resolve",
    epilog="Example: escalations resolve C-1001 -a ana --resolution 'Refunded' --root-cause billing_error --kb-article KB-1042",
)
def resolve(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    resolution: Annotated[str, typer.Option(help="What fixed it.")],
    root_cause: Annotated[RootCause, typer.Option(help="Why it happened.")],
    kb_article: Annotated[str | None, typer.Option(help="Knowledge-base article used or written.")] = None,
    kb_missing: Annotated[bool, typer.Option(help="No article exists: flag the gap.")] = False,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Resolve the case; follow-up check-ins start."""
    command(
        ctx,
        case_id,
        contract.RESOLVE,
        {
            "actor": actor,
            "resolution": resolution,
            "root_cause": root_cause,
            "kb_article": kb_article,
            "kb_missing": kb_missing or None,
        },
        as_json,
        update_id,
    )


@app.command("followup", epilog="Example: escalations followup C-1001 not_fixed --comment 'drops again every evening'")
def followup(
    ctx: typer.Context,
    case_id: CaseId,
    answer: Annotated[FollowUpAnswer, typer.Argument(help="fixed or not_fixed.")],
    comment: Annotated[str | None, typer.Option(help="The customer's words.")] = None,
    checkin: Annotated[int | None, typer.Option(help="Which check-in (default: the latest sent).")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Record the customer's answer to a follow-up check-in ("not_fixed" reopens the case). It carries a customer
    credential for the case and check-in, signed with the signing key when there is one (the embedded default),
    else the one --credential or ESCALATIONS_CREDENTIAL gives."""
    command(
        ctx,
        case_id,
        contract.FOLLOWUP_RESPONSE,
        {"answer": answer, "comment": comment, "checkin": checkin},
        as_json,
        update_id,
        credential=customer_credential(ctx, case_id, checkin),
    )


def customer_credential(ctx: typer.Context, case_id: str, checkin: int | None) -> Callable[[], str | None]:
    """A customer credential for the case, minted when the command is sent with the settings' signing key (as the
    inbound endpoint mints one); None, so the client's own source decides, when a credential is given or there is
    no signing key."""

    def mint() -> str | None:
        identity = ctx.obj.settings().identity
        if identity.credential_token() is not None:
            return None
        signer = Signer.from_settings(identity)
        return None if signer is None else signer.mint(CUSTOMER, case_id=case_id, checkin=checkin)

    return mint


@app.command(
    "close", epilog="Example: escalations close C-1001 -a maya --outcome customer_lost --reason 'contract cancelled'"
)
def close(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    outcome: Annotated[Outcome, typer.Option(help="resolved, customer_lost or legal.")],
    reason: Annotated[str, typer.Option(help="Why it closes.")],
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Close the case for good."""
    command(ctx, case_id, contract.CLOSE, {"actor": actor, "outcome": outcome, "reason": reason}, as_json, update_id)


# ----- routing


@app.command("accept", epilog="Example: escalations accept C-1001 -a ben")
def accept(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    note: Annotated[str | None, typer.Option(help="A note for the timeline.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Take the case offered to you (before the offer times out and goes to the next rep)."""
    command(ctx, case_id, contract.ACCEPT, {"actor": actor, "note": note}, as_json, update_id)


@app.command("reassign", epilog="Example: escalations reassign C-1001 -a tara --reason 'ana is off sick' --to ben")
def reassign(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    reason: Annotated[str, typer.Option(help="Why the case changes hands.")],
    to: Annotated[str | None, typer.Option("--to", help="Preferred rep (else the best qualified one).")] = None,
    from_owner: Annotated[str | None, typer.Option("--from", help="Only if the case is still with this rep.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Take the case from its owner (or the rep it is offered to) and route it again at its tier."""
    command(
        ctx,
        case_id,
        contract.REASSIGN,
        {"actor": actor, "reason": reason, "to": to, "from_owner": from_owner},
        as_json,
        update_id,
    )


# ----- callbacks

callback_app = typer.Typer(
    help="Book, move, cancel callbacks to the customer and record how they went.", no_args_is_help=True
)
app.add_typer(callback_app, name="callback")
CallbackId = Annotated[str, typer.Argument(help="The callback (callback-N, see `show`).")]
AtOpt = Annotated[
    str,
    typer.Option(
        "--at",
        help="'earliest' (the customer's contact window next opens); a day and time on the customer's clock: "
        "'today 15:00', 'tomorrow 15:00', 'mon 15:00' (the next Monday; today if 15:00 is still ahead for "
        "them); a time with its zone (2026-11-24T15:00:00+01:00); or a time without one, read on the "
        "customer's clock (2026-11-24T15:00).",
    ),
]
WindowOpt = Annotated[
    str | None, typer.Option(help="How long after --at the call may start (e.g. 30m); policy default.")
]
CallerOpt = Annotated[str | None, typer.Option("--owner", help="Rep id of who calls (default: the case owner).")]
NotesOpt = Annotated[str | None, typer.Option(help="What the caller should know.")]

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_AND_TIME = re.compile(
    r"(today|tomorrow|mon(?:day)?|tue(?:sday)?|wed(?:nesday)?|thu(?:rsday)?|fri(?:day)?|"
    r"sat(?:urday)?|sun(?:day)?)\s+(\d{1,2}):(\d{2})",
    re.IGNORECASE,
)


def customer_day(at: str, zone: str, now: datetime) -> str | None:
    """A day and time on the customer's clock as the wall-clock time the case reads there: 'tomorrow 15:00' ->
    '2026-11-25T15:00'. 'today', 'tomorrow', or a weekday ('mon 15:00': the next Monday for the customer, today
    if that time is still ahead for them). None when `at` is not of this form."""
    found = _DAY_AND_TIME.fullmatch(at.strip())
    if found is None:
        return None
    day, hour, minute = found.group(1).lower(), int(found.group(2)), int(found.group(3))
    day = day if day in ("today", "tomorrow") else day[:3]
    if hour > 23 or minute > 59:
        return None
    local = now.astimezone(ZoneInfo(zone))
    date = local.date()
    if day == "tomorrow":
        date += timedelta(days=1)
    elif day != "today":
        ahead = (_WEEKDAYS.index(day) - date.weekday()) % 7
        if ahead == 0 and (hour, minute) <= (local.hour, local.minute):
            ahead = 7
        date += timedelta(days=ahead)
    return f"{date.isoformat()}T{hour:02d}:{minute:02d}"


def on_customer_clock(ctx: typer.Context, case_id: str, at: str) -> str:
    """`--at` as the case takes it: a day and time ('tomorrow 15:00') becomes that date on the customer's clock
    (their time zone is read from the case); anything else is sent as given."""
    if _DAY_AND_TIME.fullmatch(at.strip()) is None:
        return at
    state = run(ctx, lambda esc: esc.case(case_id).state())
    return customer_day(at, state.input.customer.time_zone, _now()) or at


@callback_app.command(
    "schedule", epilog="Example: escalations callback schedule C-1001 -a sam --at 'tomorrow 15:00' --owner sol"
)
def callback_schedule(
    ctx: typer.Context,
    case_id: CaseId,
    actor: ActorOpt,
    at: AtOpt,
    window: WindowOpt = None,
    owner: CallerOpt = None,
    channel: Annotated[CallbackChannel, typer.Option(help="call or video.")] = CallbackChannel.CALL,
    phone: Annotated[str | None, typer.Option(help="Number to call if not the customer's.")] = None,
    notes: NotesOpt = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Book a callback: shown on the customer's clock and the caller's; reminder, then due, then retries."""
    at = on_customer_clock(ctx, case_id, at)
    command(
        ctx,
        case_id,
        contract.SCHEDULE_CALLBACK,
        {
            "actor": actor,
            "at": at,
            "window": window,
            "owner": owner,
            "channel": channel,
            "phone": phone,
            "notes": notes,
        },
        as_json,
        update_id,
    )


@callback_app.command("outcome", epilog="Example: escalations callback outcome C-1001 callback-1 no_answer -a sol")
def callback_outcome(
    ctx: typer.Context,
    case_id: CaseId,
    callback_id: CallbackId,
    outcome: Annotated[
        CallbackOutcome, typer.Argument(help="reached, no_answer, voicemail, wrong_number or declined.")
    ],
    actor: ActorOpt,
    note: Annotated[str | None, typer.Option(help="How it went.")] = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Record how a callback went (no_answer and voicemail are retried per the policy)."""
    command(
        ctx,
        case_id,
        contract.RECORD_CALLBACK_OUTCOME,
        {"actor": actor, "callback_id": callback_id, "outcome": outcome, "note": note},
        as_json,
        update_id,
    )


@callback_app.command(
    "reschedule", epilog="Example: escalations callback reschedule C-1001 callback-1 -a sam --at earliest"
)
def callback_reschedule(
    ctx: typer.Context,
    case_id: CaseId,
    callback_id: CallbackId,
    actor: ActorOpt,
    at: AtOpt,
    window: WindowOpt = None,
    owner: CallerOpt = None,
    notes: NotesOpt = None,
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Move a callback (and optionally hand it to another rep)."""
    at = on_customer_clock(ctx, case_id, at)
    command(
        ctx,
        case_id,
        contract.RESCHEDULE_CALLBACK,
        {"actor": actor, "callback_id": callback_id, "at": at, "window": window, "owner": owner, "notes": notes},
        as_json,
        update_id,
    )


@callback_app.command(
    "cancel", epilog="Example: escalations callback cancel C-1001 callback-1 -a sam --reason 'customer called in'"
)
def callback_cancel(
    ctx: typer.Context,
    case_id: CaseId,
    callback_id: CallbackId,
    actor: ActorOpt,
    reason: Annotated[str, typer.Option(help="Why it is off.")],
    as_json: JsonOpt = False,
    update_id: UpdateIdOpt = None,
) -> None:
    """Cancel a callback; the caller and the customer are told."""
    command(
        ctx,
        case_id,
        contract.CANCEL_CALLBACK,
        {"actor": actor, "callback_id": callback_id, "reason": reason},
        as_json,
        update_id,
    )


# ----- reading


def _now() -> datetime:
    return datetime.now(UTC)


@app.command("show", epilog="Example: escalations show C-1001 --timeline 20")
def show(
    ctx: typer.Context,
    case_id: CaseId,
    timeline: Annotated[int, typer.Option(help="How many recent timeline entries to show.")] = 10,
    as_json: JsonOpt = False,
) -> None:
    """A case's state and brief, human readable (--json: {"state": ..., "brief": ..., "ended": ...}). A case whose
    workflow ended without closing (terminated on the server) says so, by whom and why."""

    async def read(esc: EscalationClient) -> tuple[Any, Any, Ending | None]:
        case = esc.case(case_id)
        return await case.state(), await case.brief(), await case.ending()

    state, brief, ending = run(ctx, read)
    ended = (
        None
        if ending is None
        else {
            "status": ending.status,
            "at": ending.at.isoformat() if ending.at else None,
            "by": ending.by,
            "reason": ending.reason,
        }
    )
    emit(
        {"state": state.model_dump(mode="json"), "brief": brief.model_dump(mode="json"), "ended": ended},
        as_json,
        views.case_text(state, brief, _now(), timeline=timeline, ending=ending),
    )


def due_before(value: str | None) -> datetime | None:
    """'30m' (from now) or an ISO instant with its zone ('2026-11-24T09:00:00Z')."""
    if value is None:
        return None
    shown = value[:40]
    if re.match(r"\s*\d{4}-", value):  # a date: '2026-11-24T09:00:00Z'
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise typer.BadParameter(f"'{shown}' is not an ISO time (2026-11-24T09:00:00Z)") from None
    try:
        span = parse_duration(value)
        if isinstance(span, timedelta):
            return _now() + span
    except (ValueError, OverflowError) as err:
        raise typer.BadParameter(f"a span from now {str(err).removeprefix('Value error, ')}") from None
    raise typer.BadParameter(f"'{shown}' is neither a duration (30m, 4h, 1d) nor an ISO time") from None


TierOpt = Annotated[Tier | None, typer.Option(help="Only cases at this tier.")]
StatusOpt = Annotated[Status | None, typer.Option(help="open, resolved or closed.")]
OwnerOpt = Annotated[str | None, typer.Option(help="Only cases owned by this rep id.")]
CustomerOpt = Annotated[str | None, typer.Option(help="Only this customer's cases (customer id).")]
SeverityOpt = Annotated[Severity | None, typer.Option(help="Only this severity.")]
DueOpt = Annotated[
    str | None,
    typer.Option("--due-before", callback=due_before, help="SLA due before: a span from now (30m) or an ISO time."),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Completed cases too.")]


# The pattern dimensions (searchable on every case; see the README's "Finding the patterns").
def a_category(value: str | None) -> str | None:
    """A category as cases carry it, refused here in words rather than by the filter's pattern."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}", value.strip()):
        raise typer.BadParameter(
            f"'{value[:40]}' is not a category: letters, digits, '.', '_', ':' or '-' (up to 100), "
            "starting with a letter or digit"
        )
    return value.strip() if value is not None else None


CategoryOpt = Annotated[str | None, typer.Option(callback=a_category, help="Only this category.")]
ChannelOpt = Annotated[Channel | None, typer.Option(help="Only cases that came in by this channel.")]
RootCauseOpt = Annotated[
    RootCause | None, typer.Option("--root-cause", help="Only cases resolved with this root cause.")
]
KbMissingOpt = Annotated[
    bool | None,
    typer.Option("--kb-missing/--kb-found", help="Only cases resolved without (or with) a knowledge-base article."),
]
HighestOpt = Annotated[
    Tier | None, typer.Option("--highest-tier", help="Only cases whose highest tier reached is this one.")
]
EscalationsOpt = Annotated[
    int | None, typer.Option("--min-escalations", min=0, max=1000, help="Only cases escalated at least this often.")
]
FirstContactOpt = Annotated[
    bool | None,
    typer.Option("--first-contact/--not-first-contact", help="Only cases resolved where they opened (or not)."),
]
FollowupOpt = Annotated[
    FollowUpAnswer | None, typer.Option("--followup", help="Only cases whose last check-in said this.")
]
RiskOpt = Annotated[
    float | None, typer.Option("--min-risk", min=0.0, max=1.0, help="Only cases scored at least this risky at opening.")
]


def _filter(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@app.command("list", epilog="Example: escalations list --tier team_lead --due-before 30m")
def list_cases(
    ctx: typer.Context,
    tier: TierOpt = None,
    status: StatusOpt = None,
    owner: OwnerOpt = None,
    customer: CustomerOpt = None,
    severity: SeverityOpt = None,
    due: DueOpt = None,
    category: CategoryOpt = None,
    channel: ChannelOpt = None,
    root_cause: RootCauseOpt = None,
    kb_missing: KbMissingOpt = None,
    highest_tier: HighestOpt = None,
    min_escalations: EscalationsOpt = None,
    first_contact: FirstContactOpt = None,
    followup: FollowupOpt = None,
    min_risk: RiskOpt = None,
    include_closed: AllOpt = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    count: Annotated[bool, typer.Option("--count", help="Only print how many cases match.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The queue: running cases (filtered), most urgent SLA first, with tier, owner, age and SLA due."""
    flt = _filter(
        tier=tier,
        status=status,
        owner=owner,
        customer=customer,
        severity=severity,
        due_before=due,
        category=category,
        channel=channel,
        root_cause=root_cause,
        kb_missing=kb_missing,
        highest_tier=highest_tier,
        min_escalations=min_escalations,
        first_contact_resolved=first_contact,
        followup=followup,
        min_risk=min_risk,
        include_closed=include_closed,
    )
    if count:
        n = run(ctx, lambda esc: esc.count_cases(flt))
        emit({"count": n}, as_json, str(n))
        return
    cases = run(ctx, lambda esc: esc.list_cases(flt, limit=limit))
    if as_json:
        emit(cases, True, "")
    else:
        _console().print(views.cases_table(cases, _now()))


def _console() -> Console:
    # Wide enough that ids and instants are never wrapped when the output is piped or captured.
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


@app.command("watch", epilog="Examples: escalations watch C-1001  |  escalations watch --tier manager --interval 5")
def watch(
    ctx: typer.Context,
    case_id: Annotated[str | None, typer.Argument(help="A case to follow; without it, the queue.")] = None,
    tier: TierOpt = None,
    status: StatusOpt = None,
    owner: OwnerOpt = None,
    customer: CustomerOpt = None,
    severity: SeverityOpt = None,
    due: DueOpt = None,
    interval: Annotated[float, typer.Option(min=0.1, max=3600, callback=finite, help="Seconds between looks.")] = 2.0,
    timeout: Annotated[float | None, typer.Option(min=0, callback=finite, help="Stop after this many seconds.")] = None,
) -> None:
    """Live view of one case (its new timeline entries as they happen, until it closes) or of the queue."""
    stop_at = None if timeout is None else time.monotonic() + timeout

    async def follow(esc: EscalationClient) -> None:
        if case_id is not None:
            await _follow_case(esc.case(case_id), interval, stop_at)
        else:
            flt = _filter(tier=tier, status=status, owner=owner, customer=customer, severity=severity, due_before=due)
            await _follow_queue(esc, flt, interval, stop_at)

    run(ctx, follow)


def _more_time(stop_at: float | None) -> bool:
    return stop_at is None or time.monotonic() < stop_at


async def _follow_case(case: Case, interval: float, stop_at: float | None) -> None:
    shown, last = 0, None
    while True:
        state = await case.state()
        for entry in state.timeline:
            if entry.seq > shown:  # by number: the state keeps only the recent entries
                say(views.entry_line(entry))
                shown = entry.seq
        now = (state.status, state.tier, state.owner, state.waiting, state.sla_due_at)
        if now != last:
            say(views.status_line(state, _now()))
            last = now
        if state.status == Status.CLOSED:
            typer.echo(f"closed: {state.outcome.value if state.outcome else '-'}")
            return
        ending = await case.ending()
        if ending is not None and ending.status not in ("completed", "continued as new"):
            say(f"ended: {ending}")  # terminated on the server: nothing more will happen
            return
        if not _more_time(stop_at):
            return
        await asyncio.sleep(interval)


async def _follow_queue(esc: EscalationClient, flt: dict[str, Any], interval: float, stop_at: float | None) -> None:
    console = _console()
    with (
        Live(console=console, auto_refresh=False, transient=False) if console.is_terminal else _NoLive(console) as live
    ):
        while True:
            live.update(views.cases_table(await esc.list_cases(flt), _now()), refresh=True)
            if not _more_time(stop_at):
                return
            await asyncio.sleep(interval)


class _NoLive:
    """Not a terminal (piped, logged): print the table whenever it changes instead of redrawing."""

    def __init__(self, console: Console) -> None:
        self.console, self.last = console, ""

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def update(self, table: Any, refresh: bool = True) -> None:
        with self.console.capture() as captured:
            self.console.print(table)
        text = captured.get()
        if text != self.last:
            self.console.print(text, end="", markup=False, highlight=False)
            self.last = text


@app.command(
    "board",
    epilog="Examples: escalations board  |  escalations board --once --breaches 5  |  "
    "escalations board --web 127.0.0.1:8080 --metrics 127.0.0.1:9464",
)
def board(
    ctx: typer.Context,
    interval: Annotated[
        float, typer.Option(min=0.1, max=3600, callback=finite, help="Seconds between refreshes.")
    ] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    breaches: Annotated[int, typer.Option(min=1, max=100, help="How many of the next breaches to show.")] = 10,
    roster: Annotated[
        Path | None,
        typer.Option(help="The roster, for each rep's tier and state (else ESCALATIONS_ROSTER or config/roster.toml)."),
    ] = None,
    web: Annotated[
        str | None,
        typer.Option(
            "--web",
            metavar="HOST:PORT",
            help="Serve the board as a read-only web page there instead, redrawn every --interval: no login on "
            "127.0.0.1, a bearer credential elsewhere (verified with ESCALATIONS_IDENTITY__KEYS).",
        ),
    ] = None,
    metrics: Annotated[
        list[str] | None,
        typer.Option(
            metavar="HOST:PORT",
            help="A worker's metrics address, for breaches and escalations in the last hour (repeat for each "
            "worker; else ESCALATIONS_METRICS_ADDRESS).",
        ),
    ] = None,
) -> None:
    """Live wallboard: open cases per tier and status, the next breaches with a countdown, unowned cases and
    each rep's load, from visibility; breaches and escalations in the last hour, from the workers' metrics.
    Case ids, tiers, severities and owner ids only."""
    from escalation import board_web  # the web server only for --web
    from escalation.board import metrics_window

    async def show(esc: EscalationClient) -> None:
        settings = ctx.obj.settings()
        roster_path = roster or settings.roster_path
        window = metrics_window(metrics, settings.metrics_address)
        if web is not None:
            wall = board_web.Wallboard(esc, roster_path=roster_path, breaches=breaches, metrics=window)
            verifier = board_web.verifier_for(web, settings.identity)
            await board_web.serve(wall, web, refresh=interval, verifier=verifier, announce=say)
            return
        console = _console()
        live: Live | _NoLive = (
            Live(console=console, auto_refresh=False, transient=False)
            if console.is_terminal and not once
            else _NoLive(console)
        )
        with live:
            while True:
                now = _now()
                found = await gather_board(esc, now, roster_path=roster_path, breaches=breaches)
                found.last_hour = await window.sample(now)
                live.update(views.board_view(found, now), refresh=True)
                if once:
                    return
                await asyncio.sleep(interval)

    run(ctx, show)


# ----- repairs


@app.command(
    "doctor",
    epilog="Examples: escalations doctor  |  escalations doctor --deep --json  |  "
    "escalations doctor --repair C-1001.  Exit codes: 0 nothing stuck (or every stuck "
    "case reset), 10 stuck cases left as they are, 5 a named case not found.",
)
def doctor_command(
    ctx: typer.Context,
    case_ids: Annotated[
        list[str] | None,
        typer.Argument(help="Only these cases (default: every running case).", metavar="CASE_ID", show_default=False),
    ] = None,
    deep: Annotated[
        bool,
        typer.Option(
            help="Also replay the full history of every open case, to find the ones "
            "that run now but would fail their next replay (reported, never reset)."
        ),
    ] = False,
    repair: Annotated[bool, typer.Option(help="Reset each stuck case to its last good point (asks per case).")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --repair: do not ask.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Find stuck cases (their workflow task keeps failing, e.g. a replay after a crash is nondeterministic):
    case, cause, since when, and the reset to the last point that replays; --repair does the reset."""

    async def work(esc: EscalationClient) -> doctor.Report:
        report = await doctor.diagnose(esc.temporal, case_ids or (), deep=deep)
        if not as_json:
            _console().print(views.doctor_table(report, _now()))
            if report.cases:
                say(views.doctor_commands(report))
        if repair:
            for finding in report.cases:
                await _repair(esc, finding, yes, as_json)
        return report

    report = run(ctx, work)
    if as_json:
        typer.echo(views.json_printable(report.model_dump_json(indent=2)))
    left = [f for f in report.cases if f.new_run_id is None]
    raise typer.Exit(int(Code.STUCK if left else Code.OK))


async def _repair(esc: EscalationClient, finding: doctor.Finding, yes: bool, as_json: bool) -> None:
    """Reset one stuck case once confirmed; a case not stuck (any more) is never reset."""
    if finding.state != "stuck" or finding.reset_event_id is None:
        why = (
            "would fail its next replay but is not stuck"
            if finding.state == "latent"
            else "has no earlier workflow task that replays (no reset helps)"
        )
        typer.echo(f"case {finding.case_id} {why}: not reset", err=True)
        return
    prompt = f"reset case {finding.case_id} (run {finding.run_id}) to event {finding.reset_event_id}?"
    if not (yes or typer.confirm(prompt, err=True)):
        return
    try:
        new_run = await doctor.repair(esc.temporal, finding)
    except EscalationError as err:  # no longer stuck, or the server refused: the others still get their turn
        say(f"error: {err}", err=True)
        return
    # With --json the report (new_run_id) goes to stdout; this line to stderr.
    typer.echo(f"reset case {finding.case_id} to event {finding.reset_event_id}: new run {new_run}", err=as_json)


# ----- credentials

credential_app = typer.Typer(
    help="Credentials (signed JWTs naming who acts) for other SDKs and the temporal CLI, and the keys that sign them.",
    no_args_is_help=True,
)
app.add_typer(credential_app, name="credential")


def _ttl(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        span = parse_duration(value)
    except ValueError as err:
        raise typer.BadParameter(str(err).removeprefix("Value error, ")) from None
    if not isinstance(span, timedelta) or span <= timedelta(0):
        raise typer.BadParameter(f"'{value[:40]}' is not a duration (90s, 5m, 1h)")
    return span


def _identity(ctx: typer.Context, key: Path | None) -> IdentitySettings:
    identity = ctx.obj.settings().identity
    return identity if key is None else identity.model_copy(update={"signing_keys": key})


def _guarded(work: Callable[[], T]) -> T:
    """Run a command that needs no server: settings and key problems are one line and their exit code."""
    try:
        return work()
    except (ConfigError, KeyProblem) as err:
        fail(str(err), Code.UNREACHABLE)
    except CredentialRefused as err:
        fail(f"credential refused: {err}", Code.INVALID_ARGUMENT)
    except ValueError as err:
        fail(str(err), Code.INVALID_ARGUMENT)


KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help=f"The JWKS file to sign with (else {IDENTITY_PREFIX}SIGNING_KEYS, or {IDENTITY_PREFIX}KEYS when it holds secret keys).",
    ),
]


@credential_app.command(
    "mint",
    epilog="Examples: escalations credential mint --as ana  |  escalations credential mint --as ana --for-service crm "
    "--ttl 10m.  Send it in the header escalations-credential as a JSON string, e.g. temporal workflow update "
    'execute --headers "escalations-credential=\\"$(escalations credential mint --as ana)\\"" ...',
)
def credential_mint(
    ctx: typer.Context,
    subject: Annotated[
        str,
        typer.Option("--as", "--actor", "-a", envvar="ESCALATIONS_ACTOR", help="Who it names (rep or service id)."),
    ],
    for_service: Annotated[
        str | None, typer.Option("--for-service", help="The service acting for that rep (the 'act' claim).")
    ] = None,
    ttl: Annotated[
        str | None, typer.Option(help=f"How long it lives, e.g. 10m (else {IDENTITY_PREFIX}TTL, 5m).")
    ] = None,
    case: Annotated[str | None, typer.Option(help="With --as customer: the case the customer answers for.")] = None,
    checkin: Annotated[int | None, typer.Option(min=0, help="With --as customer: which check-in.")] = None,
    key: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Print a credential for --as, signed with the signing key: for other SDKs and the temporal CLI."""
    lifetime = _ttl(ttl)

    def mint() -> str:
        identity = _identity(ctx, key)
        signer = Signer.from_settings(identity)
        if signer is None:
            raise ConfigError(
                f"no signing key: set {IDENTITY_PREFIX}SIGNING_KEYS (or {IDENTITY_PREFIX}KEYS to a file with secret "
                "keys), or pass --key FILE; `escalations credential new-key FILE` makes one"
            )
        return signer.mint(subject, acting_service=for_service, case_id=case, checkin=checkin, ttl=lifetime)

    token = _guarded(mint)
    if as_json:
        claims = unverified_claims(token)
        emit({"credential": token, "claims": claims.model_dump(mode="json")}, True, "")
    else:
        typer.echo(token)


@credential_app.command(
    "new-key",
    epilog="Examples: escalations credential new-key data/identity.jwks  |  escalations credential new-key "
    "keys/signing.jwks --alg EdDSA --public keys/public.jwks --keep 2",
)
def credential_new_key(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(
            help=f"The JWKS file (mode 0600) to add the key to, first, so it signs from now on while the keys already "
            f"there still verify (else {IDENTITY_PREFIX}SIGNING_KEYS or {IDENTITY_PREFIX}KEYS)."
        ),
    ] = None,
    alg: Annotated[str, typer.Option(help=f"Algorithm: {', '.join(ALGORITHMS)}.")] = "HS256",
    kid: Annotated[str | None, typer.Option(help="Key id (default: the algorithm and random hex).")] = None,
    keep: Annotated[
        int | None, typer.Option(min=1, help="Keep this many keys in all, the newest (default: keep every key).")
    ] = None,
    public: Annotated[
        Path | None,
        typer.Option(help="Also write the public JWKS of an RS256, ES256 or EdDSA file here, for the verifiers."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a signing key into a JWKS file (created 0600): a first key, or a rotation."""
    if alg not in ALGORITHMS:
        raise typer.BadParameter(f"one of {', '.join(ALGORITHMS)} (got {alg[:40]})", param_hint="--alg")

    def make() -> tuple[Path, str, list[str]]:
        path = file
        if path is None:
            identity = ctx.obj.settings().identity
            path = identity.signing_keys or identity.keys_file
        if path is None:
            raise ConfigError(f"name the file: escalations credential new-key FILE (or set {IDENTITY_PREFIX}KEYS)")
        made = new_key(path, algorithm=alg, kid=kid, keep=keep)
        keys = json.loads(path.read_text(encoding="utf-8"))["keys"]
        if public is not None:
            if alg == "HS256":
                raise ConfigError("--public: an HS256 key is secret; verifiers share the same 0600 file")
            write_public(public, keys)
        return path, made["kid"], [k["kid"] for k in keys]

    path, made, kids = _guarded(make)
    emit(
        {"file": str(path), "kid": made, "keys": kids} | ({"public": str(public)} if public else {}),
        as_json,
        f"new key {made} ({alg}) signs from now on; {path} holds {', '.join(kids)} (mode 0600)"
        + (f"; public keys in {public}" if public else ""),
    )


@credential_app.command(
    "verify",
    epilog="Examples: escalations credential verify eyJ...  |  escalations credential mint --as ana | escalations credential verify -",
)
def credential_verify(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(help="The credential, @FILE, or - for stdin.")],
    as_json: JsonOpt = False,
) -> None:
    """Check a credential with the keys the workers verify with; print what it says, or why it is refused (exit 3)."""

    def check() -> Any:
        return Verifier.from_settings(ctx.obj.settings().identity).verify(read_credential(token))

    claims = _guarded(check)
    act = f" acting through {claims.acting_service}" if claims.acting_service else ""
    case = (
        f" for case {claims.case_id}" + (f" check-in {claims.checkin}" if claims.checkin is not None else "")
        if claims.case_id
        else ""
    )
    emit(claims, as_json, f"{claims.subject}{act}{case}, key {claims.key_id}, expires {claims.expires_at.isoformat()}")


# ----- customer data protection


@app.command(
    "forget",
    epilog="Example: escalations forget cust-42 --as sam --reference GDPR-2026-117.  Exit codes: 0 every open case "
    "of the customer forgot them (or there was none), otherwise the first refusal's code.",
)
def forget(
    ctx: typer.Context,
    customer_id: Annotated[str, typer.Argument(help="The customer's id (the cases' CustomerId search attribute).")],
    actor: ActorOpt,
    reference: Annotated[
        str | None, typer.Option(help="The erasure request's id (a ticket id), kept on each case's timeline.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Right to erasure: on every open case of the customer, replace their name, contact details and the case's
    free text (summary, notes, reasons, offer descriptions, answers, callback notes) with a tombstone. The cases
    keep running. Closed cases are deleted by Temporal when the namespace's retention period has passed."""
    cmd = {"actor": actor, "reference": reference}

    async def work(esc: EscalationClient) -> list[tuple[str, TimelineEntry | EscalationError]]:
        return await esc.forget_customer(customer_id, cmd)

    results = run(ctx, work)
    refusals = [(case, err) for case, err in results if isinstance(err, EscalationError)]
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {"case_id": case, "error": str(r)}
                    if isinstance(r, EscalationError)
                    else {"case_id": case, "entry": r.model_dump(mode="json")}
                    for case, r in results
                ],
                indent=2,
            )
        )
    else:
        if not results:
            say(f"no open case of customer {customer_id}")
        for case, r in results:
            say(
                f"{case}: {views.entry_line(r)}" if isinstance(r, TimelineEntry) else f"{case}: error: {r}",
                err=isinstance(r, EscalationError),
            )
    if refusals:
        err = refusals[0][1]
        raise typer.Exit(next((c for kind, c in EXIT_CODES if isinstance(err, kind)), Code.ERROR))


codec_app = typer.Typer(help="The keys that encrypt every payload (AES-256-GCM).", no_args_is_help=True)
app.add_typer(codec_app, name="codec")


@codec_app.command(
    "new-key",
    epilog="Examples: escalations codec new-key data/codec.jwks  |  escalations codec new-key /etc/escalations/codec.jwks "
    "--standby (roll it out), then escalations codec use KID /etc/escalations/codec.jwks",
)
def codec_new_key(
    ctx: typer.Context,
    file: Annotated[
        Path | None,
        typer.Argument(help=f"The key file (mode 0600), created when missing (else {CODEC_PREFIX}KEYS)."),
    ] = None,
    kid: Annotated[str | None, typer.Option(help="Key id (default: codec-<date>-<random hex>).")] = None,
    standby: Annotated[
        bool,
        typer.Option("--standby", help="Add it last: it decrypts now and encrypts once `codec use` puts it first."),
    ] = False,
    keep: Annotated[int | None, typer.Option(min=1, help="Keep this many keys in all (default: every key).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate an AES-256-GCM key into the codec key file: it encrypts from now on (first), while the keys already
    there still decrypt."""
    from escalation.protect import codec as payload_codec

    def make() -> tuple[Path, str, list[str]]:
        path = file or ctx.obj.settings().codec.keys
        if path is None:
            raise ConfigError(f"name the file: escalations codec new-key FILE (or set {CODEC_PREFIX}KEYS)")
        made = payload_codec.new_key(path, kid=kid, keep=keep, standby=standby)
        return path, made["kid"], payload_codec.PayloadKeys.load(path).ids

    path, made, kids = _guarded(make)
    what = (
        "decrypts now (standby: `escalations codec use` makes it encrypt)"
        if standby and kids[0] != made
        else "encrypts from now on"
    )
    emit(
        {"file": str(path), "kid": made, "keys": kids},
        as_json,
        f"new key {made} {what}; {path} holds {', '.join(kids)} (mode 0600)",
    )


@codec_app.command("use", epilog="Example: escalations codec use codec-20261129-a1b2c3 /etc/escalations/codec.jwks")
def codec_use(
    ctx: typer.Context,
    kid: Annotated[str, typer.Argument(help="The key id to encrypt with from now on.")],
    file: Annotated[Path | None, typer.Argument(help=f"The key file (else {CODEC_PREFIX}KEYS).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a key of the codec key file first: processes that read the file from now on encrypt with it."""
    from escalation.protect import codec as payload_codec

    def move() -> tuple[Path, list[str]]:
        path = file or ctx.obj.settings().codec.keys
        if path is None:
            raise ConfigError(f"name the file: escalations codec use KID FILE (or set {CODEC_PREFIX}KEYS)")
        return path, payload_codec.use_key(path, kid)

    path, kids = _guarded(move)
    emit({"file": str(path), "keys": kids}, as_json, f"{kid} encrypts from now on; {path} holds {', '.join(kids)}")


@app.command(
    "codec-server",
    epilog="Examples: escalations codec-server --listen 127.0.0.1:8234 --ui-origin http://localhost:8233  |  "
    "temporal workflow show -w escalation-C-1001 --codec-endpoint http://127.0.0.1:8234 "
    '--codec-auth "Bearer $(escalations credential mint --as sam)"',
)
def codec_server(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help=f"Where to listen (else {CODEC_PREFIX}SERVER_ADDRESS, 127.0.0.1:8234)."),
    ] = None,
    ui_origin: Annotated[
        list[str] | None,
        typer.Option(
            metavar="ORIGIN",
            help=f"A web origin allowed to call it, the Temporal UI's (repeat; else {CODEC_PREFIX}UI_ORIGINS).",
        ),
    ] = None,
    allow_loopback_anonymous: Annotated[
        bool,
        typer.Option(
            "--allow-loopback-anonymous",
            help="Serve requests from this machine without a credential (a loopback address only; `make run`).",
        ),
    ] = False,
) -> None:
    """Temporal's codec server (POST /encode, /decode) for the Temporal UI and the temporal CLI: payloads decrypted
    for a bearer credential whose person may read customer data (the roster), CORS only for the UI's origin, each
    request logged without its contents."""
    from escalation.protect import server as codec_http

    def build() -> tuple[Any, str]:
        settings = ctx.obj.settings()
        address = listen or settings.codec.server_address
        return (
            codec_http.CodecServer.from_settings(
                settings, address=address, ui_origins=ui_origin, allow_loopback_anonymous=allow_loopback_anonymous
            ),
            address,
        )

    server, address = _guarded(build)
    try:
        asyncio.run(codec_http.serve(server, address, announce=say))
    except ConfigError as err:
        fail(str(err), Code.UNREACHABLE)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


# Commands kept in their own modules register on `app` when imported (insight, the events receiver, the demo mix).
from escalation.cli import events_sink as _sink, report as _report, simulate as _simulate, train as _train  # noqa: E402, F401, I001


def entrypoint() -> None:
    """The console script; it leaves through `leave` so a clean exit code is never turned into a crash."""
    code = 0
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception as err:  # whatever escaped a command: one line, never a traceback (unless asked for)
        try:
            unexpected(err)
        except typer.Exit as done:
            code = done.exit_code
    leave(code)


if __name__ == "__main__":
    entrypoint()
