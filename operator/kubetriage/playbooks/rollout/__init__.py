"""The RolloutStuck runbook: can the new pods not be created, or do they fail once created?

The steps below read the Deployment, its ReplicaSets and their pods (`reads`), parse the
refusals admission wrote (`messages`), then name the cause (`decide`) and the change that
unblocks the rollout (`advise`).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import ClassVar

from kubetriage.detect import DetectedSymptom, detect_pod
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_status,
    dicts,
    labels_of,
    name_of,
    pod_ready,
    pod_template,
    text,
)
from kubetriage.k8s.history import describe, revision_of, template_changes
from kubetriage.k8s.quantities import manifest_quantity
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc
from kubetriage.playbooks.crashloop.reads import check_dependency
from kubetriage.playbooks.rollout.advise import advise
from kubetriage.playbooks.rollout.decide import RolloutFacts, decide, lower_instead, needs
from kubetriage.playbooks.rollout.messages import error_line, parse_failure, parse_refusal
from kubetriage.playbooks.rollout.reads import (
    creation_refusals,
    per_pod,
    probe_failure,
    quota_numbers,
    read_quota,
    read_revisions,
    ready_text,
    replica_counts,
)
from kubetriage.redact import excerpt

S_CONDITIONS = "Read the rollout conditions"
S_REVISIONS = "List the ReplicaSets by revision"
S_CREATE = "Look for pod-creation failures"
S_QUOTA = "Read the ResourceQuota"
S_ADMISSION = "Check the admission step that refused"
S_NEW_PODS = "Inspect the new revision's pods"
S_PREVIOUS = "Check the previous revision's health"
S_DIFF = "Diff the pod templates"
S_FIX = "Choose the fix"
_ENFORCE = "pod-security.kubernetes.io/enforce"


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
            S_ADMISSION,
            "the Service a failing webhook is called at and its EndpointSlices; the "
            "namespace's pod-security labels; the ServiceAccount the refusal names",
            "A webhook whose Service has no ready endpoints fails every pod creation (with "
            "failurePolicy Fail); PodSecurity enforces the namespace's level; a missing "
            "ServiceAccount refuses the pod before it exists.",
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
        Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE,
        Category.ROLLOUT_ADMISSION_DENIED,
        Category.ROLLOUT_POD_SECURITY_VIOLATION,
        Category.ROLLOUT_LIMIT_RANGE_VIOLATION,
        Category.ROLLOUT_SERVICE_ACCOUNT_MISSING,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the Deployment."""
        facts = RolloutFacts()
        _read_conditions(context, investigation)
        _list_revisions(context, investigation, facts)
        _creation_failures(context, investigation, facts)
        _read_quota(context, investigation, facts)
        _check_admission(context, investigation, facts)
        _inspect_new_pods(context, investigation, facts)
        _previous_health(investigation, facts)
        _diff(investigation, facts)
        return _choose_fix(context, investigation, facts)


def _read_conditions(context: Context, investigation: Investigation) -> None:
    deployment = context.workload or {}
    status = as_dict(deployment.get("status"))
    conditions = {text(c.get("type")): c for c in dicts(status.get("conditions"))}
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
    replicas = as_dict(deployment.get("spec")).get("replicas")
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


def _list_revisions(context: Context, investigation: Investigation, facts: RolloutFacts) -> None:
    revisions = read_revisions(context.reader, context.target)
    if not revisions:
        investigation.step(S_REVISIONS, "No ReplicaSet of the Deployment is readable.")
        return
    # The Deployment's own revision names the rollout; the highest number stands in for it.
    wanted = revision_of(context.workload)
    facts.revisions = revisions
    facts.newest = next((r for r in revisions if r.number == wanted), revisions[0])
    older = [r for r in revisions if (r.number or 0) < (facts.newest.number or 0)]
    facts.previous = next((r for r in older if r.healthy()), older[0] if older else None)
    listed = "; ".join(f"revision {r.number} {r.name} ({ready_text(r)})" for r in revisions[:5])
    investigation.add_evidence(EvidenceSource.REPLICASET, f"ReplicaSets: {listed}")
    previous = (
        f"revision {facts.previous.number} ({facts.previous.name}) is the one to return to"
        if facts.previous
        else "there is no older revision"
    )
    investigation.step(
        S_REVISIONS, f"Newest is revision {facts.newest.number} ({facts.newest.name}); {previous}."
    )


