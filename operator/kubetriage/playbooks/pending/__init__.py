"""The Pending playbook: why a pod has no node, or has one but cannot start its containers.

An unscheduled pod is the scheduler's verdict: its FailedScheduling message (or, once those events
have expired, the PodScheduled condition) says how many nodes each reason rejected. The playbook
reads that verdict, then checks it against the cluster in the order the scheduler filters nodes —
schedulable nodes, taints, labels, host ports, resources, claims, the bound volumes' node
affinity, topology spread and inter-pod affinity — so that the report carries the numbers and
names behind the message; the later filters' checks live in `constraints.py`. A pod that has a
node but stays in ContainerCreating is the kubelet's: its FailedMount events and the
ConfigMaps/Secrets its volumes reference say what is missing.

Each check step records its evidence, notes the nodes it rules out (for inference when the
scheduler's message is gone) and leaves an `Obstacle` for the decision (`decide.py`), with the
recommendation `advise.py` writes for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import ClassVar

from kubetriage.k8s.access import (
    as_dict,
    as_list,
    condition,
    dicts,
    name_of,
    node_name,
    node_ready,
)
from kubetriage.k8s.events import event_count, event_time, events_about, involved_name
from kubetriage.k8s.quantities import format_amount
from kubetriage.k8s.resources import pod_requests
from kubetriage.k8s.scheduling import (
    CONTROLLER_TAINT_PREFIX,
    DEFAULT_TOLERATIONS,
    DELIBERATE_TAINTS,
    NOT_READY_TAINTS,
    PRESSURE_TAINTS,
    Taint,
    nearest_labels,
    required_node_affinity,
    toleration_for,
    toleration_text,
    untolerated,
)
from kubetriage.k8s.time import format_time
from kubetriage.k8s.volumes import VolumeSource, claims_of, object_sources
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc
from kubetriage.playbooks.pending.advise import (
    capacity_advice,
    control_plane_advice,
    exceeds_advice,
    mount_advice,
    no_nodes_advice,
    no_usable_nodes_advice,
    not_meant_to_run_there_advice,
    placement_advice,
    toleration_advice,
    unbound_advice,
    unknown_wait_advice,
)
from kubetriage.playbooks.pending.constraints import (
    check_ports,
    check_topology,
    check_volume_affinity,
)
from kubetriage.playbooks.pending.decide import Shortfall, conclude, shortfall
from kubetriage.playbooks.pending.messages import (
    MOUNT_REASONS,
    Blocker,
    parse_mount_message,
    parse_scheduler_message,
)
from kubetriage.playbooks.pending.reads import (
    CORE_RESOURCES,
    KIND_NAMES,
    SHOWN,
    Case,
    NodeRoom,
    Obstacle,
    inspect_claim,
    missing_keys,
    node_rooms,
    not_ready_taints,
    object_exists,
    ready_state,
    waiting_reason,
)
from kubetriage.playbooks.pending.reads import listed as name_list

STEP_PODS = "Find the pods that cannot start"
STEP_SCHEDULER = "Read the scheduler's reasons"
STEP_NODES = "Check for schedulable nodes"
STEP_TAINTS = "Check node taints against the pod's tolerations"
STEP_PLACEMENT = "Check the node selector and affinity against node labels"
STEP_PORTS = "Check the host ports the pod asks for"
STEP_CAPACITY = "Check node capacity against the pod's requests"
STEP_CLAIMS = "Check the pod's PersistentVolumeClaims"
STEP_VOLUME_AFFINITY = "Check where the pod's bound volumes can be used"
STEP_TOPOLOGY = "Check topology spread and inter-pod affinity"
STEP_MOUNTS = "Check the volumes the kubelet cannot mount"
STEP_DECIDE = "Decide the root cause"

_SCHEDULER_STEPS = (
    STEP_SCHEDULER,
    STEP_NODES,
    STEP_TAINTS,
    STEP_PLACEMENT,
    STEP_PORTS,
    STEP_CAPACITY,
    STEP_CLAIMS,
    STEP_VOLUME_AFFINITY,
    STEP_TOPOLOGY,
)
_SHOWN = SHOWN

STEPS: tuple[StepDoc, ...] = (
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
        "Nodes: spec.unschedulable, the Ready condition (reason, message, last heartbeat) and "
        "the node lifecycle controller's not-ready/unreachable taints",
        "No nodes, or only cordoned, NotReady or unreachable ones, leave nowhere to schedule: "
        "the answer is the nodes (uncordon, why Ready is not True), never capacity, and the "
        "not-ready/unreachable taints mean exactly that, never a missing toleration.",
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
        "Names the labels no node has, and the nearest labels that exist (same key, other value). "
        "When some nodes match, they are the pod's pool: the others were never candidates, so "
        "a full pool is InsufficientResources for that pool, not a selector mismatch.",
    ),
    StepDoc(
        STEP_PORTS,
        "the pod's hostPorts and those of the pods bound to each node",
        "One pod per node can bind a host port (same port, protocol and address): more "
        "replicas than nodes with the port free cannot all run; a port another workload holds "
        "everywhere blocks every replica.",
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
        "missing claim, a missing StorageClass, or no default class. A claim of a "
        "WaitForFirstConsumer class waits for the pod to be scheduled: not a blocker.",
    ),
    StepDoc(
        STEP_VOLUME_AFFINITY,
        "the PersistentVolume each bound claim names: its nodeAffinity and zone labels",
        "A volume can be used only where its node affinity allows (a zone for a cloud disk, "
        "one node for a local volume): when no schedulable node is there, the pod waits for "
        "that zone or node.",
    ),
    StepDoc(
        STEP_TOPOLOGY,
        "the pod's topologySpreadConstraints and required pod (anti-)affinity, and the "
        "matching pods per topology domain",
        "Names the constraint, its maxSkew or selector, and how many matching pods each "
        "domain holds: the domain the pod must go to may have no usable node, a label may "
        "be missing from every node, or there are more replicas than domains.",
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
        "A request above every node's allocatable decides first: the pod can never fit, "
        "whatever else rejects nodes. Otherwise the reason blocking the most nodes is the root "
        "cause (on a tie, the filter the scheduler runs later); the rest are alternatives with "
        "their node counts. Nodes outside the pod's own pool are never counted against it.",
    ),
)


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
        "filter order, for the numbers behind it: the nodes that are cordoned or NotReady and "
        "why, the labels and tolerations it lacks, the host ports already taken, the room left "
        "on each node against the pod's requests, the state of its claims and where their "
        "volumes can be used, the matching pods per topology domain, and the objects its "
        "volumes reference. A request above every node's allocatable decides first: the pod "
        "can never fit."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = STEPS
    categories: ClassVar[tuple[Category, ...]] = (
        Category.PENDING_INSUFFICIENT_RESOURCES,
        Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY,
        Category.PENDING_NODE_SELECTOR_MISMATCH,
        Category.PENDING_UNTOLERATED_TAINT,
        Category.PENDING_UNBOUND_PVC,
        Category.PENDING_NO_NODES,
        Category.PENDING_HOST_PORT_CONFLICT,
        Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
        Category.PENDING_TOPOLOGY_CONSTRAINT,
        Category.PENDING_VOLUME_MOUNT_FAILURE,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Find the pods, read the scheduler's verdict, check it against the cluster, decide."""
        case = Case(context, investigation)
        investigation.step(STEP_PODS, _find_pods(case))
        if case.scheduled:
            node = node_name(case.pod) or "?"
            skipped = f"Not needed: {case.pod_name} is bound to node {node}; it was scheduled."
            for name in _SCHEDULER_STEPS:
                investigation.step(name, skipped)
            investigation.step(STEP_MOUNTS, _check_mounts(case))
        else:
            investigation.step(STEP_SCHEDULER, _read_scheduler(case))
            nodes = context.reader.nodes()
            case.nodes = [n for n in nodes if isinstance(n, dict) and name_of(n)]
            investigation.step(STEP_NODES, _check_nodes(case))
            investigation.step(STEP_TAINTS, _check_taints(case))
            investigation.step(STEP_PLACEMENT, _check_placement(case))
            investigation.step(STEP_PORTS, check_ports(case))
            investigation.step(STEP_CAPACITY, _check_capacity(case))
            investigation.step(STEP_CLAIMS, _check_claims(case))
            investigation.step(STEP_VOLUME_AFFINITY, check_volume_affinity(case))
            investigation.step(STEP_TOPOLOGY, check_topology(case))
            investigation.step(
                STEP_MOUNTS, "Not needed: the pods have no node, nothing was mounted."
            )
        conclusion, outcome = conclude(case)
        investigation.step(STEP_DECIDE, outcome)
        return conclusion


