"""Themes of the cases' free text: stable for a seed, similar cases together, forgotten cases left out, and
tiny or empty inputs answered without a crash."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from escalation.insight.themes import MAX_DOC_CHARS, ThemeDoc, find_themes, theme_docs

VOCABULARIES = {
    "billing": ["billing", "refund", "invoice", "charged", "twice", "payment", "overcharge", "credit"],
    "internet": ["internet", "outage", "router", "connection", "wifi", "broadband", "signal", "modem"],
    "delivery": ["delivery", "parcel", "courier", "package", "tracking", "missing", "depot", "shipment"],
}
FILLER = ["customer", "says", "wants", "please", "today", "again", "called", "about"]


def vocabulary_docs(per: int = 30, seed: int = 1) -> list[tuple[str, ThemeDoc]]:
    """`per` documents from each vocabulary (a few of its words among common filler), tagged with it."""
    rng = random.Random(seed)
    docs = []
    for topic, words in VOCABULARIES.items():
        for i in range(per):
            text = " ".join(rng.sample(words, 4) + rng.sample(FILLER, 3))
            docs.append((topic, ThemeDoc(case_id=f"{topic}-{i}", text=text, escalated=topic == "billing" or i < 3)))
    rng.shuffle(docs)
    return docs


def event(case_id: str, seq: int, kind: str, at: datetime, opening: str = "", **detail: Any) -> dict[str, Any]:
    """One event as the product writes it to the events file; `opening` names another opening of the case (each
    opening's id is unique, as the workflow's are)."""
    return {
        "id": f"escalation-{case_id}/{case_id}-opening{opening}/{seq}",
        "type": f"escalation.{kind}",
        "case_id": case_id,
        "seq": seq,
        "at": at.isoformat().replace("+00:00", "Z"),
        "actor": "ana",
        "tier": "agent",
        "status": "open",
        "owner": "ana",
        "detail": detail,
    }


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def connect(path: Path):
    from escalation.insight.source import connect as source_connect

    return source_connect(str(path))


def test_the_same_seed_gives_the_same_themes():
    docs = [d for _, d in vocabulary_docs()]
    assert find_themes(docs, seed=3) == find_themes(list(docs), seed=3)


@pytest.mark.parametrize("themes", [3, 8])
def test_cases_about_the_same_thing_share_a_theme(themes):
    tagged = vocabulary_docs()
    topic_of = {d.case_id: topic for topic, d in tagged}
    found = find_themes([d for _, d in tagged], themes=themes)
    assert len(found) >= 3
    assert sum(t.size for t in found) == len(tagged)
    for theme in found:
        topics = {topic_of[c] for c in theme.examples}
        assert len(topics) == 1, f"{theme.name}: examples from {topics}"
    if themes == 3:
        # Each theme is one vocabulary: its top terms come from it, never the filler or another vocabulary.
        for theme in found:
            assert set(theme.terms[:3]) <= set(VOCABULARIES[topic_of[theme.examples[0]]]), theme.terms
        by_topic = {topic_of[t.examples[0]]: t for t in found}
        assert {t: by_topic[t].size for t in VOCABULARIES} == dict.fromkeys(VOCABULARIES, 30)
        assert by_topic["billing"].escalation_rate == 1.0
        assert by_topic["internet"].escalation_rate == pytest.approx(3 / 30)
        assert all(len(t.examples) == 5 and t.name == " / ".join(t.terms[:3]) for t in found)


@pytest.mark.parametrize(
    "texts",
    [
        [],
        [""],
        ["   ", "\n"],
        ["the and of", "it is"],  # stop words only
        ["refund please"],
        ["refund please", "router outage", "parcel missing"],
        ["1234 5678", "€ 20,00"],  # no words
    ],
)
def test_tiny_or_empty_inputs_give_few_themes_and_never_crash(texts):
    docs = [ThemeDoc(case_id=f"C-{i}", text=t, escalated=bool(i % 2)) for i, t in enumerate(texts)]
    found = find_themes(docs, themes=8)
    assert len(found) <= max(1, len(texts))
    assert sum(t.size for t in found) <= len(texts)
    assert all(t.terms and t.name and 0 <= t.escalation_rate <= 1 for t in found)
    assert find_themes(docs, themes=0) == []


def test_docs_gather_each_openings_text_and_leave_forgotten_cases_out(tmp_path):
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    at = lambda minutes: t0 + timedelta(minutes=minutes)  # noqa: E731
    opened = event("C-1", 1, "opened", at(0), summary="Charged twice for November", desired_outcome="refund of the fee")
    events = [
        opened,
        opened,  # a receiver may see an event twice
        event("C-1", 2, "note", at(1), text="customer angry about the invoice", sentiment="angry"),
        event("C-1", 3, "escalated", at(2), from_tier="agent", to_tier="team_lead", reason="needs_authority"),
        event("C-1", 4, "resolved", at(3), resolution="fee refunded", root_cause="billing_error"),
        event("C-2", 1, "opened", at(5), summary="Router keeps dropping", desired_outcome=None),
        event("C-2", 2, "note", at(6), text=None),
        # A case the customer asked to be forgotten: its text is in earlier events, and must not be used.
        event("C-3", 1, "opened", at(7), summary="secret personal story", desired_outcome="private"),
        event("C-3", 2, "note", at(8), text="more private text"),
        event("C-3", 3, "forgotten", at(9), reference="GDPR-1"),
        # A reopened case starts a new opening: a document of its own.
        event("C-1", 1, "opened", at(20), opening="o2", summary="Charged again", desired_outcome="stop it"),
        # Events of an opening whose opened event is not in the data (an older file): not a document.
        event("C-4", 7, "note", at(21), opening="o9", text="orphan note"),
    ]
    docs = theme_docs(connect(write_events(tmp_path / "events.jsonl", events)))
    assert docs == [
        ThemeDoc(
            case_id="C-1",
            text="Charged twice for November refund of the fee customer angry about the invoice fee refunded billing_error",
            escalated=True,
        ),
        ThemeDoc(case_id="C-2", text="Router keeps dropping", escalated=False),
        ThemeDoc(case_id="C-1", text="Charged again stop it", escalated=False),
    ]
    assert not any("private" in d.text or "secret" in d.text for d in docs)


def test_docs_are_bounded_per_case_and_in_number(tmp_path):
    t0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
    events = [event("C-1", 1, "opened", t0, summary="word " * 2000, desired_outcome="refund")]
    events += [event("C-1", 1 + i, "note", t0 + timedelta(minutes=i), text="note " * 500) for i in range(1, 20)]
    events += [event(f"C-{i}", 1, "opened", t0 + timedelta(hours=i), summary=f"case {i}") for i in range(2, 12)]
    con = connect(write_events(tmp_path / "events.jsonl", events))
    docs = theme_docs(con)
    assert max(len(d.text) for d in docs) == MAX_DOC_CHARS
    assert [d.case_id for d in theme_docs(con, limit=3)] == ["C-9", "C-10", "C-11"]  # the most recent, oldest first
