"""What the Pending playbook reads: the pods under investigation and what the scheduler said
(`Case`, the investigation's working state, with the `Obstacle` each check leaves), the room
left on each node, and the storage behind a pod: its PersistentVolumeClaims and their
StorageClasses, and the ConfigMaps and Secrets its volumes reference.

Room is allocatable minus the requests of the pods bound to the node, as the scheduler's
NodeResourcesFit counts it; usage plays no part.

A claim without `storageClassName` gets the cluster's default class (the StorageClass annotated
`storageclass.kubernetes.io/is-default-class: "true"`); with `storageClassName: ""` it binds
only to a pre-created PersistentVolume. Either way an Immediate claim that nothing can provision
stays Pending, and the scheduler says `pod has unbound immediate PersistentVolumeClaims`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import (
    KubeObject,
    annotations_of,
    as_dict,
    condition,
    container_status,
    is_scheduled,
    meta,
    name_of,
    node_name,
    pod_template,
)
from kubetriage.k8s.events import event_count, events_about
from kubetriage.k8s.history import replica_sets_of
from kubetriage.k8s.quantities import quantities
from kubetriage.k8s.resources import add, pod_requests
from kubetriage.k8s.scheduling import NOT_READY_TAINTS, Taint, node_taints
from kubetriage.k8s.volumes import VolumeSource, object_sources
from kubetriage.models import Category, Recommendation
from kubetriage.playbooks.base import Context, Investigation
from kubetriage.playbooks.pending.messages import Blocker, Reason, SchedulerMessage
from kubetriage.policy import ChangeScope

# Resources every node reports; any other (nvidia.com/gpu) is an extended resource, which a
# node that does not list it has none of.
CORE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "hugepages-", "pods")
# How a person writes the kinds a VolumeSource names.
KIND_NAMES = {"configmap": "ConfigMap", "secret": "Secret"}
_DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


@dataclass
class Obstacle:
    """What one check concluded about one category. `corroborated` says whether the cluster's
    state confirms the obstacle (True), contradicts it (False), or cannot tell (None)."""

    category: Category
    summary: str
    corroborated: bool | None = True
    recommendation: Recommendation | None = None
    scope: ChangeScope = field(default_factory=ChangeScope)
    # A check's own floor on confidence, for facts that are certain whatever the message says
    # (a request above every node's allocatable, a claim that does not exist).
    certain: bool = False
    # Whether the obstacle alone keeps the pod off every node: only such an obstacle is worth
    # reporting when the scheduler did not name it (its first failing filter hid it).
    everywhere: bool = True


@dataclass
class Case:
    """The investigation's working state."""

    context: Context
    investigation: Investigation
    group: list[KubeObject] = field(default_factory=list)
    pod: KubeObject = field(default_factory=dict)
    scheduled: bool = False
    nodes: list[KubeObject] = field(default_factory=list)
    message: SchedulerMessage | None = None
    # Nodes each check found the pod cannot use, for inference when no message is left.
    cordoned: set[str] = field(default_factory=set)
    not_ready: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)
    mismatched: set[str] = field(default_factory=set)
    short: set[str] = field(default_factory=set)
    claim_blocked: bool = False
    # Nodes whose untolerated taints are the node lifecycle controller's (not-ready,
    # unreachable) or a pressure condition's: a TAINT reason without its taint (1.33+) is
    # split by these.
    condition_tainted: set[str] = field(default_factory=set)
    pressure_tainted: set[str] = field(default_factory=set)
    # Nodes the later filters rule out, for inference when no message is left.
    port_blocked: set[str] = field(default_factory=set)
    volume_blocked: set[str] = field(default_factory=set)
    topology_blocked: set[str] = field(default_factory=set)
    # The nodes the pod's selector/affinity picks when it picks some but not all (a pool),
    # and the labels it asks for: the other nodes were never candidates.
    pool: list[str] = field(default_factory=list)
    pool_labels: str = ""
    pool_full: bool = False  # every node of the pool is short of what the pod requests
    # Keyed by the scheduler category an obstacle answers; the capacity check files a
    # RequestExceedsNodeCapacity obstacle under InsufficientResources ("Insufficient cpu").
    obstacles: dict[Category, Obstacle] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        """The representative pod's spec."""
        return as_dict(self.pod.get("spec"))

    @property
    def pod_name(self) -> str:
        """The representative pod's name."""
        return name_of(self.pod) or "the pod"

    @property
    def subject(self) -> str:
        """The workload as kubectl names it: `deployment/api`."""
        return f"{self.context.target.kind.lower()}/{self.context.target.name}"

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The scheduler's reasons (none when no message was found)."""
        return self.message.reasons if self.message else ()

    def blocked_by(self, *blockers: Blocker) -> list[Reason]:
        """The scheduler's reasons of these kinds."""
        return [r for r in self.reasons if r.blocker in blockers]

    @property
    def total_nodes(self) -> int:
        """How many nodes the scheduler considered (else how many the reader shows)."""
        if self.message and self.message.total_nodes is not None:
            return self.message.total_nodes
        return len(self.nodes)

    @property
    def ruled_out(self) -> set[str]:
        """The nodes an earlier filter keeps the pod off: cordoned, NotReady, tainted, unmatched."""
        return self.cordoned | self.not_ready | self.tainted | self.mismatched

    @property
    def unusable(self) -> set[str]:
        """Nodes that take no pod at all: cordoned or NotReady."""
        return self.cordoned | self.not_ready

    def node(self, name: str) -> KubeObject:
        """A node by name ({} when unknown)."""
        return next((n for n in self.nodes if name_of(n) == name), {})

    def replicas(self) -> int:
        """How many pods the workload wants (its spec.replicas), else how many it has."""
        wanted = as_dict(as_dict(self.context.workload).get("spec")).get("replicas")
        if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 0:
            return wanted
        return max(len(self.context.pods), 1)

    def unscheduled_count(self) -> int:
        """How many of the workload's pods wait for a node."""
        return sum(1 for p in self.group if node_name(p) is None) or 1


