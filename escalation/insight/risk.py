"""Escalation risk at open: the chance a new case climbs past its first tier, from what is known when it opens.

The worker scores each new case with this module alone (the standard library and pydantic: no numpy, no
scikit-learn, no temporalio), from the model file `escalations train` writes (escalation.insight.training).
Training and scoring both turn a case into numbers with `features`, so the two cannot drift apart.

The model file is JSON (never pickle: reading a model must not be able to run code), bounded in size and in its
number of weights, validated field by field; anything else is a RiskModelError naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from escalation.domain.models import TEXT_CHARS

FORMAT: Final = "escalations.risk-model"
# Bumped whenever the file's fields or `features` change meaning: a file of another version is refused, never
# scored with features it was not trained on.
FORMAT_VERSION: Final = 1
MAX_MODEL_BYTES = 4 * 1024 * 1024
MAX_WEIGHTS = 20_000
# A weight this large means a broken file, not a trained model; the bound also keeps every sum finite.
MAX_WEIGHT = 1000.0
MAX_CODE_CHARS = 100
MAX_EARLIER_CASES = 100_000
# Distinct summary words a case contributes, in order of first appearance.
MAX_WORDS = 200
HOURS_PER_WEEK = 168
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_WORD = re.compile(r"[^\W\d_]{2,30}")
# Words that say nothing about a case (negations stay: "not working" is not "working"); the rest is left to
# the vocabulary cap in training.
# fmt: off
STOP_WORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for",
    "from", "had", "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "me", "my", "of",
    "on", "or", "our", "she", "so", "than", "that", "the", "their", "them", "then", "there", "they", "this", "to",
    "too", "up", "us", "was", "we", "were", "what", "when", "which", "who", "will", "with", "would", "you", "your",
))
# fmt: on

Code = Annotated[str, Field(max_length=MAX_CODE_CHARS)] | None


class RiskModelError(ValueError):
    """A model file that cannot be used: the message names the file and the reason."""


class RiskInput(BaseModel):
    """What is known of a case when it opens, as the model reads it. Codes are the events' values (category,
    channel, severity, sentiment, value band, language); None: not known."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: Code = None
    channel: Code = None
    severity: Code = None
    sentiment: Code = None
    value_band: Code = None
    language: Code = None
    threat: bool = False
    # The customer's cases in the 90 days before this one.
    earlier_cases: Annotated[int, Field(ge=0, le=MAX_EARLIER_CASES)] = 0
    # Hours since Monday 00:00 UTC of the week the case opened (`hour_of_week`).
    hour_of_week: Annotated[int, Field(ge=0, lt=HOURS_PER_WEEK)] = 0
    summary: Annotated[str, Field(max_length=TEXT_CHARS)] = ""


def hour_of_week(at: datetime) -> int:
    """0..167: hours since Monday 00:00 UTC (a naive time is taken as UTC)."""
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.weekday() * 24 + at.hour


def words(text: str) -> list[str]:
    """The summary's distinct lower-case words (letters only, 2 to 30 of them, no stop words), at most MAX_WORDS."""
    seen = dict.fromkeys(w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS)
    return list(seen)[:MAX_WORDS]


def features(x: RiskInput) -> dict[str, float]:
    """The case as named numbers: one-hot codes ("category=billing"), "threat", the customer's earlier cases
    (log1p, and "repeat" when there are any), the day and four-hour block of the week it opened, and the
    summary's words ("word=refund"). Unknown codes give no feature, so the intercept stands in for them."""
    out: dict[str, float] = {}
    for name in ("category", "channel", "severity", "sentiment", "value_band", "language"):
        value = getattr(x, name)
        if value and value.strip():
            out[f"{name}={value.strip().lower()}"] = 1.0
    if x.threat:
        out["threat"] = 1.0
    if x.earlier_cases:
        out["earlier_cases"] = math.log1p(x.earlier_cases)
        out["repeat"] = 1.0
    day, hour = divmod(x.hour_of_week, 24)
    out[f"day={DAYS[day]}"] = 1.0
    out[f"hours={hour // 4 * 4:02d}-{hour // 4 * 4 + 4:02d}"] = 1.0
    for word in words(x.summary):
        out[f"word={word}"] = 1.0
    return out