def _names(nodes: list[str] | set[str]) -> str:
    return name_list(nodes)


# --- the pods and the scheduler's message --------------------------------------------------------


def _find_pods(case: Case) -> str:
    """Split the pods into unscheduled and scheduled-but-stuck; investigate the larger group."""
    ctx, inv = case.context, case.investigation
    pods = [p for p in ctx.pods if isinstance(p, dict)]
    if not pods:
        names = {s.object_name for s in ctx.sightings if s.object_kind == "Pod"}
        pods = [p for p in ctx.reader.pods(ctx.namespace) if name_of(p) in names]
    unscheduled = sorted((p for p in pods if node_name(p) is None), key=name_of)
    bound = sorted((p for p in pods if node_name(p) is not None), key=name_of)
    case.scheduled = len(bound) > len(unscheduled)
    case.group = bound if case.scheduled else unscheduled
    case.pod = case.group[0] if case.group else {}
    if not pods:
        return f"No pod of {ctx.target} could be read; only the sightings are left."
    containers = sorted({s.container for s in ctx.sightings if s.container})
    for pod in case.group[:3]:
        if case.scheduled:
            waiting = [
                f"{name}: {waiting_reason(pod, name) or 'ContainerCreating'}" for name in containers
            ]
            text = (
                f"bound to {node_name(pod)}, waiting ({', '.join(waiting) or 'ContainerCreating'})"
            )
        else:
            scheduled = condition(pod, "PodScheduled") or {}
            since = scheduled.get("lastTransitionTime")
            text = (
                f"Pending, PodScheduled={scheduled.get('status', '?')} "
                f"({scheduled.get('reason', 'no reason')})" + (f" since {since}" if since else "")
            )
        inv.add_evidence(EvidenceSource.POD_STATUS, f"{name_of(pod)}: {text}")
    side = "the kubelet (volumes)" if case.scheduled else "the scheduler"
    return (
        f"{len(pods)} pod(s) of {ctx.target} are Pending: {len(unscheduled)} without a node, "
        f"{len(bound)} bound to a node but not started; investigating {side}."
    )


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
        pod_name = involved_name(newest)
        case.pod = next((p for p in case.group if name_of(p) == pod_name), case.pod)
        when = event_time(newest)
        last = f", last {format_time(when)}" if when else ""
        parsed = parse_scheduler_message(message)
        head = parsed.head or parsed.text.split(" preemption:")[0]
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
            scheduled = condition(pod, "PodScheduled") or {}
            if scheduled.get("status") == "False" and scheduled.get("message"):
                message, case.pod = str(scheduled["message"]), pod
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


