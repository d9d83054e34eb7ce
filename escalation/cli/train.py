"""`escalations train`: fit the escalation-risk model on the closed cases of the events and write its file, which
the worker scores new cases with (escalation.insight.risk)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from escalation.cli import Code, JsonOpt, app, emit, fail
from escalation.config import ConfigError


@app.command(
    "train",
    epilog="Example: escalations train --events 'events/date=*/events.jsonl' --out data/risk-model.json",
)
def train(
    ctx: typer.Context,
    events: Annotated[
        str | None,
        typer.Option(
            "--events",
            metavar="SRC",
            help="The events: a JSON lines file, a glob, the events receiver's folder or Parquet "
            "(else the events file in ESCALATIONS_DATA_DIR).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Where to write the model (else ESCALATIONS_RISK_MODEL, or risk-model.json in ESCALATIONS_DATA_DIR: where the worker reads it).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the escalation-risk model on the closed cases (the earliest 80% by opening time; the latest 20% judge
    it) and write its file (mode 0600, replaced atomically); prints its quality: ROC AUC and precision at the top
    decile against the base rate."""
    # Loaded here: the insight extra (DuckDB, scikit-learn) is needed by this command only.
    try:
        from escalation.insight import source, training
    except ImportError as err:
        fail(
            f"escalations train needs the insight extra ({err.name} is missing): pip install 'escalations[insight]'",
            Code.ERROR,
        )

    try:
        settings = ctx.obj.settings()
    except ConfigError as err:
        fail(str(err), Code.UNREACHABLE)
    path = out or settings.risk_model_path
    try:
        con = source.connect(events or settings.events_path)
        try:
            rows = training.training_rows(con)
        finally:
            con.close()
        model = training.train(rows)
    except (source.SourceProblem, training.TrainingRefused) as err:
        fail(str(err), Code.INVALID_ARGUMENT)
    try:
        training.save(model, path)
    except OSError as err:
        fail(f"cannot write the model to {path}: {err.strerror or err}", Code.ERROR)
    m = model.metrics
    lift = m.precision_top_decile / m.base_rate if m.base_rate else 0.0
    human = "\n".join(
        [
            f"risk model {model.version} written to {path} (mode 0600)",
            f"trained on {m.train_size} closed cases opened {model.trained_from:%Y-%m-%d %H:%M} to "
            f"{model.trained_to:%Y-%m-%d %H:%M} UTC ({m.train_positives} escalated); judged on the latest {m.test_size}",
            f"ROC AUC {m.roc_auc:.3f} (0.5: no better than chance)",
            f"precision at the top decile {m.precision_top_decile:.1%} ({m.top_decile_size} cases scored highest) "
            f"against a base rate of {m.base_rate:.1%}: {lift:.1f}x",
        ]
    )
    emit(
        {
            "file": str(path),
            "version": model.version,
            "trained_from": model.trained_from.isoformat(),
            "trained_to": model.trained_to.isoformat(),
            "features": len(model.weights),
            **m.model_dump(),
        },
        as_json,
        human,
    )
