"""The report is the outbox (DESIGN.md section 6): what each report owes Linear lives in its
`status.escalation`, and a kopf handler on DiagnosisReports delivers it, step by step.

Planning happens where the report is written (after a diagnosis, a resolution): the escalation
becomes Pending with the issue id to use, or gains an owed comment, or a new attachment digest.
Delivery (`Outbox.deliver`) then makes one step's requests at a time: open the issue (found
again by the id the operator chose, never duplicated), send the owed comments in order (the
issue's state is read first: a completed issue is reopened on a relapse within the window, or a
new issue related to it is opened after; a canceled one is never touched again: `Declined`),
then bring the attachment's live status up to date. After each step the result is merged into
the report's latest escalation and written, with the step's own request count.

A step Linear did not complete raises `DeliveryDeferred` with the delay Linear asked for
(`retry-after`) or the next back-off step; the kopf handler turns it into
`kopf.TemporaryError(delay=...)`, so delivery survives restarts, leader changes and outages of
any length and never gives up. A refused key or an unknown team is `Failed`: a person must fix
the setting; it is tried again after a restart with other settings, and every hour.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from kubetriage.escalation.escalator import (
    REFUSED_KEY,
    UNKNOWN_TEAM,
    Escalator,
    attachment_digest,
    issue_id_of,
    planned_escalation,
)
from kubetriage.escalation.linear import (
    IssueRef,
    LinearAuthError,
    LinearError,
    LinearRateLimited,
    LinearRequestError,
    RequestCount,
)
from kubetriage.k8s.access import as_dict, clip
from kubetriage.models import (
    Category,
    CommentKind,
    CommentState,
    DiagnosisReport,
    Escalation,
    EscalationState,
    OwedComment,
    Symptom,
    max_length,
)
from kubetriage.policy import Classification
from kubetriage.reports.build import ReportChange
from kubetriage.reports.render.issue import (
    linked_markdown,
    relapse_markdown,
    resolution_markdown,
)
from kubetriage.runtime import metrics

log = structlog.get_logger("kubetriage.outbox")
Report = dict[str, Any]
EscalationChange = Callable[[Escalation], Escalation]
# A rollout stuck on its own pods' failure is the pods' incident: it shares their issue.
_SAME_INCIDENT = frozenset({Category.ROLLOUT_BAD_REVISION})
_MAX_COMMENTS = max_length(Escalation, "comments")


class DeliveryDeferred(Exception):
    """Linear did not complete a step: try again in `delay` seconds."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait before the next try: exponential with full jitter from `base` to
    `max`, never sooner than Linear's `retry-after`; a `Failed` escalation every `failed`."""

    base: float = 5.0
    max: float = 300.0
    failed: float = 3600.0
    jitter: Callable[[], float] = random.random

    def delay(self, retry: int, error: LinearError | None = None) -> float:
        """The wait before try number `retry + 1`."""
        backoff = min(self.max, self.base * 2.0**retry)
        wait = backoff / 2 + backoff / 2 * self.jitter()
        if isinstance(error, LinearRateLimited) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait


class ReportAccess(Protocol):
    """How the outbox reads and writes reports: the controller's cache and its store, under
    the report's lock, so that a diagnosis and a delivery never overwrite each other."""

    def current(self, namespace: str, name: str) -> Report | None:
        """The report as this process last read or wrote it."""
        ...

    async def fetch(self, namespace: str, name: str) -> Report | None:
        """The report from the cache, else from the API."""
        ...

    async def update_escalation(
        self, namespace: str, name: str, change: EscalationChange
    ) -> Report | None:
        """Apply `change` to the report's latest escalation and write the status."""
        ...


def read_report(stored: Mapping[str, Any] | None) -> DiagnosisReport | None:
    """A report read leniently; None (and a warning naming it) when it cannot be read."""
    if not stored:
        return None
    try:
        return DiagnosisReport.read(dict(stored))
    except ValidationError as error:
        metadata = as_dict(stored.get("metadata"))
        log.warning(
            "report unreadable; its escalation waits",
            report=f"{metadata.get('namespace')}/{metadata.get('name')}",
            error=str(error)[:1000],
        )
        return None


