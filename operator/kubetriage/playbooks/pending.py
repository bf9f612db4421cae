"""The Pending playbook: why a pod has no node, or has one but cannot start its containers.

An unscheduled pod is the scheduler's verdict: its FailedScheduling message (or, once those events
have expired, the PodScheduled condition) says how many nodes each reason rejected. The playbook
reads that verdict, then checks it against the cluster in the order the scheduler filters nodes —
schedulable nodes, taints, labels, resources, claims — so that the report carries the numbers and
names behind the message. A pod that has a node but stays in ContainerCreating is the kubelet's:
its FailedMount events and the ConfigMaps/Secrets its volumes reference say what is missing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kubetriage.k8s.access import KubeObject, container_status, name_of
from kubetriage.k8s.events import event_count, event_time
from kubetriage.k8s.time import format_time
from kubetriage.models import Category, EvidenceSource, RootCause, Symptom
from kubetriage.playbooks import _pending_advice as advice
from kubetriage.playbooks._pending_capacity import check_capacity
from kubetriage.playbooks._pending_case import (
    CATEGORY_OF,
    TIE_ORDER,
    Case,
    Finding,
    as_dict,
    as_list,
    events_about,
)
from kubetriage.playbooks._pending_messages import Blocker, parse_scheduler_message
from kubetriage.playbooks._pending_node_checks import check_nodes, check_placement, check_taints
from kubetriage.playbooks._pending_placement import placement_of
from kubetriage.playbooks._pending_volume_checks import check_claims, check_mounts
from kubetriage.playbooks.base import (
    Conclusion,
    Context,
    Investigation,
    Playbook,
    StepDoc,
    cause,
)
from kubetriage.policy import ChangeScope, Touch

STEP_PODS = "Find the pods that cannot start"
STEP_SCHEDULER = "Read the scheduler's reasons"
STEP_NODES = "Check for schedulable nodes"
STEP_TAINTS = "Check node taints against the pod's tolerations"
STEP_PLACEMENT = "Check the node selector and affinity against node labels"
STEP_CAPACITY = "Check node capacity against the pod's requests"
STEP_CLAIMS = "Check the pod's PersistentVolumeClaims"
STEP_MOUNTS = "Check the volumes the kubelet cannot mount"
STEP_DECIDE = "Decide the root cause"

_INFERRED = 0.7  # confidence factor when the scheduler's own message is gone
_SCHEDULER_STEPS = (STEP_SCHEDULER, STEP_NODES, STEP_TAINTS, STEP_PLACEMENT, STEP_CAPACITY)
# What to do when the scheduler named a reason that no check could put numbers to.
_GENERIC: dict[Category, tuple[str, str, Touch]] = {
    Category.PENDING_NODE_SELECTOR_MISMATCH: (
        "Relax the pod's affinity, anti-affinity or topology spread rules, or add nodes that "
        "satisfy them.",
        "kubectl get pod {pod} -n {ns} -o jsonpath='{{.spec.affinity}}'",
        Touch.SCHEDULING,
    ),
    Category.PENDING_UNTOLERATED_TAINT: (
        "Add the missing toleration if the workload belongs on the tainted nodes; else add "
        "untainted nodes.",
        "kubectl get nodes -o custom-columns=NAME:.metadata.name,TAINTS:.spec.taints",
        Touch.SCHEDULING,
    ),
    Category.PENDING_UNBOUND_PVC: (
        "Make the pod's claims bindable: create the missing claim or StorageClass, or fix the "
        "provisioner.",
        "kubectl get pvc -n {ns}; kubectl describe pod {pod} -n {ns}",
        Touch.PERSISTENT_VOLUME_CLAIM,
    ),
    Category.PENDING_VOLUME_MOUNT_FAILURE: (
        "Fix what the kubelet reports in the pod's events for its volumes.",
        "kubectl describe pod {pod} -n {ns}",
        Touch.VOLUMES,
    ),
}
_GENERIC_CAPACITY = (
    "Add node capacity, or lower the workload's requests.",
    "kubectl describe nodes | grep -A8 'Allocated resources'",
    Touch.NODES,
)


def _node_of(pod: KubeObject) -> str:
    return str(as_dict(pod.get("spec")).get("nodeName") or "")


def _scheduled_condition(pod: KubeObject) -> dict[str, Any]:
    for condition in as_list(as_dict(pod.get("status")).get("conditions")):
        if isinstance(condition, dict) and condition.get("type") == "PodScheduled":
            return condition
    return {}


class PendingPlaybook(Playbook):
    """Pods that stay Pending: unschedulable, or scheduled but unable to mount their volumes."""

    symptom: ClassVar[Symptom] = Symptom.PENDING
    title: ClassVar[str] = "Pending"
    description: ClassVar[str] = (
        "A pod stays Pending because the scheduler finds no node for it (PodScheduled=False, "
        "Unschedulable), or because it has a node but the kubelet cannot mount its volumes "
        "(stuck in ContainerCreating). The scheduler's message says how many nodes each reason "
        "rejected: the reason that rejects the most nodes is the root cause, the others are ranked "
        "alternatives. Each reason is then checked against the cluster, in the scheduler's own "
        "filter order, for the numbers behind it: the room left on each node against the pod's "
        "requests, the labels and tolerations it lacks, the state of its claims, and the objects "
        "its volumes reference."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            STEP_PODS,
            "the pods' phase, PodScheduled condition, nodeName and container waiting reasons",
            "A pod without a node is the scheduler's problem; a pod bound to a node and stuck in "
            "ContainerCreating is the kubelet's, almost always a volume.",
        ),
        StepDoc(
            STEP_SCHEDULER,
            "the pods' FailedScheduling events, else the PodScheduled condition message",
            "The scheduler says per reason how many nodes it rejected; what follows "
            "'preemption:' is not a reason. Events expire after an hour; the condition stays.",
        ),
        StepDoc(
            STEP_NODES,
            "Nodes: spec.unschedulable and the Ready condition",
            "No nodes, or only cordoned or NotReady ones, leave nowhere to schedule.",
        ),
        StepDoc(
            STEP_TAINTS,
            "node taints (NoSchedule, NoExecute) and the pod's tolerations",
            "Names the taints the pod does not tolerate and the tolerations it lacks; "
            "control-plane taints are deliberate and never to be tolerated.",
        ),
        StepDoc(
            STEP_PLACEMENT,
            "the pod's nodeSelector and required node affinity, and node labels",
            "Names the labels no node has, and the nearest labels that exist (same key, "
            "other value).",
        ),
        StepDoc(
            STEP_CAPACITY,
            "node allocatable and the requests of the pods bound to each node",
            "Requests, not usage, decide a fit: nodes that are merely full (add capacity) differ "
            "from a request above every node's allocatable (the pod can never fit).",
        ),
        StepDoc(
            STEP_CLAIMS,
            "the pod's PersistentVolumeClaims, their StorageClass (or the default) and events",
            "An Immediate claim that nothing can provision keeps the pod unschedulable: a "
            "missing claim, a missing StorageClass, or no default class.",
        ),
        StepDoc(
            STEP_MOUNTS,
            "the kubelet's FailedMount events and the ConfigMaps/Secrets the volumes reference",
            "A scheduled pod that never starts usually waits for a ConfigMap or Secret that does "
            "not exist, or for a volume that cannot attach.",
        ),
        StepDoc(
            STEP_DECIDE,
            "the findings of the steps above",
            "The reason blocking the most nodes is the root cause (on a tie, the filter the "
            "scheduler runs later); the rest are alternatives with their node counts.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.PENDING_INSUFFICIENT_RESOURCES,
        Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY,
        Category.PENDING_NODE_SELECTOR_MISMATCH,
        Category.PENDING_UNTOLERATED_TAINT,
        Category.PENDING_UNBOUND_PVC,
        Category.PENDING_NO_NODES,
        Category.PENDING_VOLUME_MOUNT_FAILURE,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Find the pods, read the scheduler's verdict, check it against the cluster, decide."""
        case = Case(context, investigation)
        investigation.step(STEP_PODS, _find_pods(case))
        if case.scheduled:
            node = _node_of(case.pod) or "?"
            skipped = f"Not needed: {case.pod_name} is bound to node {node}; it was scheduled."
            for name in (*_SCHEDULER_STEPS, STEP_CLAIMS):
                investigation.step(name, skipped)
            investigation.step(STEP_MOUNTS, check_mounts(case))
        else:
            investigation.step(STEP_SCHEDULER, _read_scheduler(case))
            nodes = context.reader.nodes()
            case.nodes = [n for n in nodes if isinstance(n, dict) and name_of(n)]
            investigation.step(STEP_NODES, check_nodes(case))
            investigation.step(STEP_TAINTS, check_taints(case))
            investigation.step(STEP_PLACEMENT, check_placement(case))
            investigation.step(STEP_CAPACITY, check_capacity(case))
            investigation.step(STEP_CLAIMS, check_claims(case))
            investigation.step(
                STEP_MOUNTS, "Not needed: the pods have no node, nothing was mounted."
            )
        conclusion, outcome = _decide(case)
        investigation.step(STEP_DECIDE, outcome)
        return conclusion