def _creation_failures(context: Context, investigation: Investigation, facts: RolloutFacts) -> None:
    names = {r.name for r in (facts.newest, facts.previous) if r}
    names |= {r.name for r in facts.revisions}
    refusals = creation_refusals(
        context.reader, context.namespace, names, facts.newest, context.workload
    )
    for refusal in refusals:
        parsed = parse_failure(refusal.message)
        admission = None if parsed else parse_refusal(refusal.message)
        if parsed and facts.quota_failure is None:
            facts.quota_failure = parsed
            facts.refused_replica_set = refusal.replica_set or None
        elif admission is not None and facts.admission is None:
            facts.admission = admission
            facts.refused_replica_set = refusal.replica_set or None
        elif not parsed and refusal.message and refusal.message not in facts.other_refusals:
            facts.other_refusals.append(refusal.message)
    refused = facts.quota_failure is not None or facts.admission is not None
    if facts.refused_replica_set is None and refused and facts.newest:
        facts.refused_replica_set = facts.newest.name
    if not refusals:
        investigation.step(
            S_CREATE,
            "No FailedCreate event or ReplicaFailure condition: the ReplicaSets create their pods.",
        )
        return
    total = sum(r.count for r in refusals)
    newest = refusals[0].message
    investigation.add_evidence(EvidenceSource.EVENTS, f"FailedCreate ({total}x): {newest}")
    kind = (
        facts.quota_failure.kind
        if facts.quota_failure
        else facts.admission.component
        if facts.admission
        else "admission"
    )
    investigation.step(S_CREATE, f"{total} pod creation(s) refused ({kind}); newest: {newest}")


def _check_admission(context: Context, investigation: Investigation, facts: RolloutFacts) -> None:
    refusal = facts.admission
    if refusal is None:
        investigation.step(S_ADMISSION, "Skipped: no webhook, policy or PodSecurity refusal.")
        return
    ns = context.namespace
    category = refusal.category
    if category is Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE and refusal.webhook_host:
        backend = check_dependency(
            context.reader, ns, refusal.webhook_host, None, refusal.webhook_port
        )
        facts.webhook_backend = backend
        found = f"admission {refusal.component} is called at {backend.target}: {backend.sentence()}"
        source = EvidenceSource.ENDPOINTS if backend.scope == "service" else EvidenceSource.SERVICE
    elif category is Category.ROLLOUT_POD_SECURITY_VIOLATION:
        labels = labels_of(context.reader.namespace(ns))
        facts.enforce_level = labels.get(_ENFORCE) or None
        version = labels.get(f"{_ENFORCE}-version")
        found = (
            f"namespace {ns} is labelled {_ENFORCE}={facts.enforce_level}"
            + (f" ({_ENFORCE}-version={version})" if version else "")
            if facts.enforce_level
            else f"namespace {ns} carries no {_ENFORCE} label (the cluster's default applies)"
        )
        source = EvidenceSource.NAMESPACE
        for violation in refusal.violations[:6]:
            investigation.add_evidence(
                EvidenceSource.POD_SPEC, f"PodSecurity {refusal.level}: {violation.why}"
            )
    elif category is Category.ROLLOUT_SERVICE_ACCOUNT_MISSING and refusal.service_account:
        account = context.reader.service_account(ns, refusal.service_account)
        facts.service_account_exists = account is not None
        found = (
            f"ServiceAccount {refusal.service_account} exists in namespace {ns} now"
            if account is not None
            else f"ServiceAccount {refusal.service_account} is not in namespace {ns}"
        )
        source = EvidenceSource.SERVICE_ACCOUNT
    else:
        found = f"admission {refusal.component} says: {refusal.detail}"
        source = EvidenceSource.EVENTS
    investigation.add_evidence(source, found)
    investigation.step(S_ADMISSION, found[0].upper() + found[1:] + ".")