def owes(escalation: Escalation | None) -> bool:
    """Whether an escalation owes Linear anything: an issue, a comment, or its status."""
    if escalation is None:
        return False
    if escalation.state in {EscalationState.PENDING, EscalationState.FAILED}:
        return escalation.issue_id is not None
    if escalation.state is not EscalationState.OPENED:
        return False
    return any(c.state is CommentState.PENDING for c in escalation.comments) or (
        escalation.attachment_wanted is not None
        and escalation.attachment_wanted != escalation.attachment_synced
    )


def settings_fingerprint(api_key: str, team_id: str, url: str) -> str:
    """A digest of the Linear settings a `Failed` escalation was refused with: another
    fingerprint at start-up means a person changed them, and it is tried again at once."""
    return hashlib.sha256(f"{url}\0{team_id}\0{api_key}".encode()).hexdigest()[:12]


def with_comment(escalation: Escalation, comment: OwedComment) -> Escalation:
    """The escalation owing one more comment (once per key; the oldest sent ones make room)."""
    if any(c.key == comment.key for c in escalation.comments):
        return escalation
    comments = [*escalation.comments, comment]
    while len(comments) > _MAX_COMMENTS:
        sent = next((c for c in comments if c.state is CommentState.SENT), comments[0])
        comments.remove(sent)
    return escalation.model_copy(update={"comments": comments})