# --- the nodes, in the order the scheduler filters them ------------------------------------------


def _check_nodes(case: Case) -> str:
    """Are there nodes at all, and are any of them schedulable and ready?"""
    ctx, inv = case.context, case.investigation
    nodes = case.nodes
    said = bool(case.blocked_by(Blocker.NO_NODES))
    if not nodes:
        inv.add_evidence(EvidenceSource.NODE, "No Node objects: the cluster has no nodes")
        also = " and the scheduler says no nodes are available" if said else ""
        rec, scope = no_nodes_advice(ctx)
        case.obstacles[Category.PENDING_NO_NODES] = Obstacle(
            Category.PENDING_NO_NODES,
            f"No nodes to schedule {case.subject} onto: the cluster has no Node objects{also}",
            certain=said,
            recommendation=rec,
            scope=scope,
        )
        return "No Node objects exist: there is nowhere to schedule the pods."
    case.cordoned = {name_of(n) for n in nodes if as_dict(n.get("spec")).get("unschedulable")}
    # NotReady: the kubelet says so (Ready False), stopped saying anything (Unknown), or the node
    # lifecycle controller has tainted the node not-ready/unreachable.
    case.not_ready = {name_of(n) for n in nodes if node_ready(n) is False or not_ready_taints(n)}
    usable = [name_of(n) for n in nodes if name_of(n) not in case.unusable]
    parts = [f"{len(nodes)} node(s)"]
    if case.cordoned:
        parts.append(f"{len(case.cordoned)} cordoned ({_names(case.cordoned)})")
    if case.not_ready:
        parts.append(f"{len(case.not_ready)} NotReady ({_names(case.not_ready)})")
    state = ", ".join(parts) + f"; {len(usable)} schedulable and ready"
    inv.add_evidence(EvidenceSource.NODE, state)
    for name in sorted(case.not_ready)[:_SHOWN]:
        inv.add_evidence(EvidenceSource.NODE, f"{name}: {ready_state(case.node(name), full=True)}")
    if not usable or said:
        why = "; ".join(
            [f"{len(case.cordoned)} cordoned ({_names(case.cordoned)})"] if case.cordoned else []
        )
        if case.not_ready:
            why += ("; " if why else "") + f"{len(case.not_ready)} NotReady ({_not_ready(case)})"
        rec, scope = no_usable_nodes_advice(case)
        case.obstacles[Category.PENDING_NO_NODES] = Obstacle(
            Category.PENDING_NO_NODES,
            f"None of the {len(nodes)} nodes can take pods: "
            + (why or "the scheduler says no nodes are available"),
            corroborated=not usable,
            recommendation=rec,
            scope=scope,
            certain=not usable,
        )
    elif case.unusable:
        # Some nodes are down: an alternative (or the cause of the scheduler's taint count).
        rec, scope = no_usable_nodes_advice(case)
        down = [f"{len(case.cordoned)} cordoned ({_names(case.cordoned)})"] if case.cordoned else []
        if case.not_ready:
            down.append(f"{len(case.not_ready)} NotReady ({_not_ready(case)})")
        case.obstacles[Category.PENDING_NO_NODES] = Obstacle(
            Category.PENDING_NO_NODES,
            f"{len(case.unusable)} of {len(nodes)} nodes cannot take pods: " + "; ".join(down),
            recommendation=rec,
            scope=scope,
            everywhere=False,
        )
    return state + "."