SHOWN = 6  # node names listed in a sentence before "and N more"


def listed(names: list[str] | set[str]) -> str:
    """Names in a sentence: `a, b, c and 4 more`."""
    ordered = sorted(names)
    more = f" and {len(ordered) - SHOWN} more" if len(ordered) > SHOWN else ""
    return ", ".join(ordered[:SHOWN]) + more


def why_unusable(case: Case, node: str) -> str:
    """Why an earlier filter keeps the pod off a node, in a few words."""
    if node in case.cordoned:
        return "cordoned"
    if node in case.not_ready:
        return "NotReady"
    if node in case.tainted:
        return "tainted"
    if node in case.mismatched:
        return "outside the nodes the pod selects"
    if node in case.short:
        return "full"
    if node in case.port_blocked:
        return "without the host port free"
    return "usable"


def not_ready_taints(node: KubeObject) -> list[Taint]:
    """The node lifecycle controller's not-ready/unreachable taints on a node: it has found the
    node NotReady or unreachable (not a taint a toleration is meant for)."""
    return [t for t in node_taints(node) if t.key in NOT_READY_TAINTS]


def ready_state(node: KubeObject, *, full: bool = False) -> str:
    """What a node's Ready condition says: `Ready=Unknown, Kubelet stopped posting node
    status.`; with `full`, as evidence: `Ready=Unknown (NodeStatusUnknown: Kubelet stopped
    posting node status.), last heartbeat 2025-...`."""
    ready = condition(node, "Ready")
    if ready is None:
        return "no Ready condition reported"
    status = str(ready.get("status") or "?")
    reason = str(ready.get("reason") or "")
    message = " ".join(str(ready.get("message") or "").split())
    if not full:
        return f"Ready={status}" + (f", {message}" if message else f" ({reason})" if reason else "")
    text = f"Ready={status}"
    if reason:
        text += f" ({reason}: {message})" if message else f" ({reason})"
    beat = ready.get("lastHeartbeatTime")
    return text + (f", last heartbeat {beat}" if beat else "")