def _find_pods(case: Case) -> str:
    """Split the pods into unscheduled and scheduled-but-stuck; investigate the larger group."""
    ctx, inv = case.context, case.investigation
    pods = [p for p in ctx.pods if isinstance(p, dict)]
    if not pods:
        names = {s.object_name for s in ctx.sightings if s.object_kind == "Pod"}
        pods = [p for p in ctx.reader.pods(ctx.namespace) if name_of(p) in names]
    unscheduled = sorted((p for p in pods if not _node_of(p)), key=name_of)
    bound = sorted((p for p in pods if _node_of(p)), key=name_of)
    case.scheduled = len(bound) > len(unscheduled)
    case.group = bound if case.scheduled else unscheduled
    case.pod = case.group[0] if case.group else {}
    if not pods:
        return f"No pod of {ctx.target} could be read; only the sightings are left."
    containers = sorted({s.container for s in ctx.sightings if s.container})
    for pod in case.group[:3]:
        if case.scheduled:
            waiting = [
                f"{name}: {_waiting_reason(pod, name) or 'ContainerCreating'}"
                for name in containers
            ]
            text = (
                f"bound to {_node_of(pod)}, waiting ({', '.join(waiting) or 'ContainerCreating'})"
            )
        else:
            condition = _scheduled_condition(pod)
            since = condition.get("lastTransitionTime")
            text = (
                f"Pending, PodScheduled={condition.get('status', '?')} "
                f"({condition.get('reason', 'no reason')})" + (f" since {since}" if since else "")
            )
        inv.add_evidence(EvidenceSource.POD_STATUS, f"{name_of(pod)}: {text}")
    side = "the kubelet (volumes)" if case.scheduled else "the scheduler"
    return (
        f"{len(pods)} pod(s) of {ctx.target} are Pending: {len(unscheduled)} without a node, "
        f"{len(bound)} bound to a node but not started; investigating {side}."
    )


