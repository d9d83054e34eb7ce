"""The escalation-risk model: trained on generated cases with a known signal it beats the base rate on the later
cases; the file it writes scores as the model in memory; broken, oversized or foreign files are refused with the
file and the reason; any case scores within [0, 1]; `escalations train` writes the file and prints its quality."""

from __future__ import annotations

import ast
import json
import math
import os
import random
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from escalation.cli import app
from escalation.insight import risk, training
from escalation.insight.risk import (
    HOURS_PER_WEEK,
    MAX_EARLIER_CASES,
    MAX_MODEL_BYTES,
    RiskInput,
    RiskMetrics,
    RiskModel,
    RiskModelError,
    features,
    hour_of_week,
    model_version,
)
from escalation.insight.training import MIN_CASES, TrainingRefused, TrainingRow, train, training_rows
from tests.test_themes import connect, event, write_events

START = datetime(2026, 9, 7, tzinfo=UTC)  # a Monday
CATEGORIES = ["billing", "internet", "delivery", "account"]
SENTIMENTS = ["furious", "angry", "upset", "neutral", "calm"]
PLAIN = ["customer", "called", "about", "order", "account", "number", "help", "question", "today", "again"]


def generated_events(cases: int = 700, seed: int = 11) -> list[dict[str, Any]]:
    """Cases opened over about ten weeks, most of them closed. Billing cases, threats, furious customers and the
    word "lawyer" escalate much more often; everything else is noise (channel, language, value band, hour)."""
    rng = random.Random(seed)
    events = []
    for i in range(cases):
        at = START + timedelta(minutes=int(i * 140 + rng.random() * 100))
        category, sentiment = rng.choice(CATEGORIES), rng.choice(SENTIMENTS)
        threat, lawyer = rng.random() < 0.12, rng.random() < 0.1
        z = -2.6 + 2.2 * (category == "billing") + 2.2 * threat + 2.0 * (sentiment == "furious") + 2.0 * lawyer
        escalated = rng.random() < 1 / (1 + math.exp(-z))
        words = rng.sample(PLAIN, 4) + [category] + (["lawyer"] if lawyer else [])
        rng.shuffle(words)
        case_id, detail = (
            f"C-{i}",
            {
                "channel": rng.choice(["call", "chat", "email", "sms"]),
                "severity": rng.choice(["low", "medium", "high"]),
                "threat": threat,
                "policy": "default",
                "category": category,
                "customer_id": f"cust-{rng.randrange(300)}",
                "value_band": rng.choice(["under_1k", "1k_10k", "10k_100k"]),
                "language": rng.choice(["en", "de"]),
                "sentiment": sentiment,
                "summary": " ".join(words),
                "desired_outcome": "sort it out",
            },
        )
        if i % 2:
            detail["earlier_cases"] = rng.randrange(4)  # older events lack it: counted from the data instead
        events.append(event(case_id, 1, "opened", at, **detail))
        seq = 2
        if escalated:
            events.append(event(case_id, seq, "escalated", at + timedelta(minutes=30), to_tier="team_lead"))
            seq += 1
        if i % 10 != 3:  # one case in ten is still open: not trained on
            events.append(
                event(case_id, seq, "resolved", at + timedelta(hours=2), resolution="done", root_cause="other")
            )
            events.append(event(case_id, seq + 1, "closed", at + timedelta(hours=3), outcome="resolved"))
    return events


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    return write_events(tmp_path_factory.mktemp("risk") / "events.jsonl", generated_events())


@pytest.fixture(scope="module")
def rows(events_file) -> list[TrainingRow]:
    return training_rows(connect(events_file))


@pytest.fixture(scope="module")
def model(rows) -> RiskModel:
    return train(rows, now=datetime(2026, 11, 29, tzinfo=UTC))


def test_the_model_beats_the_base_rate_on_the_later_cases(rows, model):
    m = model.metrics
    assert (m.train_size, m.test_size) == (504, 126)  # 630 closed cases: the earliest 80%, the latest 20%
    assert model.trained_to <= min(r.opened_at for r in rows[-m.test_size :])  # time-ordered: no peeking ahead
    assert m.roc_auc > 0.7, m
    assert m.precision_top_decile > 1.5 * m.base_rate, m
    assert m.top_decile_size == 13
    assert m.base_rate == pytest.approx(m.test_positives / m.test_size)
    # The signal is where it was put; noise weighs less.
    w = model.weights
    for strong in ("category=billing", "threat", "sentiment=furious", "word=lawyer"):
        assert w[strong] > 0.5, (strong, w.get(strong))
    assert abs(w.get("language=de", 0) - w.get("language=en", 0)) < 0.5
    # Scores are chances: on average near the share that escalated, not near one half.
    mean = sum(model.score(r.risk) for r in rows) / len(rows)
    assert mean == pytest.approx(sum(r.escalated for r in rows) / len(rows), abs=0.1)