def waiting_reason(pod: KubeObject, container: str) -> str:
    """Why a container waits (`ContainerCreating`), "" when it does not."""
    state = as_dict(container_status(pod, container).get("state"))
    return str(as_dict(state.get("waiting")).get("reason") or "")


# --- the room left on each node ------------------------------------------------------------------


@dataclass
class NodeRoom:
    """One node's allocatable and the requests of the pods bound to it."""

    name: str
    allocatable: dict[str, Decimal]
    requested: dict[str, Decimal] = field(default_factory=dict)

    def free(self, resource: str) -> Decimal | None:
        """What is left of a resource; None when the node does not report cpu/memory at all."""
        if resource not in self.allocatable:
            # A node without an extended resource (nvidia.com/gpu) has none of it.
            return None if resource in {"cpu", "memory", "pods"} else Decimal(0)
        return self.allocatable[resource] - self.requested.get(resource, Decimal(0))

    def capacity(self, resource: str) -> Decimal | None:
        """The node's allocatable of a resource (0 for an extended resource it lacks)."""
        if resource not in self.allocatable:
            return None if resource in {"cpu", "memory", "pods"} else Decimal(0)
        return self.allocatable[resource]


def node_rooms(nodes: list[KubeObject], pods: list[KubeObject]) -> list[NodeRoom]:
    """Each node's allocatable and what the (non-finished) pods bound to it request."""
    rooms = {
        name_of(node): NodeRoom(
            name_of(node), quantities(as_dict(node.get("status")).get("allocatable"))
        )
        for node in nodes
        if name_of(node)
    }
    for pod in pods:
        room = rooms.get(node_name(pod) or "")
        if room is None or not is_scheduled(pod):
            continue
        add(room.requested, pod_requests(as_dict(pod.get("spec"))))
        add(room.requested, {"pods": Decimal(1)})
    return list(rooms.values())


# --- PersistentVolumeClaims ---------------------------------------------------------------------


def default_storage_class(reader: ClusterReader) -> str | None:
    """The cluster's default StorageClass (the newest one if several claim it, as the API does)."""
    defaults = [
        sc
        for sc in reader.storage_classes()
        if any(str(annotations_of(sc).get(a)).lower() == "true" for a in _DEFAULT_ANNOTATIONS)
    ]
    if not defaults:
        return None
    newest = max(defaults, key=lambda sc: str(meta(sc).get("creationTimestamp") or ""))
    return name_of(newest)


@dataclass
class ClaimState:
    """What the playbook learned about one claim."""

    volume: str
    name: str
    exists: bool
    phase: str = ""
    size: str = ""
    requested_class: str | None = None  # None: unset; "": explicitly none
    effective_class: str | None = None
    class_exists: bool | None = None
    default_class: str | None = None
    provisioner: str = ""
    binding_mode: str = ""
    volume_name: str = ""
    known_classes: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    @property
    def bound(self) -> bool:
        """Whether the claim is bound to a volume."""
        return self.phase == "Bound"

    @property
    def waits_for_consumer(self) -> bool:
        """A Pending claim of a WaitForFirstConsumer class: it is bound (or provisioned) once
        the scheduler has picked a node for its pod, so it waits for the pod, not the reverse."""
        return (
            self.phase == "Pending"
            and self.class_exists is True
            and self.binding_mode == "WaitForFirstConsumer"
        )

    def describe(self) -> str:
        """The claim's state in one sentence."""
        if not self.exists:
            return f"PersistentVolumeClaim {self.name} (volume {self.volume}) does not exist"
        text = f"PersistentVolumeClaim {self.name} is {self.phase or 'of unknown phase'}"
        if self.bound and self.volume_name:
            text += f" to volume {self.volume_name}"
        if self.size:
            text += f" (requests {self.size})"
        if self.requested_class == "":
            text += '; storageClassName "" asks for a pre-created PersistentVolume, no provisioning'
        elif self.requested_class is None and self.default_class is None:
            text += "; it names no StorageClass and the cluster has no default StorageClass"
        elif self.requested_class is None:
            text += f"; it names no StorageClass, so the default {self.default_class} applies"
        if self.effective_class and self.class_exists is False:
            text += f"; StorageClass {self.effective_class} does not exist"
        elif self.effective_class and self.class_exists:
            provisioner = self.provisioner or "no provisioner"
            mode = self.binding_mode or "Immediate"
            text += f"; StorageClass {self.effective_class} exists ({provisioner}, {mode})"
        if self.waits_for_consumer:
            text += "; it binds once the pod has a node (WaitForFirstConsumer)"
        return text


