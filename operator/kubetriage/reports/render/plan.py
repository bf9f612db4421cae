"""The incident plan on-call keeps without Linear (DESIGN.md section 6): one Markdown file per
report, `NOW-incident-<namespace>-<report>.md`, with an objective, the status, and an "Updates"
section that grows by one timestamped entry per change of the report.

Pure: a DiagnosisReport and the plan's current text in, the new text out. Each entry carries a
small machine-readable marker, an HTML comment with the facts it describes and their digest:

    <!-- kubetriage:entry at=2026-01-01T00:00:05Z digest=3f2a... phase=Open ... -->

A new entry is written only when the report's digest differs from the last entry's, so running
again with nothing changed writes nothing, and a report that changed gets exactly one entry. An
entry's time is the report's own time for the change (`lastSeen`, `resolvedAt`,
`escalation.lastAttempt`), never the clock, so two runs over the same report write the same file.

What a plan tracks is what on-call acts on: phase, severity, root-cause category, occurrences,
the escalation's state and issue, the recommended patch and the resolution. Texts a re-diagnosis
rewrites every time (summaries quoting a log line, pod names) are shown but not tracked, or each
re-diagnosis would add an entry. Everything copied from a report is redacted once more here,
because a plan file leaves the cluster.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote, unquote

from kubetriage.k8s.time import format_time, parse_time
from kubetriage.models import DiagnosisReport, EscalationState, Phase, Recommendation
from kubetriage.redact import redact
from kubetriage.reports.render.issue import change_blocks, report_link

__all__ = [
    "PlanConflictError",
    "PlanState",
    "PlanUpdate",
    "plan_file_name",
    "plan_path",
    "plan_update",
    "updated_plan",
]

PREFIX = "NOW-incident-"
SUFFIX = ".md"
# Most file systems allow 255 bytes in a name; keep well within it.
MAX_FILE_NAME = 200
_HASH_CHARS = 10
_MARKER_VERSION = "1"
_PLAN_MARKER = re.compile(r"<!-- kubetriage:plan ([^<>]*?) -->")
_ENTRY_MARKER = re.compile(r"<!-- kubetriage:entry ([^<>]*?) -->")
_STATUS_BLOCK = re.compile(
    r"<!-- kubetriage:status -->\r?\n.*?<!-- /kubetriage:status -->(?:\r?\n)?", flags=re.DOTALL
)
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")
_NONE = "-"
_SHOWN_PODS = 5


class PlanConflictError(ValueError):
    """The file at a report's plan path is not that report's plan (another report's, or not
    written by kubetriage): it is left alone."""


@dataclass(frozen=True, slots=True)
class PlanState:
    """The facts of a report that an entry describes, as its marker records them.

    Text that would make a marker long (the recommended patch, the resolution) is kept as a
    short hash: the marker only has to tell whether it changed.
    """

    phase: str
    severity: str
    cause: str
    occurrences: int
    escalation: str
    issue: str
    change: str
    resolution: str

    @classmethod
    def of(cls, report: DiagnosisReport) -> PlanState:
        """The tracked facts of a report, from its redacted text."""
        status = report.status
        if status is None:
            return cls(_NONE, _NONE, _NONE, 0, _NONE, _NONE, _NONE, _NONE)
        escalation = status.escalation
        issue = _NONE
        if escalation is not None:
            issue = redact(escalation.identifier or escalation.url or "") or _NONE
        return cls(
            phase=status.phase.value,
            severity=status.severity.value,
            cause=status.root_cause.category.value if status.root_cause else _NONE,
            occurrences=status.occurrences,
            escalation=escalation.state.value if escalation else _NONE,
            issue=issue,
            change=_short_hash(_patch_text(status.recommendation)),
            resolution=_short_hash(
                status.resolution.model_dump_json() if status.resolution else ""
            ),
        )

    def digest(self) -> str:
        """A digest of every tracked fact: equal digests, nothing new to write."""
        canonical = json.dumps([_MARKER_VERSION, *asdict(self).values()], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def marker(self, at: datetime | None) -> str:
        """The entry's HTML comment: its time, the digest and the facts, one line."""
        pairs = [("v", _MARKER_VERSION), ("at", format_time(at) if at else _NONE)]
        pairs += [("digest", self.digest())]
        pairs += [(name, str(value)) for name, value in asdict(self).items()]
        return "<!-- kubetriage:entry " + " ".join(f"{k}={_encode(v)}" for k, v in pairs) + " -->"

    @classmethod
    def parse(cls, marker_body: str) -> tuple[PlanState, str, datetime | None] | None:
        """The facts, digest and time an entry marker recorded; None when it cannot be read."""
        values = _marker_values(marker_body)
        try:
            state = cls(
                phase=values["phase"],
                severity=values["severity"],
                cause=values["cause"],
                occurrences=int(values["occurrences"]),
                escalation=values["escalation"],
                issue=values["issue"],
                change=values["change"],
                resolution=values["resolution"],
            )
            return state, values["digest"], parse_time(values.get("at"))
        except (KeyError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class PlanUpdate:
    """What one run changes in a plan: the new text, whether the file is new, and the entry's
    headline (`Reported`, `Resolved`, ...)."""

    text: str
    created: bool
    headline: str


def plan_file_name(namespace: str, name: str) -> str:
    """`NOW-incident-<namespace>-<report>.md`, safe as a file name on any system.

    Characters outside `[A-Za-z0-9._-]` (none in a valid Kubernetes name) become `-`; a name
    longer than `MAX_FILE_NAME` keeps a prefix and ends in a hash of the full namespace and
    name, so two long names never share a file.
    """
    stem = _UNSAFE_IN_NAME.sub("-", f"{PREFIX}{namespace}-{name}")
    if len(stem) + len(SUFFIX) > MAX_FILE_NAME:
        digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:_HASH_CHARS]
        stem = f"{stem[: MAX_FILE_NAME - len(SUFFIX) - _HASH_CHARS - 1]}-{digest}"
    return stem + SUFFIX


