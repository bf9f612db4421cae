"""What the Evicted runbook reads: the evicted pods and the kubelet's message on each, the nodes
they ran on (the condition types Kubernetes defines, never node-problem-detector's), and how
many of the workload's pods run now.

Each function reads one thing and returns it as a value; nothing here decides (`decide.py`) or
advises (`advise.py`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import DetectedSymptom
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_spec,
    dicts,
    name_of,
    node_name,
    pod_phase,
    pod_ready,
    text,
)
from kubetriage.k8s.owners import WorkloadRef, pods_of
from kubetriage.playbooks.eviction.messages import EvictionMessage, read_message

# The node condition types Kubernetes itself defines (k8s.io/api/core/v1 NodeConditionType).
# node-problem-detector and distributions add their own (KernelDeadlock,
# FrequentKubeletRestart, ...): they are never read as a failure (DESIGN.md section 12).
DEFINED_CONDITIONS = (
    "Ready",
    "MemoryPressure",
    "DiskPressure",
    "PIDPressure",
    "NetworkUnavailable",
)
# The taints the node lifecycle controller and the kubelet put on a node in trouble.
_NODE_TAINT_PREFIX = "node.kubernetes.io/"
# Sightings the node controller's disruptions produce (detect.py): the pod ran on a node that
# stopped reporting.
NODE_REASONS = frozenset({"DeletionByTaintManager", "NodeNotReady"})


@dataclass(frozen=True)
class EvictedPod:
    """One pod evicted (or being deleted) off its node, with what was said about it."""

    pod: str
    node: str | None
    reason: str  # Evicted | DeletionByTaintManager | NodeNotReady
    message: EvictionMessage
    since: str  # when it happened, as the object records it


@dataclass(frozen=True)
class NodeState:
    """A node's defined conditions and its trouble taints."""

    name: str
    conditions: tuple[tuple[str, str, str, str], ...]  # (type, status, reason, lastHeartbeatTime)
    taints: tuple[str, ...]  # "node.kubernetes.io/unreachable:NoExecute"

    def condition(self, kind: str) -> tuple[str, str, str, str] | None:
        """One defined condition by type."""
        return next((c for c in self.conditions if c[0] == kind), None)

    def troubles(self) -> list[str]:
        """The conditions that say something is wrong: Ready not True, a pressure True."""
        found = []
        for kind, status, reason, beat in self.conditions:
            bad = status != "True" if kind == "Ready" else status == "True"
            if bad:
                found.append(f"{kind}={status} ({reason}, last heartbeat {beat or 'unknown'})")
        return found


@dataclass
class EvictionFacts:
    """Everything the steps found, as the decision and the advice read it."""

    target: WorkloadRef
    evicted: list[EvictedPod]
    nodes: dict[str, NodeState] = field(default_factory=dict)
    running: int = 0  # pods of the workload running now
    ready: int = 0
    requests: dict[tuple[str, str], str] = field(default_factory=dict)  # (container, res) -> qty
    limits: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def node_lost(self) -> bool:
        """Whether the pods were taken off a node that stopped reporting."""
        return any(p.reason in NODE_REASONS for p in self.evicted)

    def message(self) -> EvictionMessage | None:
        """The kubelet message most evictions share (by category, the newest of it)."""
        said = [p for p in self.evicted if p.message.category is not None]
        if not said:
            return None
        top, _ = Counter(p.message.category for p in said).most_common(1)[0]
        return max((p for p in said if p.message.category is top), key=lambda p: p.since).message


def evicted_pods(pods: list[KubeObject], sightings: list[DetectedSymptom]) -> list[EvictedPod]:
    """The affected pods, each with the sighting's reason and the kubelet's message."""
    by_pod = {s.object_name: s for s in sightings}
    found = []
    for pod in pods:
        sighting = by_pod.get(name_of(pod))
        if sighting is None:
            continue
        found.append(
            EvictedPod(
                pod=name_of(pod),
                node=node_name(pod),
                reason=sighting.reason,
                message=read_message(sighting.message),
                since=sighting.since.isoformat().replace("+00:00", "Z") if sighting.since else "",
            )
        )
    return sorted(found, key=lambda p: (p.since, p.pod))


def node_state(node: KubeObject) -> NodeState:
    """The node's defined conditions, in the order Kubernetes lists them, and its taints."""
    status = as_dict(node.get("status"))
    by_type = {text(c.get("type")): c for c in dicts(status.get("conditions"))}
    conditions = tuple(
        (
            kind,
            text(by_type[kind].get("status")),
            text(by_type[kind].get("reason")),
            text(by_type[kind].get("lastHeartbeatTime")),
        )
        for kind in DEFINED_CONDITIONS
        if kind in by_type
    )
    taints = tuple(
        f"{text(t.get('key'))}:{text(t.get('effect'))}"
        for t in dicts(as_dict(node.get("spec")).get("taints"))
        if text(t.get("key")).startswith(_NODE_TAINT_PREFIX)
    )
    return NodeState(name_of(node), conditions, taints)


def nodes_of(reader: ClusterReader, evicted: list[EvictedPod]) -> dict[str, NodeState]:
    """The state of each node the pods were evicted from (those the reader still has)."""
    wanted = {p.node for p in evicted if p.node}
    return {name_of(node): node_state(node) for node in reader.nodes() if name_of(node) in wanted}


def running_now(reader: ClusterReader, target: WorkloadRef) -> tuple[int, int]:
    """(running, ready) pods of the workload now."""
    if target.kind == "Pod":
        return 0, 0
    pods = [p for p in pods_of(reader, target) if pod_phase(p) == "Running"]
    return len(pods), sum(1 for p in pods if pod_ready(p))


def resources(pod: KubeObject, container: str) -> tuple[dict[str, str], dict[str, str]]:
    """A container's requests and limits as the spec writes them."""
    spec = as_dict(container_spec(pod, container).get("resources"))
    requests = {str(k): text(v) for k, v in as_dict(spec.get("requests")).items()}
    limits = {str(k): text(v) for k, v in as_dict(spec.get("limits")).items()}
    return requests, limits