def _not_ready(case: Case) -> str:
    """The NotReady nodes with what their Ready condition says, nodes alike grouped."""
    groups: dict[str, list[str]] = {}
    for name in sorted(case.not_ready):
        groups.setdefault(ready_state(case.node(name)), []).append(name)
    return "; ".join(f"{_names(group)}: {state}" for state, group in groups.items())


def _check_taints(case: Case) -> str:
    """Which nodes carry a taint the pod does not tolerate, and which toleration is missing."""
    inv = case.investigation
    tolerations = as_list(case.spec.get("tolerations"))
    blocking = {name_of(n): found for n in case.nodes if (found := untolerated(n, tolerations))}
    case.tainted = set(blocking)
    case.condition_tainted = {
        node
        for node, found in blocking.items()
        if node in case.not_ready or any(t.key in NOT_READY_TAINTS for t in found)
    }
    case.pressure_tainted = {
        node
        for node, found in blocking.items()
        if node not in case.condition_tainted and any(t.key in PRESSURE_TAINTS for t in found)
    }
    if not blocking:
        return "No node has a taint the pod does not tolerate."
    on_nodes: dict[Taint, list[str]] = {}
    for node, found in blocking.items():
        for taint in found:
            on_nodes.setdefault(taint, []).append(node)
    for taint, nodes in sorted(on_nodes.items(), key=lambda kv: (-len(kv[1]), str(kv[0]))):
        inv.add_evidence(
            EvidenceSource.NODE,
            f"{len(nodes)} node(s) carry taint {taint}, which the pod does not tolerate: "
            + _names(nodes),
        )
    own = [t for t in dicts(tolerations) if str(t.get("key")) not in DEFAULT_TOLERATIONS]
    tolerated = (
        ", ".join(toleration_text(t) for t in own) or "only the defaults (not-ready, unreachable)"
    )
    inv.add_evidence(EvidenceSource.POD_SPEC, f"Pod tolerations: {tolerated}")
    named = ", ".join(str(t) for t in sorted(on_nodes, key=str))
    outcome = (
        f"{len(blocking)} of {len(case.nodes)} nodes carry taints the pod lacks tolerations for: "
    )
    outcome += f"{named}."
    # The taints a toleration is meant for: not those of cordoned, NotReady or pressured nodes,
    # which follow the node's state (the node check covers them).
    reserved = {
        node: kept
        for node, found in blocking.items()
        if node not in case.unusable | case.pressure_tainted
        and (kept := [t for t in found if not t.key.startswith(CONTROLLER_TAINT_PREFIX)])
    }
    taints = sorted({t for found in reserved.values() for t in found}, key=str)
    actionable = [t for t in taints if t.key not in DELIBERATE_TAINTS]
    deliberate = [t for t in taints if t.key in DELIBERATE_TAINTS]
    if not actionable and not deliberate:
        return outcome + " They are node-condition taints, covered by the node check."
    needed = [toleration_for(t) for t in actionable]
    missing = ", ".join(toleration_text(t) for t in needed) or "none to add (deliberate taints)"
    summary = (
        f"{len(reserved)} of {case.total_nodes} nodes carry taint(s) "
        f"{', '.join(str(t) for t in taints)} that {case.subject} does not tolerate; missing "
        f"toleration(s): {missing}"
    )
    offered = _only_on_tainted(case, reserved)
    if offered:
        summary += f"; the pod requests {', '.join(offered)}, which only the tainted nodes offer"
    if actionable:
        rec, scope = toleration_advice(case, needed, offered)
    else:
        rec, scope = control_plane_advice(case, deliberate, set(reserved))
    case.obstacles[Category.PENDING_UNTOLERATED_TAINT] = Obstacle(
        Category.PENDING_UNTOLERATED_TAINT,
        summary,
        recommendation=rec,
        scope=scope,
        everywhere=len(reserved) == len(case.nodes),
    )
    return outcome + f" Missing toleration(s): {missing}."


