"""The operator's side of escalation: keep each report's `status.escalation` current and send
what it holds to Linear, retrying until Linear confirms.

Order matters for exactly-once: the escalation is written `Pending` (with the issue id to use)
before Linear is called, and `Opened` only after Linear answered. A crash between the two
leaves `Pending` behind; the next start replays it, and the derived issue id plus the report's
attachment URL make the replay find the issue instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from kubetriage.escalation.escalator import Escalator, planned_escalation
from kubetriage.k8s.access import as_dict
from kubetriage.models import DiagnosisReport, Escalation, EscalationState
from kubetriage.policy import Classification
from kubetriage.reports.build import ReportChange
from kubetriage.reports.render.issue import resolution_markdown
from kubetriage.runtime import metrics

log = structlog.get_logger("kubetriage.escalation.outbox")
Report = dict[str, Any]
WriteStatus = Callable[[str, str, dict[str, Any]], Awaitable[Report]]
RETRY_SECONDS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)


class Outbox:
    """Decides, records and delivers escalations; one delivery in flight per report."""

    def __init__(
        self,
        escalator: Escalator | None,
        write_status: WriteStatus,
        *,
        cluster_name: str,
    ) -> None:
        self.escalator = escalator
        self.write_status = write_status
        self.cluster_name = cluster_name
        self._deliveries: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def after_diagnosis(
        self,
        stored: Report,
        classification: Classification | None,
        *,
        production: bool,
        change: ReportChange,
    ) -> Report:
        """Record the escalation a freshly written report calls for, and send it."""
        report = _model(stored)
        if report is None or report.status is None:
            return stored
        prior = report.status.escalation
        planned = planned_escalation(
            report,
            classification,
            uid=(stored.get("metadata") or {}).get("uid"),
            cluster_name=self.cluster_name,
            production=production,
            linear_configured=self.escalator is not None,
            prior=prior,
        )
        if planned != prior:
            stored = await self._write(report, planned)
        if change is ReportChange.REOPENED and planned.state is EscalationState.OPENED:
            await self._comment(report, planned, "relapse", _relapse_text(report))
        self.kick(stored)
        return stored

    async def after_resolution(self, stored: Report) -> None:
        """Tell the issue that the workload is healthy again."""
        report = _model(stored)
        if report is None or report.status is None or report.status.escalation is None:
            return
        occurrence = report.status.occurrences
        await self._comment(
            report,
            report.status.escalation,
            f"resolved-{occurrence}",
            resolution_markdown(report.status.resolution),
        )

    def kick(self, stored: Report) -> None:
        """Start delivering a Pending escalation, unless one is already on its way."""
        report = _model(stored)
        if report is None or report.status is None or self.escalator is None:
            return
        escalation = report.status.escalation
        if escalation is None or escalation.state is not EscalationState.PENDING:
            return
        if report.spec.acknowledged:
            return
        key = (report.metadata.namespace, report.metadata.name)
        running = self._deliveries.get(key)
        if running is None or running.done():
            self._deliveries[key] = asyncio.create_task(self._deliver(report, escalation))

    async def _deliver(self, report: DiagnosisReport, escalation: Escalation) -> None:
        assert self.escalator is not None
        for attempt, pause in enumerate((0.0, *RETRY_SECONDS)):
            await asyncio.sleep(pause)
            escalation = await self.escalator.deliver(report, escalation)
            await self._write(report, escalation)
            if escalation.state is not EscalationState.PENDING:
                log.info("escalated", report=report.metadata.name, state=escalation.state.value,
                         issue=escalation.identifier, attempts=escalation.attempts)  # fmt: skip
                return
            log.warning("escalation pending", report=report.metadata.name, attempt=attempt + 1,
                        error=escalation.last_error)  # fmt: skip
        # Still pending: the next diagnosis or restart picks it up again.

    async def _comment(
        self, report: DiagnosisReport, escalation: Escalation, key: str, body: str
    ) -> None:
        if self.escalator is None or report.spec.acknowledged:
            return
        if not await self.escalator.comment(escalation, body, key=key):
            log.warning("comment not sent; it will be retried on the next change",
                        report=report.metadata.name)  # fmt: skip

    async def _write(self, report: DiagnosisReport, escalation: Escalation) -> Report:
        assert report.status is not None
        metrics.ESCALATIONS.labels(escalation.state.value).inc()
        status = report.status.model_copy(update={"escalation": escalation})
        return await self.write_status(
            report.metadata.namespace, report.metadata.name, status.to_api()
        )

    async def close(self) -> None:
        """Stop deliveries in flight; what they did not finish stays Pending in the reports."""
        for task in self._deliveries.values():
            task.cancel()
        for task in self._deliveries.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _model(stored: Report) -> DiagnosisReport | None:
    try:
        return DiagnosisReport.read(stored)
    except ValidationError as error:
        # Not silently: a report that cannot be read is one whose escalation stalls.
        metadata = as_dict(stored.get("metadata"))
        log.warning(
            "report unreadable; its escalation waits",
            report=f"{metadata.get('namespace')}/{metadata.get('name')}",
            error=str(error)[:1000],
        )
        return None


def _relapse_text(report: DiagnosisReport) -> str:
    assert report.status is not None
    cause = report.status.root_cause
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    said = f"{cause.category.value} — {cause.summary}" if cause else report.spec.symptom.value
    return f"Relapsed at {when} (occurrence {report.status.occurrences}): {said}"