def test_training_rows_describe_closed_cases_as_they_opened(rows):
    by_id = {r.case_id: r for r in rows}
    assert len(rows) == 630 and "C-3" not in by_id  # still open
    events = generated_events()
    first = by_id["C-0"]
    assert first.opened_at == datetime.fromisoformat(events_opened_at(events, "C-0"))
    assert first.risk.hour_of_week == 0  # within the first hour of a Monday (UTC)
    assert first.risk.earlier_cases == 0  # the customer's first case: counted from the data (no earlier_cases)
    assert [r.opened_at for r in rows] == sorted(r.opened_at for r in rows)
    opened = {e["case_id"]: e["detail"] for e in events if e["type"] == "escalation.opened"}
    for row in rows:
        d = opened[row.case_id]
        assert (row.risk.category, row.risk.sentiment, row.risk.threat) == (d["category"], d["sentiment"], d["threat"])
        if "earlier_cases" in d:
            assert row.risk.earlier_cases == d["earlier_cases"]
        else:  # the same customer's openings in the 90 days before
            since = datetime.fromisoformat(events_opened_at(events, row.case_id)) - timedelta(days=90)
            assert row.risk.earlier_cases == sum(
                1
                for e in events
                if e["type"] == "escalation.opened"
                and e["detail"]["customer_id"] == d["customer_id"]
                and since <= datetime.fromisoformat(e["at"]) < row.opened_at
            )
    escalated = {e["case_id"] for e in events if e["type"] == "escalation.escalated"}
    assert all(r.escalated == (r.case_id in escalated) for r in rows)


def events_opened_at(events: list[dict[str, Any]], case_id: str) -> str:
    return next(e["at"] for e in events if e["case_id"] == case_id and e["type"] == "escalation.opened")


def test_a_forgotten_case_lends_no_words(tmp_path):
    events = generated_events(cases=20)
    events.append(event("C-0", 9, "forgotten", START + timedelta(days=1), reference="GDPR-1"))
    rows = training_rows(connect(write_events(tmp_path / "events.jsonl", events)))
    by_id = {r.case_id: r for r in rows}
    assert by_id["C-0"].risk.summary == "" and by_id["C-0"].risk.category is not None
    assert by_id["C-1"].risk.summary


def test_the_saved_file_scores_as_the_model_in_memory(model, rows, tmp_path):
    path = tmp_path / "models" / "risk-model.json"
    training.save(model, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = RiskModel.load(path)
    assert loaded == model
    assert all(loaded.score(r.risk) == model.score(r.risk) for r in rows)
    assert json.loads(path.read_text())["format"] == "escalations.risk-model"


def test_the_same_cases_give_the_same_model_and_version(rows, model):
    again = train(list(reversed(rows)), now=datetime(2026, 11, 29, 15, tzinfo=UTC))
    assert again.version == model.version and again.weights == model.weights
    assert model.version == model_version(model.trained_at, model.intercept, dict(model.weights))


def small_model(weights: dict[str, float], intercept: float = -1.0) -> RiskModel:
    """A valid model with these weights (the figures it claims are made up)."""
    at = datetime(2026, 11, 29, tzinfo=UTC)
    metrics = RiskMetrics(
        roc_auc=0.5,
        precision_top_decile=0.1,
        top_decile_size=1,
        base_rate=0.1,
        train_size=8,
        test_size=2,
        train_positives=1,
        test_positives=1,
    )
    return RiskModel(
        version=model_version(at, intercept, weights),
        trained_at=at,
        trained_from=at,
        trained_to=at,
        intercept=intercept,
        weights=weights,
        metrics=metrics,
    )


def _document(**changes: Any) -> str:
    return json.dumps({**small_model({"threat": 2.0}).model_dump(mode="json"), **changes})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not JSON"),
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "not an escalation risk model"),
        (b'{"weights": {}}', "not an escalation risk model"),
        (b"\x80\x04\x95pickle", "not UTF-8"),  # a pickle is never read as one
        (_document(format_version=2).encode(), "format version 2, this version reads 1"),
        (_document(weights={"threat": "heavy"}).encode(), "weights.threat: Input should be a valid number"),
        (_document(weights={"threat": 1e9}).encode(), "weights.threat: Input should be less than or equal to 1000"),
        (_document(intercept=float("nan")).encode(), "not JSON: NaN is not a number a model holds"),
        (_document(version="latest").encode(), "version: String should match pattern"),
        (_document(run="os.system('rm -rf /')").encode(), "run: Extra inputs are not permitted"),
        (
            _document(weights={f"word=w{i}": 0.1 for i in range(20_001)}).encode(),
            "weights: Dictionary should have at most",
        ),
    ],
)
def test_a_model_file_that_cannot_be_used_is_refused_naming_the_file_and_why(tmp_path, content, reason):
    path = tmp_path / "risk-model.json"
    path.write_bytes(content)
    with pytest.raises(RiskModelError) as refused:
        RiskModel.load(path)
    assert str(refused.value).startswith(f"risk model file {path}: ")
    assert reason in str(refused.value)


