"""How the Pending playbook advises: patches against the workload's pod template, and the
kubectl / cloud CLI commands for what a patch cannot do (nodes, claims, ConfigMaps), each with
the ChangeScope it touches.

Every text goes through `base.recommendation`, which redacts and bounds it; a patch whose
content redaction would change is dropped rather than emitted with a secret or emitted broken.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from kubetriage.k8s.access import KubeObject, as_dict, dicts, labels_of, name_of, pod_template
from kubetriage.k8s.owners import TEMPLATED_KINDS, WorkloadRef
from kubetriage.k8s.quantities import floor_quantity, format_amount, quantities
from kubetriage.k8s.resources import container_requests, pod_requests
from kubetriage.k8s.scheduling import (
    HostPort,
    PodAffinityTerm,
    RequiredNodeAffinity,
    SpreadConstraint,
    Taint,
    corrected_node_affinity,
    required_node_affinity,
    toleration_text,
)
from kubetriage.k8s.selectors import match_labels_string
from kubetriage.k8s.volumes import VolumeSource, claims_of
from kubetriage.models import Category, Patch, PatchTarget, PatchType, Recommendation
from kubetriage.playbooks.base import PATCH_LIMIT, Context, recommendation, strategic_patch
from kubetriage.playbooks.pending.messages import MountFailure
from kubetriage.playbooks.pending.reads import (
    CORE_RESOURCES,
    KIND_NAMES,
    Case,
    ClaimState,
    earlier_reference,
    listed,
    ready_state,
    why_unusable,
)
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

if TYPE_CHECKING:
    # decide asks advise for the generic recommendation; advise only reads Shortfall's fields.
    from kubetriage.playbooks.pending.constraints import PortHolder
    from kubetriage.playbooks.pending.decide import Shortfall

# A recommendation and what it touches; with the obstacle's summary when the advice says it.
Advice = tuple[Recommendation, ChangeScope]
SummarizedAdvice = tuple[str, Recommendation, ChangeScope]

# Kinds whose pod template may be patched; a Job's template is immutable and a Pod's spec too
# (except for added tolerations).
# Node-pool labels of the managed Kubernetes offerings, and how each scales a pool.
_POOLS = (
    ("cloud.google.com/gke-nodepool",
     "gcloud container clusters resize {cluster} --node-pool {pool} --num-nodes {nodes}"),
    ("eks.amazonaws.com/nodegroup",
     "eksctl scale nodegroup --cluster {cluster} --name {pool} --nodes {nodes}"),
    ("kubernetes.azure.com/agentpool",
     "az aks nodepool scale --cluster-name {cluster} --resource-group <resource-group> "
     "--name {pool} --node-count {nodes}"),
)  # fmt: skip
# Room left on the largest node for DaemonSets and system pods when a request must shrink to fit.
_HEADROOM = Decimal("0.9")
_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
_CLAIM = frozenset({Touch.PERSISTENT_VOLUME_CLAIM})
# What to do when the scheduler named a reason that no check could put numbers to.
_GENERIC: dict[Category, tuple[str, str, Touch]] = {
    Category.PENDING_NODE_SELECTOR_MISMATCH: (
        "Point the pod's node selector/affinity at labels nodes have, or label the nodes meant "
        "for it.",
        "kubectl get pod {pod} -n {ns} -o jsonpath='{{.spec.nodeSelector}} {{.spec.affinity}}'",
        Touch.SCHEDULING,
    ),
    Category.PENDING_TOPOLOGY_CONSTRAINT: (
        "Relax the pod's topology spread or pod (anti-)affinity rules, or add nodes in the "
        "domains they need.",
        "kubectl get pod {pod} -n {ns} -o jsonpath='{{.spec.topologySpreadConstraints}} "
        "{{.spec.affinity}}'",
        Touch.SCHEDULING,
    ),
    Category.PENDING_HOST_PORT_CONFLICT: (
        "Free the host port on a node, run fewer replicas than nodes, or drop the hostPort.",
        "kubectl get pods -A -o wide --field-selector spec.nodeName=<node>  # who holds the port",
        Touch.SCHEDULING,
    ),
    Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT: (
        "Give the pod a node where its volume can be used (its zone or node), or move the data.",
        "kubectl get pv -o custom-columns=NAME:.metadata.name,CLAIM:.spec.claimRef.name,"
        "AFFINITY:.spec.nodeAffinity",
        Touch.NODES,
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


# --- patches and commands ------------------------------------------------------------------------


def _body(target: WorkloadRef, fragment: dict[str, Any]) -> dict[str, Any]:
    if target.kind == "Pod":
        return {"spec": fragment}
    return {"spec": {"template": {"spec": fragment}}}


def template_patch(
    target: WorkloadRef, fragment: dict[str, Any], *, pod_ok: bool = False
) -> Patch | None:
    """A strategic merge patch of the pod template (or, with `pod_ok`, of a bare Pod's spec)."""
    if target.kind not in TEMPLATED_KINDS and not (pod_ok and target.kind == "Pod"):
        return None
    return strategic_patch(target, _body(target, fragment))


def patch_command(target: WorkloadRef, fragment: dict[str, Any]) -> str:
    """`kubectl patch` applying a pod-spec fragment to the workload (used for rollbacks)."""
    content = json.dumps(_body(target, fragment), separators=(",", ":"))
    where = f"{target.kind.lower()}/{target.name} -n {target.namespace}"
    return f"kubectl patch {where} --type strategic -p '{content}'"


def not_patchable(target: WorkloadRef) -> str:
    """Why no patch is offered for this kind, and what to do instead."""
    if target.kind == "Job":
        return (
            f"A Job's pod template cannot be changed: delete job/{target.name} -n "
            f"{target.namespace} and create it again with the change (or change its CronJob)."
        )
    return (
        f"The pod spec of {target} cannot be changed in place: recreate it with the change "
        f"(kubectl get {target.kind.lower()} {target.name} -n {target.namespace} -o yaml, edit, "
        "kubectl replace --force -f -)."
    )


def pods_query(context: Context) -> str:
    """`kubectl get pods` for the workload's pods."""
    target = context.target
    selector = as_dict(as_dict(context.workload).get("spec")).get("selector")
    query = None if target.kind == "Pod" else match_labels_string(selector)
    if query is None:
        names = " ".join(sorted(name_of(p) for p in context.pods)[:5])
        return f"kubectl get pods -n {target.namespace} {names or target.name} -o wide"
    return f"kubectl get pods -n {target.namespace} -l {query} -o wide"


def scheduled_validation(context: Context) -> str:
    """How to tell the pods were scheduled."""
    return (
        f"{pods_query(context)}: every pod leaves Pending and shows a NODE; "
        f"kubectl get events -n {context.namespace} --field-selector reason=FailedScheduling "
        "shows no new events for them."
    )


def running_validation(context: Context) -> str:
    """How to tell the pods started."""
    return (
        f"{pods_query(context)}: every pod leaves ContainerCreating and becomes Running and Ready."
    )


def capacity_command(
    nodes: list[KubeObject], cluster: str, extra_nodes: int, selector: str | None = None
) -> str:
    """The command that adds `extra_nodes` nodes like these (their managed node pool when the
    labels say which), or the generic instruction (for the nodes `selector` picks, if given)."""
    for label, template in _POOLS:
        pools = Counter(labels_of(n)[label] for n in nodes if label in labels_of(n))
        if pools:
            pool, size = pools.most_common(1)[0]
            command = template.format(cluster=cluster, pool=pool, nodes=size + extra_nodes)
            return (
                f"{command}  # node pool {pool}: {size} -> {size + extra_nodes} nodes; "
                "with the cluster autoscaler, raise the pool's maximum instead"
            )
    karpenter = Counter(
        labels_of(n)["karpenter.sh/nodepool"]
        for n in nodes
        if "karpenter.sh/nodepool" in labels_of(n)
    )
    if karpenter:
        pool = karpenter.most_common(1)[0][0]
        return (
            f"kubectl get nodepool {pool} -o yaml  # Karpenter: raise spec.limits or widen the "
            f"instance requirements so it can add {extra_nodes} node(s)"
        )
    if not nodes:
        return (
            "kubectl get nodes  # none registered: scale the node group up from zero, or find "
            "why nodes do not join; with the cluster autoscaler: kubectl -n kube-system get "
            "configmap cluster-autoscaler-status -o yaml"
        )
    if selector:
        return (
            f"kubectl get nodes -l {selector} -o wide  # add {extra_nodes} node(s) like these "
            "to the pool (or raise the cluster autoscaler's maximum for its node group)"
        )
    return (
        f"kubectl get nodes -o wide  # add {extra_nodes} node(s) of this size to the cluster "
        "(or raise the cluster autoscaler's maximum for the node group)"
    )


def nodes_needed(pending_pods: int, per_node: int) -> int:
    """Nodes to add so that `pending_pods` pods fit, `per_node` of them on each new node."""
    return max(1, math.ceil(pending_pods / per_node)) if per_node > 0 else max(1, pending_pods)


def generic_advice(case: Case, category: Category) -> Advice:
    """What to do about a reason only the scheduler's words describe."""
    ctx = case.context
    what, command, touch = _GENERIC.get(category, _GENERIC_CAPACITY)
    rec = recommendation(
        summary=what,
        command=command.format(pod=case.pod_name, ns=ctx.namespace),
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({touch}))


# --- nodes ---------------------------------------------------------------------------------------


def no_nodes_advice(context: Context) -> Advice:
    """The cluster has no Node objects: add nodes."""
    rec = recommendation(
        summary="Add nodes: the cluster has none (a node group scaled to zero, nodes that never "
        "registered, or a cluster autoscaler that cannot add any).",
        command=capacity_command([], context.reader.cluster_name(), 1),
        rollback="Scale the node group back down once the workload no longer needs it.",
        validation="kubectl get nodes shows Ready nodes; " + scheduled_validation(context),
    )
    return rec, ChangeScope(frozenset({Touch.NODES}))


def no_usable_nodes_advice(case: Case) -> Advice:
    """Uncordon the cordoned nodes and bring the NotReady ones back, saying what their Ready
    condition reports: the nodes are there, nothing about capacity or tolerations."""
    ctx = case.context
    scope = ChangeScope(frozenset({Touch.NODES}))
    validation = "kubectl get nodes shows them Ready and schedulable; " + scheduled_validation(ctx)
    parts: list[str] = []
    commands: list[str] = []
    rollback = None
    if case.cordoned:
        cordoned = " ".join(sorted(case.cordoned))
        parts.append(f"Uncordon {', '.join(sorted(case.cordoned))} once their maintenance is over")
        commands.append(
            f"kubectl uncordon {cordoned}  # first check no drain or upgrade still runs"
        )
        rollback = f"kubectl cordon {cordoned}"
    if case.not_ready:
        groups: dict[str, list[str]] = {}
        for name in sorted(case.not_ready):
            groups.setdefault(ready_state(case.node(name)), []).append(name)
        for state, nodes in groups.items():
            parts.append(f"bring back {', '.join(nodes)} ({state}): {_not_ready_hint(state)}")
            first = nodes[0]
            if _CNI.search(state):
                commands.append(
                    "kubectl get pods -n kube-system -o wide --field-selector "
                    f"spec.nodeName={first}"
                    "  # the CNI plugin's pod on that node, then its logs"
                )
            commands.append(f"kubectl describe node {first}  # {state}")
    if not parts:
        parts.append("Find why the scheduler finds no node available")
        commands.append("kubectl get nodes -o wide")
    summary = "; ".join(parts)
    rec = recommendation(
        summary=summary[0].upper() + summary[1:] + ".",
        command="; ".join(commands),
        rollback=rollback,
        validation=validation,
    )
    return rec, scope


_CNI = re.compile(r"cni|NetworkPluginNotReady|network plugin", re.I)
# What a NotReady node's Ready condition says, and where an engineer looks next.
_NOT_READY_HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_CNI, "the network plugin (CNI) is not ready on the node: check the CNI DaemonSet's pod "
     "there (kube-system) and its logs"),
    (re.compile(r"stopped posting node status|never posted node status", re.I),
     "its kubelet stopped posting status: check that the machine is up and its kubelet runs "
     "(systemctl status kubelet), or replace the node"),
    (re.compile(r"PLEG is not healthy|container runtime is down|runtime not ready", re.I),
     "the container runtime does not answer the kubelet: check containerd/CRI-O on the node"),
)  # fmt: skip


