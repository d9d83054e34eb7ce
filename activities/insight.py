"""What a new case learns before it opens (escalation.domain.models.LookBack): the customer's earlier cases, read
from visibility by customer id, and the case's escalation risk, scored with the trained model's file
(escalation.insight.risk; `escalations train` writes it). A local activity: its answer is recorded, so a case
replays without visibility or the model. Neither is needed to open a case: without them it opens unscored and
without a journey, as before."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from escalation.constants import WORKFLOW_ID_PREFIX, WORKFLOW_TYPE
from escalation.domain.bands import value_band
from escalation.domain.models import (
    JOURNEY_COUNTED,
    JOURNEY_DAYS,
    JOURNEY_KEPT,
    Contract,
    EarlierCase,
    EscalationInput,
    FollowUpAnswer,
    Journey,
    LookBack,
    Tier,
)
from escalation.domain.rules.journey import granted_decimal
from escalation.insight.risk import RiskInput, RiskModel, RiskModelError, hour_of_week
from escalation.search import CATEGORY, CUSTOMER, FOLLOWUP_ANSWER, GRANTED, HIGHEST_TIER, STATUS

log = structlog.get_logger()

# A look-back that visibility cannot answer this fast opens the case without a journey: the customer waits for
# nobody.
VISIBILITY_TIMEOUT = 2.0


E = TypeVar("E", bound=StrEnum)


def _member(kind: type[E], value: str | None) -> E | None:
    """A search attribute's value as the enum, or None for one this version does not know."""
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


class LookBackRequest(Contract):
    """The case as the look-back needs it: ids and codes, and the summary's words for the risk model."""

    run_id: str  # the opening run, left out of the customer's earlier cases
    customer_id: str
    opened_at: datetime
    risk: RiskInput

    @classmethod
    def of(cls, inp: EscalationInput, run_id: str, opened_at: datetime) -> LookBackRequest:
        return cls(
            run_id=run_id,
            customer_id=inp.customer.id,
            opened_at=opened_at,
            risk=RiskInput(
                category=inp.category,
                channel=inp.channel.value,
                severity=inp.severity.value,
                sentiment=inp.sentiment.value,
                value_band=value_band(inp.customer.lifetime_value),
                language=inp.customer.language,
                threat=inp.threat,
                earlier_cases=0,
                hour_of_week=hour_of_week(opened_at),
                summary=inp.summary,
            ),
        )


class ModelFile:
    """The risk model's file, read again when it changes; missing or broken: no score (a broken one is logged once
    per change)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._model: RiskModel | None = None
        self._lock = threading.Lock()

    def get(self) -> RiskModel | None:
        with self._lock:  # look-backs of cases opening together may ask at once
            return self._get()

    def _get(self) -> RiskModel | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            self._seen, self._model = None, None
            return None
        if (st.st_mtime_ns, st.st_size) != self._seen:
            self._seen = (st.st_mtime_ns, st.st_size)
            try:
                self._model = RiskModel.load(self.path)
                log.info("risk_model_loaded", version=self._model.version)
            except RiskModelError as err:
                self._model = None
                log.error("risk_model_unusable", error=str(err))
        return self._model


class InsightActivities:
    def __init__(self, client: Client | None, model: Path | None) -> None:
        self.client = client  # None: no journey (a worker built without a client, e.g. a benchmark's)
        self.model = ModelFile(model)

    @activity.defn(name="look_back")
    async def look_back(self, req: LookBackRequest) -> LookBack:
        journey = await self._journey(req)
        model = await asyncio.to_thread(self.model.get)  # a changed file is read off the worker's event loop
        if model is None:
            return LookBack(journey=journey)
        features = req.risk.model_copy(update={"earlier_cases": journey.count if journey else 0})
        return LookBack(journey=journey, risk=round(model.score(features), 4), risk_model=model.version)

    async def _journey(self, req: LookBackRequest) -> Journey | None:
        if self.client is None:
            return None
        since = (req.opened_at - timedelta(days=JOURNEY_DAYS)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        query = (
            f'WorkflowType = "{WORKFLOW_TYPE}" AND {CUSTOMER.name} = "{req.customer_id}" '
            f'AND StartTime >= "{since}" AND RunId != "{req.run_id}" AND ExecutionStatus != "ContinuedAsNew"'
        )
        try:
            async with asyncio.timeout(VISIBILITY_TIMEOUT):
                found = [ex async for ex in self.client.list_workflows(query, limit=JOURNEY_COUNTED)]
        except (RPCError, TimeoutError) as err:
            log.warning("journey_unknown", error=str(err) or type(err).__name__)
            return None
        found.sort(key=lambda ex: ex.start_time, reverse=True)
        cases = []
        for ex in found[:JOURNEY_KEPT]:
            sa = ex.typed_search_attributes
            tier, answer = sa.get(HIGHEST_TIER), sa.get(FOLLOWUP_ANSWER)
            cases.append(
                EarlierCase(
                    case_id=ex.id.removeprefix(WORKFLOW_ID_PREFIX),
                    opened_at=ex.start_time,
                    category=sa.get(CATEGORY),
                    status=sa.get(STATUS)
                    or (ex.status.name.lower() if ex.status and ex.status != WorkflowExecutionStatus.RUNNING else None),
                    highest_tier=_member(Tier, tier),
                    granted=granted_decimal(sa.get(GRANTED)),
                    followup=_member(FollowUpAnswer, answer),
                )
            )
        return Journey(count=len(found), cases=cases)