def _waiting_reason(pod: KubeObject, container: str) -> str:
    state = as_dict(container_status(pod, container).get("state"))
    return str(as_dict(state.get("waiting")).get("reason") or "")


def _read_scheduler(case: Case) -> str:
    """The newest FailedScheduling message, else the PodScheduled condition's, parsed."""
    ctx, inv = case.context, case.investigation
    names = {name_of(p) for p in case.group}
    events = [
        e
        for e in events_about(ctx.reader, ctx.namespace, "Pod", names)
        if e.get("reason") == "FailedScheduling"
    ]
    message, source = "", "symptom sighting"
    if events:
        newest = events[0]
        message, source = str(newest.get("message") or ""), "FailedScheduling event"
        pod_name = as_dict(newest.get("involvedObject")).get("name")
        case.pod = next((p for p in case.group if name_of(p) == pod_name), case.pod)
        when = event_time(newest)
        last = f", last {format_time(when)}" if when else ""
        parsed = parse_scheduler_message(message)
        head = parsed.text.split(" preemption:")[0]
        inv.add_evidence(
            EvidenceSource.SCHEDULER,
            f"FailedScheduling (x{event_count(newest)}{last}) on {pod_name}: {head}",
            parsed.text,
        )
        others = sorted({str(e.get("message")) for e in events} - {message})
        if others:
            inv.add_evidence(
                EvidenceSource.SCHEDULER, f"Another pod of the workload was told: {others[0]}"
            )
    else:
        for pod in [case.pod, *case.group]:
            condition = _scheduled_condition(pod)
            if condition.get("status") == "False" and condition.get("message"):
                message, case.pod = str(condition["message"]), pod
                source = "PodScheduled condition (the events have expired)"
                inv.add_evidence(
                    EvidenceSource.POD_STATUS,
                    f"PodScheduled=False on {case.pod_name}, its FailedScheduling events "
                    f"expired: {message}",
                )
                break
        else:
            message = next(
                (s.message for s in ctx.sightings if s.message and s.reason != "ContainerCreating"),
                "",
            )
    if not message:
        return (
            "No scheduler message: the FailedScheduling events have expired and the pod status "
            "carries none; the causes are inferred from the cluster's state below."
        )
    case.message = parse_scheduler_message(message)
    listed = "; ".join(
        f"{r.nodes if r.nodes is not None else 'all'}: {r.text}" for r in case.message.reasons
    )
    if case.message.total_nodes is None:
        return f"From the {source}: {listed or message}."
    return (
        f"From the {source}: 0 of {case.message.total_nodes} nodes fit. Nodes rejected per "
        f"reason — {listed or 'none given'}."
    )


