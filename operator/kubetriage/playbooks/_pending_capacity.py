"""The Pending playbook's capacity check: do the pod's requests fit the room left on the nodes it
may use (InsufficientResources), or exceed what any node has at all (RequestExceedsNodeCapacity)?

Room is allocatable minus the requests of the pods bound to the node, as the scheduler counts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from kubetriage.k8s.access import name_of
from kubetriage.models import Category, EvidenceSource, Recommendation
from kubetriage.playbooks import _pending_advice as advice
from kubetriage.playbooks._pending_case import Case, Finding
from kubetriage.playbooks._pending_messages import Blocker
from kubetriage.playbooks._pending_placement import placement_of
from kubetriage.playbooks._pending_resources import (
    NodeRoom,
    Shortfall,
    format_amount,
    lowered_requests,
    node_rooms,
    pod_requests,
    shortfall,
)
from kubetriage.policy import ChangeScope, Touch

_SHOWN = 6
CORE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "hugepages-", "pods")
# Room left on the largest node for DaemonSets and system pods when a request must shrink to fit.
_HEADROOM = Decimal("0.9")


@dataclass(frozen=True)
class _Lowering:
    """A patch fragment lowering one resource's requests, its reverse, and the change in %."""

    new: dict[str, object]
    old: dict[str, object]
    percent: float


def _room_text(room: NodeRoom, resources: list[str]) -> str:
    parts = []
    for resource in resources:
        free, capacity = room.free(resource), room.capacity(resource)
        if free is not None and capacity is not None:
            shown = (format_amount(resource, free), format_amount(resource, capacity))
            parts.append(f"{resource} {shown[0]} free of {shown[1]}")
    return f"{room.name}: {', '.join(parts) or 'no allocatable reported'}"


