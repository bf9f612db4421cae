"""From a Finding to the DiagnosisReport object the cluster stores (DESIGN.md section 5).

`build_report` is pure: the operator upserts its result with server-side apply, and
`kubetriage diagnose -o json` prints it, so both show exactly the same object.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError

from kubetriage.diagnosis import Finding
from kubetriage.k8s.time import parse_time
from kubetriage.models import (
    Condition,
    DiagnosisReport,
    DryRun,
    DryRunResult,
    Escalation,
    ObjectMeta,
    Phase,
    Resolution,
    Severity,
    Spec,
    Status,
    Target,
)

MAX_NAME_LENGTH = 63
LABEL_SYMPTOM = "kubetriage.io/symptom"
LABEL_CATEGORY = "kubetriage.io/category"
LABEL_TARGET_KIND = "kubetriage.io/target-kind"
LABEL_TARGET_NAME = "kubetriage.io/target-name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
_INVALID_NAME_CHARS = re.compile(r"[^a-z0-9-]+")
_LABEL_VALUE_LIMIT = 63


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


def build_report(finding: Finding) -> DiagnosisReport:
    """The DiagnosisReport for a finding, as it is written to the cluster."""
    target = finding.target
    conclusion = finding.conclusion
    recommendation = conclusion.recommendation
    if recommendation is not None and finding.classification is not None:
        recommendation = recommendation.model_copy(
            update={
                "classes": list(finding.classification.classes),
                "escalation_reason": finding.classification.reason,
                # The operator replaces this with the apiserver's answer (dryRun=All);
                # offline there is no apiserver to ask.
                "dry_run": recommendation.dry_run
                or DryRun(
                    result=DryRunResult.SKIPPED,
                    message="not dry-run: offline diagnosis"
                    if recommendation.patch
                    else "nothing to dry-run: the recommendation is a command",
                ),
            }
        )
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
    return DiagnosisReport(
        metadata=ObjectMeta(
            name=report_name(target.kind, target.name, finding.symptom.value),
            namespace=target.namespace,
            labels={
                LABEL_SYMPTOM: finding.symptom.value,
                LABEL_CATEGORY: conclusion.root_cause.category.value,
                LABEL_TARGET_KIND: _label_value(target.kind),
                LABEL_TARGET_NAME: _label_value(target.name),
                LABEL_MANAGED_BY: "kubetriage",
            },
            owner_references=owner_references,
        ),
        spec=Spec(
            target=Target(
                api_version=target.api_version, kind=target.kind, name=target.name, uid=target.uid
            ),
            symptom=finding.symptom,
            container=finding.container,
        ),
        status=Status(
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
            conditions=[
                Condition(
                    type="Diagnosed",
                    status="True",
                    reason="RootCauseFound",
                    message=conclusion.root_cause.summary,
                    last_transition_time=finding.observed_at,
                )
            ],
        ),
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
            escalation = Escalation.model_validate(prior["escalation"])
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
        category = (prior.get("rootCause") or {}).get("category")
        change = (
            ReportChange.UPDATED
            if category == status.root_cause.category.value
            else ReportChange.RECATEGORIZED
        )
        occurrences = prior_occurrences
        first_seen = prior_first_seen or status.first_seen
        reason, message = "RootCauseFound", status.root_cause.summary
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
                    message=message[:1024],
                    last_transition_time=now,
                ),
            ],
        }
    )
    return fresh.model_copy(update={"status": merged_status}), change


def resolved_status(existing: dict[str, Any], now: datetime, summary: str) -> dict[str, Any] | None:
    """The status of a report whose workload has been healthy long enough; None if it is
    already resolved or unreadable."""
    prior = existing.get("status") or {}
    if prior.get("phase") != Phase.OPEN.value:
        return None
    try:
        status = Status.model_validate(prior)
    except ValidationError:
        return None
    resolved = status.model_copy(
        update={
            "phase": Phase.RESOLVED,
            "resolved_at": now,
            "resolution": Resolution(summary=summary[:1024]),
            "conditions": [
                Condition(
                    type="Diagnosed",
                    status="False",
                    reason="Resolved",
                    message=summary[:1024],
                    last_transition_time=now,
                ),
            ],
        }
    )
    return resolved.to_api()