def plan_path(directory: Path | str, report: DiagnosisReport) -> Path:
    """Where a report's plan lives in `directory`."""
    return Path(directory) / plan_file_name(report.metadata.namespace, report.metadata.name)


def updated_plan(report: DiagnosisReport, existing: str | None) -> str | None:
    """The plan's new text, or None when the report has not changed since its last entry.

    `existing` is the file's current text (None or empty: there is no plan yet). Raises
    PlanConflictError when that text is not this report's plan.
    """
    update = plan_update(report, existing)
    return update.text if update else None


def plan_update(report: DiagnosisReport, existing: str | None) -> PlanUpdate | None:
    """As `updated_plan`, with what the update is: a new plan, or which entry was added."""
    current = PlanState.of(report)
    if not existing or not existing.strip():
        at = _entry_time(report, None, current, None)
        entry, headline = _entry(report, None, current, at)
        text = _header(report) + _status_block(report, at) + "\n## Updates\n\n" + entry
        return PlanUpdate(text=text, created=True, headline=headline)
    _check_owner(report, existing)
    previous = _last_entry(existing)
    if previous is not None and previous[1] == current.digest():
        return None
    before, _, last_at = previous if previous else (None, "", None)
    at = _entry_time(report, before, current, last_at)
    entry, headline = _entry(report, before, current, at)
    text = _STATUS_BLOCK.sub(lambda _: _status_block(report, at), existing, count=1)
    text = text.rstrip("\n") + "\n\n" + entry
    return PlanUpdate(text=text, created=False, headline=headline)


# --- the parts of a plan ---------------------------------------------------------------------


def _header(report: DiagnosisReport) -> str:
    namespace, name = report.metadata.namespace, report.metadata.name
    target, symptom = report.spec.target, report.spec.symptom.value
    container = f" (container `{report.spec.container}`)" if report.spec.container else ""
    marker = f"<!-- kubetriage:plan namespace={_encode(namespace)} report={_encode(name)} -->"
    objective = (
        f"`{target.kind}/{target.name}` in namespace `{namespace}` runs healthy again: no pod "
        f"of it in `{symptom}`{container}, and its DiagnosisReport `{name}` reads `Resolved` "
        "(kubetriage resolves it once the workload has stayed healthy for its resolve window). "
        "Every change below is a recommendation for a person to make: kubetriage never applies "
        "one to production."
    )
    text = f"# NOW: incident {namespace}/{name}\n\n{marker}\n\n## Objective\n\n{objective}\n\n"
    return redact(text)


def _status_block(report: DiagnosisReport, at: datetime | None) -> str:
    status = report.status
    lines = ["<!-- kubetriage:status -->", f"## Status (as of {_time(at)})", ""]
    if status is None:
        lines.append("- Phase: not diagnosed yet: the operator has written no status.")
    else:
        if status.phase is Phase.RESOLVED:
            lines.append(f"- Phase: **Resolved** at {_time(status.resolved_at)}")
        else:
            lines.append(f"- Phase: **Open** since {_time(status.first_seen)}")
        lines.append(f"- Severity: {status.severity.value}")
        lines.append(f"- Root cause: {_cause(report)}")
        lines.append(
            f"- Occurrences: {status.occurrences} (first seen {_time(status.first_seen)}, "
            f"last seen {_time(status.last_seen)})"
        )
        lines.append(f"- Escalation: {_escalation(report)}")
        if status.affected_pods:
            shown = ", ".join(f"`{p}`" for p in status.affected_pods[:_SHOWN_PODS])
            more = len(status.affected_pods) - _SHOWN_PODS
            lines.append(f"- Affected pods: {shown}" + (f" (+{more} more)" if more > 0 else ""))
    lines += [f"- The report: `{report_link(report)}`", "<!-- /kubetriage:status -->"]
    return redact("\n".join(lines) + "\n")


