"""The RolloutStuck runbook: can the new pods not be created, or do they fail once created?

Decision rules (DESIGN.md section 3):
- A ReplicaSet `FailedCreate` (event or `ReplicaFailure` condition) that says "exceeded quota"
  is `Rollout.QuotaExceeded`: the quota's used/hard, read from the ResourceQuota (or from the
  message when the quota cannot be read, at lower confidence), and the hard values that would
  admit the missing pods. "failed quota: ... must specify" is the same category (the fix is to
  declare resources). A LimitRange rejection has no category of its own; it is named
  QuotaExceeded at low confidence because its fix is of the same kind (change the pod's
  resources or the namespace's policy).
- Otherwise the newest revision's pods are examined: the pod-level symptom they show (the same
  detection the pod reports use), or that they never become Ready, or that admission rejects
  them. With the previous revision healthy (ready replicas) that is `Rollout.BadRevision`, and
  the template diff between the two is the evidence. When the previous revision's health is not
  on record it is still BadRevision at lower confidence (a rollback is the safe move either way);
  when it was itself failing, or there is no previous revision, lower still, and the
  recommendation says rolling back may not help or is impossible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from kubetriage.detect import detect_pod
from kubetriage.k8s.access import KubeObject, name_of, pod_template
from kubetriage.k8s.events import event_count
from kubetriage.models import Category, EvidenceSource, RootCause, Symptom, TemplateChange
from kubetriage.playbooks import _rollout_fix as fix
from kubetriage.playbooks._rollout_diff import describe, template_changes
from kubetriage.playbooks._rollout_quota import (
    QuotaFailure,
    QuotaNeed,
    needs,
    parse_failure,
    per_pod,
    quantity,
    quota_numbers,
)
from kubetriage.playbooks._rollout_revisions import (
    Revision,
    events_about,
    history,
    lower_instead,
    missing_pods,
    owner_of,
    pod_ready,
    probe_failure,
    ready_text,
    revision,
    selector,
    symptom_detail,
    well_formed,
)
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc, cause

S_CONDITIONS = "Read the rollout conditions"
S_REVISIONS = "List the ReplicaSets by revision"
S_CREATE = "Look for pod-creation failures"
S_QUOTA = "Read the ResourceQuota"
S_NEW_PODS = "Inspect the new revision's pods"
S_PREVIOUS = "Check the previous revision's health"
S_DIFF = "Diff the pod templates"
S_FIX = "Choose the fix"


@dataclass
class _Findings:
    """What the steps found, for the decision."""

    newest: Revision | None = None
    previous: Revision | None = None
    quota_failure: QuotaFailure | None = None
    other_failures: list[str] = field(default_factory=list)
    failed_rs: str | None = None
    quota_text: str = ""
    quota_confidence: float = 0.0
    quota_raises: list[QuotaNeed] = field(default_factory=list)
    missing_pods: int = 1
    lower_instead: list[tuple[str, Decimal]] | None = None
    new_symptom: str = ""
    new_pod_symptom: Symptom | None = None
    changes: list[TemplateChange] = field(default_factory=list)


class RolloutStuckPlaybook(Playbook):
    """Names why a Deployment's rollout does not finish, and the change that unblocks it."""

    symptom: ClassVar[Symptom] = Symptom.ROLLOUT_STUCK
    title: ClassVar[str] = "RolloutStuck"
    description: ClassVar[str] = (
        "A Deployment stopped progressing (ProgressDeadlineExceeded) or its ReplicaSet cannot "
        "create pods (ReplicaFailure). Either admission refuses the pods (most often a "
        "ResourceQuota: the quota's used and hard values say by how much), or the new "
        "revision's pods are created and fail while the previous revision ran: then the diff "
        "between the two pod templates is the evidence and the fix is a rollback."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_CONDITIONS,
            "the Deployment's Progressing, ReplicaFailure and Available "
            "conditions and replica counts",
            "`kubectl rollout status` and `kubectl describe "
            "deployment` start here: which condition stopped the rollout, and its message.",
        ),
        StepDoc(
            S_REVISIONS,
            "the Deployment's ReplicaSets, newest revision first, and their pods",
            "The newest ReplicaSet is the rollout; the newest older one that has ready pods is "
            "what a rollback returns to.",
        ),
        StepDoc(
            S_CREATE,
            "FailedCreate events of the ReplicaSets and their ReplicaFailure conditions",
            "Admission (quota, LimitRange, webhooks) refuses pods before any "
            "exists; the refusal is only in these messages.",
        ),
        StepDoc(
            S_QUOTA,
            "the ResourceQuota named in the refusal: status.used and status.hard",
            "The numbers say how far over the quota is and what hard value admits the "
            "missing pods.",
        ),
        StepDoc(
            S_NEW_PODS,
            "the new ReplicaSet's pods: their symptoms, restarts, last exit "
            "codes and previous logs",
            "Pods that crash, cannot pull or never become ready are what holds the rollout.",
        ),
        StepDoc(
            S_PREVIOUS,
            "the previous ReplicaSet's ready and available replicas",
            "A rollback only helps if the revision it returns to was healthy.",
        ),
        StepDoc(
            S_DIFF,
            "the two pod templates: image, command, args, env names, resources, probes",
            "What changed between a healthy and a failing revision is the likeliest cause.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "Raise the quota (or lower the requests), or roll "
            "back to the healthy revision; with the undo and how to validate.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.ROLLOUT_QUOTA_EXCEEDED,
        Category.ROLLOUT_BAD_REVISION,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the Deployment."""
        found = _Findings()
        _read_conditions(context, investigation)
        _list_revisions(context, investigation, found)
        _creation_failures(context, investigation, found)
        _read_quota(context, investigation, found)
        _inspect_new_pods(context, investigation, found)
        _previous_health(investigation, found)
        _diff(investigation, found)
        return _decide(context, investigation, found)


# -- steps -------------------------------------------------------------------------------------


def _read_conditions(context: Context, investigation: Investigation) -> None:
    deployment = context.workload or {}
    status = _dict(deployment.get("status"))
    conditions = {c.get("type"): c for c in _list(status.get("conditions")) if isinstance(c, dict)}
    parts = [
        f"{t}={c.get('status')} {c.get('reason') or ''}: {c.get('message') or ''}".strip()
        for t in ("Progressing", "ReplicaFailure", "Available")
        if (c := conditions.get(t))
    ]
    if not deployment:
        sightings = "; ".join(f"{s.reason}: {s.message}" for s in context.sightings)
        investigation.step(
            S_CONDITIONS,
            f"The Deployment is not readable; detection saw: {sightings or 'nothing'}.",
        )
        return
    replicas = _dict(deployment.get("spec")).get("replicas")
    counts = (
        f"desired {replicas if isinstance(replicas, int) else 1}, updated "
        f"{status.get('updatedReplicas') or 0}, ready {status.get('readyReplicas') or 0}, "
        f"unavailable {status.get('unavailableReplicas') or 0}"
    )
    investigation.add_evidence(
        EvidenceSource.WORKLOAD,
        f"deployment/{context.target.name}: {counts}",
        "\n".join(parts) or None,
    )
    investigation.step(S_CONDITIONS, f"{'; '.join(parts) or 'No conditions recorded'} ({counts}).")


def _list_revisions(context: Context, investigation: Investigation, found: _Findings) -> None:
    replica_sets = history(context.target, context.reader)
    if not replica_sets:
        investigation.step(S_REVISIONS, "No ReplicaSet of the Deployment is readable.")
        return
    pods = context.reader.pods(context.namespace)

    def with_pods(rs: KubeObject) -> Revision:
        owned = [
            p
            for p in pods
            if (owner_of(p) or {}).get("kind") == "ReplicaSet"
            and (owner_of(p) or {}).get("name") == name_of(rs)
        ]
        owned = [well_formed(p) for p in owned]
        return Revision(rs, owned)

    wanted = revision(context.workload)
    revisions = [with_pods(rs) for rs in replica_sets]
    found.newest = next((r for r in revisions if r.number == wanted), revisions[0])
    older = [r for r in revisions if (r.number or 0) < (found.newest.number or 0)]
    found.previous = next((r for r in older if r.healthy()), older[0] if older else None)
    listed = "; ".join(f"revision {r.number} {r.name} ({ready_text(r)})" for r in revisions[:5])
    investigation.add_evidence(EvidenceSource.REPLICASET, f"ReplicaSets: {listed}")
    previous = (
        f"revision {found.previous.number} ({found.previous.name}) is the one to return to"
        if found.previous
        else "there is no older revision"
    )
    investigation.step(
        S_REVISIONS, f"Newest is revision {found.newest.number} ({found.newest.name}); {previous}."
    )


def _creation_failures(context: Context, investigation: Investigation, found: _Findings) -> None:
    names = {r.name for r in (found.newest, found.previous) if r}
    names |= {name_of(rs) for rs in history(context.target, context.reader)}
    messages: list[tuple[str, str, int]] = []
    for event in events_about(context.reader, context.namespace, "ReplicaSet", names):
        if event.get("reason") == "FailedCreate":
            involved = _dict(event.get("involvedObject")).get("name")
            messages.append((str(event.get("message") or ""), str(involved), event_count(event)))
    for holder, rs_name in (
        (found.newest.replica_set if found.newest else {}, found.newest and found.newest.name),
        (context.workload or {}, None),
    ):
        for condition in _list(_dict(holder.get("status")).get("conditions")):
            if _dict(condition).get("type") == "ReplicaFailure" and condition["status"] == "True":
                messages.append((str(condition.get("message") or ""), str(rs_name or ""), 1))
    for text, rs_name, _ in messages:
        parsed = parse_failure(text)
        if parsed and found.quota_failure is None:
            found.quota_failure, found.failed_rs = parsed, rs_name or None
        elif not parsed and text and text not in found.other_failures:
            found.other_failures.append(text)
    if found.failed_rs is None and found.quota_failure is not None and found.newest:
        found.failed_rs = found.newest.name
    if not messages:
        investigation.step(
            S_CREATE,
            "No FailedCreate event or ReplicaFailure condition: the ReplicaSets create their pods.",
        )
        return
    total = sum(count for _, _, count in messages)
    investigation.add_evidence(EvidenceSource.EVENTS, f"FailedCreate ({total}x): {messages[0][0]}")
    kind = found.quota_failure.kind if found.quota_failure else "admission"
    investigation.step(
        S_CREATE, f"{total} pod creation(s) refused ({kind}); newest: {messages[0][0]}"
    )


def _read_quota(context: Context, investigation: Investigation, found: _Findings) -> None:
    failure = found.quota_failure
    if failure is None or failure.kind != "exceeded":
        investigation.step(S_QUOTA, "Skipped: no refusal names a ResourceQuota's numbers.")
        return
    quota = next(
        (
            q
            for q in context.reader.resource_quotas(context.namespace)
            if name_of(q) == failure.quota
        ),
        None,
    )
    used, hard = quota_numbers(quota)
    replica_set = _replica_set(context, found.failed_rs) or (
        found.newest.replica_set if found.newest else {}
    )
    template = pod_template(replica_set) or pod_template(context.workload)
    per = per_pod(template)
    missing, current, desired = missing_pods(replica_set, context.workload)
    raises = needs(failure, used, hard, per, missing)
    per = {**per, **failure.requested}
    shown = sorted(set(failure.limited) | {n.resource for n in raises})
    numbers = ", ".join(
        f"{r} used {quantity(r, {**failure.used, **used}.get(r, Decimal(0)))} of "
        f"{quantity(r, {**failure.limited, **hard}.get(r, Decimal(0)))}"
        for r in shown
    )
    per_text = ", ".join(f"{r}={quantity(r, per[r])}" for r in shown if r in per)
    found.quota_text = (
        f"ResourceQuota {failure.quota}: {numbers}; each pod asks {per_text}; "
        f"{missing} of {desired} pod(s) missing"
    )
    # Numbers from the ResourceQuota itself confirm the refusal; the message alone is older.
    found.quota_confidence = (0.95 if quota is not None else 0.85) if raises else 0.7
    found.quota_raises, found.missing_pods = raises, missing
    found.lower_instead = lower_instead(raises, per, current, desired) if raises else None
    source = "" if quota is not None else " (quota not readable: numbers from the refusal)"
    investigation.add_evidence(EvidenceSource.RESOURCE_QUOTA, found.quota_text + source)
    investigation.step(S_QUOTA, found.quota_text + source + ".")


def _inspect_new_pods(context: Context, investigation: Investigation, found: _Findings) -> None:
    newest = found.newest
    if newest is None or not newest.pods:
        what = (
            "admission refuses them"
            if found.quota_failure or found.other_failures
            else "none exists"
        )
        investigation.step(S_NEW_PODS, f"No pod of the new revision to inspect: {what}.")
        if found.other_failures and not found.quota_failure:
            found.new_symptom = f"its pods are refused at creation: {found.other_failures[0]}"
        return
    sightings = [s for p in newest.pods for s in detect_pod(p, context.now)]
    counts = Counter(s.symptom for s in sightings)
    ready = sum(1 for p in newest.pods if pod_ready(p))
    if counts:
        symptom, _ = counts.most_common(1)[0]
        found.new_pod_symptom = symptom
        example = next(s for s in sightings if s.symptom is symptom)
        pod = next(p for p in newest.pods if name_of(p) == example.object_name)
        found.new_symptom = (
            f"{counts[symptom]} of {len(newest.pods)} pod(s) show {symptom.value}"
            f" ({symptom_detail(context, investigation, example, pod)})"
        )
    elif ready < len(newest.pods):
        found.new_symptom = (
            f"{len(newest.pods) - ready} of {len(newest.pods)} pod(s) run but "
            f"never become Ready{probe_failure(context, newest)}"
        )
    text = found.new_symptom or f"all {len(newest.pods)} pod(s) are ready"
    investigation.add_evidence(EvidenceSource.POD_STATUS, f"revision {newest.number} pods: {text}")
    investigation.step(S_NEW_PODS, f"Revision {newest.number}: {text}.")


def _previous_health(investigation: Investigation, found: _Findings) -> None:
    previous = found.previous
    if previous is None:
        investigation.step(S_PREVIOUS, "There is no previous revision.")
        return
    health = previous.healthy()
    verdict = {True: "healthy", False: "failing too", None: "of unknown health"}[health]
    text = f"revision {previous.number} ({previous.name}): {ready_text(previous)}, {verdict}"
    investigation.add_evidence(EvidenceSource.REPLICASET, text)
    investigation.step(S_PREVIOUS, text[0].upper() + text[1:] + ".")


def _diff(investigation: Investigation, found: _Findings) -> None:
    if found.newest is None or found.previous is None:
        investigation.step(S_DIFF, "Skipped: two revisions are needed to compare.")
        return
    found.changes = template_changes(
        pod_template(found.previous.replica_set), pod_template(found.newest.replica_set)
    )
    label = f"revision {found.previous.number} -> {found.newest.number}"
    if not found.changes:
        investigation.step(
            S_DIFF,
            f"{label}: no difference in image, command, args, env names, resources or probes.",
        )
        return
    short = "; ".join(describe(c) for c in found.changes[:6])
    detail = "\n".join(f"{c.field}: {c.before} -> {c.after}" for c in found.changes)
    investigation.add_evidence(EvidenceSource.REPLICASET, f"template diff {label}: {short}", detail)
    investigation.step(S_DIFF, f"{label}: {short}.")


def _decide(context: Context, investigation: Investigation, found: _Findings) -> Conclusion:
    target = context.target
    failure = found.quota_failure
    bad_alternative: tuple[RootCause, ...] = ()
    if found.new_symptom and found.newest and found.newest.pods:
        bad_alternative = (
            cause(
                Category.ROLLOUT_BAD_REVISION,
                f"revision {found.newest.number}: {found.new_symptom}",
                0.35,
            ),
        )
    if failure is not None and failure.kind == "exceeded":
        summary = found.quota_text or f"pods refused by ResourceQuota {failure.quota}"
        if found.quota_raises:
            recommendation, scope = fix.raise_quota(
                target,
                failure,
                found.quota_raises,
                missing_pods=found.missing_pods,
                lower=found.lower_instead,
                replica_set=found.failed_rs,
            )
        else:
            recommendation, scope = fix.quota_has_room(target, failure)
        root = cause(
            Category.ROLLOUT_QUOTA_EXCEEDED,
            f"deployment/{target.name} cannot create pods: {summary}",
            found.quota_confidence or 0.85,
        )
        investigation.step(S_FIX, recommendation.summary)
        return Conclusion(root, bad_alternative, recommendation, scope)
    if failure is not None:
        recommendation, scope = fix.set_resources(target, failure, _first_container(found))
        sure = 0.9 if failure.kind == "must-specify" else 0.6
        root = cause(
            Category.ROLLOUT_QUOTA_EXCEEDED,
            f"deployment/{target.name} cannot create pods: {failure.message}",
            sure,
        )
        investigation.step(S_FIX, recommendation.summary)
        return Conclusion(root, bad_alternative, recommendation, scope)
    return _bad_revision(context, investigation, found)


def _bad_revision(context: Context, investigation: Investigation, found: _Findings) -> Conclusion:
    target, newest, previous = context.target, found.newest, found.previous
    health = previous.healthy() if previous else None
    symptom = found.new_symptom or "no pod-level failure is visible on its pods"
    new_label = f"revision {newest.number if newest else '?'}"
    if newest and newest.pods and not found.new_symptom:
        confidence = 0.3
    elif previous is None:
        confidence = 0.4
    elif health is True:
        confidence = 0.9 if found.changes else 0.75
        if found.new_pod_symptom is Symptom.PENDING:
            confidence = 0.55  # pods that cannot be scheduled may be capacity, not the revision
    else:
        confidence = 0.6 if health is None else 0.45
    if not found.new_symptom:
        confidence = min(confidence, 0.3)
    diff = "; ".join(describe(c) for c in found.changes[:4])
    prev_text = ""
    if previous:
        prev_text = (
            f" while revision {previous.number} "
            + {
                True: f"runs {ready_text(previous)}",
                False: "was failing too",
                None: "has no health on record",
            }[health]
        )
    summary = f"deployment/{target.name} {new_label}: {symptom}{prev_text}" + (
        f"; changed: {diff}" if diff else ""
    )
    root = cause(Category.ROLLOUT_BAD_REVISION, summary, confidence)
    if previous is not None and previous.number is not None:
        why = f"{new_label}: {symptom}"
        if health is False:
            why += f"; revision {previous.number} was failing too, so rolling back may not help"
        elif health is True:
            why += f"; revision {previous.number} ran {ready_text(previous)}"
        paused = bool(_dict((context.workload or {}).get("spec")).get("paused"))
        recommendation, scope = fix.rollback(
            target,
            to_revision=previous.number,
            from_revision=newest.number if newest else None,
            why=why,
            selector=selector(context.workload),
            paused=paused,
        )
    elif newest is None:
        recommendation, scope = fix.read_history(target)
    else:
        recommendation, scope = fix.fix_forward(target, f"{new_label}: {symptom}")
    investigation.step(S_FIX, recommendation.summary)
    return Conclusion(root, (), recommendation, scope)


def _replica_set(context: Context, name: str | None) -> KubeObject | None:
    return context.reader.workload("ReplicaSet", context.namespace, name) if name else None


def _first_container(found: _Findings) -> str | None:
    template = pod_template(found.newest.replica_set) if found.newest else {}
    first = next(iter(_list(template.get("containers"))), None)
    return str(first.get("name")) if isinstance(first, dict) and first.get("name") else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
