"""`escalations report`: the escalation pattern report over the events (escalation.insight.report), as terminal
tables, JSON, CSV or an HTML page. Reads files only; no server needed."""

from __future__ import annotations

import importlib.util
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from escalation.cli import Code, JsonOpt, _console, app, fail, views
from escalation.config import Settings
from escalation.domain.models import Channel, Severity, Tier
from escalation.files import PRIVATE_MODE


@app.command(
    "report",
    epilog="Examples: escalations report  |  escalations report --since 7d --category billing  |  "
    "escalations report --events 'events/date=*/events.jsonl' --html report.html  |  "
    "escalations report --since 2026-11-01 --until 2026-12-01 --csv > november.csv.  "
    "Exit codes: 0 done, 2 bad option, 3 bad value or events that cannot be read.",
)
def report(
    events: Annotated[
        str | None,
        typer.Option(
            "--events",
            metavar="PATH|GLOB|DIR",
            help="The events: a JSON lines file, a glob, the events receiver's folder (date=YYYY-MM-DD/) or Parquet "
            "(else the events file in ESCALATIONS_DATA_DIR).",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Cases opened from: an ISO date or datetime (UTC unless it says), or a span before --until (7d, 24h). Default: 30 days before --until."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Cases opened before: an ISO date or datetime, or a span before now. Default: now."),
    ] = None,
    category: Annotated[str | None, typer.Option(help="Only this category.")] = None,
    channel: Annotated[Channel | None, typer.Option(help="Only cases that came in by this channel.")] = None,
    tier: Annotated[Tier | None, typer.Option(help="Only cases whose highest tier reached is this one.")] = None,
    severity: Annotated[Severity | None, typer.Option(help="Only cases of this severity.")] = None,
    min_cases: Annotated[
        int,
        typer.Option(
            "--min-cases", min=1, max=100_000, help="Cases a category or root cause needs to be ranked as a loophole."
        ),
    ] = 5,
    themes: Annotated[int, typer.Option(min=0, max=20, help="How many themes to find in the free text (0: none).")] = 8,
    seed: Annotated[int, typer.Option(min=0, max=2**31 - 1, help="The themes' seed (same seed, same themes).")] = 7,
    as_json: JsonOpt = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print every figure as CSV: section,label,metric,value.")
    ] = False,
    html_file: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="Also write the report as one self-contained HTML page with charts."
        ),
    ] = None,
) -> None:
    """The escalation pattern report over the cases opened in a time range: volume, first-contact resolution,
    highest tier, escalation reasons, SLA breaches (by tier and hour of week, UTC), time to acknowledge and resolve,
    compensation and goodwill against customer value, follow-ups, reps, loopholes and themes. Computed with DuckDB
    from the events the product emits; no server needed."""
    # Loaded here: the insight extra (DuckDB, matplotlib, scikit-learn) is needed by the insight commands only.
    try:
        from escalation.insight import render, source
        from escalation.insight import report as patterns

        if themes and importlib.util.find_spec("sklearn") is None:  # the themes need it: say so before the work
            raise ImportError(name="sklearn")
    except ImportError as err:
        fail(
            f"escalations report needs the insight extra ({err.name} is missing): pip install 'escalations[insight]'",
            Code.ERROR,
        )

    if as_json and as_csv:
        fail("--json and --csv: choose one", Code.INVALID_ARGUMENT)
    now = datetime.now(UTC)
    try:
        when = patterns.period(since, until, now)
        flt = patterns.filters(
            category,
            channel.value if channel else None,
            tier.value if tier else None,
            severity.value if severity else None,
        )
        if themes:
            patterns.import_theme_libraries()
        con = source.connect(events or Settings.read().events_path)
        try:
            result = patterns.build(con, when, flt, min_cases=min_cases, themes=themes, seed=seed, now=now)
        finally:
            con.close()
    except (patterns.ReportInputError, source.SourceProblem) as err:
        fail(str(err), Code.INVALID_ARGUMENT)
    if html_file is not None:
        page = render.to_html(result)
        try:
            # The page names reps and categories, not customers; still the product's rule for what it writes.
            fd = os.open(html_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
            if os.name != "nt":
                os.fchmod(fd, PRIVATE_MODE)  # a file that was there before keeps no wider mode
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(page)
        except OSError as err:
            fail(f"--html: cannot write {html_file}: {err.strerror or err}", Code.ERROR)
    if as_json:
        typer.echo(views.json_printable(result.model_dump_json(indent=2)))
    elif as_csv:
        typer.echo(views.printable(render.to_csv(result)), nl=False)
    else:
        _console().print(render.terminal(result, views.printable))
        if html_file is not None:
            typer.echo(f"wrote {html_file}", err=True)