def _not_ready_hint(state: str) -> str:
    return next(
        (hint for pattern, hint in _NOT_READY_HINTS if pattern.search(state)),
        "its Ready condition says why; the kubelet's log on the node says more",
    )


# --- taints --------------------------------------------------------------------------------------


def toleration_advice(case: Case, needed: list[dict[str, str]], offered: list[str]) -> Advice:
    """Append the missing tolerations to the template's (a strategic merge patch replaces the
    whole tolerations list: it has no merge key)."""
    ctx = case.context
    template = pod_template(ctx.workload) if ctx.target.kind != "Pod" else case.spec
    existing = dicts(template.get("tolerations"))
    patch = template_patch(ctx.target, {"tolerations": existing + needed}, pod_ok=True)
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
    listed = ", ".join(toleration_text(t) for t in needed)
    rec = recommendation(
        summary=f"Add the toleration(s) {listed} to {case.subject}: {why}.",
        patch=patch,
        command=None if patch else not_patchable(ctx.target),
        rollback=patch_command(ctx.target, {"tolerations": existing}) if patch else None,
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))


def control_plane_advice(case: Case, deliberate: list[Taint], tainted: set[str]) -> Advice:
    """Only control-plane taints block: add worker nodes, never tolerate them."""
    workers = [n for n in case.nodes if name_of(n) not in tainted]
    command = (
        capacity_command(workers, case.context.reader.cluster_name(), 1)
        if workers
        else "kubectl get nodes  # only control-plane nodes: add worker nodes (kubeadm join, "
        "or scale the worker node group)"
    )
    rec = recommendation(
        summary=f"The taint(s) {', '.join(str(t) for t in deliberate)} keep workloads off "
        "control-plane nodes on purpose: do not tolerate them; add worker nodes instead.",
        command=command,
        validation=scheduled_validation(case.context),
    )
    return rec, ChangeScope(frozenset({Touch.NODES}))