def logistic(z: float) -> float:
    """1 / (1 + e^-z) without overflow for any finite z."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


Weight = Annotated[float, Field(ge=-MAX_WEIGHT, le=MAX_WEIGHT, allow_inf_nan=False)]
Rate = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class RiskMetrics(BaseModel):
    """The model's quality on the latest cases, which it was not trained on (a time-ordered split)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roc_auc: Rate
    precision_top_decile: Rate  # of the test cases scored highest (the top tenth), the share that escalated
    top_decile_size: Annotated[int, Field(ge=0)]
    base_rate: Rate  # the share of test cases that escalated
    train_size: Annotated[int, Field(ge=0)]
    test_size: Annotated[int, Field(ge=0)]
    train_positives: Annotated[int, Field(ge=0)]
    test_positives: Annotated[int, Field(ge=0)]


class RiskModel(BaseModel):
    """The model file's content: a logistic regression over `features`, its version and how good it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["escalations.risk-model"] = FORMAT
    format_version: Literal[1] = FORMAT_VERSION
    # <trained on date>-<hash of the coefficients>: the same model always has the same version.
    version: Annotated[str, Field(pattern=r"^\d{8}-[0-9a-f]{12}$")]
    trained_at: datetime
    # When the cases it was trained on opened (the earliest and the latest).
    trained_from: datetime
    trained_to: datetime
    intercept: Weight
    weights: Annotated[
        dict[Annotated[str, Field(max_length=2 * MAX_CODE_CHARS)], Weight], Field(max_length=MAX_WEIGHTS)
    ]
    metrics: RiskMetrics

    def score(self, x: RiskInput) -> float:
        """The chance (0..1) that the case climbs past its first tier."""
        z = self.intercept + math.fsum(self.weights.get(name, 0.0) * value for name, value in features(x).items())
        return logistic(z)

    @classmethod
    def load(cls, path: Path | str) -> RiskModel:
        """The model in `path`. Raises RiskModelError naming the file: cannot read, larger than MAX_MODEL_BYTES,
        not JSON, not a risk model, a format version this one does not read, or the first invalid field."""
        label = f"risk model file {path}"
        try:
            # Not blocking: a FIFO put where the model should be would otherwise hang the worker that opens it.
            with open(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise RiskModelError(f"{label}: not a regular file")
                raw = f.read(MAX_MODEL_BYTES + 1)
        except OSError as err:
            raise RiskModelError(f"{label}: cannot read: {err.strerror or err}") from None
        if len(raw) > MAX_MODEL_BYTES:
            raise RiskModelError(f"{label}: larger than {MAX_MODEL_BYTES} bytes, which no trained model is")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except UnicodeDecodeError:
            raise RiskModelError(f"{label}: not UTF-8 text") from None
        except ValueError as err:
            raise RiskModelError(f"{label}: not JSON: {err}") from None
        except RecursionError:  # nested deeper than Python's parser goes: no model is
            raise RiskModelError(f"{label}: not a risk model (nested too deep)") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RiskModelError(f'{label}: not an escalation risk model (no "format": "{FORMAT}")')
        if data.get("format_version") != FORMAT_VERSION:
            raise RiskModelError(
                f"{label}: format version {str(data.get('format_version'))[:20]}, this version reads "
                f"{FORMAT_VERSION}: train it again with `escalations train`"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "model"
            more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
            raise RiskModelError(f"{label}: {where}: {first['msg']}{more}") from None

    def dumps(self) -> str:
        return self.model_dump_json(indent=2) + "\n"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a model holds")


def model_version(trained_at: datetime, intercept: float, weights: dict[str, float]) -> str:
    """`<YYYYMMDD>-<12 hex>`: the training date and a hash of the coefficients (and the format they are read in)."""
    content = json.dumps([FORMAT_VERSION, intercept, sorted(weights.items())], separators=(",", ":"))
    return f"{trained_at.astimezone(UTC):%Y%m%d}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"
