"""The Pending playbook's node checks, in the order the scheduler filters nodes: schedulable and
ready nodes, taints, then node selector/affinity (resources are in `_pending_capacity`). Each
records evidence, remembers which nodes it rules out (for inference when the scheduler's message
is gone) and leaves a Finding."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubetriage.k8s.access import KubeObject, name_of, pod_template
from kubetriage.models import Category, EvidenceSource, Recommendation
from kubetriage.playbooks import _pending_advice as advice
from kubetriage.playbooks._pending_capacity import CORE_RESOURCES
from kubetriage.playbooks._pending_case import Case, Finding, as_dict, as_list
from kubetriage.playbooks._pending_messages import Blocker, Taint
from kubetriage.playbooks._pending_placement import (
    DELIBERATE_TAINTS,
    corrected_placement,
    nearest_labels,
    placement_of,
    toleration_for,
    untolerated,
)
from kubetriage.playbooks._pending_resources import node_rooms, pod_requests
from kubetriage.policy import ChangeScope, Touch

_SHOWN = 6
# Taints the node lifecycle controller sets (not-ready, unschedulable, pressure): the node check
# covers them, and tolerating them is never the fix.
_SYSTEM_TAINT_PREFIX = "node.kubernetes.io/"
_DEFAULT_TOLERATIONS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})


def _names(nodes: list[str] | set[str]) -> str:
    ordered = sorted(nodes)
    more = f" and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else ""
    return ", ".join(ordered[:_SHOWN]) + more


def _subject(case: Case) -> str:
    return f"{case.context.target.kind.lower()}/{case.context.target.name}"


def _ready(node: KubeObject) -> bool | None:
    for condition in as_list(as_dict(node.get("status")).get("conditions")):
        if isinstance(condition, dict) and condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return None


def check_nodes(case: Case) -> str:
    """Are there nodes at all, and are any of them schedulable and ready?"""
    ctx, inv = case.context, case.investigation
    nodes = case.nodes
    said = bool(case.blocked_by(Blocker.NO_NODES))
    if not nodes:
        inv.add_evidence(EvidenceSource.NODE, "No Node objects: the cluster has no nodes")
        also = " and the scheduler says no nodes are available" if said else ""
        rec = advice.recommendation(
            "Add nodes: the cluster has none (a node group scaled to zero, nodes that never "
            "registered, or a cluster autoscaler that cannot add any).",
            command=advice.capacity_command([], ctx.reader.cluster_name(), 1),
            rollback="Scale the node group back down once the workload no longer needs it.",
            validation="kubectl get nodes shows Ready nodes; " + advice.scheduled_validation(ctx),
        )
        case.findings[Category.PENDING_NO_NODES] = Finding(
            Category.PENDING_NO_NODES,
            f"No nodes to schedule {_subject(case)} onto: the cluster has no Node objects{also}",
            certain=said,
            recommendation=rec,
            scope=ChangeScope(frozenset({Touch.NODES})),
        )
        return "No Node objects exist: there is nowhere to schedule the pods."
    case.cordoned = {name_of(n) for n in nodes if as_dict(n.get("spec")).get("unschedulable")}
    case.not_ready = {name_of(n) for n in nodes if _ready(n) is False}
    usable = [name_of(n) for n in nodes if name_of(n) not in case.cordoned | case.not_ready]
    parts = [f"{len(nodes)} node(s)"]
    if case.cordoned:
        parts.append(f"{len(case.cordoned)} cordoned ({_names(case.cordoned)})")
    if case.not_ready:
        parts.append(f"{len(case.not_ready)} NotReady ({_names(case.not_ready)})")
    state = ", ".join(parts) + f"; {len(usable)} schedulable and ready"
    inv.add_evidence(EvidenceSource.NODE, state)
    if not usable or said:
        why = "; ".join(parts[1:]) or "the scheduler says no nodes are available"
        case.findings[Category.PENDING_NO_NODES] = Finding(
            Category.PENDING_NO_NODES,
            f"None of the {len(nodes)} nodes can take pods: {why}",
            corroborated=not usable,
            recommendation=_no_usable_nodes_advice(case),
            scope=ChangeScope(frozenset({Touch.NODES})),
        )
    return state + "."


def _no_usable_nodes_advice(case: Case) -> Recommendation:
    ctx = case.context
    validation = "kubectl get nodes shows schedulable Ready nodes; "
    validation += advice.scheduled_validation(ctx)
    if case.cordoned:
        cordoned = " ".join(sorted(case.cordoned))
        return advice.recommendation(
            "Uncordon the nodes once their maintenance is over, or add nodes.",
            command=f"kubectl uncordon {cordoned}  # first check no drain or upgrade still runs",
            rollback=f"kubectl cordon {cordoned}",
            validation=validation,
        )
    node = sorted(case.not_ready or {name_of(n) for n in case.nodes} or {"<node>"})[0]
    return advice.recommendation(
        "Bring the NotReady nodes back (kubelet, container runtime, network) or add nodes.",
        command=f"kubectl describe node {node}  # the conditions say why the kubelet is not Ready",
        validation=validation,
    )


def check_taints(case: Case) -> str:
    """Which nodes carry a taint the pod does not tolerate, and which toleration is missing."""
    inv = case.investigation
    raw = case.spec.get("tolerations")
    tolerations: list[Any] = raw if isinstance(raw, list) else []
    blocking = {name_of(n): found for n in case.nodes if (found := untolerated(n, tolerations))}
    case.tainted = set(blocking)
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
    own = [
        t
        for t in tolerations
        if isinstance(t, dict) and str(t.get("key")) not in _DEFAULT_TOLERATIONS
    ]
    listed = (
        ", ".join(_toleration_text(t) for t in own) or "only the defaults (not-ready, unreachable)"
    )
    inv.add_evidence(EvidenceSource.POD_SPEC, f"Pod tolerations: {listed}")
    taints = sorted(on_nodes, key=str)
    actionable = [
        t
        for t in taints
        if t.key not in DELIBERATE_TAINTS and not t.key.startswith(_SYSTEM_TAINT_PREFIX)
    ]
    deliberate = [t for t in taints if t.key in DELIBERATE_TAINTS]
    named = ", ".join(str(t) for t in taints)
    outcome = (
        f"{len(blocking)} of {len(case.nodes)} nodes carry taints the pod lacks tolerations for: "
    )
    outcome += f"{named}."
    if not actionable and not deliberate:
        return outcome + " They are node-condition taints, covered by the node check."
    needed = [toleration_for(t) for t in actionable]
    missing = ", ".join(_toleration_text(t) for t in needed) or "none to add (deliberate taints)"
    summary = (
        f"{len(blocking)} of {case.total_nodes} nodes carry taint(s) {named} that {_subject(case)} "
        f"does not tolerate; missing toleration(s): {missing}"
    )
    offered = _only_on_tainted(case, blocking)
    if offered:
        summary += f"; the pod requests {', '.join(offered)}, which only the tainted nodes offer"
    if actionable:
        rec, scope = _toleration_advice(case, needed, offered)
    else:
        workers = [n for n in case.nodes if name_of(n) not in blocking]
        command = (
            advice.capacity_command(workers, case.context.reader.cluster_name(), 1)
            if workers
            else "kubectl get nodes  # only control-plane nodes: add worker nodes (kubeadm join, "
            "or scale the worker node group)"
        )
        rec = advice.recommendation(
            f"The taint(s) {', '.join(str(t) for t in deliberate)} keep workloads off "
            "control-plane nodes on purpose: do not tolerate them; add worker nodes instead.",
            command=command,
            validation=advice.scheduled_validation(case.context),
        )
        scope = ChangeScope(frozenset({Touch.NODES}))
    case.findings[Category.PENDING_UNTOLERATED_TAINT] = Finding(
        Category.PENDING_UNTOLERATED_TAINT,
        summary,
        recommendation=rec,
        scope=scope,
        everywhere=len(blocking) == len(case.nodes),
    )
    return outcome + f" Missing toleration(s): {missing}."


def _toleration_advice(
    case: Case, needed: list[dict[str, str]], offered: list[str]
) -> tuple[Recommendation, ChangeScope]:
    """Append the missing tolerations to the template's (a strategic merge patch replaces the
    whole tolerations list: it has no merge key)."""
    ctx = case.context
    template = pod_template(ctx.workload) if ctx.target.kind != "Pod" else case.spec
    existing = [t for t in as_list(template.get("tolerations")) if isinstance(t, dict)]
    patch = advice.template_patch(ctx.target, {"tolerations": existing + needed}, pod_ok=True)
    if offered:
        why = (
            f"the pod requests {', '.join(offered)}, which only those nodes offer, so the "
            "toleration is what is missing"
        )
    else:
        why = (
            "the taint reserves those nodes: add it only if the workload is meant to run "
            "there, otherwise give it untainted nodes"
        )
    listed = ", ".join(_toleration_text(t) for t in needed)
    rec = advice.recommendation(
        f"Add the toleration(s) {listed} to {_subject(case)}: {why}.",
        patch=patch,
        command=None if patch else advice.not_patchable(ctx.target),
        rollback=advice.patch_command(ctx.target, {"tolerations": existing}) if patch else None,
        validation=advice.scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))


def _toleration_text(toleration: Mapping[str, Any]) -> str:
    key = str(toleration.get("key") or "*")
    value = f"={toleration['value']}" if toleration.get("value") else ""
    exists = " Exists" if toleration.get("operator") == "Exists" else ""
    effect = f":{toleration['effect']}" if toleration.get("effect") else ""
    return f"{key}{value}{exists}{effect}"


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


def check_placement(case: Case) -> str:
    """Does any node carry the labels the pod's nodeSelector / required node affinity ask for?"""
    inv = case.investigation
    placement = placement_of(case.spec)
    if placement.empty:
        return "The pod asks for no node labels (no nodeSelector, no required node affinity)."
    asked = "; ".join(str(r) for r in placement.asked())
    inv.add_evidence(EvidenceSource.POD_SPEC, f"Pod asks for node labels: {asked}")
    matching = [n for n in case.nodes if placement.matches(n)]
    case.mismatched = {name_of(n) for n in case.nodes} - {name_of(n) for n in matching}
    if placement.pinned_by_name:
        inv.add_evidence(
            EvidenceSource.POD_SPEC,
            "The pod is pinned to one node by name (a DaemonSet pod): that every other node "
            "does not match its affinity is expected",
        )
    if matching or not case.nodes:
        names = _names([name_of(n) for n in matching])
        if case.mismatched and not placement.pinned_by_name:
            # Only an alternative: the nodes that match are where the pod is meant to run.
            case.findings[Category.PENDING_NODE_SELECTOR_MISMATCH] = Finding(
                Category.PENDING_NODE_SELECTOR_MISMATCH,
                f"{len(case.mismatched)} node(s) ({_names(case.mismatched)}) lack the labels "
                f"{_subject(case)} asks for ({asked}); {len(matching)} have them ({names})",
                recommendation=advice.recommendation(
                    "Nothing to change for these nodes: the pod is not meant to run there.",
                    validation=advice.scheduled_validation(case.context),
                ),
                everywhere=False,
            )
        return f"{len(matching)} of {len(case.nodes)} nodes match the pod's labels ({names})."
    unmet = [r for r in placement.asked() if not any(r.matches(n) for n in case.nodes)]
    unmet = unmet or placement.asked()
    nearest = {str(r): nearest_labels(r, case.nodes) for r in unmet}
    for requirement, labels in nearest.items():
        inv.add_evidence(
            EvidenceSource.NODE,
            f"No node has {requirement}; nearest existing labels: "
            + (", ".join(labels) or "none similar"),
        )
    closest = ", ".join(nearest[str(unmet[0])][:2]) or "none"
    summary = (
        f"No node matches {_subject(case)}'s node selector/affinity: none of the "
        f"{len(case.nodes)} nodes has {', '.join(str(r) for r in unmet)}; "
        f"nearest existing: {closest}"
    )
    rec, scope = _placement_advice(case, unmet[0].key, str(unmet[0]))
    case.findings[Category.PENDING_NODE_SELECTOR_MISMATCH] = Finding(
        Category.PENDING_NODE_SELECTOR_MISMATCH, summary, recommendation=rec, scope=scope
    )
    listed = "; ".join(f"{r} (nearest: {', '.join(nearest[str(r)][:2]) or 'none'})" for r in unmet)
    return f"No node matches: {listed}."


