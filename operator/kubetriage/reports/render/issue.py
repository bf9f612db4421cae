"""The Markdown of a report's Linear issue (DESIGN.md section 6): what on-call reads at 3 a.m.

Pure: a DiagnosisReport in, Markdown out. Everything in it already passed through redaction when
the report was built; it is redacted once more here because an issue leaves the cluster.
"""

from __future__ import annotations

from datetime import datetime

from kubetriage.k8s.time import format_time
from kubetriage.models import DiagnosisReport, Recommendation, Severity
from kubetriage.playbooks.prevention import prevention_for
from kubetriage.redact import redact

MAX_BODY = 60_000
PRIORITY_BY_SEVERITY = {Severity.CRITICAL: 1, Severity.WARNING: 2, Severity.INFO: 3}
_SEVERITY_WORDS = {
    Severity.CRITICAL: "critical: no ready replica of a production workload",
    Severity.WARNING: "warning: degraded, or a non-production workload is down",
    Severity.INFO: "info",
}


def issue_title(report: DiagnosisReport, cluster_name: str) -> str:
    """`[cluster] namespace/Kind/name: Category`, short enough for a Linear list."""
    target = report.spec.target
    cause = report.status.root_cause if report.status else None
    category = cause.category.value if cause else report.spec.symptom.value
    title = f"[{cluster_name}] {report.metadata.namespace}/{target.kind}/{target.name}: {category}"
    return title[:250]


def report_link(report: DiagnosisReport) -> str:
    """The command that shows the report."""
    return f"kubectl get diag -n {report.metadata.namespace} {report.metadata.name} -o yaml"


def issue_markdown(report: DiagnosisReport, *, cluster_name: str, production: bool) -> str:
    """The issue body for a report."""
    status = report.status
    if status is None or status.root_cause is None:
        raise ValueError("a report without a root cause has nothing to escalate")
    target, cause = report.spec.target, status.root_cause
    lines = [
        "## Summary",
        "",
        f"**{cause.category.value}** on `{target.kind}/{target.name}` in namespace "
        f"`{report.metadata.namespace}` ({cluster_name}): {cause.summary}",
        "",
        "## Environment and impact",
        "",
        f"- Cluster: `{cluster_name}`; namespace `{report.metadata.namespace}`"
        + (" (production)" if production else ""),
        f"- Severity: {_SEVERITY_WORDS[status.severity]}",
        f"- Affected pods ({len(status.affected_pods)}): "
        + (", ".join(f"`{p}`" for p in status.affected_pods[:10]) or "none listed")
        + (" …" if len(status.affected_pods) > 10 else ""),
        "",
        "## Timeline",
        "",
    ]
    if status.first_seen:
        lines.append(f"- First seen: {format_time(status.first_seen)}")
    if status.last_seen:
        lines.append(f"- Last seen: {format_time(status.last_seen)}")
    lines.append(f"- Occurrences: {status.occurrences}")
    lines += [
        "",
        "## Symptoms",
        "",
        f"- `{report.spec.symptom.value}`"
        + (f" in container `{report.spec.container}`" if report.spec.container else ""),
        "",
        "## Root cause",
        "",
        f"**{cause.category.value}** (confidence {cause.confidence:.0%}): {cause.summary}",
    ]
    if cause.underlying is not None:
        lines += ["", f"Underlying cause: **{cause.underlying.value}**"]
    if status.alternatives:
        lines += ["", "Other causes the evidence allows:"]
        lines += [
            f"- {a.category.value} ({a.confidence:.0%}): {a.summary}" for a in status.alternatives
        ]
    lines += ["", "## Evidence", ""]
    for item in status.evidence[:15]:
        lines.append(f"- **{item.source.value}**: {item.summary}")
        if item.detail:
            lines += [
                "",
                "  ```",
                *[f"  {line}" for line in item.detail.splitlines()[:20]],
                "  ```",
            ]
    lines += _recommendation_section(report)
    lines += [
        "",
        "## The report",
        "",
        f"`{report_link(report)}`",
        "",
        "_Opened by kubetriage. It recommends; it never applies a change to production._",
    ]
    return redact("\n".join(lines))[:MAX_BODY]


def relapse_markdown(report: DiagnosisReport, now: datetime) -> str:
    """The comment a relapse adds to the report's issue."""
    status = report.status
    assert status is not None
    cause = status.root_cause
    said = f"**{cause.category.value}**: {cause.summary}" if cause else report.spec.symptom.value
    lines = [
        f"Relapsed at {format_time(now)} (occurrence {status.occurrences}): {said}",
        "",
        f"`{report_link(report)}`",
    ]
    return redact("\n".join(lines))[:MAX_BODY]