def _entry(
    report: DiagnosisReport, before: PlanState | None, after: PlanState, at: datetime | None
) -> tuple[str, str]:
    """One update: heading, marker, what changed, the escalation, the recommended change with
    its validation and rollback, and what to watch. Returns the text and its headline."""
    headline = redact(_headline(before, after))
    lines = ["", "**What changed**", ""]
    lines += _changes(report, before, after)
    lines += ["", f"**Escalation:** {_escalation(report)}"]
    lines += _recommendation(report)
    lines += ["", "**Monitor**", "", *_monitoring(report)]
    # The marker is built from redacted facts and kept out of the text's redaction, so that it
    # always reads back as it was written.
    heading = f"### {_time(at)} · {headline}\n{after.marker(at)}\n"
    return heading + redact("\n".join(lines) + "\n"), headline


def _headline(before: PlanState | None, after: PlanState) -> str:
    """The entry's title: the change on-call cares about most."""
    if before is None:
        return "Reported"
    if before.phase != after.phase:
        return "Resolved" if after.phase == Phase.RESOLVED.value else "Relapsed"
    if (before.escalation, before.issue) != (after.escalation, after.issue):
        if after.escalation == EscalationState.OPENED.value:
            return f"Escalated to Linear as {after.issue}"
        if after.escalation == EscalationState.FAILED.value:
            return "Escalation failed: not sent to Linear"
        return f"Escalation {after.escalation}"
    if before.cause != after.cause:
        return "Root cause revised"
    if before.severity != after.severity:
        return f"Severity {after.severity}"
    if before.occurrences != after.occurrences:
        return f"Occurrence {after.occurrences}"
    return "Recommended change revised" if before.change != after.change else "Updated"


def _changes(report: DiagnosisReport, before: PlanState | None, after: PlanState) -> list[str]:
    status = report.status
    if status is None:
        return ["- The report exists; the operator has not written its status yet."]
    if before is None:
        container = f" of container `{report.spec.container}`" if report.spec.container else ""
        return [
            f"- Reported: `{report.spec.symptom.value}`{container} on "
            f"`{report.spec.target.kind}/{report.spec.target.name}`, first seen "
            f"{_time(status.first_seen)}.",
            f"- Phase: {after.phase}; severity: {after.severity}; occurrences: "
            f"{after.occurrences}.",
            f"- Root cause: {_cause(report)}",
        ] + (_resolution(report, "- Resolution: ") if status.phase is Phase.RESOLVED else [])
    lines: list[str] = []
    if before.phase != after.phase:
        if status.phase is Phase.RESOLVED:
            lines += _resolution(report, f"- Phase: {before.phase} → **Resolved**: ")
        else:
            lines.append(f"- Phase: {before.phase} → **{after.phase}**: the problem came back.")
    elif before.resolution != after.resolution and status.resolution is not None:
        lines += _resolution(report, "- Resolution: ")
    if before.cause != after.cause:
        lines.append(f"- Root cause: `{before.cause}` → {_cause(report)}")
    if before.severity != after.severity:
        lines.append(f"- Severity: {before.severity} → {after.severity}")
    if before.occurrences != after.occurrences:
        lines.append(f"- Occurrences: {before.occurrences} → {after.occurrences}")
    if before.escalation != after.escalation:
        lines.append(f"- Escalation: {before.escalation} → {after.escalation}")
    elif before.issue != after.issue:
        lines.append(f"- Issue: {before.issue} → {after.issue}")
    if before.change != after.change:
        lines.append("- Recommended change: revised (below).")
    return lines or ["- Nothing on-call acts on; the report was rewritten."]


def _cause(report: DiagnosisReport) -> str:
    status = report.status
    assert status is not None
    cause = status.root_cause
    if cause is None:
        failed = next((c.message for c in status.conditions if c.reason == "DiagnosisFailed"), "")
        return f"none yet: {failed or 'no diagnosis has succeeded'}"
    return f"`{cause.category.value}` ({cause.confidence:.0%}): {cause.summary}"


