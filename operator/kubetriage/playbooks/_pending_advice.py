"""Recommendations of the Pending playbook: patches against the workload's pod template, and the
kubectl / cloud CLI commands for what a patch cannot do (nodes, claims, ConfigMaps).

Every text built here from cluster names passes through `redact`; a patch whose content
redaction would change is dropped rather than emitted with a secret or emitted broken.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

from kubetriage.k8s.access import KubeObject
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Patch, Recommendation
from kubetriage.playbooks._pending_placement import node_labels
from kubetriage.playbooks.base import Context, strategic_patch
from kubetriage.redact import redact

# Kinds whose pod template may be patched; a Job's template is immutable and a Pod's spec too
# (except for added tolerations).
_TEMPLATE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
_LIMIT = 2048
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


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = redact(text)
    return text if len(text) <= _LIMIT else text[: _LIMIT - 1] + "…"


def recommendation(
    summary: str,
    *,
    patch: Patch | None = None,
    command: str | None = None,
    rollback: str | None = None,
    validation: str | None = None,
) -> Recommendation:
    """A Recommendation with every text redacted and bounded."""
    text = redact(summary)
    return Recommendation(
        summary=text if len(text) <= 1024 else text[:1023] + "…",
        patch=patch,
        command=_clip(command),
        rollback=_clip(rollback),
        validation=_clip(validation),
    )


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
    spec = (context.workload or {}).get("spec")
    selector = spec.get("selector") if isinstance(spec, dict) else None
    labels = selector.get("matchLabels") if isinstance(selector, dict) else None
    if target.kind == "Pod" or not isinstance(labels, dict) or not labels:
        names = " ".join(
            sorted(str((p.get("metadata") or {}).get("name")) for p in context.pods)[:5]
        )
        return f"kubectl get pods -n {target.namespace} {names or target.name} -o wide"
    query = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
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
        pools = Counter(node_labels(n)[label] for n in nodes if label in node_labels(n))
        if pools:
            pool, size = pools.most_common(1)[0]
            command = template.format(cluster=cluster, pool=pool, nodes=size + extra_nodes)
            return (
                f"{command}  # node pool {pool}: {size} -> {size + extra_nodes} nodes; "
                "with the cluster autoscaler, raise the pool's maximum instead"
            )
    karpenter = Counter(
        node_labels(n)["karpenter.sh/nodepool"]
        for n in nodes
        if "karpenter.sh/nodepool" in node_labels(n)
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