def _counts(case: Case) -> tuple[dict[Category, int], bool, int]:
    """Nodes each category blocks (from the scheduler's message, else inferred from the checks),
    whether they were inferred, and how many nodes the pod could have used at all."""
    reasons = [r for r in case.reasons if r.blocker in CATEGORY_OF]
    total = case.total_nodes
    if placement_of(case.spec).pinned_by_name and any(
        r.blocker is not Blocker.SELECTOR for r in reasons
    ):
        # A DaemonSet pod "does not match" every node but its own: by design, not a cause.
        pinned_away = sum(r.nodes or 0 for r in reasons if r.blocker is Blocker.SELECTOR)
        reasons = [r for r in reasons if r.blocker is not Blocker.SELECTOR]
        total = max(total - pinned_away, 1)
    counts: dict[Category, int] = {}
    if reasons:
        per: dict[tuple[Category, Blocker], int] = {}
        for reason in reasons:
            nodes = reason.nodes if reason.nodes is not None else max(total, 1)
            key = (CATEGORY_OF[reason.blocker], reason.blocker)
            if reason.blocker is Blocker.RESOURCES:
                # A node short of cpu and memory is listed under both: the larger, not the sum.
                per[key] = max(per.get(key, 0), nodes)
            else:
                per[key] = per.get(key, 0) + nodes
        for (category, _), nodes in per.items():
            counts[category] = min(counts.get(category, 0) + nodes, total or nodes)
        return counts, False, total
    if not case.nodes:
        counts[Category.PENDING_NO_NODES] = 1
    remaining = {name_of(n) for n in case.nodes}
    for category, ruled_out in (
        (Category.PENDING_NO_NODES, case.cordoned | case.not_ready),
        (Category.PENDING_UNTOLERATED_TAINT, case.tainted),
        (Category.PENDING_NODE_SELECTOR_MISMATCH, case.mismatched),
        (Category.PENDING_INSUFFICIENT_RESOURCES, case.short),
    ):
        if remaining & ruled_out:
            counts[category] = len(remaining & ruled_out)
            remaining -= ruled_out
    if case.claim_blocked:
        counts[Category.PENDING_UNBOUND_PVC] = max(len(case.nodes), 1)
    return counts, True, total