def _resolution(report: DiagnosisReport, lead: str) -> list[str]:
    """What fixed it (DESIGN.md section 5): the summary, the pod-template changes, the revision
    and who made them."""
    assert report.status is not None
    resolution = report.status.resolution
    if resolution is None:
        return [f"{lead}the workload is healthy again."]
    lines = [f"{lead}{resolution.summary}"]
    lines += [
        f"  - `{c.field}`: `{c.before or '(none)'}` → `{c.after or '(none)'}`"
        for c in resolution.changes[:20]
    ]
    facts = [
        f"revision {resolution.revision}" if resolution.revision else "",
        f"changed by `{resolution.changed_by}`" if resolution.changed_by else "",
    ]
    if any(facts):
        lines.append("  - " + "; ".join(f for f in facts if f).capitalize() + ".")
    return lines


def _escalation(report: DiagnosisReport) -> str:
    """Where the escalation stands; when it was not sent, why."""
    status = report.status
    escalation = status.escalation if status else None
    if escalation is None:
        return "not decided yet (the operator has not planned an escalation)."
    state = escalation.state
    # The operator's reasons may start with what the words below already say.
    reason = (escalation.reason or "").removeprefix("not sent: ")
    reason = reason.removeprefix("kept in the report, not sent: ")
    tried = ""
    if escalation.attempts or escalation.last_attempt:
        tried = (
            f" ({escalation.attempts} request(s) to Linear, the last at "
            f"{_time(escalation.last_attempt)})"
        )
    if state is EscalationState.OPENED:
        issue = escalation.identifier or escalation.issue_id or "an issue"
        link = f"[{issue}]({escalation.url})" if escalation.url else f"`{issue}`"
        return f"opened in Linear as {link}; this plan follows the report beside it."
    if state is EscalationState.FAILED:
        why = escalation.last_error or reason or "no reason recorded"
        return (
            f"**not sent: Linear refused it (`Failed`)**{tried}: {why}. A person must fix that "
            "(the API key, the team); until then this plan is the incident's record."
        )
    if state is EscalationState.PENDING:
        why = reason or "waiting to be sent"
        error = f"; last error: {escalation.last_error}" if escalation.last_error else ""
        return (
            f"**not sent to Linear yet (`Pending`)**{tried}: {why}{error}. Until it is, this "
            "plan is the incident's record."
        )
    if state is EscalationState.NOT_SENT:
        return (
            f"**kept in the report, not sent to Linear (`NotSent`)**: {reason}. This plan is "
            "the incident's record."
        )
    if state is EscalationState.NOT_REQUIRED:
        return f"not required: {reason or 'no change needs a person'}."
    if state is EscalationState.DECLINED:  # a person canceled the issue in Linear
        issue = escalation.identifier or escalation.issue_id or "its issue"
        return (
            f"declined: a person canceled `{issue}` in Linear, and kubetriage no longer "
            f"escalates this report{': ' + reason if reason else ''}."
        )
    return f"`{state.value}`: {reason or 'no reason recorded'}."


def _patch_text(recommendation: Recommendation | None) -> str:
    if recommendation is None or recommendation.patch is None:
        return ""
    patch = recommendation.patch
    target = patch.target
    return redact(
        f"{patch.type.value} {target.kind}/{target.name} -n {target.namespace or ''} "
        f"{patch.content}"
    )


def _recommendation(report: DiagnosisReport) -> list[str]:
    status = report.status
    if status is None:
        return []
    if status.phase is Phase.RESOLVED:
        return [
            "",
            "**Recommended change:** none now: the workload is healthy again. Keep what fixed "
            "it; the entries above hold the change recommended while it was failing.",
        ]
    recommendation = status.recommendation
    if recommendation is None:
        return ["", "**Recommended change:** none: the playbook found nothing to change."]
    lines = ["", f"**Recommended change:** {recommendation.summary}"]
    lines += change_blocks(report, recommendation)
    facts = []
    if recommendation.dry_run is not None:
        message = f" ({recommendation.dry_run.message})" if recommendation.dry_run.message else ""
        facts.append(f"- Server-side dry run: {recommendation.dry_run.result.value}{message}")
    if recommendation.cost_impact is not None:
        facts.append(f"- Cost impact: {recommendation.cost_impact.summary}")
    if recommendation.classes:
        classes = ", ".join(c.value for c in recommendation.classes)
        why = f": {recommendation.escalation_reason}" if recommendation.escalation_reason else ""
        facts.append(f"- Who decides: {classes}{why}")
    facts.append(f"- Validation: {recommendation.validation or 'none given'}")
    facts.append(f"- Rollback: {recommendation.rollback or 'none given'}")
    return [*lines, "", *facts]