def _only_on_tainted(case: Case, blocking: Mapping[str, object]) -> list[str]:
    """Extended resources the pod requests that only the tainted nodes have (nvidia.com/gpu)."""
    rooms = node_rooms(case.nodes, [])
    found = []
    for resource in pod_requests(case.spec):
        if resource.startswith(CORE_RESOURCES):
            continue
        having = {room.name for room in rooms if (room.capacity(resource) or Decimal(0)) > 0}
        if having and having <= set(blocking):
            found.append(resource)
    return found


def _check_placement(case: Case) -> str:
    """Does any node carry the labels the pod's nodeSelector / required node affinity ask for?"""
    inv = case.investigation
    affinity = required_node_affinity(case.spec)
    if affinity.empty:
        return "The pod asks for no node labels (no nodeSelector, no required node affinity)."
    asked = "; ".join(str(r) for r in affinity.asked())
    inv.add_evidence(EvidenceSource.POD_SPEC, f"Pod asks for node labels: {asked}")
    matching = [n for n in case.nodes if affinity.matches(n)]
    case.mismatched = {name_of(n) for n in case.nodes} - {name_of(n) for n in matching}
    if affinity.pinned_by_name:
        inv.add_evidence(
            EvidenceSource.POD_SPEC,
            "The pod is pinned to one node by name (a DaemonSet pod): that every other node "
            "does not match its affinity is expected",
        )
    if matching or not case.nodes:
        names = _names([name_of(n) for n in matching])
        if case.mismatched and not affinity.pinned_by_name:
            # The nodes that match are the pod's pool: the others were never candidates, so
            # they are at most an alternative, never the cause (decide.py).
            case.pool = sorted(name_of(n) for n in matching)
            case.pool_labels = asked
            rec, scope = not_meant_to_run_there_advice(case)
            case.obstacles[Category.PENDING_NODE_SELECTOR_MISMATCH] = Obstacle(
                Category.PENDING_NODE_SELECTOR_MISMATCH,
                f"{len(case.mismatched)} node(s) ({_names(case.mismatched)}) lack the labels "
                f"{case.subject} asks for ({asked}); {len(matching)} have them ({names})",
                recommendation=rec,
                scope=scope,
                everywhere=False,
            )
        return f"{len(matching)} of {len(case.nodes)} nodes match the pod's labels ({names})."
    unmet = [r for r in affinity.asked() if not any(r.matches(n) for n in case.nodes)]
    unmet = unmet or affinity.asked()
    nearest = {str(r): nearest_labels(r, case.nodes) for r in unmet}
    for requirement, labels in nearest.items():
        inv.add_evidence(
            EvidenceSource.NODE,
            f"No node has {requirement}; nearest existing labels: "
            + (", ".join(labels) or "none similar"),
        )
    closest = ", ".join(nearest[str(unmet[0])][:2]) or "none"
    summary = (
        f"No node matches {case.subject}'s node selector/affinity: none of the "
        f"{len(case.nodes)} nodes has {', '.join(str(r) for r in unmet)}; "
        f"nearest existing: {closest}"
    )
    rec, scope = placement_advice(case, unmet[0].key, str(unmet[0]))
    case.obstacles[Category.PENDING_NODE_SELECTOR_MISMATCH] = Obstacle(
        Category.PENDING_NODE_SELECTOR_MISMATCH, summary, recommendation=rec, scope=scope
    )
    listed = "; ".join(f"{r} (nearest: {', '.join(nearest[str(r)][:2]) or 'none'})" for r in unmet)
    return f"No node matches: {listed}."