class Outbox:
    """Plans what each report owes Linear, and delivers it one step at a time."""

    def __init__(
        self,
        escalator: Escalator | None,
        reports: ReportAccess,
        *,
        cluster_name: str,
        retry: RetryPolicy | None = None,
        fingerprint: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.escalator = escalator
        self.reports = reports
        self.cluster_name = cluster_name
        self.retry = retry or RetryPolicy()
        self.fingerprint = fingerprint
        self.clock = clock

    # -- planning (called where the report is written) ----------------------------------------

    def after_diagnosis(
        self,
        report: DiagnosisReport,
        classification: Classification | None,
        *,
        uid: str | None,
        production: bool,
        change: ReportChange,
        siblings: list[DiagnosisReport],
    ) -> Escalation:
        """The escalation a freshly diagnosed report records: planned, linked to the issue of
        the same incident, or its issue owed a relapse comment; with the attachment's digest."""
        assert report.status is not None
        prior = report.status.escalation
        planned = planned_escalation(
            report,
            classification,
            uid=uid,
            cluster_name=self.cluster_name,
            production=production,
            linear_configured=self.escalator is not None,
            prior=prior,
        )
        if prior is None and planned.state is EscalationState.PENDING:
            linked = self._same_incident(report, siblings)
            if linked is not None:
                planned = planned.model_copy(update={"linked_report": linked.metadata.name})
        if change is ReportChange.REOPENED and planned.state is EscalationState.OPENED:
            occurrence = report.status.occurrences
            planned = with_comment(
                planned,
                OwedComment(
                    key=f"relapse-{occurrence}",
                    kind=CommentKind.RELAPSE,
                    body=clip(relapse_markdown(report, self.clock()), 16384),
                ),
            )
        if planned.state in {EscalationState.PENDING, EscalationState.OPENED}:
            planned = planned.model_copy(update={"attachment_wanted": attachment_digest(report)})
        if planned != prior:
            metrics.ESCALATIONS.labels(planned.state.value).inc()
        return planned

    def after_resolution(self, report: DiagnosisReport) -> Escalation | None:
        """The escalation of a report that has just resolved: its issue owed the close-out
        comment; None when it has no issue to tell."""
        status = report.status
        escalation = status.escalation if status else None
        if status is None or escalation is None or escalation.issue_id is None:
            return None
        if escalation.state in {EscalationState.NOT_REQUIRED, EscalationState.DECLINED}:
            return None
        if escalation.linked_report:
            return escalation.model_copy(update={"attachment_wanted": attachment_digest(report)})
        comment = OwedComment(
            key=f"resolved-{status.occurrences}",
            kind=CommentKind.RESOLUTION,
            body=clip(resolution_markdown(report), 16384),
        )
        return with_comment(escalation, comment).model_copy(
            update={"attachment_wanted": attachment_digest(report)}
        )

    def after_settings_change(self, escalation: Escalation) -> Escalation | None:
        """A `Failed` escalation that Linear refused with other settings than this process
        has, or one kept `NotSent` before Linear was configured: Pending again, to be tried at
        once; None when nothing changed."""
        if self.escalator is None:
            return None
        if escalation.state is EscalationState.NOT_SENT:
            return escalation.model_copy(
                update={"state": EscalationState.PENDING, "reason": "Linear is configured now"}
            )
        if escalation.state is not EscalationState.FAILED:
            return None
        if escalation.failed_with == self.fingerprint:
            return None
        return escalation.model_copy(
            update={
                "state": EscalationState.PENDING,
                "reason": "retrying: the Linear settings changed since Linear refused them",
                "failed_with": None,
                "next_attempt": None,
            }
        )

    @staticmethod
    def _same_incident(
        report: DiagnosisReport, siblings: list[DiagnosisReport]
    ) -> DiagnosisReport | None:
        """For a rollout stuck on its own pods' failure, the pods' report of the same workload
        whose issue it should share (a stuck rollout with its own cause keeps its own)."""
        status = report.status
        cause = status.root_cause if status else None
        if report.spec.symptom is not Symptom.ROLLOUT_STUCK or cause is None:
            return None
        if cause.category not in _SAME_INCIDENT:
            return None
        for sibling in siblings:
            escalation = sibling.status.escalation if sibling.status else None
            if (
                sibling.spec.target.kind == report.spec.target.kind
                and sibling.spec.target.name == report.spec.target.name
                and sibling.spec.symptom is not Symptom.ROLLOUT_STUCK
                and escalation is not None
                and escalation.state in {EscalationState.PENDING, EscalationState.OPENED}
            ):
                return sibling
        return None

    # -- delivery (driven by the kopf handler) ------------------------------------------------

    def due(self, stored: Mapping[str, Any] | None) -> bool:
        """Whether the report owes Linear something this process can send now."""
        if self.escalator is None or not stored:
            return False
        spec, status = as_dict(stored.get("spec")), as_dict(stored.get("status"))
        if spec.get("acknowledged") or not isinstance(status.get("escalation"), dict):
            return False
        try:
            escalation = Escalation.model_validate(status["escalation"], extra="ignore")
        except ValidationError:
            return False
        return owes(escalation)

    async def deliver(self, namespace: str, name: str, *, retry: int = 0) -> None:
        """Make the report's owed steps, in order, until nothing is owed; raise
        DeliveryDeferred when Linear did not complete one."""
        for _ in range(2 + _MAX_COMMENTS):
            report = read_report(await self.reports.fetch(namespace, name))
            escalation = report.status.escalation if report and report.status else None
            if report is None or escalation is None or report.spec.acknowledged:
                return
            if not owes(escalation) or self.escalator is None:
                return
            count = RequestCount()
            step = self._next_step(report, escalation)
            try:
                change = await step(report, escalation, count)
            except LinearError as error:
                await self._deferred(namespace, name, escalation, error, count=count, retry=retry)
            await self._apply(namespace, name, change, count)

    def _next_step(
        self, report: DiagnosisReport, escalation: Escalation
    ) -> Callable[[DiagnosisReport, Escalation, RequestCount], Awaitable[EscalationChange]]:
        if escalation.state in {EscalationState.PENDING, EscalationState.FAILED}:
            return self._open
        if any(c.state is CommentState.PENDING for c in escalation.comments):
            return self._comment
        return self._sync_attachment

    async def _open(
        self, report: DiagnosisReport, escalation: Escalation, count: RequestCount
    ) -> EscalationChange:
        assert self.escalator is not None
        if escalation.linked_report:
            shared = await self._linked_issue(report, escalation, count)
            if shared is not None:
                return shared
        issue = await self.escalator.open_issue(report, escalation, count)
        wanted = escalation.attachment_wanted
        log.info("escalated", report=report.metadata.name, issue=issue.identifier)
        metrics.ESCALATIONS.labels(EscalationState.OPENED.value).inc()

        def opened(current: Escalation) -> Escalation:
            return current.model_copy(
                update={
                    "state": EscalationState.OPENED,
                    "issue_id": issue.id,
                    "identifier": issue.identifier,
                    "url": issue.url,
                    "reason": current.reason
                    if current.state is EscalationState.PENDING
                    else "opened after Linear accepted the settings",
                    "last_error": None,
                    "next_attempt": None,
                    "attachment_synced": wanted,
                }
            )

        return opened

    async def _linked_issue(
        self, report: DiagnosisReport, escalation: Escalation, count: RequestCount
    ) -> EscalationChange | None:
        """Share the issue of the same incident's report (a comment there says so); None when
        that report has no issue to share after all, and this one opens its own."""
        assert self.escalator is not None
        assert escalation.linked_report
        namespace = report.metadata.namespace
        other = read_report(await self.reports.fetch(namespace, escalation.linked_report))
        theirs = other.status.escalation if other and other.status else None
        if theirs is None or theirs.state not in {
            EscalationState.PENDING,
            EscalationState.OPENED,
        }:
            return None  # nothing to share after all: this report opens its own issue
        if theirs.state is EscalationState.PENDING or theirs.issue_id is None:
            raise _Waiting(f"waiting for the issue of {escalation.linked_report}")
        body = linked_markdown(report, escalation.linked_report)
        await self.escalator.comment(theirs.issue_id, f"linked-{report.metadata.name}", body, count)

        def shared(current: Escalation) -> Escalation:
            return current.model_copy(
                update={
                    "state": EscalationState.OPENED,
                    "issue_id": theirs.issue_id,
                    "identifier": theirs.identifier,
                    "url": theirs.url,
                    "reason": f"the same incident as {escalation.linked_report}: its issue",
                    "last_error": None,
                    "next_attempt": None,
                    "attachment_synced": current.attachment_wanted,
                }
            )

        return shared

    async def _comment(
        self, report: DiagnosisReport, escalation: Escalation, count: RequestCount
    ) -> EscalationChange:
        assert self.escalator is not None
        assert escalation.issue_id is not None
        owed = next(c for c in escalation.comments if c.state is CommentState.PENDING)
        issue = await self.escalator.issue(escalation.issue_id, count)
        if issue is None or issue.state_type == "canceled":
            return self._declined(escalation, issue)
        if owed.kind is CommentKind.RELAPSE and issue.state_type == "completed":
            if self._within_reopen_window(issue):
                issue = await self.escalator.reopen(issue, count)
            else:
                return self._next_episode(report, escalation, owed)
        await self.escalator.comment(issue.id, owed.key, owed.body or "", count)
        if owed.kind is CommentKind.RESOLUTION:
            await self.escalator.move_resolved(issue, count)
        sent_at = self.clock()

        def sent(current: Escalation) -> Escalation:
            comments = [
                c.model_copy(update={"state": CommentState.SENT, "sent_at": sent_at, "body": None})
                if c.key == owed.key
                else c
                for c in current.comments
            ]
            return current.model_copy(
                update={"comments": comments, "last_error": None, "next_attempt": None}
            )

        return sent

    async def _sync_attachment(
        self, report: DiagnosisReport, escalation: Escalation, count: RequestCount
    ) -> EscalationChange:
        assert self.escalator is not None
        assert escalation.issue_id is not None
        wanted = escalation.attachment_wanted
        if escalation.linked_report is None:
            await self.escalator.sync_attachment(report, escalation.issue_id, count)

        def synced(current: Escalation) -> Escalation:
            return current.model_copy(update={"attachment_synced": wanted, "last_error": None})

        return synced

    def _within_reopen_window(self, issue: IssueRef) -> bool:
        assert self.escalator is not None
        done = issue.completed_at
        return done is None or self.clock() - done <= self.escalator.settings.reopen_within

    def _declined(self, escalation: Escalation, issue: IssueRef | None) -> EscalationChange:
        """A person canceled (or deleted) the issue: record it and never write to it again."""
        what = (
            f"{issue.identifier} was canceled in Linear"
            if issue is not None
            else f"the issue {escalation.identifier or escalation.issue_id} no longer exists"
        )
        log.info("escalation declined", issue=escalation.identifier, why=what)
        metrics.ESCALATIONS.labels(EscalationState.DECLINED.value).inc()

        def declined(current: Escalation) -> Escalation:
            return current.model_copy(
                update={
                    "state": EscalationState.DECLINED,
                    "reason": f"{what}: kubetriage will not reopen or comment on it again",
                    "comments": [],
                    "attachment_wanted": current.attachment_synced,
                    "last_error": None,
                    "next_attempt": None,
                }
            )

        return declined

    def _next_episode(
        self, report: DiagnosisReport, escalation: Escalation, owed: OwedComment
    ) -> EscalationChange:
        """A relapse long after a person completed the issue: a new issue, related to it."""
        episode = escalation.episode + 1
        new_id = issue_id_of(report.metadata.uid or report.metadata.name, episode)
        markdown = escalation.markdown

        def reopened(current: Escalation) -> Escalation:
            return current.model_copy(
                update={
                    "state": EscalationState.PENDING,
                    "episode": episode,
                    "issue_id": new_id,
                    "previous_issue_id": current.issue_id,
                    "identifier": None,
                    "url": None,
                    "markdown": markdown,
                    "reason": f"relapse after {escalation.identifier} was completed outside "
                    "the reopen window: a new issue, related to it",
                    "comments": [c for c in current.comments if c.key != owed.key],
                }
            )

        return reopened

    async def _deferred(
        self,
        namespace: str,
        name: str,
        escalation: Escalation,
        error: LinearError,
        *,
        count: RequestCount,
        retry: int,
    ) -> None:
        """Record what failed, and raise DeliveryDeferred with when to try again."""
        # The error names the request that failed ("issueCreate: ...").
        said = clip(str(error), max_length(Escalation, "last_error"))
        refused = isinstance(error, LinearAuthError) or (
            isinstance(error, LinearRequestError) and "team" in str(error).lower()
        )
        if isinstance(error, _Waiting):
            delay = min(self.retry.max, self.retry.base * (retry + 1))
        elif refused:
            delay = self.retry.failed
        else:
            delay = self.retry.delay(retry, error)
        next_attempt = self.clock() + timedelta(seconds=delay)
        opening = escalation.state in {EscalationState.PENDING, EscalationState.FAILED}
        if refused:
            fix = REFUSED_KEY if isinstance(error, LinearAuthError) else UNKNOWN_TEAM
            log.warning("escalation failed: a person must fix the Linear settings",
                        report=f"{namespace}/{name}", fix=fix, error=said)  # fmt: skip
        elif not isinstance(error, _Waiting):
            log.warning("escalation deferred", report=f"{namespace}/{name}", error=said,
                        retry_in=round(delay, 1))  # fmt: skip

        def failed(current: Escalation) -> Escalation:
            update: dict[str, Any] = {"last_error": said, "next_attempt": next_attempt}
            if refused and opening:
                fix = REFUSED_KEY if isinstance(error, LinearAuthError) else UNKNOWN_TEAM
                update["state"] = EscalationState.FAILED
                update["reason"] = fix
                update["failed_with"] = self.fingerprint
            return current.model_copy(update=update)

        await self._apply(namespace, name, failed, count)
        if refused and opening:
            metrics.ESCALATIONS.labels(EscalationState.FAILED.value).inc()
        raise DeliveryDeferred(said, delay)

    async def _apply(
        self, namespace: str, name: str, change: EscalationChange, count: RequestCount
    ) -> None:
        def counted(current: Escalation) -> Escalation:
            changed = change(current)
            return changed.model_copy(
                update={"attempts": current.attempts + count.requests, "last_attempt": self.clock()}
            )

        await self.reports.update_escalation(namespace, name, counted)


class _Waiting(LinearError):
    """Not Linear's refusal: the step waits for something else (the issue of the report it
    shares one with)."""

    retryable = True
