"""From a Finding to the DiagnosisReport object the cluster stores (DESIGN.md section 5).

`build_report` is pure: the operator upserts its result with server-side apply, and
`kubetriage diagnose -o json` prints it, so both show exactly the same object.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any

from pydantic import ValidationError

from kubetriage.diagnosis import Finding, PlaybookError, Subject
from kubetriage.k8s.access import KubeObject, clip, meta, name_of, pod_template
from kubetriage.k8s.history import describe, revision_of, template_changes, template_manager
from kubetriage.k8s.time import parse_time
from kubetriage.models import (
    Condition,
    DiagnosisReport,
    DryRun,
    DryRunResult,
    Escalation,
    FailingRevision,
    ObjectMeta,
    Phase,
    Resolution,
    Severity,
    Spec,
    Status,
    Target,
    max_length,
)

MAX_NAME_LENGTH = 63
LABEL_SYMPTOM = "kubetriage.io/symptom"
LABEL_CATEGORY = "kubetriage.io/category"
LABEL_TARGET_KIND = "kubetriage.io/target-kind"
LABEL_TARGET_NAME = "kubetriage.io/target-name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_LIMIT = 63


class NotDryRun(StrEnum):
    """Why a recommended patch was not checked by the apiserver, as the report says it."""

    OFFLINE = "not dry-run: offline diagnosis"
    TURNED_OFF = (
        "not dry-run: dry runs are turned off (KUBETRIAGE_DRY_RUN=false, "
        "chart value dryRun.enabled=false)"
    )
    SCAN = "not dry-run: kubetriage scan only reads"


class ReportChange(Enum):
    """What writing a report did to what the cluster held."""

    CREATED = "created"
    UPDATED = "updated"
    RECATEGORIZED = "recategorized"
    REOPENED = "reopened"


def report_name(kind: str, name: str, symptom: str) -> str:
    """`<kind>-<name>-<symptom>` in lower case; shortened with a hash suffix when it would
    exceed 63 characters, so it stays usable as a label value and in `kubectl get` columns."""
    full = _INVALID_NAME_CHARS.sub("-", f"{kind}-{name}-{symptom}".lower()).strip("-")
    if len(full) <= MAX_NAME_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:10]
    return f"{full[: MAX_NAME_LENGTH - len(digest) - 1].rstrip('-')}-{digest}"


def _label_value(value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:_LABEL_VALUE_LIMIT]
    return cleaned.strip("-._")


def build_report(
    finding: Finding, *, not_dry_run: NotDryRun = NotDryRun.OFFLINE
) -> DiagnosisReport:
    """The DiagnosisReport for a finding, as it is written to the cluster. A patch is recorded
    as not dry-run for the reason `not_dry_run` gives; the operator replaces that with the
    apiserver's answer when it runs the dry run."""
    conclusion = finding.conclusion
    recommendation = conclusion.recommendation
    if recommendation is not None and finding.classification is not None:
        recommendation = recommendation.model_copy(
            update={
                "classes": list(finding.classification.classes),
                "escalation_reason": finding.classification.reason,
                "dry_run": recommendation.dry_run
                or DryRun(
                    result=DryRunResult.SKIPPED,
                    message=not_dry_run.value
                    if recommendation.patch
                    else "nothing to dry-run: the recommendation is a command",
                ),
            }
        )
    report = _report(finding, conclusion.root_cause.category.value)
    return report.model_copy(
        update={
            "status": Status(
                phase=Phase.OPEN,
                severity=Severity(finding.severity_level),
                root_cause=conclusion.root_cause,
                alternatives=list(conclusion.alternatives)[:10],
                evidence=finding.investigation.evidence,
                steps=finding.investigation.steps,
                recommendation=recommendation,
                affected_pods=list(finding.affected_pods),
                occurrences=1,
                first_seen=finding.first_seen or finding.observed_at,
                last_seen=finding.observed_at,
                failing_revision=finding.failing_revision,
                conditions=[
                    Condition(
                        type="Diagnosed",
                        status="True",
                        reason="RootCauseFound",
                        message=conclusion.root_cause.summary,
                        last_transition_time=finding.observed_at,
                    )
                ],
            )
        }
    )