def _monitoring(report: DiagnosisReport) -> list[str]:
    """What to watch, and what tells that it worked (or came back)."""
    namespace, name = report.metadata.namespace, report.metadata.name
    target = report.spec.target
    status = report.status
    resolved = status is not None and status.phase is Phase.RESOLVED
    lines = [
        f"- `kubectl get diag -n {namespace} {name} -w`: "
        + (
            "a relapse re-opens this report and counts one more occurrence."
            if resolved
            else "it turns `Resolved` once the workload has stayed healthy."
        )
    ]
    if target.kind in {"Deployment", "StatefulSet", "DaemonSet"}:
        lines.append(
            f"- `kubectl rollout status {target.kind.lower()}/{target.name} -n {namespace}` "
            "completes."
        )
    pods = " ".join(status.affected_pods[:_SHOWN_PODS]) if status and not resolved else ""
    watch = {
        "CrashLoopBackOff": "restart counts stay put and every container is ready",
        "OOMKilled": "no container is OOMKilled again and restart counts stay put",
        "ImagePullBackOff": "the image is pulled and the pods start",
        "Pending": "the pods are scheduled and start",
        "RolloutStuck": "the new ReplicaSet's pods become ready",
    }.get(report.spec.symptom.value, "the pods are running and ready")
    lines.append(f"- `kubectl get pods -n {namespace}{' ' + pods if pods else ''}`: {watch}.")
    if report.spec.symptom.value == "OOMKilled" and not resolved:
        lines.append(f"- `kubectl top pod -n {namespace}`: memory stays below the new limit.")
    if report.spec.symptom.value == "Pending" and not resolved:
        lines.append(
            f"- `kubectl get events -n {namespace} --field-selector reason=FailedScheduling`: "
            "no new ones."
        )
    return lines


# --- reading an existing plan ----------------------------------------------------------------


def _check_owner(report: DiagnosisReport, existing: str) -> None:
    found = _PLAN_MARKER.search(existing)
    if found is None:
        raise PlanConflictError("the file is not a kubetriage plan (no kubetriage:plan marker)")
    values = _marker_values(found[1])
    owner = (values.get("namespace", ""), values.get("report", ""))
    if owner != (report.metadata.namespace, report.metadata.name):
        raise PlanConflictError(f"the file is the plan of report {owner[0]}/{owner[1]}")


def _last_entry(existing: str) -> tuple[PlanState, str, datetime | None] | None:
    """The facts, digest and time of the plan's last readable entry marker."""
    for found in reversed(list(_ENTRY_MARKER.finditer(existing))):
        parsed = PlanState.parse(found[1])
        if parsed is not None:
            return parsed
    return None


def _entry_time(
    report: DiagnosisReport,
    before: PlanState | None,
    after: PlanState,
    last_at: datetime | None,
) -> datetime | None:
    """The report's own time of the change an entry describes, never before the last entry.

    A resolution is dated by `resolvedAt`, an escalation change by `escalation.lastAttempt`,
    anything else by `lastSeen` (when the operator last wrote the report's diagnosis).
    """
    status = report.status
    if status is None:
        return last_at
    escalation = status.escalation
    attempt = escalation.last_attempt if escalation else None
    candidates: list[datetime | None] = []
    if before is None:
        candidates = [status.last_seen, status.resolved_at, attempt]
    else:
        if before.phase != after.phase and status.phase is Phase.RESOLVED:
            candidates.append(status.resolved_at)
        if (before.escalation, before.issue) != (after.escalation, after.issue):
            candidates.append(attempt)
        if not [c for c in candidates if c]:
            candidates.append(status.last_seen)
    known = [c for c in candidates if c] or [t for t in (status.last_seen, status.first_seen) if t]
    at = max(known) if known else None
    if at is not None and last_at is not None and at < last_at:
        return last_at
    return at or last_at


# --- small helpers ---------------------------------------------------------------------------


def _time(value: datetime | None) -> str:
    return format_time(value) if value else "(time unknown)"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8] if text else _NONE


def _marker_values(body: str) -> dict[str, str]:
    """The `key=value` pairs of a marker, decoded."""
    values: dict[str, str] = {}
    for pair in body.split():
        key, sep, value = pair.partition("=")
        if sep:
            values[key] = unquote(value)
    return values


def _encode(value: str) -> str:
    """A marker value: no spaces, `<`, `>` or `--` (which would end the HTML comment)."""
    return quote(value, safe="./:_") if value else _NONE
