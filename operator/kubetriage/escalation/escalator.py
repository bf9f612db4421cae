"""What is sent to Linear for a report, and what the report's escalation records of it
(DESIGN.md section 6). The outbox (`escalation.outbox`) decides when; this module decides what.

Planning is pure: `planned_escalation` says what a freshly diagnosed report's escalation should
be, before anything is sent (Pending with the issue id to use, derived from the report's uid
and episode). Sending is the `Escalator`: each of its calls makes the requests of one step
(open the issue, comment, reopen, sync the attachment) through the Linear client and counts
them in the caller's `RequestCount`; a `LinearError` it raises is the outbox's to retry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from kubetriage.escalation.linear import (
    IssueRef,
    LinearClient,
    RequestCount,
    find_state,
    first_state,
    issue_id_for,
)
from kubetriage.k8s.time import format_duration
from kubetriage.models import (
    DiagnosisReport,
    Escalation,
    EscalationState,
    Phase,
)
from kubetriage.policy import Classification
from kubetriage.reports.render.issue import PRIORITY_BY_SEVERITY, issue_markdown, issue_title

NOT_CONFIGURED = (
    "kept in the report, not sent: Linear is not configured (KUBETRIAGE_LINEAR_API_KEY and "
    "KUBETRIAGE_LINEAR_TEAM_ID); configure it and restart to send it"
)
REFUSED_KEY = (
    "Linear refused the API key: fix the Secret behind KUBETRIAGE_LINEAR_API_KEY; kubetriage "
    "tries again after a restart with new settings and every hour; diagnoses go on meanwhile"
)
UNKNOWN_TEAM = (
    "Linear does not know the team KUBETRIAGE_LINEAR_TEAM_ID names: fix the setting; "
    "kubetriage tries again after a restart with new settings and every hour"
)


def attachment_url(cluster_name: str, namespace: str, name: str) -> str:
    """The URL that identifies a report in Linear, stable across restarts and replicas."""
    return (
        f"https://kubetriage.invalid/clusters/{cluster_name}/namespaces/{namespace}"
        f"/diagnosisreports/{name}"
    )


def issue_id_of(uid: str, episode: int) -> str:
    """The issue id of a report's episode: the first episode keeps the id derived from the uid
    alone (what earlier versions used), later ones add the episode."""
    return issue_id_for(uid if episode == 1 else f"{uid}/episode-{episode}")


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

    An escalation that has an issue (or is waiting for one, or was refused or declined) keeps
    it: the same issue follows the report through relapses, which only queue a comment.
    """
    if prior is not None and prior.state is EscalationState.NOT_SENT and linear_configured:
        prior = prior.model_copy(update={"state": EscalationState.PENDING, "reason": None})
    if prior is not None and (
        prior.state is not EscalationState.NOT_REQUIRED or prior.issue_id is not None
    ):
        return prior
    if classification is None or not classification.needs_human:
        reason = classification.reason if classification else "no recommended change"
        return Escalation(state=EscalationState.NOT_REQUIRED, reason=f"autonomous: {reason}")
    markdown = issue_markdown(report, cluster_name=cluster_name, production=production)
    return Escalation(
        state=EscalationState.PENDING if linear_configured else EscalationState.NOT_SENT,
        reason=classification.reason if linear_configured else NOT_CONFIGURED,
        issue_id=issue_id_of(uid, 1) if uid else None,
        markdown=markdown,
        attachment_wanted=attachment_digest(report),
    )