def test_an_oversized_or_missing_model_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "risk-model.json"
    with path.open("wb") as f:
        f.write(b'{"format": "escalations.risk-model", "weights": {"x": 1' + b" " * (MAX_MODEL_BYTES + 10) + b"}}")
    with pytest.raises(RiskModelError, match=f"larger than {MAX_MODEL_BYTES} bytes"):
        RiskModel.load(path)
    with pytest.raises(RiskModelError, match="cannot read: No such file or directory"):
        RiskModel.load(tmp_path / "nothing.json")
    with pytest.raises(RiskModelError, match="cannot read: Is a directory"):
        RiskModel.load(tmp_path)


def test_a_model_file_nested_too_deep_or_not_a_file_is_refused_at_once(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RiskModelError, match="nested too deep"):
        RiskModel.load(deep)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # opening it to read would wait for a writer: the worker must not
    with pytest.raises(RiskModelError, match="not a regular file"):
        RiskModel.load(fifo)


codes = st.one_of(st.none(), st.text(max_size=100))
inputs = st.builds(
    RiskInput,
    category=codes,
    channel=codes,
    severity=codes,
    sentiment=codes,
    value_band=codes,
    language=codes,
    threat=st.booleans(),
    earlier_cases=st.integers(0, MAX_EARLIER_CASES),
    hour_of_week=st.integers(0, HOURS_PER_WEEK - 1),
    summary=st.text(max_size=4000),
)
weights = st.dictionaries(
    st.sampled_from(["threat", "repeat", "earlier_cases", "category=billing", "day=mon", "word=refund", "word=aa"]),
    st.floats(-1000, 1000, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(x=inputs, w=weights)
def test_any_case_scores_within_zero_and_one(x, w):
    score = small_model(w).score(x)
    assert 0.0 <= score <= 1.0
    assert all(math.isfinite(v) for v in features(x).values())


def test_features_are_what_training_and_scoring_share():
    x = RiskInput(
        category="Billing",
        channel="call",
        sentiment="furious",
        threat=True,
        earlier_cases=3,
        hour_of_week=hour_of_week(datetime(2026, 11, 27, 22, 30, tzinfo=UTC)),  # a Friday
        summary="Charged TWICE, the refund is not here; refund 42 now!",
    )
    assert features(x) == {
        "category=billing": 1.0,
        "channel=call": 1.0,
        "sentiment=furious": 1.0,
        "threat": 1.0,
        "earlier_cases": math.log1p(3),
        "repeat": 1.0,
        "day=fri": 1.0,
        "hours=20-24": 1.0,
        "word=charged": 1.0,
        "word=twice": 1.0,
        "word=refund": 1.0,
        "word=not": 1.0,
        "word=here": 1.0,
        "word=now": 1.0,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hour_of_week", 168),
        ("hour_of_week", -1),
        ("earlier_cases", -1),
        ("earlier_cases", MAX_EARLIER_CASES + 1),
        ("summary", "x" * 4001),
        ("category", "c" * 101),
        ("unknown", 1),
    ],
)
def test_a_risk_input_out_of_bounds_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        RiskInput(**{field: value})


def test_the_scorer_imports_nothing_the_worker_lacks():
    tree = ast.parse(Path(risk.__file__).read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {
        m for m in imported if m.split(".")[0] in ("numpy", "sklearn", "scipy", "duckdb", "temporalio", "pickle")
    }


def test_too_few_cases_or_a_single_kind_are_refused(rows):
    with pytest.raises(TrainingRefused, match=f"99 closed cases in the events; training needs at least {MIN_CASES}"):
        train(rows[:99])
    calm = [r for r in rows if not r.escalated][:150]
    with pytest.raises(TrainingRefused, match="every one of the 150 closed cases stayed at its first tier"):
        train(calm)
    # Escalations only in the latest cases: the earliest have too few of one kind.
    skewed = [*calm[:120], *[r for r in rows if r.escalated][:30]]
    skewed = [TrainingRow(r.case_id, START + timedelta(hours=i), r.risk, r.escalated) for i, r in enumerate(skewed)]
    with pytest.raises(TrainingRefused, match="training needs at least 10 of each"):
        train(skewed)


def test_escalations_train_writes_the_file_and_prints_its_quality(events_file, tmp_path, monkeypatch):
    monkeypatch.setenv("ESCALATIONS_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    shown = runner.invoke(app, ["train", "--events", str(events_file)])
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "data" / "risk-model.json"
    model = RiskModel.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"risk model {model.version} written to {path} (mode 0600)" in shown.stdout
    assert f"ROC AUC {model.metrics.roc_auc:.3f}" in shown.stdout
    assert f"against a base rate of {model.metrics.base_rate:.1%}" in shown.stdout
    assert "trained on 504 closed cases" in shown.stdout and "judged on the latest 126" in shown.stdout

    out = tmp_path / "elsewhere.json"
    as_json = runner.invoke(app, ["train", "--events", str(events_file), "--out", str(out), "--json"])
    assert as_json.exit_code == 0, as_json.output
    figures = json.loads(as_json.stdout)
    assert figures["file"] == str(out) and figures["version"] == RiskModel.load(out).version
    assert figures["roc_auc"] > 0.7 and figures["precision_top_decile"] > figures["base_rate"]
    assert (figures["train_size"], figures["test_size"]) == (504, 126)
    assert oct(stat.S_IMODE(os.stat(out).st_mode)) == "0o600"

    # Where the worker reads it, when that is set.
    monkeypatch.setenv("ESCALATIONS_RISK_MODEL", str(tmp_path / "worker" / "model.json"))
    assert runner.invoke(app, ["train", "--events", str(events_file)]).exit_code == 0
    assert RiskModel.load(tmp_path / "worker" / "model.json").weights == model.weights


def test_escalations_train_refuses_what_cannot_train(tmp_path):
    runner = CliRunner()
    few = write_events(tmp_path / "few.jsonl", generated_events(cases=30))
    refused = runner.invoke(app, ["train", "--events", str(few), "--out", str(tmp_path / "m.json")])
    assert refused.exit_code == 3
    assert "error: 27 closed cases in the events; training needs at least 100" in refused.stderr
    assert not (tmp_path / "m.json").exists()
    missing = runner.invoke(app, ["train", "--events", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "m.json")])
    assert missing.exit_code == 3 and "nothing at" in missing.stderr


def test_a_case_the_model_started_higher_is_not_trained_on(tmp_path):
    """risk_routing starts a high-risk case at a team lead, where it had no chance to climb past its first tier:
    learning from it would teach the model its own guess."""
    events = generated_events(cases=120)
    for e in events:
        if e["type"] == "escalation.opened" and e["case_id"] in {"C-0", "C-1"}:
            e["detail"]["start"] = "risk"
        elif e["type"] == "escalation.opened" and e["case_id"] == "C-2":
            e["detail"]["start"] = "opened"
    ids = {r.case_id for r in training_rows(connect(write_events(tmp_path / "events.jsonl", events)))}
    assert "C-0" not in ids and "C-1" not in ids and "C-2" in ids


def test_the_readme_shows_what_escalations_train_prints(events_file, tmp_path, monkeypatch):
    """The README's sample output ("Escalation risk: escalations train") has the lines the command prints, with
    only the figures differing."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("### Escalation risk: `escalations train`", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    shown = [line for line in block.strip().splitlines() if not line.startswith("$ ")]
    monkeypatch.setenv("ESCALATIONS_DATA_DIR", str(tmp_path / "data"))
    printed = CliRunner().invoke(app, ["train", "--events", str(events_file)])
    assert printed.exit_code == 0, printed.output

    def shape(line: str) -> str:  # numbers, the version and the file aside
        line = re.sub(r"\d{8}-[0-9a-f]{12}", "V", line)
        line = re.sub(r"written to \S+", "written to F", line)
        return re.sub(r"\d[\d:.,-]*", "N", line)

    assert [shape(line) for line in printed.stdout.strip().splitlines()] == [shape(line) for line in shown]