# --- node selector and affinity ------------------------------------------------------------------


def not_meant_to_run_there_advice(case: Case) -> Advice:
    """Some nodes lack the labels the pod asks for, others have them: those others are its pool,
    and what keeps it off them is the question (never a reason to change the other nodes)."""
    pool = ", ".join(case.pool) or "the matching nodes"
    rec = recommendation(
        summary=f"{case.subject} may run only on the nodes it selects ({case.pool_labels}: "
        f"{pool}); the other nodes were never candidates. Look at what keeps it off those.",
        command=f"kubectl describe nodes {' '.join(case.pool[:6])}".rstrip(),
        validation=scheduled_validation(case.context),
    )
    return rec, ChangeScope()


def placement_advice(case: Case, key: str, wanted: str) -> Advice:
    """Patch the selector to the closest existing label, or else label the intended nodes."""
    ctx = case.context
    fix = corrected_node_affinity(case.spec, required_node_affinity(case.spec), case.nodes)
    if fix is None:
        rec = recommendation(
            summary=f"Either label the nodes meant for {case.subject} with {wanted}, or change "
            "its node selector/affinity to labels that exist.",
            command=f"kubectl get nodes -L {key}  # then: kubectl label node <node> {wanted}",
            rollback=f"kubectl label node <node> {key}-",
            validation=scheduled_validation(ctx),
        )
        return rec, ChangeScope(frozenset({Touch.NODES, Touch.SCHEDULING}))
    fragment, changes = fix
    patch = template_patch(ctx.target, fragment)
    template = pod_template(ctx.workload) if ctx.target.kind != "Pod" else case.spec
    original = {k: template[k] for k in fragment if template.get(k) is not None}
    rec = recommendation(
        summary=f"Point {case.subject} at labels that exist: {'; '.join(changes)} (the closest "
        "existing value; check it is the intended node pool).",
        patch=patch,
        command=None if patch else not_patchable(ctx.target),
        rollback=patch_command(ctx.target, original) if patch and original else None,
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))


# --- capacity ------------------------------------------------------------------------------------


