"""Training the escalation-risk model (`escalations train`) from the events: closed cases, described as they were
when they opened, labelled by whether they climbed past their first tier. A time-ordered split: the model learns
from the earliest cases and is judged on the latest, as it will be used. Its coefficients are exported into a
RiskModel (escalation.insight.risk), and its quality is measured with that exported scorer, so the figures printed
are those of the file the worker reads."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sklearn.feature_extraction import DictVectorizer  # type: ignore[import-untyped]
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
from sklearn.metrics import roc_auc_score  # type: ignore[import-untyped]

from escalation.domain.models import JOURNEY_COUNTED, JOURNEY_DAYS, TEXT_CHARS
from escalation.identity.keys import write_private
from escalation.insight.risk import (
    MAX_CODE_CHARS,
    MAX_WEIGHT,
    MAX_WEIGHTS,
    RiskInput,
    RiskMetrics,
    RiskModel,
    features,
    hour_of_week,
    model_version,
)

# Fewer closed cases than this give figures nobody should trust (a test part of a few dozen cases).
MIN_CASES = 100
# Of each kind (escalated, not escalated) in the training part, and at least one of each in the test part.
MIN_PER_CLASS = 10
TEST_SHARE = 0.2
# The most recent closed cases trained on: enough for a stable model, bounded in memory and time.
MAX_CASES = 200_000
# A summary word must appear in this many training cases to become a feature: rarer ones are noise.
MIN_WORD_CASES = 3
MAX_FEATURES = min(5000, MAX_WEIGHTS)
# Inverse regularisation strength of the logistic regression (scikit-learn's default).
REGULARISATION_C = 1.0
SEED = 7
# The customer's earlier cases are counted over the window the worker's look-back uses, so a model learns the
# feature as it will be scored.
EARLIER_DAYS = JOURNEY_DAYS


class TrainingRefused(ValueError):
    """The events cannot train a model worth having: the message says why and what would."""


@dataclass(frozen=True)
class TrainingRow:
    case_id: str
    opened_at: datetime
    risk: RiskInput
    escalated: bool


# Closed openings of cases with their opened event, described as of opening. `earlier_cases` comes from the opened
# event; where it is absent (older events), it is counted from the same data: the customer's openings in the 90
# days before (the same window the worker's look-back uses). A case with an `escalation.forgotten` event lends no
# words: its summary is left out.
_ROWS_SQL = f"""
WITH counted AS (
    SELECT case_id, opening,
        CASE WHEN customer_id IS NULL THEN 0 ELSE count(*) OVER (
            PARTITION BY customer_id ORDER BY opened_at
            RANGE BETWEEN INTERVAL {EARLIER_DAYS} DAYS PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING
        ) END AS earlier_seen
    FROM cases
),
opened AS (
    SELECT case_id, opening, arg_min(detail->>'summary', seq) AS summary, arg_min(detail->>'start', seq) AS start
    FROM events WHERE type = 'escalation.opened' GROUP BY case_id, opening
),
forgotten AS (SELECT DISTINCT case_id FROM events WHERE type = 'escalation.forgotten')
SELECT c.case_id, c.opened_at, c.category, c.channel, c.severity, c.sentiment, c.value_band, c.language,
    coalesce(c.threat, false), coalesce(c.earlier_cases, n.earlier_seen, 0),
    CASE WHEN c.case_id IN (SELECT case_id FROM forgotten) THEN NULL ELSE o.summary END,
    c.escalated
FROM cases c
JOIN opened o USING (case_id, opening)
JOIN counted n USING (case_id, opening)
WHERE c.closed_at IS NOT NULL AND c.opened_at IS NOT NULL
    -- A case the model's own score started higher (risk_routing) never had the chance to climb: not a lesson.
    AND coalesce(o.start, '') <> 'risk'
