"""Which workload a pod belongs to, through its ownerReferences.

Reports are per workload: 40 crash-looping pods of one Deployment make one report. The chain is
Pod -> ReplicaSet -> Deployment, or Pod -> StatefulSet / DaemonSet / Job, or the bare Pod
itself. One resolver serves the operator (from the pod's own metadata, no API call) and the
diagnosis (which may read the ReplicaSet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetriage.k8s.access import KubeObject, as_dict, dicts, labels_of, meta, text

if TYPE_CHECKING:
    from kubetriage.clients.kube import ClusterReader

API_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "Pod": "v1",
}
TEMPLATE_HASH_LABEL = "pod-template-hash"
# The longest name an object may have (a DNS subdomain): an owner named longer is none.
MAX_NAME_LENGTH = 253
# kubectl's names of the workload kinds (singular, plural, short), as `kind/name` spells them.
_KIND_NAMES = {
    spelling: kind
    for kind, spellings in {
        "Deployment": ("deployment", "deployments", "deploy"),
        "ReplicaSet": ("replicaset", "replicasets", "rs"),
        "StatefulSet": ("statefulset", "statefulsets", "sts"),
        "DaemonSet": ("daemonset", "daemonsets", "ds"),
        "Job": ("job", "jobs"),
        "CronJob": ("cronjob", "cronjobs", "cj"),
        "Pod": ("pod", "pods", "po"),
    }.items()
    for spelling in spellings
}

# Kinds whose pod template a patch can change in place (a Job's and a bare Pod's cannot).
TEMPLATED_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
# Kinds `kubectl rollout undo` takes back to an earlier template.
UNDOABLE_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})


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

    @property
    def identity(self) -> WorkloadRef:
        """The same workload without its uid: pods resolved through a ReplicaSet that is gone
        may not know the Deployment's uid, and must still land on the same report."""
        return WorkloadRef(self.namespace, self.kind, self.name, self.api_version)

    def with_uid(self, uid: Any) -> WorkloadRef:
        """This reference with the uid filled in, when it had none and `uid` is one."""
        if self.uid is not None or not isinstance(uid, str) or not uid:
            return self
        return WorkloadRef(self.namespace, self.kind, self.name, self.api_version, uid)


def workload_kind(spelling: str) -> str:
    """The kind the API names a workload kind by, from any of kubectl's names for it
    (`deploy`, `deployments`, `Deployment`: `Deployment`); another kind as it is spelled."""
    return _KIND_NAMES.get(spelling.lower(), spelling)


def controller_of(obj: KubeObject | None) -> dict[str, Any] | None:
    """The ownerReference marked `controller: true` (else the first one), or None."""
    refs = dicts(meta(obj).get("ownerReferences"))
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
        api_version=str(obj.get("apiVersion") or API_VERSIONS.get(kind, "v1")),
        uid=uid if isinstance(uid, str) else None,
    )


def owning_workload(
    pod: KubeObject,
    reader: ClusterReader | None = None,
    *,
    known_uids: Mapping[tuple[str, str], str] | None = None,
) -> WorkloadRef:
    """The top-level workload of a pod.

    A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`, so the Deployment is
    known from the pod alone; with a `reader`, the ReplicaSet is read first, so that a
    ReplicaSet nobody owns is reported as itself. `known_uids` maps (namespace, Deployment) to
    the uid the caller has already seen.
    """
    namespace = str(meta(pod).get("namespace") or "default")
    owner = as_dict(controller_of(pod))
    kind, name = text(owner.get("kind")), _object_name(owner.get("name"))
    if not kind or not name:
        return ref_of(pod, "Pod")
    owner_uid = owner.get("uid") if isinstance(owner.get("uid"), str) else None
    if kind != "ReplicaSet":
        api_version = API_VERSIONS.get(kind, str(owner.get("apiVersion") or ""))
        return WorkloadRef(namespace, kind, name, api_version, owner_uid)
    if reader is not None:
        replica_set = reader.workload("ReplicaSet", namespace, name)
        rs_owner = controller_of(replica_set) if replica_set else None
        # An owner without a name names nothing: the ReplicaSet's own name still tells whose
        # it is, below.
        rs_owner_name = _object_name(as_dict(rs_owner).get("name"))
        if rs_owner is not None and rs_owner.get("kind") == "Deployment" and rs_owner_name:
            uid = rs_owner.get("uid") if isinstance(rs_owner.get("uid"), str) else None
            return WorkloadRef(namespace, "Deployment", rs_owner_name, "apps/v1", uid)
        if replica_set is not None and rs_owner is None:
            return WorkloadRef(namespace, "ReplicaSet", name, "apps/v1", owner_uid)
    deployment = deployment_of_replica_set(name, labels_of(pod).get(TEMPLATE_HASH_LABEL))
    if deployment is None:
        return WorkloadRef(namespace, "ReplicaSet", name, "apps/v1", owner_uid)
    uid = (known_uids or {}).get((namespace, deployment))
    if uid is None and reader is not None:
        found = meta(reader.workload("Deployment", namespace, deployment)).get("uid")
        uid = found if isinstance(found, str) else None
    return WorkloadRef(namespace, "Deployment", deployment, "apps/v1", uid)


def _object_name(value: Any) -> str:
    """The value when it can name an object (a string of 1 to 253 characters), else ""."""
    name = text(value)
    return name if len(name) <= MAX_NAME_LENGTH else ""


def deployment_of_replica_set(replica_set: str, template_hash: str | None) -> str | None:
    """The Deployment that named this ReplicaSet, from its `pod-template-hash` suffix."""
    if template_hash and replica_set.endswith(f"-{template_hash}"):
        return replica_set[: -len(template_hash) - 1]
    return None


def owned_by(obj: KubeObject, kind: str, name: str) -> bool:
    """Whether the object's controller is the named object of `kind`."""
    owner = as_dict(controller_of(obj))
    return owner.get("kind") == kind and owner.get("name") == name


def pods_of(reader: ClusterReader, target: WorkloadRef) -> list[KubeObject]:
    """The pods of a workload that still run or wait (not finished, not being deleted), found
    through their owners as `owning_workload` resolves them; a bare pod is its own workload."""
    found: list[KubeObject] = []
    for pod in reader.pods(target.namespace):
        phase = as_dict(pod.get("status")).get("phase")
        if phase in ("Succeeded", "Failed") or meta(pod).get("deletionTimestamp"):
            continue
        owner = owning_workload(pod, reader)
        if (owner.kind, owner.name) == (target.kind, target.name):
            found.append(pod)
    return found