def lowered_requests(
    pod_spec: dict[str, Any], resource: str, target: Decimal
) -> tuple[dict[str, dict[str, str]], Decimal] | None:
    """New requests per container (by name) that bring the pod's request of `resource` down to
    `target`, scaling every container that asks for it alike; and the factor applied.
    None when the pod does not request it or the target is not below it."""
    current = pod_requests(pod_spec).get(resource)
    overhead = quantities(pod_spec.get("overhead")).get(resource, Decimal(0))
    if not current or target <= overhead or target >= current:
        return None
    factor = (target - overhead) / (current - overhead)
    changes: dict[str, dict[str, str]] = {}
    for field_name in ("initContainers", "containers"):
        for container in dicts(pod_spec.get(field_name)):
            if not container.get("name"):
                continue
            value = container_requests(container).get(resource)
            if value:
                changes[str(container["name"])] = {
                    "field": field_name,
                    "old": format_amount(resource, value),
                    "new": floor_quantity(resource, value * factor),
                }
    return (changes, factor) if changes else None


@dataclass(frozen=True)
class _Lowering:
    """A patch fragment lowering one resource's requests, its reverse, and the change in %."""

    new: dict[str, object]
    old: dict[str, object]
    percent: float


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


def capacity_advice(case: Case, full: list[Shortfall]) -> Advice:
    """Add nodes (the command), or lower the tightest request to the room there is (the patch)."""
    ctx = case.context
    pending = case.unscheduled_count()
    per_node = min(
        (int((s.largest / s.request).to_integral_value(ROUND_FLOOR)) for s in full), default=1
    )
    extra = nodes_needed(pending, per_node)
    pool = [n for n in case.nodes if name_of(n) not in case.ruled_out] or case.nodes
    selector = _selector_arg(case.pool_labels) if case.pool_full else None
    command = capacity_command(pool, ctx.reader.cluster_name(), extra, selector)
    text = f"Add capacity for {pending} pending pod(s): {extra} more node(s) like the current ones"
    if case.pool_full:
        text = (
            f"Add capacity to the nodes {case.subject} selects ({case.pool_labels}): {extra} more "
            f"node(s) like them for {pending} pending pod(s)"
        )
    if required_node_affinity(case.spec).pinned_by_name and pool:
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
        rec = recommendation(
            summary=text + ".",
            command=command,
            rollback="Scale the node pool back down when the extra capacity is no longer needed.",
            validation=scheduled_validation(ctx),
        )
        return rec, ChangeScope(frozenset({Touch.NODES}))
    patch = template_patch(ctx.target, plan.new)
    before, after = (format_amount(tight.resource, v) for v in (tight.request, tight.roomiest))
    text += (
        f"; or lower the {tight.resource} request from {before} to {after} so a pod fits the "
        f"room left on {tight.roomiest_node} (only if the workload runs well with less)"
    )
    rec = recommendation(
        summary=text + ".",
        patch=patch,
        command=command,
        rollback=patch_command(ctx.target, plan.old) if patch else None,
        validation=scheduled_validation(ctx),
    )
    touches = {Touch.NODES, Touch.RESOURCES} if patch else {Touch.NODES}
    return rec, ChangeScope(frozenset(touches), plan.percent if patch else None)


def _selector_arg(asked: str) -> str | None:
    """`pool=batch; zone In (a, b)` as a `kubectl -l` argument, when every part is `k=v`."""
    parts = [p.strip() for p in asked.split(";") if p.strip()]
    if parts and all(re.fullmatch(r"[^=\s]+=[^=\s]*", p) for p in parts):
        return ",".join(parts)
    return None


def exceeds_advice(case: Case, never: list[Shortfall]) -> Advice:
    """The request is above every node's allocatable: lower it to what the largest node holds,
    or add nodes large enough."""
    ctx = case.context
    first = never[0]

    def show(value: Decimal) -> str:
        return format_amount(first.resource, value)

    extended = not first.resource.startswith(CORE_RESOURCES)
    target = first.largest if extended else first.largest * _HEADROOM
    plan = _lowering(case, first, target) if target > 0 else None
    need = f"nodes with at least {show(first.request)} of allocatable {first.resource}"
    if plan is None:
        rec = recommendation(
            summary=f"No node offers {show(first.request)} of {first.resource}: add {need} (a "
            "larger instance type or a dedicated node pool), or lower the request.",
            command=f"kubectl get nodes -L node.kubernetes.io/instance-type  # add a node pool "
            f"whose instance type has at least {show(first.request)} allocatable {first.resource}",
            validation=scheduled_validation(ctx),
        )
        return rec, ChangeScope(frozenset({Touch.NODES}))
    patch = template_patch(ctx.target, plan.new)
    headroom = "" if extended else ", keeping 10% for DaemonSets and system pods"
    rec = recommendation(
        summary=f"Lower the {first.resource} request from {show(first.request)} to "
        f"{show(target)}, what the largest node ({first.largest_node}, {show(first.largest)} "
        f"allocatable) can hold{headroom}; only if the workload can run with that. If it really "
        f"needs {show(first.request)}, add {need} instead.",
        patch=patch,
        command=None if patch else not_patchable(ctx.target),
        rollback=patch_command(ctx.target, plan.old) if patch else None,
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.RESOURCES}), plan.percent)


# --- claims --------------------------------------------------------------------------------------


def _claim_validation(case: Case, claim: str) -> str:
    ctx = case.context
    return f"kubectl get pvc {claim} -n {ctx.namespace} shows Bound; then " + scheduled_validation(
        ctx
    )