def inspect_claim(
    reader: ClusterReader, namespace: str, volume: str, claim_name: str
) -> ClaimState:
    """Read the claim, its StorageClass (named or default) and the claim's own events."""
    claim = reader.persistent_volume_claim(namespace, claim_name)
    events = [
        f"{e.get('reason')}: {e.get('message')} (x{event_count(e)})"
        for e in events_about(reader, namespace, "PersistentVolumeClaim", {claim_name})[:3]
        if e.get("type") == "Warning"
        or str(e.get("reason")) in {"ExternalProvisioning", "WaitForFirstConsumer"}
    ]
    known = sorted(name_of(sc) for sc in reader.storage_classes() if name_of(sc))
    if claim is None:
        return ClaimState(volume, claim_name, exists=False, events=events, known_classes=known)
    spec = as_dict(claim.get("spec"))
    requested = spec.get("storageClassName")
    requested = str(requested) if isinstance(requested, str) else None
    default = default_storage_class(reader)
    state = ClaimState(
        volume=volume,
        name=claim_name,
        exists=True,
        phase=str(as_dict(claim.get("status")).get("phase") or ""),
        size=str(as_dict(as_dict(spec.get("resources")).get("requests")).get("storage") or ""),
        requested_class=requested,
        default_class=default,
        volume_name=str(spec.get("volumeName") or ""),
        known_classes=known,
        events=events,
    )
    state.effective_class = requested if requested else (default if requested is None else None)
    if state.effective_class:
        storage_class = reader.storage_class(state.effective_class)
        state.class_exists = storage_class is not None
        if storage_class is not None:
            state.provisioner = str(storage_class.get("provisioner") or "")
            state.binding_mode = str(storage_class.get("volumeBindingMode") or "")
    return state


# --- ConfigMap and Secret volumes -----------------------------------------------------------------


def object_exists(reader: ClusterReader, namespace: str, kind: str, name: str) -> bool | None:
    """Whether a ConfigMap/Secret exists (None: the reader cannot tell). Never reads Secret data."""
    if kind == "configmap":
        return reader.config_map_keys(namespace, name) is not None
    return reader.secret_exists(namespace, name)


def missing_keys(reader: ClusterReader, namespace: str, source: VolumeSource) -> list[str]:
    """Keys a ConfigMap volume's `items` ask for that the ConfigMap lacks (Secrets: not read)."""
    if source.kind != "configmap" or not source.keys:
        return []
    keys = reader.config_map_keys(namespace, source.name)
    return [] if keys is None else [k for k in source.keys if k not in keys]


def earlier_reference(context: Context, volume: str, kind: str) -> str | None:
    """The ConfigMap/Secret an older revision mounted as this volume, when it still exists."""
    if context.target.kind != "Deployment":
        return None
    for replica_set in replica_sets_of(context.target, context.reader):
        for source in object_sources(pod_template(replica_set)):
            if (
                source.volume == volume
                and source.kind == kind
                and object_exists(context.reader, context.namespace, kind, source.name)
            ):
                return source.name
    return None
