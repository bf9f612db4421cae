"""What the RolloutStuck runbook reads: the Deployment's revisions and their pods, the refusals
of pod creation, and the ResourceQuota that refused them.

Every reader goes through the tolerant `k8s` layer: a snapshot may hold anything, and one
broken ReplicaSet must not stop the diagnosis of the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    as_list,
    containers,
    dicts,
    name_of,
    pod_template,
)
from kubetriage.k8s.events import event_count, events_about, involved_name
from kubetriage.k8s.history import Revision, replica_sets_of
from kubetriage.k8s.owners import WorkloadRef, owned_by
from kubetriage.k8s.quantities import quantities
from kubetriage.k8s.resources import container_requests
from kubetriage.playbooks.base import Context

# The resources a pod's containers declare that a ResourceQuota counts per pod.
_QUOTA_RESOURCES = ("cpu", "memory", "ephemeral-storage")


@dataclass(frozen=True)
class Refusal:
    """A pod creation refused by admission: a FailedCreate event or a ReplicaFailure condition."""

    message: str
    replica_set: str  # "" when the Deployment's own condition says it
    count: int


def read_revisions(reader: ClusterReader, target: WorkloadRef) -> list[Revision]:
    """The Deployment's ReplicaSets with the pods each controls, newest revision first."""
    replica_sets = replica_sets_of(target, reader)
    if not replica_sets:
        return []
    pods = reader.pods(target.namespace)
    return [
        Revision(rs, [p for p in pods if owned_by(p, "ReplicaSet", name_of(rs))])
        for rs in replica_sets
    ]


def creation_refusals(
    reader: ClusterReader,
    namespace: str,
    replica_sets: set[str],
    newest: Revision | None,
    deployment: KubeObject | None,
) -> list[Refusal]:
    """The FailedCreate events of these ReplicaSets (newest first), then the ReplicaFailure
    conditions of the newest ReplicaSet and of the Deployment."""
    refusals = [
        Refusal(str(event.get("message") or ""), str(involved_name(event)), event_count(event))
        for event in events_about(reader, namespace, "ReplicaSet", replica_sets)
        if event.get("reason") == "FailedCreate"
    ]
    for holder, replica_set in (
        (newest.replica_set if newest else {}, newest.name if newest else ""),
        (deployment or {}, ""),
    ):
        for condition in dicts(as_dict(holder.get("status")).get("conditions")):
            if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                refusals.append(Refusal(str(condition.get("message") or ""), replica_set, 1))
    return refusals


def probe_failure(context: Context, revision: Revision) -> str:
    """The newest `Unhealthy` (probe failed) event of the revision's pods, as a suffix."""
    names = {name_of(p) for p in revision.pods}
    for event in events_about(context.reader, context.namespace, "Pod", names):
        if event.get("reason") == "Unhealthy":
            return f" ({str(event.get('message') or '')[:200]})"
    return ""


def ready_text(revision: Revision) -> str:
    """`3/3 ready`."""
    ready = revision.ready()
    replicas = as_dict(revision.replica_set.get("status")).get("replicas")
    wanted = as_dict(revision.replica_set.get("spec")).get("replicas")
    total = replicas if isinstance(replicas, int) else wanted
    return f"{'?' if ready is None else ready}/{total if isinstance(total, int) else '?'} ready"


def replica_counts(replica_set: KubeObject, deployment: KubeObject | None) -> tuple[int, int, int]:
    """(missing, current, desired) pods of the refused ReplicaSet (else of the Deployment)."""
    for obj in (replica_set, deployment or {}):
        wanted = as_dict(obj.get("spec")).get("replicas")
        have = as_dict(obj.get("status")).get("replicas")
        if isinstance(wanted, int) and isinstance(have, int | None):
            current = have or 0
            return max(1, wanted - current), current, wanted
    return 1, 0, 1


def first_container(replica_set: KubeObject | None) -> str | None:
    """The name of the first container of a ReplicaSet's pod template, None when unnamed."""
    first = next(iter(as_list(pod_template(replica_set).get("containers"))), None)
    return str(first.get("name")) if isinstance(first, dict) and first.get("name") else None


def read_quota(reader: ClusterReader, namespace: str, name: str) -> KubeObject | None:
    """The namespace's ResourceQuota of that name, None when it is not readable."""
    return next((q for q in reader.resource_quotas(namespace) if name_of(q) == name), None)


def quota_numbers(quota: KubeObject | None) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(used, hard) of a ResourceQuota, from its status (spec.hard when status is absent)."""
    if not quota:
        return {}, {}
    status, spec = as_dict(quota.get("status")), as_dict(quota.get("spec"))
    hard = status.get("hard") if isinstance(status.get("hard"), dict) else spec.get("hard")
    return quantities(status.get("used")), quantities(hard)


def per_pod(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """What one pod of this template counts against a quota, per quota resource name.

    Requests default to limits, as the apiserver defaults them; init containers count with the
    largest of them, since they run one at a time before the app containers."""
    totals: dict[str, Decimal] = {"pods": Decimal(1)}
    for kind in ("requests", "limits"):
        for resource in _QUOTA_RESOURCES:
            app = sum(
                (_amount(c, kind, resource) for c in containers(pod_spec, init=False)),
                Decimal(0),
            )
            init = max(
                (_amount(c, kind, resource) for c in containers(pod_spec, init=True)),
                default=Decimal(0),
            )
            value = max(app, init)
            if value:
                totals[f"{kind}.{resource}"] = value
                if kind == "requests":
                    totals[resource] = value
    return totals


def _amount(container: dict[str, Any], kind: str, resource: str) -> Decimal:
    if kind == "requests":
        declared = container_requests(container)
    else:
        declared = quantities(as_dict(container.get("resources")).get("limits"))
    return declared.get(resource, Decimal(0))