def unbound_advice(case: Case, state: ClaimState) -> SummarizedAdvice:
    """Why a claim is missing or unbound, and the commands that fix that case."""
    ns, claim = case.context.namespace, state.name
    known = ", ".join(state.known_classes) or "none"
    phase = state.phase or "not Bound"
    size = state.size or "its size"
    validation = _claim_validation(case, claim)
    if not state.exists:
        summary = (
            f"{case.pod_name} mounts PersistentVolumeClaim {claim} (volume {state.volume}), "
            f"which does not exist in namespace {ns}"
        )
        rec = recommendation(
            summary=f"Create PersistentVolumeClaim {claim} in {ns}, or point volume "
            f"{state.volume} at the claim that holds the data.",
            command=f"kubectl get pvc -n {ns}  # then create {claim}, or fix the claimName",
            rollback=f"kubectl delete pvc {claim} -n {ns}  # only a claim created by this fix",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.VOLUMES})
    if state.effective_class and state.class_exists is False:
        summary = (
            f"PersistentVolumeClaim {claim} is {phase}: it asks for StorageClass "
            f"{state.effective_class}, which does not exist (existing: {known})"
        )
        rec = recommendation(
            summary=f"Recreate claim {claim} with an existing StorageClass ({known}): "
            "storageClassName cannot be changed, and an unbound claim holds no data. Or create "
            f"StorageClass {state.effective_class}.",
            command=f"kubectl get pvc {claim} -n {ns} -o yaml > {claim}.yaml  # set "
            f"spec.storageClassName, then: kubectl replace --force -f {claim}.yaml",
            rollback=f"kubectl replace --force -f {claim}.yaml  # the saved original",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    if state.requested_class is None and state.default_class is None:
        summary = (
            f"PersistentVolumeClaim {claim} is {phase}: it names no StorageClass and the cluster "
            f"has no default StorageClass (existing: {known}), so nothing provisions a volume"
        )
        pick = state.known_classes[0] if state.known_classes else "<class>"
        annotate = json.dumps({"metadata": {"annotations": {_DEFAULT_CLASS: "true"}}})
        command = (
            f"kubectl patch storageclass {pick} -p '{annotate}'  # since Kubernetes 1.28 the "
            f"pending claim then gets that class; or recreate {claim} with storageClassName"
        )
        if not state.known_classes:
            command = (
                "kubectl get storageclass  # none: install a provisioner with a default "
                f"StorageClass, or create a PersistentVolume matching {claim} ({size})"
            )
        rec = recommendation(
            summary=f"Give claim {claim} a StorageClass: mark an existing class default, "
            "recreate the claim with storageClassName, or provide a matching PersistentVolume.",
            command=command,
            rollback=f"kubectl annotate storageclass {pick} {_DEFAULT_CLASS}-",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    if state.requested_class == "":
        summary = (
            f'PersistentVolumeClaim {claim} is {phase}: storageClassName "" binds only to a '
            "pre-created PersistentVolume, and none matches it"
        )
        rec = recommendation(
            summary=f"Create a PersistentVolume matching {claim} ({size}, its access modes), or "
            "recreate the claim with a StorageClass that provisions volumes.",
            command=f"kubectl get pv  # an Available volume of {size} with matching access modes",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    provisioner = state.provisioner or "no provisioner"
    last = f"; last event: {state.events[0]}" if state.events else ""
    summary = (
        f"PersistentVolumeClaim {claim} is {phase}: StorageClass {state.effective_class} "
        f"({provisioner}) has not provisioned a volume{last}"
    )
    rec = recommendation(
        summary=f"Find why {provisioner} does not create the volume: its controller's logs, "
        "quotas, the class's parameters.",
        command=f"kubectl describe pvc {claim} -n {ns}  # then the provisioner's controller logs",
        validation=validation,
    )
    return summary, rec, ChangeScope(_CLAIM)


# --- volumes the kubelet cannot mount ------------------------------------------------------------


def unknown_wait_advice(case: Case) -> Advice:
    """No mount failure is visible: look at what else the kubelet waits for."""
    ctx = case.context
    rec = recommendation(
        summary="Look at what the kubelet waits for: the pod's events (sandbox/CNI, image, "
        "volumes).",
        command=f"kubectl describe pod {case.pod_name} -n {ctx.namespace}",
        validation=running_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.VOLUMES}))


def mount_advice(
    case: Case,
    missing: dict[tuple[str, str], VolumeSource | None],
    keys: list[tuple[VolumeSource, str]],
    failures: list[MountFailure],
    have_events: bool,
) -> SummarizedAdvice:
    """A missing ConfigMap/Secret, a missing key, or whatever the kubelet reports."""
    ctx = case.context
    ns = ctx.namespace
    scope = ChangeScope(frozenset({Touch.VOLUMES}))
    validation = (
        f"kubectl describe pod {case.pod_name} -n {ns} shows no new FailedMount; "
        + running_validation(ctx)
    )
    stuck = f"{case.pod_name} is stuck in ContainerCreating"
    if missing:
        return _missing_object_advice(case, missing, failures, have_events, validation)
    if keys:
        source, key = keys[0]
        summary = (
            f"{stuck}: volume {source.volume} asks for key {key}, not in ConfigMap {source.name}"
        )
        rec = recommendation(
            summary=f"Add key {key} to ConfigMap {source.name}, or drop it from volume "
            f"{source.volume}'s items.",
            command=f"kubectl edit configmap {source.name} -n {ns}",
            validation=validation,
        )
        return summary, rec, scope
    failure = failures[0]
    volume = failure.volume or ", ".join(failure.unmounted) or "?"
    summary = f"{stuck}: the kubelet cannot mount volume {volume}: {failure.text}"
    claims = [c for v, c in claims_of(case.pod) if v == failure.volume or v in failure.unmounted]
    command = f"kubectl describe pod {case.pod_name} -n {ns}"
    if claims:
        command += f"; kubectl describe pvc {claims[0]} -n {ns}; kubectl get volumeattachments"
        scope = ChangeScope(frozenset({Touch.VOLUMES, Touch.PERSISTENT_VOLUME_CLAIM}))
    rec = recommendation(
        summary="Fix what the kubelet reports for the volume: attachment, CSI driver, server, or "
        "a ConfigMap/Secret not yet synced to the node.",
        command=command,
        validation=validation,
    )
    return summary, rec, scope


def _missing_object_advice(
    case: Case,
    missing: dict[tuple[str, str], VolumeSource | None],
    failures: list[MountFailure],
    have_events: bool,
    validation: str,
) -> SummarizedAdvice:
    """Create the missing ConfigMap/Secret, or point the volume back at what an older revision
    mounted there when that object still exists."""
    ctx = case.context
    ns = ctx.namespace
    (kind, name), source = next(iter(missing.items()))
    volume = source.volume if source else next((f.volume for f in failures if f.volume), "?")
    kind_name = KIND_NAMES[kind]
    seen = f"FailedMount on {len(case.group)} pod(s)" if have_events else "its events expired"
    summary = (
        f"{case.pod_name} is stuck in ContainerCreating: volume {volume} needs {kind_name} "
        f"{name}, which does not exist in {ns} ({seen})"
    )
    if len(missing) > 1:
        summary += "; also missing: " + ", ".join(
            f"{KIND_NAMES[k]} {n}" for k, n in list(missing)[1:]
        )
    if kind == "configmap":
        create = f"kubectl create configmap {name} -n {ns} --from-file=<the files the app expects>"
    else:
        create = f"kubectl create secret generic {name} -n {ns} --from-file=<the key files>"
    scope = ChangeScope(frozenset({Touch.VOLUMES}))
    earlier = earlier_reference(ctx, volume, kind)
    if earlier is None:
        rec = recommendation(
            summary=f"Create {kind_name} {name} in {ns} with the content the workload expects, "
            f"or fix volume {volume} to reference the {kind_name} that exists "
            f"(kubectl get {kind}s -n {ns}).",
            command=create,
            rollback=f"kubectl delete {kind} {name} -n {ns}",
            validation=validation,
        )
        return summary, rec, scope

    def ref(target: str) -> dict[str, object]:
        if kind == "configmap":
            return {"name": volume, "configMap": {"name": target}}
        return {"name": volume, "secret": {"secretName": target}}

    # volumes merge by name in a strategic merge patch: only this volume's reference changes.
    patch = template_patch(ctx.target, {"volumes": [ref(earlier)]})
    rec = recommendation(
        summary=f"Point volume {volume} back at {kind_name} {earlier}, which the previous "
        f"revision mounted and which exists; or create {kind_name} {name}.",
        patch=patch,
        command=create,
        rollback=patch_command(ctx.target, {"volumes": [ref(name)]}),
        validation=validation,
    )
    return summary, rec, scope


# --- host ports ----------------------------------------------------------------------------------

_SCALABLE = frozenset({"Deployment", "StatefulSet", "ReplicaSet"})


def _scale(target: WorkloadRef, replicas: int) -> str:
    where = f"{target.kind.lower()}/{target.name} -n {target.namespace}"
    return f"kubectl scale {where} --replicas={replicas}"


def _unusable_to_bring_back(case: Case) -> str:
    """`Bring back kwok-node-3 (Ready=Unknown, ...)` / `Uncordon a, b` for nodes that would take
    a pod once usable again; "" when there are none."""
    parts = []
    if case.cordoned:
        parts.append(f"Uncordon {listed(case.cordoned)}")
    for node in sorted(case.not_ready)[:3]:
        parts.append(f"Bring back {node} ({ready_state(case.node(node))})")
    return "; ".join(parts)


def host_port_advice(
    case: Case, ports: list[HostPort], *, own_nodes: int, others: list[PortHolder], free: int
) -> Advice:
    """Replicas holding the port on every node: run as many as there are nodes (or add nodes,
    or drop the hostPort). Another workload holding it: another hostPort, or none."""
    ctx = case.context
    target = ctx.target
    text = ", ".join(str(p) for p in ports)
    validation = scheduled_validation(ctx)
    back = _unusable_to_bring_back(case)
    if others:
        holders = sorted({str(h.workload) for h in others})
        every = "every node" if not free and not own_nodes else "the nodes"
        fragment_new = [_port_change(p, None) for p in ports]
        fragment_old = [_port_change(p, p.port) for p in ports]
        patch = template_patch(target, {"containers": _by_container(fragment_new)})
        containers = ", ".join(sorted({p.container for p in ports}))
        rec = recommendation(
            summary=f"Host port {text} is taken on {every} by {', '.join(holders)}: give "
            f"{case.subject}'s container {containers} another hostPort, or none (reach it through "
            "a Service or the pod IP). The patch removes the hostPort: apply it only if nothing "
            "reaches the pod on its node's address.",
            patch=patch,
            command=None if patch else not_patchable(target),
            rollback=patch_command(target, {"containers": _by_container(fragment_old)})
            if patch
            else None,
            validation=validation,
        )
        return rec, ChangeScope(frozenset({Touch.SCHEDULING}))
    usable = own_nodes + free
    wanted = case.replicas()
    extra = max(wanted - usable, 1)
    summary = (
        f"Run at most {usable} replica(s) of {case.subject}: each node can bind host port "
        f"{text} once. To run {wanted}, add {extra} node(s), or drop the hostPort and reach the "
        "pods through a Service."
    )
    if back:
        summary = f"{back}, which would take one; or r{summary[1:]}"
    scalable = target.kind in _SCALABLE
    rec = recommendation(
        summary=summary,
        command=_scale(target, usable) if scalable else None,
        rollback=_scale(target, wanted) if scalable else None,
        validation=validation,
    )
    return rec, ChangeScope(frozenset({Touch.DEPLOY_STRATEGY, Touch.NODES}))


def _port_change(port: HostPort, host_port: int | None) -> tuple[str, dict[str, object]]:
    return port.container, {
        "containerPort": port.container_port or port.port,
        "hostPort": host_port,
    }


def _by_container(changes: list[tuple[str, dict[str, object]]]) -> list[dict[str, object]]:
    """`containers` entries (merged by name) carrying `ports` entries (merged by containerPort)."""
    grouped: dict[str, list[dict[str, object]]] = {}
    for container, port in changes:
        grouped.setdefault(container, []).append(port)
    return [{"name": name, "ports": ports} for name, ports in grouped.items()]


# --- the bound volumes' node affinity ------------------------------------------------------------


def volume_affinity_advice(
    case: Case, volume: KubeObject, affinity: RequiredNodeAffinity, matching: list[str]
) -> Advice:
    """No node where the volume can be used: add one there, or move the data. The only such
    nodes cordoned or NotReady: bring them back."""
    ctx = case.context
    pv = name_of(volume)
    validation = scheduled_validation(ctx)
    if matching:
        cordoned = [n for n in matching if n in case.cordoned]
        if cordoned:
            nodes = " ".join(cordoned)
            rec = recommendation(
                summary=f"Uncordon {', '.join(cordoned)} once its maintenance is over: it is the "
                f"only node where PersistentVolume {pv} can be used, so {case.pod_name} can run "
                "nowhere else.",
                command=f"kubectl uncordon {nodes}  # first check no drain or upgrade still runs",
                rollback=f"kubectl cordon {nodes}",
                validation=validation,
            )
            return rec, ChangeScope(frozenset({Touch.NODES}))
        node = matching[0]
        state = ready_state(case.node(node))
        rec = recommendation(
            summary=f"Bring back {node} ({state}): it is the only node where PersistentVolume "
            f"{pv} can be used. If it is gone for good, restore the data into a new claim on a "
            "node that is up.",
            command=f"kubectl describe node {node}  # {state}",
            validation=validation,
        )
        return rec, ChangeScope(frozenset({Touch.NODES}))
    first = affinity.asked()[0]
    where = str(first)
    present = sorted({labels_of(n)[first.key] for n in case.nodes if first.key in labels_of(n)})
    elsewhere = f" in {' or '.join(present)}" if present else ""
    rec = recommendation(
        summary=f"Give the volume a node: add a node in {where} (scale up the node group there, "
        "or let the cluster autoscaler create one); or move the data: snapshot PersistentVolume "
        f"{pv} and restore it into a new claim{elsewhere}, then point {case.subject} at it.",
        command=f"kubectl get nodes -L {first.key}  # no node has {where}: add one there; the "
        f"volume's affinity: kubectl get pv {pv} -o jsonpath='{{.spec.nodeAffinity}}'",
        rollback="Scale the node group back down once nothing needs the added node.",
        validation=validation,
    )
    return rec, ChangeScope(frozenset({Touch.NODES, Touch.PERSISTENT_VOLUME_CLAIM}))


# --- topology spread and inter-pod affinity ------------------------------------------------------


def _template(case: Case) -> dict[str, Any]:
    ctx = case.context
    return pod_template(ctx.workload) if ctx.target.kind != "Pod" else case.spec


def spread_advice(
    case: Case, constraint: SpreadConstraint, domain: str, nodes: list[str]
) -> Advice:
    """The domain the spread wants the next pod in has no usable node: bring it back (or add
    capacity there); or make the constraint soft until then."""
    ctx = case.context
    key = constraint.topology_key
    reasons = {why_unusable(case, n) for n in nodes}
    # A JSON patch by index (guarded by a test of the key): a strategic merge patch would have
    # to carry the merge key, `topologyKey`, which redaction takes for a secret's name.
    patch, rollback = _soften(case, constraint)
    if "cordoned" in reasons:
        cordoned = [n for n in nodes if n in case.cordoned]
        first = (
            f"Uncordon {', '.join(cordoned)}, the node(s) of {domain}, where the spread wants "
            "the next pod"
        )
        command = (
            f"kubectl uncordon {' '.join(cordoned)}  # first check no drain or upgrade still runs"
        )
    elif "NotReady" in reasons:
        down = [n for n in nodes if n in case.not_ready]
        state = ready_state(case.node(down[0]))
        first = f"Bring back {', '.join(down)} ({state}), the node(s) of {domain}"
        command = f"kubectl describe node {down[0]}"
    elif "full" in reasons:
        first = f"Add capacity in {key}={domain}: its node(s) ({listed(nodes)}) are full"
        command = capacity_command([case.node(n) for n in nodes], ctx.reader.cluster_name(), 1)
    else:
        why = " or ".join(sorted(reasons))
        first = f"Give {key}={domain} a node the pod may use (its node(s) are {why})"
        command = f"kubectl get nodes -L {key}"
    rec = recommendation(
        summary=f"{first}; or let the spread be soft (whenUnsatisfiable: ScheduleAnyway, the "
        f"patch) until {domain} can take pods again.",
        patch=patch,
        command=command,
        rollback=rollback,
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.NODES, Touch.SCHEDULING}))