def check_capacity(case: Case) -> str:
    """Compare the pod's requests with each node's allocatable and room; leave a Finding when the
    scheduler named a resource reason or the numbers show one."""
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
    excluded = case.cordoned | case.not_ready | case.tainted | case.mismatched
    candidates = [room for room in rooms if room.name not in excluded] or rooms
    named = [r.resource for r in case.blocked_by(Blocker.RESOURCES) if r.resource]
    # "pods" (one slot per pod) only matters when the scheduler says "Too many pods".
    resources = [
        r for r in dict.fromkeys(named or [r for r in requests if r != "pods"]) if r in requests
    ]
    for room in sorted(candidates, key=lambda r: r.name)[:_SHOWN]:
        inv.add_evidence(EvidenceSource.NODE, _room_text(room, resources))
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
    other = case.blocked_by(Blocker.PORTS, Blocker.NODE_PRESSURE)
    said = case.blocked_by(Blocker.RESOURCES)
    if not full and not other:
        facts = "; ".join(s.describe() for s in shortfalls)
        fitting = [
            room
            for room in candidates
            if all((free := room.free(r)) is None or free >= requests[r] for r in resources)
        ]
        if said:
            rec, scope = _capacity_advice(case, [])
            case.findings[Category.PENDING_INSUFFICIENT_RESOURCES] = Finding(
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
    subject = f"{ctx.target.kind.lower()}/{ctx.target.name}"
    facts_list = [s.describe() for s in full] + [
        f"{r.nodes or 'all'} node(s): {r.text}" for r in other
    ]
    blocked = len(case.short) or max((r.nodes or 0 for r in said + other), default=case.total_nodes)
    summary = (
        f"{blocked} of {case.total_nodes} nodes are full for {subject}: {case.pod_name} "
        + "; ".join(facts_list)
    )
    rec, scope = _capacity_advice(case, full)
    case.findings[Category.PENDING_INSUFFICIENT_RESOURCES] = Finding(
        Category.PENDING_INSUFFICIENT_RESOURCES, summary, True, rec, scope
    )
    return (
        "The nodes are full, though the pod would fit an empty one: " + "; ".join(facts_list) + "."
    )


def _lowering(case: Case, short: Shortfall, target: Decimal) -> _Lowering | None:
    lowered = lowered_requests(case.spec, short.resource, target)
    if lowered is None:
        return None
    changes, factor = lowered
    new: dict[str, list[dict[str, object]]] = {}
    old: dict[str, list[dict[str, object]]] = {}
    for name, change in changes.items():
        for into, value in ((new, change["new"]), (old, change["old"])):
            entry: dict[str, object] = {
                "name": name,
                "resources": {"requests": {short.resource: value}},
            }
            into.setdefault(change["field"], []).append(entry)
    return _Lowering(dict(new), dict(old), float((factor - 1) * 100))


def _capacity_advice(case: Case, full: list[Shortfall]) -> tuple[Recommendation, ChangeScope]:
    """Add nodes (the command), or lower the tightest request to the room there is (the patch)."""
    ctx = case.context
    pending = case.unscheduled_count()
    per_node = min(
        (int((s.largest / s.request).to_integral_value(ROUND_FLOOR)) for s in full), default=1
    )
    extra = advice.nodes_needed(pending, per_node)
    usable = case.cordoned | case.not_ready | case.tainted | case.mismatched
    pool = [n for n in case.nodes if name_of(n) not in usable] or case.nodes
    command = advice.capacity_command(pool, ctx.reader.cluster_name(), extra)
    text = f"Add capacity for {pending} pending pod(s): {extra} more node(s) like the current ones"
    if placement_of(case.spec).pinned_by_name and pool:
        # A pod pinned to its node (a DaemonSet's) cannot use new nodes: make room on that one.
        target = name_of(pool[0])
        command = f"kubectl describe node {target}  # the pods whose requests fill it"
        text = (
            f"Make room on node {target}, the only node this pod may use: move or shrink pods there"
        )
    # Lower the request only when the roomiest node has at least half of it free: below that
    # the workload would run on a fraction of what it asked for.
    tight = min(full, key=lambda s: s.roomiest / s.request) if full else None
    plan = None
    if tight is not None and tight.resource != "pods" and tight.roomiest >= tight.request / 2:
        plan = _lowering(case, tight, tight.roomiest)
    if tight is None or plan is None:
        rec = advice.recommendation(
            text + ".",
            command=command,
            rollback="Scale the node pool back down when the extra capacity is no longer needed.",
            validation=advice.scheduled_validation(ctx),
        )
        return rec, ChangeScope(frozenset({Touch.NODES}))
    patch = advice.template_patch(ctx.target, plan.new)
    before, after = (format_amount(tight.resource, v) for v in (tight.request, tight.roomiest))
    text += (
        f"; or lower the {tight.resource} request from {before} to {after} so a pod fits the "
        f"room left on {tight.roomiest_node} (only if the workload runs well with less)"
    )
    rec = advice.recommendation(
        text + ".",
        patch=patch,
        command=command,
        rollback=advice.patch_command(ctx.target, plan.old) if patch else None,
        validation=advice.scheduled_validation(ctx),
    )
    touches = {Touch.NODES, Touch.RESOURCES} if patch else {Touch.NODES}
    return rec, ChangeScope(frozenset(touches), plan.percent if patch else None)


def _exceeds(case: Case, never: list[Shortfall]) -> str:
    """The request is above every node's allocatable: lower it to what the largest node holds."""
    ctx = case.context
    subject = f"{ctx.target.kind.lower()}/{ctx.target.name}"
    facts = "; ".join(s.describe() for s in never)
    summary = f"{case.pod_name} of {subject} can never be scheduled: it {facts}"
    first = never[0]

    def show(value: Decimal) -> str:
        return format_amount(first.resource, value)

    extended = not first.resource.startswith(CORE_RESOURCES)
    target = first.largest if extended else first.largest * _HEADROOM
    plan = _lowering(case, first, target) if target > 0 else None
    need = f"nodes with at least {show(first.request)} of allocatable {first.resource}"
    if plan is None:
        rec = advice.recommendation(
            f"No node offers {show(first.request)} of {first.resource}: add {need} (a larger "
            "instance type or a dedicated node pool), or lower the request.",
            command=f"kubectl get nodes -L node.kubernetes.io/instance-type  # add a node pool "
            f"whose instance type has at least {show(first.request)} allocatable {first.resource}",
            validation=advice.scheduled_validation(ctx),
        )
        scope = ChangeScope(frozenset({Touch.NODES}))
    else:
        patch = advice.template_patch(ctx.target, plan.new)
        headroom = "" if extended else ", keeping 10% for DaemonSets and system pods"
        rec = advice.recommendation(
            f"Lower the {first.resource} request from {show(first.request)} to {show(target)}, "
            f"what the largest node ({first.largest_node}, {show(first.largest)} allocatable) can "
            f"hold{headroom}; only if the workload can run with that. If it really needs "
            f"{show(first.request)}, add {need} instead.",
            patch=patch,
            command=None if patch else advice.not_patchable(ctx.target),
            rollback=advice.patch_command(ctx.target, plan.old) if patch else None,
            validation=advice.scheduled_validation(ctx),
        )
        scope = ChangeScope(frozenset({Touch.RESOURCES}), plan.percent)
    case.findings[Category.PENDING_INSUFFICIENT_RESOURCES] = Finding(
        Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY, summary, True, rec, scope, certain=True
    )
    return f"The request exceeds every node's allocatable, so the pod can never fit: {facts}."
