"""Which workload a pod belongs to, through its ownerReferences.

Reports are per workload: 40 crash-looping pods of one Deployment make one report. The chain is
Pod -> ReplicaSet -> Deployment, or Pod -> StatefulSet / DaemonSet / Job (-> CronJob is not
followed: the Job is what failed), or the bare Pod itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetriage.clients.kube import ClusterReader, KubeObject
from kubetriage.objects import as_dict, as_list, meta

_API_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "Pod": "v1",
}


@dataclass(frozen=True, order=True)
class WorkloadRef:
    """A top-level workload: what a report targets and is owned by."""

    namespace: str
    kind: str
    name: str
    api_version: str = "apps/v1"
    uid: str | None = None

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} -n {self.namespace}"


def controller_of(obj: KubeObject) -> dict[str, Any] | None:
    """The ownerReference marked `controller: true` (else the first one), or None."""
    refs = [r for r in as_list(meta(obj).get("ownerReferences")) if isinstance(r, dict)]
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def ref_of(obj: KubeObject, kind: str | None = None) -> WorkloadRef:
    """A WorkloadRef naming the object itself."""
    metadata = meta(obj)
    kind = kind or str(obj.get("kind") or "Pod")
    uid = metadata.get("uid")
    return WorkloadRef(
        namespace=str(metadata.get("namespace") or "default"),
        kind=kind,
        name=str(metadata.get("name") or ""),
        api_version=str(obj.get("apiVersion") or _API_VERSIONS.get(kind, "v1")),
        uid=uid if isinstance(uid, str) else None,
    )


def owning_workload(pod: KubeObject, reader: ClusterReader) -> WorkloadRef:
    """The top-level workload of a pod.

    When the ReplicaSet is not readable (aged out of a snapshot), the Deployment's name is the
    ReplicaSet's minus its `pod-template-hash` suffix, which is how the Deployment named it.
    """
    namespace = str(meta(pod).get("namespace") or "default")
    owner = controller_of(pod)
    if owner is None or not owner.get("kind") or not owner.get("name"):
        return ref_of(pod, "Pod")
    kind, name = str(owner["kind"]), str(owner["name"])
    if kind != "ReplicaSet":
        return WorkloadRef(
            namespace,
            kind,
            name,
            _API_VERSIONS.get(kind, str(owner.get("apiVersion") or "")),
            owner.get("uid"),
        )
    replica_set = reader.workload("ReplicaSet", namespace, name)
    rs_owner = controller_of(replica_set) if replica_set else None
    if rs_owner is not None and rs_owner.get("kind") == "Deployment":
        return WorkloadRef(
            namespace, "Deployment", str(rs_owner["name"]), "apps/v1", rs_owner.get("uid")
        )
    if replica_set is not None and rs_owner is None:
        return WorkloadRef(namespace, "ReplicaSet", name, "apps/v1", owner.get("uid"))
    template_hash = as_dict(meta(pod).get("labels")).get("pod-template-hash")
    if template_hash and name.endswith(f"-{template_hash}"):
        deployment = name[: -len(template_hash) - 1]
        found = reader.workload("Deployment", namespace, deployment)
        uid = meta(found).get("uid") if found else None
        return WorkloadRef(namespace, "Deployment", deployment, "apps/v1", uid)
    return WorkloadRef(namespace, "ReplicaSet", name, "apps/v1", owner.get("uid"))


def revision_of(replica_set: KubeObject) -> int | None:
    """The Deployment revision a ReplicaSet holds (`deployment.kubernetes.io/revision`)."""
    value = as_dict(meta(replica_set).get("annotations")).get("deployment.kubernetes.io/revision")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def replica_sets_of(deployment: WorkloadRef, reader: ClusterReader) -> list[KubeObject]:
    """The Deployment's ReplicaSets, newest revision first."""
    owned = [
        rs
        for rs in reader.workloads("ReplicaSet", deployment.namespace)
        if (controller_of(rs) or {}).get("kind") == "Deployment"
        and (controller_of(rs) or {}).get("name") == deployment.name
    ]
    return sorted(owned, key=lambda rs: revision_of(rs) or 0, reverse=True)