def _soften(case: Case, constraint: SpreadConstraint) -> tuple[Patch | None, str | None]:
    """A JSON patch making one spread constraint ScheduleAnyway, and the command undoing it."""
    target = case.context.target
    if target.kind not in TEMPLATED_KINDS:
        return None, None
    base = f"{_spec_path(target)}/topologySpreadConstraints/{constraint.index}"
    guard = {"op": "test", "path": f"{base}/topologyKey", "value": constraint.topology_key}

    def ops(when: str) -> list[dict[str, str]]:
        return [guard, {"op": "replace", "path": f"{base}/whenUnsatisfiable", "value": when}]

    patch = json_patch(target, ops("ScheduleAnyway"))
    if patch is None:
        return None, None
    undo = json.dumps(ops(constraint.when_unsatisfiable), separators=(",", ":"))
    where = f"{target.kind.lower()}/{target.name} -n {target.namespace}"
    return patch, f"kubectl patch {where} --type json -p '{undo}'"


def _spec_path(target: WorkloadRef) -> str:
    return "/spec" if target.kind == "Pod" else "/spec/template/spec"


def json_patch(target: WorkloadRef, ops: list[dict[str, str]]) -> Patch | None:
    """A JSON patch (RFC 6902) of the target, or None when it cannot be shown as it is: as
    `base.strategic_patch`, too long for a report or carrying something redaction would change."""
    content = json.dumps(ops, separators=(",", ":"))
    if len(content) > PATCH_LIMIT or redact(content) != content:
        return None
    return Patch(
        type=PatchType.JSON,
        target=PatchTarget(
            api_version=target.api_version,
            kind=target.kind,
            name=target.name,
            namespace=target.namespace,
        ),
        content=content,
    )