def _placement_advice(case: Case, key: str, wanted: str) -> tuple[Recommendation, ChangeScope]:
    """Patch the selector to the closest existing label, or else label the intended nodes."""
    ctx = case.context
    fix = corrected_placement(case.spec, placement_of(case.spec), case.nodes)
    if fix is None:
        rec = advice.recommendation(
            f"Either label the nodes meant for {_subject(case)} with {wanted}, or change its node "
            "selector/affinity to labels that exist.",
            command=f"kubectl get nodes -L {key}  # then: kubectl label node <node> {wanted}",
            rollback=f"kubectl label node <node> {key}-",
            validation=advice.scheduled_validation(ctx),
        )
        return rec, ChangeScope(frozenset({Touch.NODES, Touch.SCHEDULING}))
    fragment, changes = fix
    patch = advice.template_patch(ctx.target, fragment)
    template = pod_template(ctx.workload) if ctx.target.kind != "Pod" else case.spec
    original = {k: template[k] for k in fragment if template.get(k) is not None}
    rec = advice.recommendation(
        f"Point {_subject(case)} at labels that exist: {'; '.join(changes)} (the closest existing "
        "value; check it is the intended node pool).",
        patch=patch,
        command=None if patch else advice.not_patchable(ctx.target),
        rollback=advice.patch_command(ctx.target, original) if patch and original else None,
        validation=advice.scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))