def failed_report(failure: PlaybookError) -> DiagnosisReport:
    """The report of a diagnosis whose playbook failed: the workload and symptom it is about,
    no root cause, and a condition that says what failed."""
    subject = failure.subject
    report = _report(subject, None)
    return report.model_copy(
        update={
            "status": Status(
                phase=Phase.OPEN,
                severity=Severity(subject.severity_level),
                affected_pods=list(subject.affected_pods),
                first_seen=subject.first_seen or subject.observed_at,
                last_seen=subject.observed_at,
                conditions=[_failed_condition(failure, subject.observed_at)],
            )
        }
    )


def _report(subject: Subject, category: str | None) -> DiagnosisReport:
    """The report's metadata and spec: its name, labels and owner, and what it is about."""
    target = subject.target
    owner_references = []
    if target.uid:
        owner_references.append(
            {
                "apiVersion": target.api_version,
                "kind": target.kind,
                "name": target.name,
                "uid": target.uid,
                # false: the operator has no rights on its targets' finalizers, and a report
                # must never hold a workload's deletion back.
                "blockOwnerDeletion": False,
                "controller": False,
            }
        )
    labels = {
        LABEL_SYMPTOM: subject.symptom.value,
        **({LABEL_CATEGORY: category} if category is not None else {}),
        LABEL_TARGET_KIND: _label_value(target.kind),
        LABEL_TARGET_NAME: _label_value(target.name),
        LABEL_MANAGED_BY: "kubetriage",
    }
    return DiagnosisReport(
        metadata=ObjectMeta(
            name=report_name(target.kind, target.name, subject.symptom.value),
            namespace=target.namespace,
            labels=labels,
            owner_references=owner_references,
        ),
        spec=Spec(
            target=Target(
                api_version=target.api_version, kind=target.kind, name=target.name, uid=target.uid
            ),
            symptom=subject.symptom,
            container=subject.container,
        ),
    )


def failed_status(
    failure: PlaybookError, existing: dict[str, Any] | None, now: datetime
) -> dict[str, Any] | None:
    """The status to write over an existing report when its re-diagnosis failed: what the last
    good diagnosis found stays, the condition says the latest one failed. None when there is no
    readable report to keep (write `failed_report` then)."""
    prior = (existing or {}).get("status")
    if not isinstance(prior, dict) or not prior:
        return None
    try:
        status = Status.model_validate(prior, extra="ignore")
    except ValidationError:
        return None
    return status.model_copy(
        update={"last_seen": now, "conditions": [_failed_condition(failure, now)]}
    ).to_api()


def _failed_condition(failure: PlaybookError, now: datetime) -> Condition:
    message = (
        f"{failure}. This is a bug in kubetriage, not in the workload; the diagnosis is tried "
        "again when the workload changes."
    )
    return Condition(
        type="Diagnosed",
        status="False",
        reason="DiagnosisFailed",
        message=clip(message, max_length(Condition, "message")),
        last_transition_time=now,
    )