def attachment_digest(report: DiagnosisReport) -> str:
    """A digest of what the issue's attachment shows of the report: when it differs from the
    one last sent, the attachment is due for an update."""
    status = report.status
    facts = {
        "phase": status.phase.value if status else None,
        "category": status.root_cause.category.value if status and status.root_cause else None,
        "severity": status.severity.value if status else None,
        "occurrences": status.occurrences if status else None,
        "lastSeen": status.last_seen.isoformat() if status and status.last_seen else None,
        "resolvedAt": status.resolved_at.isoformat() if status and status.resolved_at else None,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def attachment_subtitle(report: DiagnosisReport, now: datetime) -> str:
    """The attachment's one line of live status: `Open · 3 occurrences · last seen 2m ago`,
    `Resolved after 14m`."""
    status = report.status
    if status is None:
        return report.spec.symptom.value
    if status.phase is Phase.RESOLVED and status.resolved_at and status.first_seen:
        return f"Resolved after {format_duration(status.resolved_at - status.first_seen)}"
    occurrences = f"{status.occurrences} occurrence{'s' if status.occurrences != 1 else ''}"
    seen = status.last_seen or status.first_seen
    ago = f" · last seen {format_duration(now - seen)} ago" if seen else ""
    return f"{status.phase.value} · {occurrences}{ago}"


@dataclass(frozen=True)
class LinearSettings:
    """Where issues go, and how the two-way feed treats what people did to them."""

    team_id: str
    label_ids: tuple[str, ...] = ()
    # A relapse within this long of a person completing the issue reopens it; after it, a new
    # issue related to the old one is opened.
    reopen_within: timedelta = timedelta(days=7)
    # The state a resolved report's issue moves to (id or name); None: it stays where it is.
    resolved_state: str | None = None


class Escalator:
    """The requests of each delivery step; every call counts its requests in `count`."""

    def __init__(self, client: LinearClient, settings: LinearSettings, cluster_name: str) -> None:
        self.client = client
        self.settings = settings
        self.cluster_name = cluster_name

    def url_of(self, report: DiagnosisReport) -> str:
        """The report's attachment URL."""
        return attachment_url(self.cluster_name, report.metadata.namespace, report.metadata.name)

    async def issue(self, issue_id: str, count: RequestCount) -> IssueRef | None:
        """The issue as Linear has it now (its state included), None when it does not exist."""
        return await self.client.get_issue(issue_id, counter=count)

    async def open_issue(
        self, report: DiagnosisReport, escalation: Escalation, count: RequestCount
    ) -> IssueRef:
        """The escalation's issue: found by the id the operator chose, else created (related to
        the episode before, when there is one), with the report's attachment."""
        assert escalation.issue_id is not None
        assert report.status is not None
        issue = await self.issue(escalation.issue_id, count)
        if issue is None:
            issue = await self.client.create_issue(
                issue_id=escalation.issue_id,
                team_id=self.settings.team_id,
                title=issue_title(report, self.cluster_name),
                description=escalation.markdown or "",
                priority=PRIORITY_BY_SEVERITY[report.status.severity],
                label_ids=list(self.settings.label_ids),
                counter=count,
            )
        if escalation.previous_issue_id:
            await self.client.relate_issues(
                issue.id,
                escalation.previous_issue_id,
                relation_id=issue_id_for(f"{issue.id}/related/{escalation.previous_issue_id}"),
                counter=count,
            )
        await self.sync_attachment(report, issue.id, count)
        return issue

    async def sync_attachment(
        self, report: DiagnosisReport, issue_id: str, count: RequestCount
    ) -> None:
        """The attachment that links the issue to the report, showing its live status."""
        status = report.status
        cause = status.root_cause if status else None
        metadata: dict[str, str | int | float | bool] = {
            "cluster": self.cluster_name,
            "namespace": report.metadata.namespace,
            "report": report.metadata.name,
            "symptom": report.spec.symptom.value,
        }
        if status is not None:
            metadata |= {
                "phase": status.phase.value,
                "severity": status.severity.value,
                "occurrences": status.occurrences,
            }
        if cause is not None:
            metadata["category"] = cause.category.value
        target = report.spec.target
        title = f"{cause.category.value if cause else report.spec.symptom.value}: "
        title += f"{target.kind}/{target.name} in {report.metadata.namespace}"
        await self.client.upsert_attachment(
            issue_id,
            self.url_of(report),
            title,
            attachment_subtitle(report, datetime.now(UTC)),
            metadata,
            counter=count,
        )

    async def comment(self, issue_id: str, key: str, body: str, count: RequestCount) -> None:
        """One comment, once per `key`: its id derives from the issue and the key."""
        await self.client.add_comment(
            issue_id, body, comment_id=issue_id_for(f"{issue_id}/{key}"), counter=count
        )

    async def reopen(self, issue: IssueRef, count: RequestCount) -> IssueRef:
        """Move a completed issue back to its team's first `unstarted` state."""
        states = await self.client.workflow_states(
            issue.team_id or self.settings.team_id, counter=count
        )
        target = first_state(states, "unstarted") or first_state(states, "backlog")
        if target is None:
            return issue
        return await self.client.move_issue(issue.id, target.id, counter=count)

    async def move_resolved(self, issue: IssueRef, count: RequestCount) -> IssueRef | None:
        """Move the issue to the configured resolved state; None when none is configured or
        the team has no such state."""
        wanted = self.settings.resolved_state
        if not wanted:
            return None
        states = await self.client.workflow_states(
            issue.team_id or self.settings.team_id, counter=count
        )
        target = find_state(states, wanted)
        if target is None or target.id == issue.state_id:
            return None
        return await self.client.move_issue(issue.id, target.id, counter=count)