def _room_text(room: NodeRoom, resources: list[str]) -> str:
    """`worker-1: cpu 1 free of 4, memory 2Gi free of 16Gi`; a resource the node does not
    report is said to be so, and "no allocatable reported" only of a node that reports none."""
    if not room.allocatable:
        return f"{room.name}: no allocatable reported"
    parts = []
    for resource in resources:
        free, capacity = room.free(resource), room.capacity(resource)
        if free is not None and capacity is not None:
            shown = (format_amount(resource, free), format_amount(resource, capacity))
            parts.append(f"{resource} {shown[0]} free of {shown[1]}")
        else:
            parts.append(f"{resource} not reported")
    return f"{room.name}: {', '.join(parts)}"


def _check_capacity(case: Case) -> str:
    """Compare the pod's requests with each node's allocatable and room; leave an Obstacle when
    the scheduler named a resource reason or the numbers show one."""
    ctx, inv = case.context, case.investigation
    requests = pod_requests(case.spec)
    if requests:
        shown = ", ".join(f"{r} {format_amount(r, v)}" for r, v in sorted(requests.items()))
        inv.add_evidence(
            EvidenceSource.POD_SPEC,
            f"Pod requests (containers, init containers, overhead): {shown}",
        )
    else:
        inv.add_evidence(EvidenceSource.POD_SPEC, "The pod requests no resources")
    requests["pods"] = Decimal(1)
    if not case.nodes:
        return "No nodes to compare the requests with."
    rooms = node_rooms(case.nodes, ctx.reader.scheduled_pods())
    candidates = [room for room in rooms if room.name not in case.ruled_out] or rooms
    named = [r.resource for r in case.blocked_by(Blocker.RESOURCES) if r.resource]
    # "pods" (one slot per pod) only matters when the scheduler says "Too many pods".
    resources = [
        r for r in dict.fromkeys(named or [r for r in requests if r != "pods"]) if r in requests
    ]
    # A pod that requests nothing still shows what the nodes have: cpu and memory.
    shown_resources = resources or ["cpu", "memory"]
    for room in sorted(candidates, key=lambda r: r.name)[:_SHOWN]:
        inv.add_evidence(EvidenceSource.NODE, _room_text(room, shown_resources))
    shortfalls = [s for r in resources if (s := shortfall(r, requests[r], candidates))]
    never = [
        s for r in resources if (s := shortfall(r, requests[r], rooms)) and s.exceeds_every_node
    ]
    case.short = {
        room.name
        for room in candidates
        if any((free := room.free(s.resource)) is not None and free < s.request for s in shortfalls)
    }
    if never:
        return _exceeds(case, never)
    full = [s for s in shortfalls if s.fits_nowhere_now]
    other = case.blocked_by(Blocker.NODE_PRESSURE)
    said = case.blocked_by(Blocker.RESOURCES)
    if not full and not other:
        facts = "; ".join(s.describe() for s in shortfalls)
        fitting = [
            room
            for room in candidates
            if all((free := room.free(r)) is None or free >= requests[r] for r in resources)
        ]
        if said:
            rec, scope = capacity_advice(case, [])
            case.obstacles[Category.PENDING_INSUFFICIENT_RESOURCES] = Obstacle(
                Category.PENDING_INSUFFICIENT_RESOURCES,
                f"The scheduler reports {'; '.join(r.text for r in said)}, but the pods visible "
                f"on the nodes leave room for {case.pod_name} ({facts}); pods missing from this "
                "view may fill it",
                corroborated=False,
                recommendation=rec,
                scope=scope,
                everywhere=False,
            )
        asked = ", ".join(f"{r} {format_amount(r, requests[r])}" for r in resources)
        return (
            f"The requests ({asked or 'none'}) fit the room left on {len(fitting)} of "
            f"{len(candidates)} node(s) the pod may use."
        )
    facts_list = [s.describe() for s in full] + [
        f"{r.nodes or 'all'} node(s): {r.text}" for r in other
    ]
    blocked = len(case.short) or max((r.nodes or 0 for r in said + other), default=case.total_nodes)
    summary = (
        f"{blocked} of {case.total_nodes} nodes are full for {case.subject}: {case.pod_name} "
        + "; ".join(facts_list)
    )
    case.pool_full = bool(case.pool) and set(case.pool) <= case.short
    if case.pool_full:
        summary = (
            f"The {len(case.pool)} nodes {case.subject} selects ({case.pool_labels}) are all "
            f"full: {case.pod_name} " + "; ".join(facts_list)
        )
    rec, scope = capacity_advice(case, full)
    case.obstacles[Category.PENDING_INSUFFICIENT_RESOURCES] = Obstacle(
        Category.PENDING_INSUFFICIENT_RESOURCES, summary, True, rec, scope
    )
    return (
        "The nodes are full, though the pod would fit an empty one: " + "; ".join(facts_list) + "."
    )


