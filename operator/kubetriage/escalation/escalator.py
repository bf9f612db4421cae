"""A report's Linear issue: opened exactly once, commented on relapse and resolution, never
duplicated (DESIGN.md section 6).

The report is the outbox. Before anything is sent, the report records `escalation.state:
Pending` with the issue id that will be used; only Linear's answer moves it to `Opened`. The id
is derived from the report's uid, so a retry, a restart after a crash at any point, or a second
replica sends the same `issueCreate` — which Linear refuses as a duplicate — and finds the issue
again through the attachment whose URL names the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from kubetriage.escalation.linear import (
    IssueRef,
    LinearAuthError,
    LinearClient,
    LinearError,
    issue_id_for,
)
from kubetriage.models import DiagnosisReport, Escalation, EscalationState
from kubetriage.policy import Classification
from kubetriage.reports.render.issue import PRIORITY_BY_SEVERITY, issue_markdown, issue_title

NOT_CONFIGURED = (
    "not sent: Linear is not configured (KUBETRIAGE_LINEAR_API_KEY and KUBETRIAGE_LINEAR_TEAM_ID)"
)


def attachment_url(cluster_name: str, namespace: str, name: str) -> str:
    """The URL that identifies a report in Linear, stable across restarts and replicas."""
    return (
        f"https://kubetriage.invalid/clusters/{cluster_name}/namespaces/{namespace}"
        f"/diagnosisreports/{name}"
    )


def planned_escalation(
    report: DiagnosisReport,
    classification: Classification | None,
    *,
    uid: str | None,
    cluster_name: str,
    production: bool,
    linear_configured: bool,
    prior: Escalation | None,
) -> Escalation:
    """What the report's escalation should say before anything is sent.

    An escalation already opened (or failed for want of credentials) is kept as it is: the
    same issue follows the report through relapses.
    """
    if prior is not None and prior.state in {EscalationState.OPENED, EscalationState.FAILED}:
        return prior
    if classification is None or not classification.needs_human:
        reason = classification.reason if classification else "no recommended change"
        return Escalation(state=EscalationState.NOT_REQUIRED, reason=f"autonomous: {reason}")
    markdown = issue_markdown(report, cluster_name=cluster_name, production=production)
    return Escalation(
        state=EscalationState.PENDING,
        reason=classification.reason if linear_configured else NOT_CONFIGURED,
        issue_id=issue_id_for(uid) if uid else None,
        attempts=prior.attempts if prior else 0,
        last_error=prior.last_error if prior else None,
        markdown=markdown,
    )


@dataclass(frozen=True)
class LinearSettings:
    """Where issues go."""

    team_id: str
    label_ids: tuple[str, ...] = ()


class Escalator:
    """Sends what the outbox holds; every method returns the escalation to record."""

    def __init__(self, client: LinearClient, settings: LinearSettings, cluster_name: str) -> None:
        self.client = client
        self.settings = settings
        self.cluster_name = cluster_name

    async def deliver(self, report: DiagnosisReport, escalation: Escalation) -> Escalation:
        """Open the issue (or find the one a previous attempt opened) and link the report."""
        if escalation.state is not EscalationState.PENDING or escalation.issue_id is None:
            return escalation
        assert report.status is not None
        url = attachment_url(self.cluster_name, report.metadata.namespace, report.metadata.name)
        before = self.client.attempts
        now = datetime.now(UTC)
        try:
            issue = await self.client.find_issue_by_url(url)
            if issue is None:
                issue = await self.client.create_issue(
                    issue_id=escalation.issue_id,
                    team_id=self.settings.team_id,
                    title=issue_title(report, self.cluster_name),
                    description=escalation.markdown or "",
                    priority=PRIORITY_BY_SEVERITY[report.status.severity],
                    label_ids=list(self.settings.label_ids),
                )
                await self.client.attach_url(
                    issue.id, url, f"DiagnosisReport {report.metadata.name}",
                    subtitle=f"{report.metadata.namespace} · {self.cluster_name}",
                )  # fmt: skip
        except LinearAuthError as error:
            return _failed(escalation, error, self.client.attempts - before, now)
        except LinearError as error:
            return escalation.model_copy(
                update={
                    "attempts": escalation.attempts + (self.client.attempts - before),
                    "last_error": str(error)[:2048],
                    "last_attempt": now,
                }
            )
        return _opened(escalation, issue, self.client.attempts - before, now)

    async def comment(self, escalation: Escalation, body: str, *, key: str) -> bool:
        """Add a comment to the opened issue, once per `key` (a retried comment lands once).

        Returns False when it could not be sent now (the caller tries again later).
        """
        if escalation.state is not EscalationState.OPENED or not escalation.issue_id:
            return True
        try:
            await self.client.add_comment(
                escalation.issue_id, body, comment_id=issue_id_for(f"{escalation.issue_id}/{key}")
            )
        except LinearAuthError:
            return True  # nothing will change by retrying; the report says Opened still
        except LinearError:
            return False
        return True


def _opened(escalation: Escalation, issue: IssueRef, attempts: int, now: datetime) -> Escalation:
    return escalation.model_copy(
        update={
            "state": EscalationState.OPENED,
            "issue_id": issue.id,
            "identifier": issue.identifier,
            "url": issue.url,
            "attempts": escalation.attempts + attempts,
            "last_error": None,
            "last_attempt": now,
        }
    )


def _failed(escalation: Escalation, error: LinearError, attempts: int, now: datetime) -> Escalation:
    return escalation.model_copy(
        update={
            "state": EscalationState.FAILED,
            "reason": "Linear refused the API key: check the Secret behind "
            "KUBETRIAGE_LINEAR_API_KEY; diagnoses go on without issues",
            "attempts": escalation.attempts + attempts,
            "last_error": str(error)[:2048],
            "last_attempt": now,
        }
    )