def merge_with_existing(
    fresh: DiagnosisReport, existing: dict[str, Any] | None, now: datetime
) -> tuple[DiagnosisReport, ReportChange]:
    """The report to write, given what the cluster already holds under the same name.

    One report per workload and symptom lives across episodes: a relapse re-opens it and counts
    one more occurrence; a new diagnosis of an open episode keeps its first-seen time, its
    occurrences and its escalation (the outbox must never be reset by a re-diagnosis).
    """
    status = fresh.status
    assert status is not None  # build_report always sets it
    prior = (existing or {}).get("status") or {}
    if not existing or not prior:
        return fresh, ReportChange.CREATED
    prior_phase = prior.get("phase")
    raw_occurrences = prior.get("occurrences")
    prior_occurrences = raw_occurrences if isinstance(raw_occurrences, int) else 1
    prior_first_seen = parse_time(prior.get("firstSeen"))
    escalation = None
    if isinstance(prior.get("escalation"), dict):
        try:
            escalation = Escalation.model_validate(prior["escalation"], extra="ignore")
        except ValidationError:
            escalation = None
    if prior_phase == Phase.RESOLVED.value:
        change = ReportChange.REOPENED
        occurrences = prior_occurrences + 1
        first_seen = status.first_seen
        reason, message = (
            "Relapsed",
            f"the problem came back after it was resolved at {prior.get('resolvedAt')}",
        )
    else:
        cause = status.root_cause
        assert cause is not None  # build_report always names one
        category = (prior.get("rootCause") or {}).get("category")
        change = (
            ReportChange.UPDATED if category == cause.category.value else ReportChange.RECATEGORIZED
        )
        occurrences = prior_occurrences
        first_seen = prior_first_seen or status.first_seen
        reason, message = "RootCauseFound", cause.summary
    merged_status = status.model_copy(
        update={
            "occurrences": max(1, occurrences),
            "first_seen": first_seen,
            "last_seen": now,
            # The same issue follows the report through relapses.
            "escalation": escalation,
            "conditions": [
                Condition(
                    type="Diagnosed",
                    status="True",
                    reason=reason,
                    message=clip(message, max_length(Condition, "message")),
                    last_transition_time=now,
                ),
            ],
        }
    )
    return fresh.model_copy(update={"status": merged_status}), change


def resolution_of(
    failing: FailingRevision | None,
    workload: KubeObject | None,
    replica_sets: list[KubeObject],
    *,
    summary: str,
) -> Resolution:
    """What fixed it (DESIGN.md section 5): the difference between the pod template the failing
    pods ran and the one running now, the revision it came with and who wrote it; or that
    nothing in the workload changed. `replica_sets` are the Deployment's (any order)."""
    if workload is None:
        return _resolution(f"The workload is gone. {summary}")
    manager = template_manager(workload)
    newest = sorted(replica_sets, key=lambda rs: revision_of(rs) or 0, reverse=True)
    before = next((rs for rs in newest if failing and name_of(rs) == failing.replica_set), None)
    if before is not None and newest:
        now, revision = newest[0], revision_of(newest[0])
        if now is before:
            return _resolution(
                f"Nothing in the workload changed (still revision {revision}): the cause was "
                f"outside it. {summary}",
                revision=str(revision),
            )
        changes = template_changes(pod_template(before), pod_template(now))
        said = "; ".join(describe(c) for c in changes[:5]) or "its pod template changed"
        by = f" ({manager})" if manager else ""
        return _resolution(
            f"Fixed by revision {revision}{by}: {said}. {summary}",
            changes=changes[: max_length(Resolution, "changes")],
            revision=str(revision),
            changed_by=manager,
        )
    generation = meta(workload).get("generation")
    was = failing.generation if failing else None
    if isinstance(generation, int) and was is not None and generation != was:
        by = f", {manager}" if manager else ""
        return _resolution(
            f"The workload's spec changed (generation {was} -> {generation}{by}). {summary}",
            changed_by=manager,
        )
    if isinstance(generation, int) and was is not None:
        return _resolution(
            f"Nothing in the workload changed (generation {generation}): the cause was "
            f"outside it. {summary}"
        )
    return _resolution(summary)


def _resolution(summary: str, **fields: Any) -> Resolution:
    return Resolution(summary=clip(summary, max_length(Resolution, "summary")), **fields)


def resolved_status(
    existing: dict[str, Any], now: datetime, resolution: Resolution
) -> dict[str, Any] | None:
    """The status of a report whose workload has been healthy long enough; None if it is
    already resolved or unreadable."""
    prior = existing.get("status") or {}
    if prior.get("phase") != Phase.OPEN.value:
        return None
    try:
        status = Status.model_validate(prior, extra="ignore")
    except ValidationError:
        return None
    resolved = status.model_copy(
        update={
            "phase": Phase.RESOLVED,
            "resolved_at": now,
            "resolution": resolution,
            "conditions": [
                Condition(
                    type="Diagnosed",
                    status="False",
                    reason="Resolved",
                    message=clip(resolution.summary, max_length(Condition, "message")),
                    last_transition_time=now,
                ),
            ],
        }
    )
    return resolved.to_api()