def _read_quota(context: Context, investigation: Investigation, facts: RolloutFacts) -> None:
    failure = facts.quota_failure
    if failure is None or failure.kind != "exceeded":
        investigation.step(S_QUOTA, "Skipped: no refusal names a ResourceQuota's numbers.")
        return
    quota = read_quota(context.reader, context.namespace, failure.quota)
    used, hard = quota_numbers(quota)
    replica_set = _replica_set(context, facts.refused_replica_set) or (
        facts.newest.replica_set if facts.newest else {}
    )
    template = pod_template(replica_set) or pod_template(context.workload)
    per = per_pod(template)
    missing, current, desired = replica_counts(replica_set, context.workload)
    raises = needs(failure, used, hard, per, missing)
    per = {**per, **failure.requested}
    shown = sorted(set(failure.limited) | {n.resource for n in raises})
    numbers = ", ".join(
        f"{r} used {manifest_quantity(r, {**failure.used, **used}.get(r, Decimal(0)))} of "
        f"{manifest_quantity(r, {**failure.limited, **hard}.get(r, Decimal(0)))}"
        for r in shown
    )
    per_text = ", ".join(f"{r}={manifest_quantity(r, per[r])}" for r in shown if r in per)
    facts.quota_text = (
        f"ResourceQuota {failure.quota}: {numbers}; each pod asks {per_text}; "
        f"{missing} of {desired} pod(s) missing"
    )
    facts.quota_read = quota is not None
    facts.quota_raises, facts.missing_pods = raises, missing
    facts.lower_instead = lower_instead(raises, per, current, desired) if raises else None
    source = "" if quota is not None else " (quota not readable: numbers from the refusal)"
    investigation.add_evidence(EvidenceSource.RESOURCE_QUOTA, facts.quota_text + source)
    investigation.step(S_QUOTA, facts.quota_text + source + ".")


def _inspect_new_pods(context: Context, investigation: Investigation, facts: RolloutFacts) -> None:
    newest = facts.newest
    if newest is None or not newest.pods:
        what = (
            "admission refuses them"
            if facts.quota_failure or facts.other_refusals
            else "none exists"
        )
        investigation.step(S_NEW_PODS, f"No pod of the new revision to inspect: {what}.")
        if facts.other_refusals and not facts.quota_failure:
            facts.new_symptom = f"its pods are refused at creation: {facts.other_refusals[0]}"
        return
    # A pod that runs and is not Ready is the branch below, which quotes its probe's failure.
    sightings = [
        s
        for p in newest.pods
        for s in detect_pod(p, context.now)
        if s.symptom is not Symptom.NOT_READY
    ]
    counts = Counter(s.symptom for s in sightings)
    ready = sum(1 for p in newest.pods if pod_ready(p))
    if counts:
        symptom, _ = counts.most_common(1)[0]
        facts.new_pod_symptom = symptom
        example = next(s for s in sightings if s.symptom is symptom)
        pod = next(p for p in newest.pods if name_of(p) == example.object_name)
        facts.new_symptom = (
            f"{counts[symptom]} of {len(newest.pods)} pod(s) show {symptom.value}"
            f" ({_symptom_detail(context, investigation, example, pod)})"
        )
    elif ready < len(newest.pods):
        facts.new_symptom = (
            f"{len(newest.pods) - ready} of {len(newest.pods)} pod(s) run but "
            f"never become Ready{probe_failure(context, newest)}"
        )
    text = facts.new_symptom or f"all {len(newest.pods)} pod(s) are ready"
    investigation.add_evidence(EvidenceSource.POD_STATUS, f"revision {newest.number} pods: {text}")
    investigation.step(S_NEW_PODS, f"Revision {newest.number}: {text}.")


