"""How the Pending playbook advises: patches against the workload's pod template, and the
kubectl / cloud CLI commands for what a patch cannot do (nodes, claims, ConfigMaps), each with
the ChangeScope it touches.

Every text goes through `base.recommendation`, which redacts and bounds it; a patch whose
content redaction would change is dropped rather than emitted with a secret or emitted broken.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from kubetriage.k8s.access import KubeObject, as_dict, dicts, labels_of, name_of, pod_template
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import floor_quantity, format_amount, quantities
from kubetriage.k8s.resources import container_requests, pod_requests
from kubetriage.k8s.scheduling import (
    Taint,
    corrected_node_affinity,
    required_node_affinity,
    toleration_text,
)
from kubetriage.k8s.selectors import match_labels_string
from kubetriage.k8s.volumes import VolumeSource, claims_of
from kubetriage.models import Category, Patch, Recommendation
from kubetriage.playbooks.base import Context, recommendation, strategic_patch
from kubetriage.playbooks.pending.messages import MountFailure
from kubetriage.playbooks.pending.reads import (
    CORE_RESOURCES,
    KIND_NAMES,
    Case,
    ClaimState,
    earlier_reference,
)
from kubetriage.policy import ChangeScope, Touch

if TYPE_CHECKING:
    # decide asks advise for the generic recommendation; advise only reads Shortfall's fields.
    from kubetriage.playbooks.pending.decide import Shortfall

# A recommendation and what it touches; with the obstacle's summary when the advice says it.
Advice = tuple[Recommendation, ChangeScope]
SummarizedAdvice = tuple[str, Recommendation, ChangeScope]

# Kinds whose pod template may be patched; a Job's template is immutable and a Pod's spec too
# (except for added tolerations).
_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
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


# --- patches and commands ------------------------------------------------------------------------


def _body(target: WorkloadRef, fragment: dict[str, Any]) -> dict[str, Any]:
    if target.kind == "Pod":
        return {"spec": fragment}
    return {"spec": {"template": {"spec": fragment}}}


def template_patch(
    target: WorkloadRef, fragment: dict[str, Any], *, pod_ok: bool = False
) -> Patch | None:
    """A strategic merge patch of the pod template (or, with `pod_ok`, of a bare Pod's spec)."""
    if target.kind not in _TEMPLATE_KINDS and not (pod_ok and target.kind == "Pod"):
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


def capacity_command(nodes: list[KubeObject], cluster: str, extra_nodes: int) -> str:
    """The command that adds `extra_nodes` nodes like these (their managed node pool when the
    labels say which), or the generic instruction."""
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
    """Uncordon the cordoned nodes, or bring the NotReady ones back."""
    ctx = case.context
    scope = ChangeScope(frozenset({Touch.NODES}))
    validation = "kubectl get nodes shows schedulable Ready nodes; "
    validation += scheduled_validation(ctx)
    if case.cordoned:
        cordoned = " ".join(sorted(case.cordoned))
        rec = recommendation(
            summary="Uncordon the nodes once their maintenance is over, or add nodes.",
            command=f"kubectl uncordon {cordoned}  # first check no drain or upgrade still runs",
            rollback=f"kubectl cordon {cordoned}",
            validation=validation,
        )
        return rec, scope
    node = sorted(case.not_ready or {name_of(n) for n in case.nodes} or {"<node>"})[0]
    rec = recommendation(
        summary="Bring the NotReady nodes back (kubelet, container runtime, network) or add nodes.",
        command=f"kubectl describe node {node}  # the conditions say why the kubelet is not Ready",
        validation=validation,
    )
    return rec, scope


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


def not_meant_to_run_there_advice(context: Context) -> Advice:
    """Some nodes lack the labels the pod asks for, others have them: nothing to change."""
    rec = recommendation(
        summary="Nothing to change for these nodes: the pod is not meant to run there.",
        validation=scheduled_validation(context),
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
    command = capacity_command(pool, ctx.reader.cluster_name(), extra)
    text = f"Add capacity for {pending} pending pod(s): {extra} more node(s) like the current ones"
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


def zone_conflict_advice(case: Case, state: ClaimState, conflict: str) -> SummarizedAdvice:
    """The claim is bound to a volume no usable node can reach: nodes in its zone."""
    volume = state.volume_name or "<volume>"
    summary = (
        f"{case.pod_name} needs PersistentVolumeClaim {state.name}, bound to volume {volume}, "
        f"which no usable node can reach: {conflict}"
    )
    rec = recommendation(
        summary="Give the pod a node in the volume's zone (add nodes there), or restore the data "
        "into a volume in a zone that has nodes.",
        command=f"kubectl get pv {volume} -o jsonpath='{{.spec.nodeAffinity}}'  # its zone",
        validation=_claim_validation(case, state.name),
    )
    return summary, rec, ChangeScope(_CLAIM | {Touch.NODES})


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
