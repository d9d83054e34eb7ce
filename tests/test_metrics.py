"""Prometheus metrics: the worker as a process serves the SDK's and ours, with exact counts after a scripted
case; the dashboard and the alert rules use only names the worker exports."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from escalation import logs, metrics
from escalation.client import EscalationClient
from escalation.domain import rules
from escalation.domain.models import Tier, TimelineEntry
from escalation.domain.policy import load_policy_file
from tests.cases import case_input, eventually, worker_process
from tests.conftest import IDENTITY_KEYS
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "tests" / "policies"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DASHBOARD = ROOT / "config" / "grafana" / "escalations-dashboard.json"
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
# The SDK's metrics the dashboard and alerts use: the worker must export each of them.
NAME = re.compile(r"\b(?:escalations|temporal)_[a-z_]+\b")
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SUFFIXES = ("_bucket", "_sum", "_count")


def parse(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        found = SAMPLE.match(line)
        assert found, line
        name, labels, value = found.groups()
        samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return samples


def total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def used_names() -> set[str]:
    """Every metric name the dashboard's and the alert rules' expressions use (without histogram suffixes)."""
    exprs = [t["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for t in panel.get("targets", [])]
    # Each rule's expression is on its `expr:` line (no YAML parser among the dependencies).
    exprs += re.findall(r"^\s*expr:\s*(.+)$", ALERTS.read_text(), flags=re.M)
    return {base(n) for e in exprs for n in NAME.findall(e)}


def test_dashboard_and_alerts_use_only_our_metric_names():
    ours = {n for n in used_names() if n.startswith("escalations_")}
    assert ours and ours <= set(metrics.METRICS), ours - set(metrics.METRICS)
    assert all(name.startswith("escalations_") for name in metrics.METRICS)


async def test_worker_serves_exact_counts_after_a_scripted_case(env, tmp_path):
    port = free_port()
    worker, queue, _ = await worker_process(
        env,
        tmp_path,
        "metrics",
        ESCALATIONS_METRICS_ADDRESS=f"127.0.0.1:{port}",
        ESCALATIONS_IDENTITY__KEYS=str(IDENTITY_KEYS),
    )
    try:
        esc = EscalationClient(env.client, task_queue=queue)
        # The worker's roster names its reps with its queue's suffix: the case is opened by its agent.
        case = await esc.open(case_input("standard", opened_by=f"ana-{queue.rsplit('-', 1)[1]}"))

        async def owner() -> str | None:
            s = await case.state()
            return s.owner.id if s.owner is not None and s.owner.id in s.stints[-1].owners else None

        agent = await eventually(owner, timeout=30)
        await case.acknowledge({"actor": agent})
        await case.escalate({"actor": agent, "reason": "needs_authority", "detail": "refund above my limit"})

        async def lead_owner() -> str | None:
            return (await owner()) if (await case.state()).tier == "team_lead" else None

        lead = await eventually(lead_owner, timeout=30)
        offer = await case.propose_offer(
            {"actor": lead, "kind": "compensation", "amount": "80", "description": "Refund"}
        )
        await case.record_offer_response({"actor": lead, "offer_id": offer.id, "answer": "accepted"})
        await case.resolve({"actor": lead, "resolution": "Refunded", "root_cause": "billing_error", "kb_missing": True})

        async def scraped() -> list[tuple[str, dict[str, str], float]]:
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{port}/metrics")
            assert response.status_code == 200
            samples = parse(response.text)
            # Complete once the offer confirmation (sent after acceptance) and the resolve are counted.
            assert total(samples, "escalations_time_to_resolve_seconds_count") == 1
            assert total(samples, metrics.MESSAGES_SENT, kind="offer_confirmation") >= 1
            return samples

        samples = await eventually(scraped, timeout=30)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        await asyncio.wait_for(worker.communicate(), 60)

    assert total(samples, metrics.CASES_OPENED) == 1
    assert total(samples, metrics.CASES_OPENED, tier="agent", severity="high") == 1
    assert total(samples, metrics.ESCALATIONS) == 1
    assert total(samples, metrics.ESCALATIONS, from_tier="agent", to_tier="team_lead", reason="needs_authority") == 1
    assert total(samples, metrics.SLA_BREACHES) == 0
    assert total(samples, metrics.OFFERS) == 2
    assert total(samples, metrics.OFFERS, tier="team_lead", kind="compensation", outcome="proposed") == 1
    assert total(samples, metrics.OFFERS, tier="team_lead", kind="compensation", outcome="accepted") == 1
    assert total(samples, "escalations_offer_amount_sum", outcome="accepted") == 80
    assert total(samples, "escalations_time_to_acknowledge_seconds_count", tier="agent") == 1
    assert total(samples, "escalations_time_to_resolve_seconds_count", tier="team_lead") == 1
    assert total(samples, metrics.REOPENS) == total(samples, metrics.FOLLOWUPS) == 0
    assert total(samples, metrics.ROUTING_DECISIONS, tier="agent", outcome="owner") == 1
    assert total(samples, metrics.ROUTING_DECISIONS, tier="team_lead", outcome="owner") == 1
    assert total(samples, "escalations_routing_latency_seconds_count") == 2
    assert total(samples, metrics.MESSAGES_SENT) >= 2  # the agent's and the team lead's hand-offs at least
    # No label carries the case id or the customer.
    assert not any(case.case_id in v or "cust-42" in v for _, ls, v2 in samples for v in ls.values())
    # The SDK's own metrics come with ours, and every name the dashboard and alerts use is among them.
    exported = {base(n) for n, _, _ in samples}
    sdk = {n for n in used_names() if n.startswith("temporal_")}
    assert sdk and sdk <= exported, sdk - exported


def test_readme_lists_every_metric():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Metrics") :]
    listed = set(re.findall(r"^\| `(escalations_[a-z_]+)` \|", section, flags=re.M))
    assert listed == set(metrics.METRICS)


def test_a_metrics_address_that_cannot_be_served_names_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ValueError, match=r"ESCALATIONS_METRICS_ADDRESS.*in use"):
            logs.serve_metrics(address)
    logs.serve_metrics(None)  # unset and "off": nothing to serve
    logs.serve_metrics("off")


@pytest.mark.parametrize(
    ("kind", "detail", "name", "labels"),
    [
        (
            "callback_outcome",
            {"callback_id": "cb-1", "outcome": "no_answer", "note": "x"},
            metrics.CALLBACKS,
            {"outcome": "no_answer"},
        ),
        (
            "followup_answered",
            {"checkin": 1, "answer": "not_fixed", "comment": "still broken"},
            metrics.FOLLOWUPS,
            {"answer": "not_fixed"},
        ),
        ("reopened", {"from_tier": "agent", "to_tier": "agent"}, metrics.REOPENS, {"tier": "agent"}),
        (
            "breached",
            {"clock": "acknowledge", "owner": "ana"},
            metrics.SLA_BREACHES,
            {"tier": "agent", "clock": "acknowledge"},
        ),
        (
            "delivery_failed",
            {"key": "k", "message_kind": "checkin", "to": "cust-42", "channel": "sms"},
            metrics.MESSAGES_FAILED,
            {"channel": "sms", "kind": "checkin"},
        ),
    ],
)
def test_each_timeline_entry_counts_once_without_personal_labels(kind, detail, name, labels):
    state, _ = rules.open_case(case_input("standard"), load_policy_file(POLICIES / "standard.toml"), NOW, "run-1")
    entry = TimelineEntry(seq=99, at=NOW, kind=kind, actor="ana", tier=Tier.AGENT, detail=detail)
    assert metrics.measures(entry, state) == [metrics.Measure(name, 1, labels)]
    assert metrics.measures(entry.model_copy(update={"kind": "note"}), state) == []
