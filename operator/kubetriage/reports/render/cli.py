"""Reports as people and programs read them: a `v1 List` in JSON or YAML, or a text summary."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from kubetriage.models import DiagnosisReport


def v1_list(reports: Sequence[DiagnosisReport]) -> dict[str, Any]:
    """The reports as a Kubernetes `v1 List`, exactly as they would be written to the cluster."""
    return {"apiVersion": "v1", "kind": "List", "items": [r.to_api() for r in reports]}


def to_json(reports: Sequence[DiagnosisReport]) -> str:
    """`-o json`."""
    return json.dumps(v1_list(reports), indent=2, ensure_ascii=False) + "\n"


def to_yaml(reports: Sequence[DiagnosisReport]) -> str:
    """`-o yaml`."""
    return yaml.safe_dump(v1_list(reports), sort_keys=False, allow_unicode=True, width=100)


def to_table(reports: Sequence[DiagnosisReport]) -> str:
    """`-o table`: one block per report with the root cause, evidence and recommendation."""
    if not reports:
        return "No problems found: every workload in the snapshot is healthy.\n"
    blocks = [_block(report) for report in reports]
    return "\n".join(blocks)


def _block(report: DiagnosisReport) -> str:
    spec, status = report.spec, report.status
    assert status is not None  # build_report always sets it
    cause = status.root_cause
    lines = [
        f"{report.metadata.namespace}/{report.metadata.name}",
        f"  target:      {spec.target.kind}/{spec.target.name}"
        + (f" (container {spec.container})" if spec.container else ""),
        f"  symptom:     {spec.symptom.value}   severity: {status.severity.value}",
    ]
    if cause is None:
        failed = next((c.message for c in status.conditions if c.reason == "DiagnosisFailed"), "")
        lines.append(f"  root cause:  none: {failed or 'no diagnosis has succeeded yet'}")
    else:
        lines.append(f"  root cause:  {cause.category.value} ({cause.confidence:.0%})")
        lines.append(f"               {cause.summary}")
    if status.evidence:
        lines.append("  evidence:")
        lines += [f"    - [{e.source.value}] {e.summary}" for e in status.evidence[:8]]
    if status.alternatives:
        lines.append("  alternatives:")
        lines += [
            f"    - {a.category.value} ({a.confidence:.0%}): {a.summary}"
            for a in status.alternatives
        ]
    recommendation = status.recommendation
    if recommendation is not None:
        lines.append(f"  recommendation: {recommendation.summary}")
        if recommendation.patch is not None:
            patch = recommendation.patch
            lines.append(
                f"    kubectl patch {patch.target.kind.lower()} {patch.target.name}"
                f" -n {patch.target.namespace or report.metadata.namespace}"
                f" --type {patch.type.value} -p '{patch.content}'"
            )
        if recommendation.command:
            lines.append(f"    {recommendation.command}")
        if recommendation.classes:
            classes = ", ".join(c.value for c in recommendation.classes)
            lines.append(f"    escalation: {classes} — {recommendation.escalation_reason or ''}")
    if status.affected_pods:
        shown = ", ".join(status.affected_pods[:5])
        more = len(status.affected_pods) - 5
        lines.append(f"  pods:        {shown}" + (f" (+{more} more)" if more > 0 else ""))
    if status.resolution is not None:
        resolution = status.resolution
        lines.append(f"  resolution:  {resolution.summary}")
        lines += [
            f"    - {c.field}: {c.before or '(none)'} -> {c.after or '(none)'}"
            for c in resolution.changes[:8]
        ]
    return "\n".join(lines) + "\n"
