"""`escalations simulate N`: drive a seeded, realistic mix of N cases through the real workflow (a worker must be
running), so the report, the themes and the risk model have a history to work on. See escalation.dev.simulate."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from escalation.cli import Code, app, emit, fail, run, say
from escalation.client import EscalationClient
from escalation.dev import mix
from escalation.dev.simulate import (
    CLI_SEED,
    DEFAULT_CASES,
    DEFAULT_CONCURRENCY,
    DEFAULT_POLICY,
    MAX_CONCURRENCY,
    Progress,
    Simulation,
    prepare,
    simulate,
)
from escalation.domain.policy import PolicyError
from escalation.domain.roster import RosterError
from escalation.identity import KeyProblem, Signer

SHOWN_FAILURES = 20


@app.command(
    "simulate",
    epilog="Example: escalations simulate 300 --seed 7   (against `make run`; about 5 minutes for 300 cases)",
)
def simulate_command(
    ctx: typer.Context,
    cases: Annotated[
        int, typer.Argument(min=1, max=mix.MAX_CASES, help="How many cases to open and drive.")
    ] = DEFAULT_CASES,
    seed: Annotated[
        int,
        typer.Option(
            min=0,
            max=2**31 - 1,
            help="The same seed gives the same cases, steps and texts (make run drives seed 1 on a fresh start).",
        ),
    ] = CLI_SEED,
    concurrency: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_CONCURRENCY,
            help="Cases driven at once (the demo roster's two agents hold at most 8 open cases each).",
        ),
    ] = DEFAULT_CONCURRENCY,
    policy: Annotated[
        str, typer.Option(help="The policy the cases open on; its timers set the pace (the demo one: seconds).")
    ] = DEFAULT_POLICY,
    prefix: Annotated[
        str,
        typer.Option(
            help="Case ids are <prefix>-<seed>-<n>; a case id that exists already is skipped, never opened twice."
        ),
    ] = mix.CASE_PREFIX,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts and the failed cases as JSON.")] = False,
) -> None:
    settings = ctx.obj.settings()
    try:
        scripts = prepare(settings, cases, seed, policy=policy, prefix=prefix)
        signer = Signer.from_settings(settings.identity)
    except PolicyError as err:
        fail(str(err), Code.UNKNOWN_POLICY)
    except (RosterError, ValueError, KeyProblem) as err:
        fail(str(err), Code.INVALID_ARGUMENT)

    def show(progress: Progress) -> None:
        if not as_json:
            say(progress.line(), err=True)

    async def work(esc: EscalationClient) -> Simulation:
        return await simulate(esc, scripts, signer, concurrency=concurrency, on_progress=show)

    result = run(ctx, work)
    failed = result.failed
    summary = {
        "cases": len(result.runs),
        "driven": result.count("done"),
        "skipped": result.count("skipped"),
        "failed": len(failed),
        "seconds": round(result.seconds, 1),
        "seed": seed,
        "policy": policy,
        "failures": [{"case_id": r.case_id, "step": r.step, "error": r.error} for r in failed],
    }
    if as_json:
        emit(summary, True, "")
    else:
        say(
            f"{summary['driven']} cases driven, {summary['skipped']} skipped (they exist already), "
            f"{summary['failed']} failed in {result.seconds:.0f}s (seed {seed}, policy {policy}). "
            "Cases still in follow-up close by themselves within a minute or two."
        )
        for r in failed[:SHOWN_FAILURES]:
            say(f"  failed {r.case_id}: {r.error}", err=True)
        if len(failed) > SHOWN_FAILURES:
            say(f"  ... and {len(failed) - SHOWN_FAILURES} more (--json lists them all)", err=True)
    sys.stdout.flush()
    if failed:
        raise typer.Exit(int(Code.ERROR))