def _exceeds(case: Case, never: list[Shortfall]) -> str:
    """The request is above every node's allocatable: the pod can never fit."""
    facts = "; ".join(s.describe() for s in never)
    summary = f"{case.pod_name} of {case.subject} can never be scheduled: it {facts}"
    rec, scope = exceeds_advice(case, never)
    case.obstacles[Category.PENDING_INSUFFICIENT_RESOURCES] = Obstacle(
        Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY, summary, True, rec, scope, certain=True
    )
    return f"The request exceeds every node's allocatable, so the pod can never fit: {facts}."


# --- storage -------------------------------------------------------------------------------------


def _check_claims(case: Case) -> str:
    """Read each claim the pod mounts (and any the scheduler names), its StorageClass, events."""
    ctx, inv = case.context, case.investigation
    said = case.blocked_by(Blocker.VOLUME)
    pairs = claims_of(case.pod)
    pairs += [("?", r.claim) for r in said if r.claim and r.claim not in {c for _, c in pairs}]
    if not pairs:
        if said:
            return f"The scheduler reports {said[0].text}, but the pod mounts no claim."
        return "The pod mounts no PersistentVolumeClaim."
    states = [inspect_claim(ctx.reader, ctx.namespace, volume, claim) for volume, claim in pairs]
    for state in states:
        inv.add_evidence(
            EvidenceSource.PERSISTENT_VOLUME_CLAIM,
            state.describe(),
            "\n".join(state.events) or None,
        )
        known = ", ".join(state.known_classes) or "none"
        if state.effective_class and state.class_exists is False:
            inv.add_evidence(
                EvidenceSource.STORAGE_CLASS,
                f"StorageClass {state.effective_class} does not exist (existing: {known})",
            )
        elif state.exists and state.requested_class is None and state.default_class is None:
            inv.add_evidence(
                EvidenceSource.STORAGE_CLASS,
                f"No StorageClass is marked default (existing: {known})",
            )
    # A claim of a WaitForFirstConsumer class is bound once the pod has a node: it waits for
    # the pod. Only when the scheduler names a binding reason does it block.
    waiting = [s for s in states if s.waits_for_consumer and not said]
    problem = next((s for s in states if not s.exists or (not s.bound and s not in waiting)), None)
    if problem is None:
        bound = [s.describe() for s in states if s.bound]
        lead = "Bound: " if waiting else "Every claim is Bound: "
        text = lead + "; ".join(bound) + "." if bound else ""
        if waiting:
            names = ", ".join(s.name for s in waiting)
            text += (" " if text else "") + (
                f"PersistentVolumeClaim {names} waits for its first consumer "
                "(WaitForFirstConsumer): it binds once the pod is scheduled, not a blocker."
            )
        return text
    summary, rec, scope = unbound_advice(case, problem)
    case.claim_blocked = True
    case.obstacles[Category.PENDING_UNBOUND_PVC] = Obstacle(
        Category.PENDING_UNBOUND_PVC,
        summary,
        recommendation=rec,
        scope=scope,
        certain=problem is not None and (not problem.exists or problem.class_exists is False),
    )
    return summary + "."