ORDER BY c.opened_at DESC, c.case_id, c.opening
LIMIT $max_cases
"""


def _code(value: Any) -> str | None:
    return None if value is None else str(value)[:MAX_CODE_CHARS]


def training_rows(con: Any, *, limit: int = MAX_CASES) -> list[TrainingRow]:
    """The closed cases of `con` (escalation.insight.source.connect), the `limit` most recent, oldest first."""
    rows = con.execute(_ROWS_SQL, {"max_cases": limit}).fetchall()
    out = []
    for (
        case_id,
        opened_at,
        category,
        channel,
        severity,
        sentiment,
        band,
        language,
        threat,
        earlier,
        summary,
        up,
    ) in reversed(rows):
        risk = RiskInput(
            category=_code(category),
            channel=_code(channel),
            severity=_code(severity),
            sentiment=_code(sentiment),
            value_band=_code(band),
            language=_code(language),
            threat=bool(threat),
            # Capped as the worker counts them when it scores (one visibility page).
            earlier_cases=min(max(int(earlier), 0), JOURNEY_COUNTED),
            hour_of_week=hour_of_week(opened_at),
            summary=(summary or "")[:TEXT_CHARS],
        )
        out.append(TrainingRow(case_id=case_id, opened_at=opened_at, risk=risk, escalated=bool(up)))
    return out


def _vocabulary(rows: list[dict[str, float]]) -> set[str]:
    """The features the model may weigh: every code seen, summary words seen in MIN_WORD_CASES cases, the most
    frequent MAX_FEATURES of them."""
    seen = Counter(name for row in rows for name in row)
    kept = [(n, c) for n, c in seen.items() if not n.startswith("word=") or c >= MIN_WORD_CASES]
    kept.sort(key=lambda item: (-item[1], item[0]))
    return {n for n, _ in kept[:MAX_FEATURES]}


def _refuse_small(rows: list[TrainingRow]) -> None:
    if len(rows) < MIN_CASES:
        raise TrainingRefused(
            f"{len(rows)} closed cases in the events; training needs at least {MIN_CASES} "
            "(let more cases close, or point --events at more of them)"
        )
    escalated = sum(r.escalated for r in rows)
    if escalated == 0 or escalated == len(rows):
        kind = "escalated" if escalated else "stayed at its first tier"
        raise TrainingRefused(
            f"every one of the {len(rows)} closed cases {kind}: a model needs cases of both kinds to tell them apart"
        )


def train(rows: list[TrainingRow], *, now: datetime | None = None) -> RiskModel:
    """A logistic regression over `features` of the earliest 80% of `rows` (by opening time), judged on the latest
    20%: ROC AUC and precision at the top decile against the base rate. Raises TrainingRefused with fewer than
    MIN_CASES cases, or too few of either kind in a part."""
    _refuse_small(rows)
    rows = sorted(rows, key=lambda r: (r.opened_at, r.case_id))
    cut = round(len(rows) * (1 - TEST_SHARE))
    train_part, test_part = rows[:cut], rows[cut:]
    train_up = sum(r.escalated for r in train_part)
    if min(train_up, len(train_part) - train_up) < MIN_PER_CLASS:
        raise TrainingRefused(
            f"the earliest {len(train_part)} closed cases hold {train_up} that escalated and "
            f"{len(train_part) - train_up} that did not; training needs at least {MIN_PER_CLASS} of each"
        )
    test_up = sum(r.escalated for r in test_part)
    if test_up in (0, len(test_part)):
        raise TrainingRefused(
            f"the latest {len(test_part)} closed cases (the test part) are all of one kind "
            f"({test_up} escalated): the model cannot be judged; train again when more cases have closed"
        )

    train_features = [features(r.risk) for r in train_part]
    vocabulary = _vocabulary(train_features)
    vectorizer = DictVectorizer(sparse=True, sort=True)
    matrix = vectorizer.fit_transform([{k: v for k, v in f.items() if k in vocabulary} for f in train_features])
    classifier = LogisticRegression(
        C=REGULARISATION_C, class_weight="balanced", max_iter=2000, random_state=SEED, solver="lbfgs"
    )
    classifier.fit(matrix, [r.escalated for r in train_part])

    def bounded(value: float) -> float:
        return round(min(max(float(value), -MAX_WEIGHT), MAX_WEIGHT), 6)

    weights = {
        str(name): bounded(w)
        for name, w in zip(vectorizer.get_feature_names_out(), classifier.coef_[0], strict=True)
        if bounded(w) != 0
    }
    # Balanced class weights fit as if half the cases escalated; moving the intercept by the log-odds of the real
    # share turns the score back into a chance (the ranking, and so ROC AUC and the top decile, do not change).
    share = train_up / len(train_part)
    intercept = bounded(float(classifier.intercept_[0]) + math.log(share / (1 - share)))
    trained_at = (now or datetime.now(UTC)).astimezone(UTC)
    model = RiskModel(
        version=model_version(trained_at, intercept, weights),
        trained_at=trained_at,
        trained_from=train_part[0].opened_at,
        trained_to=train_part[-1].opened_at,
        intercept=intercept,
        weights=weights,
        metrics=RiskMetrics(
            roc_auc=0,
            precision_top_decile=0,
            top_decile_size=0,
            base_rate=0,
            train_size=len(train_part),
            test_size=len(test_part),
            train_positives=train_up,
            test_positives=test_up,
        ),
    )
    scores = [model.score(r.risk) for r in test_part]
    labels = [r.escalated for r in test_part]
    top = max(1, math.ceil(len(test_part) / 10))
    ranked = sorted(range(len(test_part)), key=lambda i: (-scores[i], i))[:top]
    metrics = model.metrics.model_copy(
        update={
            "roc_auc": float(roc_auc_score(labels, scores)),
            "precision_top_decile": sum(labels[i] for i in ranked) / top,
            "top_decile_size": top,
            "base_rate": test_up / len(test_part),
        }
    )
    return model.model_copy(update={"metrics": metrics})


def save(model: RiskModel, path: Path) -> None:
    """Write the model file readable by its owner alone (0600), atomically: the worker reads the old file or the
    new one, never half of one."""
    write_private(path, model.model_dump(mode="json"))