def spread_label_advice(case: Case, constraint: SpreadConstraint, close: list[str]) -> Advice:
    """No node has the topology key: label the nodes, or key on a label they have."""
    key = constraint.topology_key
    nearest = close[0].split("=", 1)[0] if close else None
    other = f", or key the constraint on a label they have ({nearest})" if nearest else ""
    rec = recommendation(
        summary=f"Label every node with {key} (the domain each belongs to){other}: a node "
        "without the key is never a candidate for a pod that spreads on it.",
        command=f"kubectl get nodes -L {key}  # none has it: kubectl label node <node> "
        f"{key}=<value> on every node, or change topologyKey in {case.subject}",
        rollback=f"kubectl label node <node> {key}-",
        validation=scheduled_validation(case.context),
    )
    return rec, ChangeScope(frozenset({Touch.NODES, Touch.SCHEDULING}))


def anti_affinity_advice(case: Case, term: PodAffinityTerm, domains: int) -> Advice:
    """One replica per domain: run as many as there are domains, add domains, or (only if
    replicas may share one) make it preferred."""
    ctx = case.context
    target = ctx.target
    wanted = case.replicas()
    key = term.topology_key
    extra = max(wanted - domains, 1)
    more = (
        f"add {extra} node(s)"
        if key == "kubernetes.io/hostname"
        else f"add nodes in {extra} more {key} domain(s)"
    )
    scalable = target.kind in _SCALABLE
    rec = recommendation(
        summary=f"Run at most {domains} replica(s) of {case.subject} (one per {key}), or {more}; "
        "only if replicas may share a domain, make the anti-affinity preferred "
        "(preferredDuringSchedulingIgnoredDuringExecution) instead of required.",
        command=_scale(target, domains) if scalable else None,
        rollback=_scale(target, wanted) if scalable else None,
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.DEPLOY_STRATEGY, Touch.SCHEDULING}))