def _symptom_detail(
    context: Context, investigation: Investigation, sighting: DetectedSymptom, pod: KubeObject
) -> str:
    """The facts behind a pod-level symptom: exit code, restarts, the first error line of the
    previous log (recorded as evidence), or the pull/scheduling message."""
    status = container_status(pod, sighting.container)
    parts = [f"container {sighting.container}"] if sighting.container else []
    terminated = as_dict(as_dict(status.get("lastState")).get("terminated")) or as_dict(
        as_dict(status.get("state")).get("terminated")
    )
    if sighting.symptom in {Symptom.CRASH_LOOP_BACK_OFF, Symptom.OOM_KILLED} and terminated:
        parts.append(f"exit code {terminated.get('exitCode')}")
    if isinstance(status.get("restartCount"), int):
        parts.append(f"{status['restartCount']} restarts")
    if sighting.symptom in {Symptom.IMAGE_PULL_BACK_OFF, Symptom.PENDING} and sighting.message:
        parts.append(sighting.message[:200])
    log = None
    if sighting.container and sighting.symptom is Symptom.CRASH_LOOP_BACK_OFF:
        log = context.reader.container_log(
            context.namespace, name_of(pod), sighting.container, previous=True
        )
    if log:
        tail = excerpt(log, max_lines=20, max_bytes=4096)
        line = error_line([x.strip() for x in tail.text.splitlines() if x.strip()])
        investigation.add_evidence(
            EvidenceSource.LOGS, f"previous log of {name_of(pod)}: {line}", tail.text
        )
        if line:
            parts.append(f"log: {line[:160]}")
    return ", ".join(parts) or sighting.reason


def _previous_health(investigation: Investigation, facts: RolloutFacts) -> None:
    previous = facts.previous
    if previous is None:
        investigation.step(S_PREVIOUS, "There is no previous revision.")
        return
    health = previous.healthy()
    verdict = {True: "healthy", False: "failing too", None: "of unknown health"}[health]
    text = f"revision {previous.number} ({previous.name}): {ready_text(previous)}, {verdict}"
    investigation.add_evidence(EvidenceSource.REPLICASET, text)
    investigation.step(S_PREVIOUS, text[0].upper() + text[1:] + ".")


def _diff(investigation: Investigation, facts: RolloutFacts) -> None:
    if facts.newest is None or facts.previous is None:
        investigation.step(S_DIFF, "Skipped: two revisions are needed to compare.")
        return
    facts.changes = template_changes(
        pod_template(facts.previous.replica_set), pod_template(facts.newest.replica_set)
    )
    label = f"revision {facts.previous.number} -> {facts.newest.number}"
    if not facts.changes:
        investigation.step(
            S_DIFF,
            f"{label}: no difference in image, command, args, env names, resources or probes.",
        )
        return
    short = "; ".join(describe(c) for c in facts.changes[:6])
    detail = "\n".join(f"{c.field}: {c.before} -> {c.after}" for c in facts.changes)
    investigation.add_evidence(EvidenceSource.REPLICASET, f"template diff {label}: {short}", detail)
    investigation.step(S_DIFF, f"{label}: {short}.")


def _choose_fix(context: Context, investigation: Investigation, facts: RolloutFacts) -> Conclusion:
    root, alternatives = decide(context.target, facts)
    recommendation, scope = advise(context.target, context.workload, facts)
    investigation.step(S_FIX, recommendation.summary)
    return Conclusion(root, alternatives, recommendation, scope)


def _replica_set(context: Context, name: str | None) -> KubeObject | None:
    return context.reader.workload("ReplicaSet", context.namespace, name) if name else None
