"""The pattern report shown three ways: terminal tables (rich), one long CSV table, and one self-contained HTML
page with its charts drawn by matplotlib and embedded as PNG (no script, no external resource).

CSV columns: section, label, metric, value. `section` names the part of the report (headline, highest_tier,
reasons_by_category, ...), `label` the row within it (a tier, a category, `category/reason`, `Mon 09`), `metric`
the figure (cases, share, ack_p50_minutes, ...) and `value` the number (empty when there is none).
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from escalation.insight.report import DAYS, TOP_REASONS, Loophole, ReasonCount, Report

CSV_COLUMNS = ("section", "label", "metric", "value")


# ----- formatting


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def num(value: float | Decimal | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _period(report: Report) -> str:
    since, until = report.period.since, report.period.until
    shown = [f"{k} {v}" for k, v in report.filters.model_dump().items() if v is not None]
    return f"cases opened {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC" + (
        f" ({', '.join(shown)})" if shown else ""
    )


def _cell(value: object) -> Text:
    """Never read as rich markup."""
    return Text(str(value))


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*map(_cell, row))
    return table


def _top_reasons(rows: list[ReasonCount]) -> list[ReasonCount]:
    return rows[:TOP_REASONS]


def _loophole_rows(rows: list[Loophole]) -> list[list[Any]]:
    return [
        [x.name, x.cases, x.escalated, pct(x.escalation_rate), x.resolved, x.kb_missing, pct(x.kb_missing_rate)]
        for x in rows
    ]


LOOPHOLE_COLUMNS = ["", "cases", "escalated", "escalation rate", "resolved", "without KB", "without KB %"]


# ----- the terminal


def _strings(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _strings(v, clean) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings(v, clean) for v in value]
    return value


def terminal(report: Report, clean: Callable[[str], str] = str) -> Group:
    """The report as rich tables. `clean` is applied to every text of the report first: the categories, rep ids
    and terms come from the events, which a terminal must not take as control sequences."""
    report = Report.model_validate(_strings(report.model_dump(), clean))
    h = report.headline
    parts: list[Any] = [
        Text(f"Escalation patterns: {_period(report)}", style="bold"),
        *(
            [Text(f"{h.skipped_lines} line(s) of the events were not an event and were left out")]
            if h.skipped_lines
            else []
        ),
        _table(
            "Headline",
            ["cases", "escalated", "first-contact resolved", "reopened", "breaches", "granted", "events"],
            [
                [
                    h.cases,
                    f"{h.escalated} ({pct(h.escalation_rate)})",
                    f"{h.first_contact_resolved} ({pct(h.first_contact_resolution_rate)} of {h.resolved} resolved)",
                    h.reopened,
                    h.breaches,
                    money(h.granted),
                    h.events,
                ]
            ],
        ),
        _table(
            "Highest tier reached",
            ["tier", "cases", "share"],
            [[t.tier, t.cases, pct(t.share)] for t in report.highest_tier],
        ),
        _table(
            f"Escalation reasons by category (top {TOP_REASONS})",
            ["category", "reason", "escalations"],
            [[r.group, r.reason, r.escalations] for r in _top_reasons(report.reasons_by_category)],
        ),
        _table(
            f"Escalation reasons by channel (top {TOP_REASONS})",
            ["channel", "reason", "escalations"],
            [[r.group, r.reason, r.escalations] for r in _top_reasons(report.reasons_by_channel)],
        ),
        _table(
            "SLA breaches by tier",
            ["tier", "clock", "breaches"],
            [[b.tier, b.clock, b.breaches] for b in report.breaches_by_tier],
        ),
        _hour_table(report),
        _table(
            "Time to acknowledge (per tier reached) and to resolve (per highest tier)",
            ["tier", "acks", "ack p50 min", "ack p90 min", "resolved", "resolve p50 h", "resolve p90 h"],
            [
                [
                    t.tier,
                    t.acknowledged,
                    num(t.ack_p50_minutes),
                    num(t.ack_p90_minutes),
                    t.resolved,
                    num(t.resolve_p50_hours),
                    num(t.resolve_p90_hours),
                ]
                for t in report.timings
            ],
        ),
        _table(
            "Granted per tier that made the offer",
            ["tier", "cases with offers", "offers", "cases granted", "compensation", "goodwill", "granted"],
            [
                [
                    s.group,
                    s.cases,
                    s.offers,
                    s.granted_cases,
                    money(s.compensation),
                    money(s.goodwill),
                    money(s.granted),
                ]
                for s in report.spend_by_tier
            ],
        ),
        _table(
            "Granted per customer-value band",
            [
                "band",
                "cases",
                "cases granted",
                "compensation",
                "goodwill",
                "granted",
                "customer value",
                "granted/value",
            ],
            [
                [
                    s.group,
                    s.cases,
                    s.granted_cases,
                    money(s.compensation),
                    money(s.goodwill),
                    money(s.granted),
                    money(s.customer_value),
                    pct(s.share_of_value),
                ]
                for s in report.spend_by_band
            ],
        ),
        _table(
            "Follow-ups",
            ["cases followed up", "reopened", "reopen rate", "answers", "fixed", "satisfaction"],
            [
                [
                    report.followups.cases_followed_up,
                    report.followups.reopened,
                    pct(report.followups.reopen_rate),
                    report.followups.answers,
                    report.followups.fixed,
                    pct(report.followups.satisfaction),
                ]
            ],
        ),
        _table(
            "Reps",
            ["rep", "resolved", "without escalation", "acks", "ack p50 min", "offers made", "accepted"],
            [
                [
                    r.rep,
                    r.resolved,
                    r.resolved_without_escalation,
                    r.acknowledged,
                    num(r.ack_p50_minutes),
                    r.offers_made,
                    r.offers_accepted,
                ]
                for r in report.reps
            ],
        ),
    ]
    lh = report.loopholes
    at_least = f"at least {lh.min_cases} cases"
    parts += [
        _table(
            f"Loopholes: categories by escalation rate ({at_least})",
            ["category", *LOOPHOLE_COLUMNS[1:]],
            _loophole_rows(lh.categories_by_escalation),
        ),
        _table(
            f"Loopholes: root causes by escalation rate ({at_least})",
            ["root cause", *LOOPHOLE_COLUMNS[1:]],
            _loophole_rows(lh.root_causes_by_escalation),
        ),
        _table(
            f"Resolved without a KB article: categories ({at_least})",
            ["category", *LOOPHOLE_COLUMNS[1:]],
            _loophole_rows(lh.categories_without_kb),
        ),
        _table(
            f"Resolved without a KB article: root causes ({at_least})",
            ["root cause", *LOOPHOLE_COLUMNS[1:]],
            _loophole_rows(lh.root_causes_without_kb),
        ),
    ]
    if report.themes is not None:
        parts.append(
            _table(
                "Themes of the free text",
                ["theme", "cases", "escalation rate", "top terms", "examples"],
                [
                    [t.name, t.size, pct(t.escalation_rate), ", ".join(t.terms), ", ".join(t.examples)]
                    for t in report.themes
                ],
            )
        )
    if report.themes_note:
        parts.append(Text(f"Themes: {report.themes_note}"))
    return Group(*parts)


def _hour_table(report: Report) -> Table:
    """Breaches by day and block of hours (UTC): 7 x 6 fits a terminal; CSV, JSON and HTML have every hour."""
    blocks = [(h, h + 4) for h in range(0, 24, 4)]
    rows = [
        [
            day,
            *[sum(report.breaches_by_hour_of_week[d][a:b]) for a, b in blocks],
            sum(report.breaches_by_hour_of_week[d]),
        ]
        for d, day in enumerate(DAYS)
    ]
    return _table("SLA breaches by hour of week (UTC)", ["day", *[f"{a:02d}-{b:02d}" for a, b in blocks], "all"], rows)


# ----- CSV


def _metrics(row: BaseModel, labels: tuple[str, ...]) -> Iterator[tuple[str, str, Any]]:
    data = row.model_dump()
    label = "/".join(str(data[k]) for k in labels)
    for key, value in data.items():
        if key in labels or isinstance(value, (list, dict, str)):
            continue
        yield label, key, value


def long_rows(report: Report) -> Iterator[tuple[str, str, str, Any]]:
    """Every figure of the report as (section, label, metric, value)."""
    for _, metric, value in _metrics(report.headline, ()):
        yield "headline", "all", metric, value
    sections: list[tuple[str, list[Any], tuple[str, ...]]] = [
        ("highest_tier", report.highest_tier, ("tier",)),
        ("reasons_by_category", report.reasons_by_category, ("group", "reason")),
        ("reasons_by_channel", report.reasons_by_channel, ("group", "reason")),
        ("breaches_by_tier", report.breaches_by_tier, ("tier", "clock")),
        ("timings", report.timings, ("tier",)),
        ("spend_by_tier", report.spend_by_tier, ("group",)),
        ("spend_by_band", report.spend_by_band, ("group",)),
        ("followups", [report.followups], ()),
        ("reps", report.reps, ("rep",)),
        ("loophole_categories_by_escalation", report.loopholes.categories_by_escalation, ("name",)),
        ("loophole_root_causes_by_escalation", report.loopholes.root_causes_by_escalation, ("name",)),
        ("loophole_categories_without_kb", report.loopholes.categories_without_kb, ("name",)),
        ("loophole_root_causes_without_kb", report.loopholes.root_causes_without_kb, ("name",)),
    ]
    for section, rows, labels in sections:
        for row in rows:
            for label, metric, value in _metrics(row, labels):
                yield section, label or "all", metric, value
    for d, day in enumerate(DAYS):
        for hour, count in enumerate(report.breaches_by_hour_of_week[d]):
            yield "breaches_by_hour_of_week", f"{day} {hour:02d}", "breaches", count
    for theme in report.themes or []:
        yield "themes", theme.name, "size", theme.size
        yield "themes", theme.name, "escalation_rate", theme.escalation_rate


def to_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for section, label, metric, value in long_rows(report):
        shown = "" if value is None else (str(value) if not isinstance(value, bool) else str(value).lower())
        # A label starting with = + - @ is data, not a spreadsheet formula.
        writer.writerow([section, ("'" + label) if label[:1] in "=+-@" else label, metric, shown])
    return out.getvalue()


# ----- HTML


TIER_COLOURS = ["#4c78a8", "#f58518", "#e45756", "#72b7b2"]


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(name: str) -> str:
    return name if len(name) <= 40 else name[:39] + "…"


def charts(report: Report) -> dict[str, str]:
    """The page's charts as PNG data URLs, by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Names come from the events: drawn as they are ('$' is no formula), and cut so that none can stretch a chart.
    plt.rcParams.update(
        {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False, "text.parse_math": False}
    )
    out: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(5, 2.8))
    tiers = [t.tier for t in report.highest_tier]
    bars = ax.bar(tiers, [t.cases for t in report.highest_tier], color=TIER_COLOURS)
    ax.bar_label(bars, labels=[pct(t.share) for t in report.highest_tier], padding=2)
    ax.set_ylabel("cases")
    ax.set_title("Highest tier reached")
    out["highest_tier"] = _png(fig)

    fig, ax = plt.subplots(figsize=(10, 3))
    grid = report.breaches_by_hour_of_week
    image = ax.imshow(grid, aspect="auto", cmap="Reds")
    ax.set_yticks(range(7), list(DAYS))
    ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    ax.set_xlabel("hour (UTC)")
    ax.set_title("SLA breaches by hour of week (UTC)")
    fig.colorbar(image, ax=ax, label="breaches")
    out["breaches_by_hour_of_week"] = _png(fig)

    fig, (ack, res) = plt.subplots(1, 2, figsize=(10, 3))
    xs = range(len(report.timings))
    labels = [t.tier for t in report.timings]
    for ax, p50, p90, unit, title in (
        (
            ack,
            [t.ack_p50_minutes for t in report.timings],
            [t.ack_p90_minutes for t in report.timings],
            "minutes",
            "Time to acknowledge, per tier",
        ),
        (
            res,
            [t.resolve_p50_hours for t in report.timings],
            [t.resolve_p90_hours for t in report.timings],
            "hours",
            "Time to resolve, per highest tier",
        ),
    ):
        ax.bar([x - 0.2 for x in xs], [v or 0 for v in p50], width=0.4, label="p50", color="#4c78a8")
        ax.bar([x + 0.2 for x in xs], [v or 0 for v in p90], width=0.4, label="p90", color="#9ecae9")
        ax.set_xticks(list(xs), labels)
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.legend(frameon=False)
    out["timings"] = _png(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    bands = report.spend_by_band
    names = [b.group for b in bands]
    comp = [float(b.compensation) for b in bands]
    good = [float(b.goodwill) for b in bands]
    ax.bar(names, comp, label="compensation", color="#4c78a8")
    top = ax.bar(names, good, bottom=comp, label="goodwill", color="#f58518")
    ax.bar_label(top, labels=[f"{pct(b.share_of_value)} of value" for b in bands], padding=2, fontsize=8)
    ax.set_ylabel("granted")
    ax.set_title("Granted per customer-value band")
    ax.legend(frameon=False)
    out["spend_by_band"] = _png(fig)

    ranked = report.loopholes.categories_by_escalation[:12]
    causes = report.loopholes.root_causes_by_escalation[:12]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.6 + 0.3 * max(len(ranked), len(causes), 3)))
    for ax, rows, title in ((left, ranked, "Categories"), (right, causes, "Root causes")):
        rows = list(reversed(rows))
        bars = ax.barh([_label(r.name) for r in rows], [r.escalation_rate * 100 for r in rows], color="#e45756")
        ax.bar_label(bars, labels=[f"{pct(r.escalation_rate)} of {r.cases:,}" for r in rows], padding=2, fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_xlabel("% of cases escalated")
        ax.set_title(f"{title} by escalation rate (>= {report.loopholes.min_cases} cases)")
    out["loopholes"] = _png(fig)

    if report.themes:
        themes = list(reversed(report.themes))
        fig, ax = plt.subplots(figsize=(10, 0.6 + 0.35 * len(themes)))
        colours = plt.get_cmap("Reds")([0.3 + 0.7 * t.escalation_rate for t in themes])
        bars = ax.barh([_label(t.name) for t in themes], [t.size for t in themes], color=colours)
        ax.bar_label(bars, labels=[f"{pct(t.escalation_rate)} escalated" for t in themes], padding=2, fontsize=8)
        ax.set_xlabel("cases")
        ax.set_title("Themes of the free text (colour: escalation rate)")
        out["themes"] = _png(fig)
    return out


def _numeric(value: Any) -> bool:
    text = str(value).replace(",", "").rstrip("%")
    return isinstance(value, (int, float, Decimal)) or text.replace(".", "", 1).lstrip("-").isdigit() or text == "-"


def _html_table(columns: list[str], rows: list[list[Any]]) -> str:
    """Numbers right-aligned, words left; every value escaped."""
    if not rows:
        return "<p class='none'>nothing in this range</p>"
    numeric = [all(_numeric(row[i]) for row in rows) for i in range(len(columns))]
    head = "".join(
        f"<th{' class=n' if n else ''}>{html.escape(str(c))}</th>" for c, n in zip(columns, numeric, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if n else ''}>{html.escape(str(v))}</td>" for v, n in zip(row, numeric, strict=True))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1150px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 130px; }
.card b { display: block; font-size: 22px; } .card span { color: #666; font-size: 12px; }
.row { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
img { max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border-bottom: 1px solid #eee; padding: 3px 10px; text-align: left; vertical-align: top; }
th.n, td.n { text-align: right; }
.note, .none { color: #666; font-size: 13px; max-width: 900px; }
"""


def _note(text: str) -> str:
    return f"<p class='note'>{html.escape(text)}</p>"


def to_html(report: Report) -> str:
    """One page, nothing fetched: styles inline, charts as data URLs, every text escaped."""
    images = charts(report)
    h = report.headline
    e = html.escape

    def img(name: str, alt: str) -> str:
        return f'<img src="{images[name]}" alt="{e(alt)}">' if name in images else ""

    cards = [
        (f"{h.cases:,}", "cases opened"),
        (pct(h.escalation_rate), f"escalated ({h.escalated:,})"),
        (pct(h.first_contact_resolution_rate), "first-contact resolution"),
        (f"{h.breaches:,}", "SLA breaches"),
        (money(h.granted), "granted"),
        (pct(report.followups.satisfaction), "follow-ups fixed"),
        (pct(report.followups.reopen_rate), "reopened after follow-up"),
    ]
    lh = report.loopholes
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        # Nothing outside this page is loaded, whatever a value says.
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>Escalation patterns</title><style>{STYLE}</style></head><body>",
        "<h1>Escalation patterns</h1>",
        f"<p class='sub'>{e(_period(report))}; generated {report.generated_at:%Y-%m-%d %H:%M} UTC</p>",
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{e(v)}</b><span>{e(k)}</span></div>" for v, k in cards)
        + "</div>",
        "<h2>Where cases end up</h2>",
        _note("The highest tier each case reached. Every case above the agent tier cost a more senior person's time."),
        "<div class='row'>",
        img("highest_tier", "Highest tier reached"),
        _html_table(["tier", "cases", "share"], [[t.tier, t.cases, pct(t.share)] for t in report.highest_tier]),
        "</div>",
        "<h2>Loopholes: where training and the knowledge base should go next</h2>",
        _note(
            f"Categories and root causes by the share of their cases that climbed past the first tier (at least "
            f"{lh.min_cases} cases each). High and large: a gap in what the first tier knows or may do."
        ),
        img("loopholes", "Categories and root causes by escalation rate"),
        f"<p>Resolved without a knowledge-base article (at least {lh.min_cases} cases):</p><div class='row'>",
        _html_table(["category", *LOOPHOLE_COLUMNS[1:]], _loophole_rows(lh.categories_without_kb[:10])),
        _html_table(["root cause", *LOOPHOLE_COLUMNS[1:]], _loophole_rows(lh.root_causes_without_kb[:10])),
        "</div>",
    ]
    if report.themes:
        parts += [
            "<h2>Themes of the free text</h2>",
            _note(
                "What the cases' own words keep coming back to, grouped by their strongest terms; colour: escalation "
                "rate" + (f"; {report.themes_note}." if report.themes_note else ".")
            ),
            img("themes", "Themes"),
            _html_table(
                ["theme", "cases", "escalation rate", "top terms"],
                [[t.name, t.size, pct(t.escalation_rate), ", ".join(t.terms)] for t in report.themes],
            ),
        ]
    parts += [
        "<h2>SLA breaches</h2>",
        _note("Breaches by day and hour of the week (UTC): dark cells are the hours the rota is short."),
        img("breaches_by_hour_of_week", "SLA breaches by hour of week"),
        _html_table(["tier", "clock", "breaches"], [[b.tier, b.clock, b.breaches] for b in report.breaches_by_tier]),
        "<h2>Time to acknowledge and to resolve</h2>",
        _note(
            "Acknowledge: from the case reaching a tier to its first acknowledgement there. Resolve: from opening to "
            "the first resolution, by the highest tier reached. p50 is the typical case, p90 the slow tail."
        ),
        img("timings", "Time to acknowledge and resolve per tier"),
        "<h2>Compensation and goodwill</h2>",
        _note(
            "Accepted offers per customer-value band, with what they are worth against the customers' lifetime value."
        ),
        "<div class='row'>",
        img("spend_by_band", "Granted per customer-value band"),
        _html_table(
            ["tier that offered", "offers", "compensation", "goodwill", "granted"],
            [
                [s.group, s.offers, money(s.compensation), money(s.goodwill), money(s.granted)]
                for s in report.spend_by_tier
            ],
        ),
        "</div>",
        "<h2>Why cases escalate</h2><div class='row'>",
        _html_table(
            ["category", "reason", "escalations"],
            [[r.group, r.reason, r.escalations] for r in _top_reasons(report.reasons_by_category)],
        ),
        _html_table(
            ["channel", "reason", "escalations"],
            [[r.group, r.reason, r.escalations] for r in _top_reasons(report.reasons_by_channel)],
        ),
        "</div>",
        "<h2>Reps</h2>",
        _html_table(
            ["rep", "resolved", "without escalation", "ack p50 min", "offers made", "accepted"],
            [
                [
                    r.rep,
                    r.resolved,
                    r.resolved_without_escalation,
                    num(r.ack_p50_minutes),
                    r.offers_made,
                    r.offers_accepted,
                ]
                for r in report.reps[:15]
            ],
        ),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)
