"""Themes: what the free text of cases keeps coming back to (the summary and desired outcome at open, the notes,
the resolution and its root cause), grouped with TF-IDF and NMF. Deterministic for a seed, so the same events
give the same themes in every report. A forgotten case (right to erasure) gives no text at all."""

from __future__ import annotations

import warnings
from typing import Any

from pydantic import BaseModel, ConfigDict
from sklearn.decomposition import NMF  # type: ignore[import-untyped]
from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]
from sklearn.feature_extraction.text import TfidfVectorizer  # type: ignore[import-untyped]

# Text kept per case opening: enough for what a case is about, bounded whatever the notes add up to.
MAX_DOC_CHARS = 4000
# The most recent openings analysed: TF-IDF and NMF stay within seconds and bounded memory.
MAX_DOCS = 50_000
# Terms kept in the vocabulary (the most frequent after stop words and the document-frequency bounds).
MAX_FEATURES = 5000
TERMS_PER_THEME = 10
EXAMPLES_PER_THEME = 5


class ThemeDoc(BaseModel):
    """The free text of one case opening and whether that opening escalated."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    text: str
    escalated: bool


class Theme(BaseModel):
    """A group of cases whose text shares its strongest terms. `name`: the top three terms."""

    model_config = ConfigDict(frozen=True)

    name: str
    terms: list[str]
    size: int
    escalation_rate: float
    examples: list[str]  # case ids, the most typical first


# Per opening of a case: its texts in the order they were written. A case with an `escalation.forgotten` event
# is left out entirely, every opening of it (the customer asked to be forgotten, not one conversation).
_DOCS_SQL = """
WITH forgotten AS (SELECT DISTINCT case_id FROM events WHERE type = 'escalation.forgotten'),
texts AS (
    SELECT case_id, opening, seq, "at", type,
        CASE type
            WHEN 'escalation.opened' THEN concat_ws(' ', detail->>'summary', detail->>'desired_outcome')
            WHEN 'escalation.resolved' THEN concat_ws(' ', detail->>'resolution', detail->>'root_cause')
            WHEN 'escalation.note' THEN detail->>'text'
        END AS text
    FROM events
    WHERE case_id NOT IN (SELECT case_id FROM forgotten)
)
SELECT case_id,
    left(coalesce(string_agg(text, ' ' ORDER BY seq) FILTER (WHERE text IS NOT NULL AND text <> ''), ''), $max_chars),
    bool_or(type = 'escalation.escalated')
FROM texts
GROUP BY case_id, opening
HAVING bool_or(type = 'escalation.opened')
ORDER BY min("at") DESC, case_id, opening
LIMIT $max_docs
"""


def theme_docs(con: Any, *, limit: int = MAX_DOCS) -> list[ThemeDoc]:
    """One document per case opening in the `events` table of `con` (escalation.insight.source.connect): the opened
    event's summary and desired outcome, the notes, the resolution and its root cause, at most MAX_DOC_CHARS;
    the `limit` most recent openings, oldest first."""
    rows = con.execute(_DOCS_SQL, {"max_chars": MAX_DOC_CHARS, "max_docs": limit}).fetchall()
    return [ThemeDoc(case_id=case_id, text=text, escalated=bool(up)) for case_id, text, up in reversed(rows)]


def find_themes(docs: list[ThemeDoc], *, themes: int = 8, seed: int = 7) -> list[Theme]:
    """Up to `themes` themes of `docs`, largest first. Each document belongs to the theme it weighs most on;
    documents without a single known term (empty, stop words only) belong to none. Fewer documents or terms
    than themes give fewer themes; none at all give an empty list."""
    docs = [d for d in docs if d.text.strip()]
    if themes < 1 or not docs:
        return []
    many = len(docs) >= 20
    vectorizer = TfidfVectorizer(
        stop_words="english",
        # A term in one case only says nothing about a group; one in nearly every case does not tell groups apart.
        # Small sets keep every term, or there would be nothing left to group.
        min_df=2 if many else 1,
        max_df=0.9 if many else 1.0,
        max_features=MAX_FEATURES,
        sublinear_tf=True,
        # Words, not numbers: order numbers and amounts would make themes of their own.
        token_pattern=r"(?u)\b[^\W\d_][\w]+\b",
    )
    try:
        matrix = vectorizer.fit_transform([d.text for d in docs])
    except ValueError:  # no term left (only stop words, or terms too rare or too common)
        return []
    vocabulary = vectorizer.get_feature_names_out()
    count = min(themes, len(docs), len(vocabulary))
    model = NMF(n_components=count, init="nndsvda", random_state=seed, max_iter=500)
    with warnings.catch_warnings():
        # Not converging within max_iter still gives usable (and deterministic) themes; a tiny set of documents
        # sharing no term makes the fit's error estimate divide by zero, which the themes do not use.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        weights = model.fit_transform(matrix)
    members: dict[int, list[int]] = {}
    for i, row in enumerate(weights):
        if row.max() > 0:
            members.setdefault(int(row.argmax()), []).append(i)
    found = []
    for topic, idx in members.items():
        component = model.components_[topic]
        top = [int(t) for t in component.argsort()[::-1][:TERMS_PER_THEME] if component[t] > 0]
        terms = [str(vocabulary[t]) for t in top]
        typical = sorted(idx, key=lambda i: (-weights[i, topic], docs[i].case_id))
        examples = list(dict.fromkeys(docs[i].case_id for i in typical))[:EXAMPLES_PER_THEME]
        found.append(
            Theme(
                name=" / ".join(terms[:3]),
                terms=terms,
                size=len(idx),
                escalation_rate=sum(docs[i].escalated for i in idx) / len(idx),
                examples=examples,
            )
        )
    return sorted(found, key=lambda t: (-t.size, t.name))