def _check_mounts(case: Case) -> str:
    """Read the kubelet's FailedMount events and check the ConfigMaps/Secrets the volumes use."""
    ctx, inv = case.context, case.investigation
    names = {name_of(p) for p in case.group}
    events = [
        e
        for e in events_about(ctx.reader, ctx.namespace, "Pod", names)
        if str(e.get("reason")) in MOUNT_REASONS
    ]
    failures = [parse_mount_message(str(e.get("message") or "")) for e in events]
    for event, failure in list(zip(events, failures, strict=True))[:3]:
        inv.add_evidence(
            EvidenceSource.EVENTS,
            f"{event.get('reason')} (x{event_count(event)}) on {involved_name(event)}: "
            f"{failure.text}",
        )
    sources = object_sources(case.spec)
    missing: dict[tuple[str, str], VolumeSource | None] = {}
    for failure in failures:
        for kind, name in failure.missing:
            missing.setdefault((kind, name), _source(sources, kind, name))
    # With events, check the volumes they name; without (expired), every required reference.
    named = {v for f in failures for v in f.unmounted} | {f.volume for f in failures if f.volume}
    checked = [s for s in sources if not s.optional and (s.volume in named or not events)]
    for source in checked:
        if object_exists(ctx.reader, ctx.namespace, source.kind, source.name) is False:
            missing.setdefault((source.kind, source.name), source)
    keys = [(s, k) for s in checked for k in missing_keys(ctx.reader, ctx.namespace, s)]
    for (kind, name), referer in missing.items():
        exists = object_exists(ctx.reader, ctx.namespace, kind, name)
        state = "does not exist" if exists is False else "exists now" if exists else "is unknown"
        volume = referer.volume if referer else "?"
        inv.add_evidence(
            EvidenceSource.CONFIG_MAP if kind == "configmap" else EvidenceSource.SECRET,
            f"{KIND_NAMES[kind]} {name} (volume {volume}) {state} in {ctx.namespace}",
        )
    for keyed, key in keys:
        inv.add_evidence(
            EvidenceSource.CONFIG_MAP,
            f"ConfigMap {keyed.name} has no key {key} (volume {keyed.volume} items)",
        )
    if not missing and not keys and not failures:
        return _no_mount_failure(case)
    summary, rec, scope = mount_advice(case, missing, keys, failures, bool(events))
    confirmed = any(object_exists(ctx.reader, ctx.namespace, k, n) is False for k, n in missing)
    case.obstacles[Category.PENDING_VOLUME_MOUNT_FAILURE] = Obstacle(
        Category.PENDING_VOLUME_MOUNT_FAILURE,
        summary,
        corroborated=True if missing or keys else None,
        recommendation=rec,
        scope=scope,
        certain=confirmed or bool(keys),
    )
    return summary + "."


def _source(sources: list[VolumeSource], kind: str, name: str) -> VolumeSource | None:
    return next((s for s in sources if s.kind == kind and s.name == name), None)


def _no_mount_failure(case: Case) -> str:
    """No FailedMount and nothing missing: name the latest warning, if any."""
    ctx = case.context
    names = {name_of(p) for p in case.group}
    warnings = [
        e
        for e in events_about(ctx.reader, ctx.namespace, "Pod", names)
        if e.get("type") == "Warning"
    ]
    seen = ""
    if warnings:
        seen = f"; latest warning: {warnings[0].get('reason')}: {warnings[0].get('message')}"
        case.investigation.add_evidence(EvidenceSource.EVENTS, seen.removeprefix("; latest "))
    node = node_name(case.pod) or "a node"
    summary = (
        f"{case.pod_name} is bound to {node} but stuck in ContainerCreating; no FailedMount "
        f"event, and every ConfigMap/Secret its volumes use exists{seen}"
    )
    rec, scope = unknown_wait_advice(case)
    case.obstacles[Category.PENDING_VOLUME_MOUNT_FAILURE] = Obstacle(
        Category.PENDING_VOLUME_MOUNT_FAILURE,
        summary,
        corroborated=None,
        recommendation=rec,
        scope=scope,
    )
    return summary + "."