def pod_affinity_advice(case: Case, term: PodAffinityTerm, exist: bool) -> Advice:
    """The pods it must run beside are missing (or run where it cannot go)."""
    ctx = case.context
    selector = str(term.selector) if term.selector is not None else ""
    spaces = term.namespaces or (ctx.namespace,)
    if not exist:
        summary = (
            f"Deploy what {case.subject} must run beside (pods labelled {selector} in "
            f"{', '.join(spaces)}), or fix the affinity's selector to the labels those pods carry; "
            "make the affinity preferred only if the workload may run anywhere."
        )
    else:
        summary = (
            f"Make room for {case.subject} in the {term.topology_key} domains where the pods "
            f"labelled {selector} run, or make the affinity preferred instead of required."
        )
    rec = recommendation(
        summary=summary,
        command=f"kubectl get pods -n {spaces[0]} -l {selector} -o wide"
        + ("  # none: the affinity's target is missing" if not exist else ""),
        validation=scheduled_validation(ctx),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))


def existing_anti_affinity_advice(
    case: Case, found: list[tuple[KubeObject, PodAffinityTerm]]
) -> Advice:
    """Running pods' own anti-affinity selects this pod: their rule, or this pod's labels."""
    pod, term = found[0]
    namespace = str(as_dict(pod.get("metadata")).get("namespace") or "default")
    rec = recommendation(
        summary=f"The required anti-affinity of running pods ({namespace}/{name_of(pod)}: "
        f"{term.selector}, one per {term.topology_key}) selects {case.subject}'s labels: change "
        "that rule, or this workload's labels, so that they no longer exclude each other.",
        command=f"kubectl get pod {name_of(pod)} -n {namespace} -o "
        "jsonpath='{.spec.affinity.podAntiAffinity}'",
        validation=scheduled_validation(case.context),
    )
    return rec, ChangeScope(frozenset({Touch.SCHEDULING}))