def _fallback(case: Case, category: Category) -> Finding:
    """A finding from the scheduler's words alone, when no check could add the numbers."""
    ctx = case.context
    said = [r for r in case.reasons if CATEGORY_OF.get(r.blocker) == category]
    text = "; ".join(f"{r.nodes if r.nodes is not None else 'all'} node(s): {r.text}" for r in said)
    summary = f"The scheduler rejects nodes for {case.pod_name}: {text or 'no reason given'}"
    if not case.nodes and not case.scheduled:
        summary += " (no Node objects could be read to check it)"
    what, command, touch = _GENERIC.get(category, _GENERIC_CAPACITY)
    rec = advice.recommendation(
        what,
        command=command.format(pod=case.pod_name, ns=ctx.namespace),
        validation=advice.scheduled_validation(ctx),
    )
    return Finding(category, summary, None, rec, ChangeScope(frozenset({touch})))


def _decide(case: Case) -> tuple[Conclusion, str]:
    """Rank the categories by the nodes they block and name the first, with alternatives."""
    if case.scheduled:
        mount = Category.PENDING_VOLUME_MOUNT_FAILURE
        finding = case.findings.get(mount) or _fallback(case, mount)
        confidence = {True: 0.85, None: 0.35, False: 0.3}[finding.corroborated]
        root = cause(finding.category, finding.summary, 0.95 if finding.certain else confidence)
        outcome = f"{root.category.value} (confidence {root.confidence}): {root.summary}"
        return Conclusion(root, (), finding.recommendation, finding.scope), outcome
    counts, inferred, considered = _counts(case)
    if not counts:
        capacity = Category.PENDING_INSUFFICIENT_RESOURCES
        finding = case.findings.get(capacity) or _fallback(case, capacity)
        summary = f"{finding.summary}; no scheduler message and no obstacle visible in the cluster"
        root = cause(finding.category, summary, 0.25)
        outcome = f"No reason could be established; {root.category.value} at low confidence."
        return Conclusion(root, (), finding.recommendation, finding.scope), outcome
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], TIE_ORDER.index(kv[0])))
    root_category, root_nodes = ranked[0]
    total = max(considered, root_nodes, 1)
    finding = case.findings.get(root_category) or _fallback(case, root_category)
    tie = len(ranked) > 1 and ranked[1][1] == root_nodes
    confidence = _confidence(root_nodes / total, finding, tie=tie, inferred=inferred)
    root = cause(finding.category, finding.summary, confidence)
    alternatives: list[RootCause] = []
    for category, nodes in ranked[1:]:
        other = case.findings.get(category) or _fallback(case, category)
        alt = min(root.confidence - 0.05, 0.2 + 0.5 * nodes / total)
        alternatives.append(
            cause(other.category, f"{nodes} of {total} nodes: {other.summary}", alt)
        )
    for category, other in case.findings.items():
        if category not in counts and other.everywhere:
            # Hidden behind the scheduler's first failing filter: it blocks once that is fixed.
            summary = f"Not named by the scheduler, but also blocking: {other.summary}"
            alternatives.append(cause(other.category, summary, min(root.confidence - 0.1, 0.3)))
    alternatives.sort(key=lambda a: -a.confidence)
    how = (
        "inferred from the cluster's state (no scheduler message)"
        if inferred
        else "per the scheduler"
    )
    blocks = f"blocks {root_nodes} of {total} nodes" if case.total_nodes else "(there are no nodes)"
    others = "; ".join(f"{category.value}: {nodes} node(s)" for category, nodes in ranked[1:])
    outcome = f"{root.category.value} (confidence {root.confidence}) {blocks} {how}"
    outcome += f"; alternatives — {others}" if others else ""
    return Conclusion(
        root, tuple(alternatives[:10]), finding.recommendation, finding.scope
    ), outcome


def _confidence(share: float, finding: Finding, *, tie: bool, inferred: bool) -> float:
    """0.5 plus up to 0.4 for the share of nodes blocked; the checks confirm or weaken it."""
    confidence = 0.5 + 0.4 * min(1.0, share)
    if finding.corroborated is True:
        confidence += 0.05
    elif finding.corroborated is False:
        confidence -= 0.2
    if tie:
        confidence -= 0.1
    if inferred:
        confidence *= _INFERRED
    if finding.certain:
        confidence = max(confidence, 0.95)
    return min(confidence, 0.97)