def linked_markdown(report: DiagnosisReport, linked_report: str) -> str:
    """The comment that joins a stuck rollout to the issue of its pods' failure: one incident,
    one issue."""
    status = report.status
    cause = status.root_cause if status else None
    target = report.spec.target
    lines = [
        f"The rollout of `{target.kind}/{target.name}` is stuck too "
        f"(`{report.spec.symptom.value}`"
        + (f", **{cause.category.value}**: {cause.summary}" if cause else "")
        + f"). It is the same incident as `{linked_report}`: this issue covers both.",
        "",
        f"`{report_link(report)}`",
    ]
    return redact("\n".join(lines))[:MAX_BODY]


def resolution_markdown(report: DiagnosisReport) -> str:
    """The incident's close-out, as on-call writes it (DESIGN.md section 5): the timeline, the
    root cause, what fixed it (the pod-template change, its revision and who made it, or that
    nothing in the workload changed), and the prevention measures the playbook knows for the
    category, offered, never presented as applied. Redacted once more: it leaves the cluster."""
    status = report.status
    assert status is not None
    resolution = status.resolution
    lines = [
        "## Resolved",
        "",
        resolution.summary if resolution else "The workload is healthy again.",
    ]
    lines += ["", "### Timeline", ""]
    if status.first_seen:
        lines.append(f"- First seen: {format_time(status.first_seen)}")
    if status.last_seen:
        lines.append(f"- Last seen: {format_time(status.last_seen)}")
    if status.resolved_at:
        lines.append(f"- Resolved: {format_time(status.resolved_at)}")
    lines.append(f"- Occurrences: {status.occurrences}")
    cause = status.root_cause
    if cause is not None:
        lines += ["", "### Root cause", "", f"**{cause.category.value}**: {cause.summary}"]
    lines += ["", "### What fixed it", ""]
    if resolution is not None and resolution.changes:
        lines += [
            f"- `{c.field}`: `{c.before or '(none)'}` → `{c.after or '(none)'}`"
            for c in resolution.changes[:20]
        ]
        facts = [
            f"revision {resolution.revision}" if resolution.revision else "",
            f"changed by `{resolution.changed_by}`" if resolution.changed_by else "",
        ]
        if any(facts):
            lines += ["", "; ".join(f for f in facts if f).capitalize() + "."]
    else:
        lines.append(
            "Nothing in the workload's pod template changed: the cause was outside it."
            if resolution is not None and resolution.revision
            else "See the summary above."
        )
    measures = prevention_for(cause.category) if cause is not None else ()
    if measures:
        lines += ["", "### Prevention (suggested, not applied)", ""]
        lines += [f"- {measure}" for measure in measures]
    lines += ["", f"`{report_link(report)}`"]
    return redact("\n".join(lines))[:MAX_BODY]


def change_blocks(report: DiagnosisReport, recommendation: Recommendation) -> list[str]:
    """The recommended change as the shell a person would run: the `kubectl patch` of its patch
    and its command, each in a fenced block (Markdown lines, each block preceded by a blank)."""
    lines: list[str] = []
    if recommendation.patch is not None:
        patch = recommendation.patch
        namespace = patch.target.namespace or report.metadata.namespace
        lines += [
            "",
            "```sh",
            f"kubectl patch {patch.target.kind.lower()} {patch.target.name} -n {namespace} "
            f"--type {patch.type.value} -p '{patch.content}'",
            "```",
        ]
    if recommendation.command:
        lines += ["", "```sh", recommendation.command, "```"]
    return lines


def _recommendation_section(report: DiagnosisReport) -> list[str]:
    assert report.status is not None
    recommendation = report.status.recommendation
    if recommendation is None:
        return ["", "## Recommended change", "", "None: the playbook found nothing to change."]
    lines = ["", "## Recommended change", "", recommendation.summary]
    lines += change_blocks(report, recommendation)
    dry_run = recommendation.dry_run
    lines.append("")
    lines.append(
        f"- Server-side dry run: {dry_run.result.value}"
        + (f" ({dry_run.message})" if dry_run and dry_run.message else "")
        if dry_run
        else "- Server-side dry run: not run"
    )
    if recommendation.cost_impact is not None:
        lines.append(f"- Cost impact: {recommendation.cost_impact.summary}")
    if recommendation.classes:
        classes = ", ".join(c.value for c in recommendation.classes)
        lines.append(f"- Why a human decides: {classes} — {recommendation.escalation_reason or ''}")
    if recommendation.rollback:
        lines += ["", "### Rollback", "", recommendation.rollback]
    if recommendation.validation:
        lines += ["", "### Validation", "", recommendation.validation]
    return lines
