"""What the OOMKilled playbook reads from the cluster: the kills, the memory settings, the nodes.

Readers of plain API dicts that never raise: a missing or malformed field becomes None, and the
playbook says what was missing instead of guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject, meta, name_of, pod_template
from kubetriage.k8s.events import event_count, event_time
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import try_parse_quantity
from kubetriage.k8s.time import parse_time

# A node signal within this distance of a kill is taken to be about that kill (kubelet events
# and container status timestamps come from the same node clock, seconds apart).
KILL_CORRELATION = timedelta(minutes=5)
NODE_EVENTS_NAMESPACE = "default"
# The eviction manager's "The node was low on resource: memory. ..." and its admission refusal
# "The node had condition: [MemoryPressure]."
_EVICTED_FOR_MEMORY = re.compile(
    r"low on resource:\s*memory|had condition:\s*\[[^\]]*MemoryPressure", re.IGNORECASE
)
# node-problem-detector's kernel monitor (event reason OOMKilling) quotes the kernel: a cgroup
# kill ("Memory cgroup out of memory: Killed process ...") is a container at its limit; a plain
# "Out of memory: Killed process ..." is the whole node running out.
_CGROUP_OOM = re.compile(r"memory cgroup out of memory", re.IGNORECASE)
# Checked after _CGROUP_OOM. Older kernels say "Kill process N (x) score S or sacrifice child".
_GLOBAL_OOM = re.compile(r"out of memory: kill(?:ed)? process", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_BYTES = Decimal(2**60)  # a quantity this large ("1e999") is a typo, not a memory size


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


# objects.containers / container_spec / container_status iterate whatever a field holds; these
# take only lists of dicts, so a malformed pod degrades instead of raising.
def spec_containers(pod_spec: Any, *, init: bool = False) -> list[dict[str, Any]]:
    """The containers (or init containers) of a pod spec."""
    return _dicts(_dict(pod_spec).get("initContainers" if init else "containers"))


def container_of(pod: KubeObject, name: str | None) -> dict[str, Any]:
    """A container of a pod's spec by name (the first app container for None), {} if none."""
    spec = pod.get("spec")
    found = spec_containers(spec) + spec_containers(spec, init=True)
    if name is None:
        return found[0] if found else {}
    return next((c for c in found if c.get("name") == name), {})


def status_of(pod: KubeObject, name: str) -> dict[str, Any]:
    """A container's status by name (init containers included), {} if none."""
    status = _dict(pod.get("status"))
    found = _dicts(status.get("containerStatuses")) + _dicts(status.get("initContainerStatuses"))
    return next((c for c in found if c.get("name") == name), {})


@dataclass(frozen=True)
class Kill:
    """The most recent OOM kill of the container in one pod."""

    pod: str
    node: str | None
    started: datetime | None
    finished: datetime | None
    exit_code: int | None
    restarts: int | None
    pod_started: datetime | None

    @property
    def lifetime(self) -> timedelta | None:
        """How long the killed instance ran."""
        if self.started is None or self.finished is None or self.finished < self.started:
            return None
        return self.finished - self.started

    def restart_interval(self, now: datetime) -> timedelta | None:
        """The pod's age divided by its restarts: how often it restarts, back-off included."""
        if not self.restarts or self.pod_started is None or now <= self.pod_started:
            return None
        return (now - self.pod_started) / self.restarts


def node_of(pod: KubeObject) -> str | None:
    """The node a pod was scheduled to."""
    node = _dict(pod.get("spec")).get("nodeName")
    return node if isinstance(node, str) and node else None


def read_kill(pod: KubeObject, container: str) -> Kill | None:
    """The container's OOM kill in this pod (current state first, else the last one)."""
    status = status_of(pod, container)
    state = _dict(_dict(status.get("state")).get("terminated"))
    last = _dict(_dict(status.get("lastState")).get("terminated"))
    terminated = state if state.get("reason") == "OOMKilled" else last
    if terminated.get("reason") != "OOMKilled":
        return None
    restarts = status.get("restartCount")
    exit_code = terminated.get("exitCode")
    return Kill(
        pod=name_of(pod),
        node=node_of(pod),
        started=parse_time(terminated.get("startedAt")),
        finished=parse_time(terminated.get("finishedAt")),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        restarts=restarts if isinstance(restarts, int) and restarts >= 0 else None,
        pod_started=parse_time(_dict(pod.get("status")).get("startTime")),
    )


@dataclass(frozen=True)
class Memory:
    """A container's memory settings, in bytes; `*_text` keeps what the spec said."""

    limit: Decimal | None
    request: Decimal | None
    limit_text: str | None
    request_text: str | None

    @property
    def limit_unreadable(self) -> bool:
        """A limit is set but is not a quantity (a hand-edited snapshot, a broken object)."""
        return self.limit_text is not None and self.limit is None


def memory_of(spec: dict[str, Any]) -> Memory:
    """The memory limit and request of a container spec (None when absent or not a size)."""
    resources = _dict(spec.get("resources"))
    limit_raw = _dict(resources.get("limits")).get("memory")
    request_raw = _dict(resources.get("requests")).get("memory")
    return Memory(
        limit=_bytes(limit_raw, allow_zero=False),
        request=_bytes(request_raw, allow_zero=True),
        limit_text=None if limit_raw is None else str(limit_raw),
        request_text=None if request_raw is None else str(request_raw),
    )


def _bytes(raw: Any, *, allow_zero: bool) -> Decimal | None:
    value = try_parse_quantity(raw)
    if value is None or value < 0 or (value == 0 and not allow_zero) or value > _MAX_BYTES:
        return None
    return value


def pod_memory(pods: list[KubeObject], container: str | None) -> Memory:
    """The memory settings the killed instances ran with (the first pod that has the container)."""
    for pod in pods:
        spec = container_of(pod, container)
        if spec:
            return memory_of(spec)
    return Memory(None, None, None, None)


@dataclass(frozen=True)
class NodeSignal:
    """One sign that a node ran short of memory (or, for `cgroup`, that a limit was hit)."""

    node: str
    reason: str
    message: str
    first: datetime | None
    last: datetime | None
    count: int
    scope: str  # "node": the node ran out; "cgroup": a container hit its own limit
    origin: str = "event"  # "event", "condition" (of the Node) or "pod" (an evicted pod's status)

    def near(self, when: datetime | None) -> bool:
        """Whether this signal happened around `when`."""
        if when is None or self.last is None:
            return False
        first = self.first or self.last
        return first - KILL_CORRELATION <= when <= self.last + KILL_CORRELATION


def node_signals(
    reader: ClusterReader, namespace: str, nodes: set[str]
) -> tuple[list[NodeSignal], list[KubeObject]]:
    """Memory signals of these nodes (conditions, node events, memory evictions), and the Node
    objects that were found."""
    found: list[NodeSignal] = []
    node_objects = [n for n in reader.nodes() if name_of(n) in nodes]
    for node in node_objects:
        for condition in _dicts(_dict(node.get("status")).get("conditions")):
            if condition.get("type") == "MemoryPressure" and condition.get("status") == "True":
                since = parse_time(condition.get("lastTransitionTime"))
                message = str(condition.get("message") or condition.get("reason") or "")
                found.append(
                    NodeSignal(
                        name_of(node),
                        "MemoryPressure",
                        message,
                        since,
                        since,
                        1,
                        "node",
                        "condition",
                    )
                )
    namespaces = [NODE_EVENTS_NAMESPACE] + (
        [namespace] if namespace != NODE_EVENTS_NAMESPACE else []
    )
    for ns in namespaces:
        for event in reader.events(ns):
            signal = _event_signal(event, nodes)
            if signal is not None:
                found.append(signal)
        found.extend(_evicted_pods(reader, ns, nodes))
    found.sort(key=lambda s: s.last or _EPOCH, reverse=True)
    return found, node_objects


def _event_signal(event: KubeObject, nodes: set[str]) -> NodeSignal | None:
    involved = _dict(event.get("involvedObject"))
    reason = str(event.get("reason") or "")
    message = str(event.get("message") or event.get("note") or "")
    last = event_time(event)
    first = parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime")) or last
    count = event_count(event)
    name = involved.get("name")
    if involved.get("kind") == "Node" and isinstance(name, str) and name in nodes:
        node = name
        if reason in {"SystemOOM", "NodeHasInsufficientMemory"}:
            return NodeSignal(node, reason, message, first, last, count, "node")
        if reason == "EvictionThresholdMet" and "memory" in message.lower():
            return NodeSignal(node, reason, message, first, last, count, "node")
        if reason == "OOMKilling":
            if _CGROUP_OOM.search(message):
                return NodeSignal(node, reason, message, first, last, count, "cgroup")
            if _GLOBAL_OOM.search(message):
                return NodeSignal(node, reason, message, first, last, count, "node")
        return None
    host = _dict(event.get("source")).get("host")
    if (
        reason == "Evicted"
        and isinstance(host, str)
        and host in nodes
        and _EVICTED_FOR_MEMORY.search(message)
    ):
        subject = f"pod {involved.get('name')} evicted: {message}"
        return NodeSignal(str(host), "Evicted", subject, first, last, count, "node")
    return None


def _evicted_pods(reader: ClusterReader, namespace: str, nodes: set[str]) -> list[NodeSignal]:
    """Pods evicted for memory from these nodes: the status outlives the event by far."""
    found: list[NodeSignal] = []
    for pod in reader.pods(namespace):
        status = _dict(pod.get("status"))
        node = _dict(pod.get("spec")).get("nodeName")
        message = str(status.get("message") or "")
        if (
            status.get("reason") == "Evicted"
            and isinstance(node, str)
            and node in nodes
            and _EVICTED_FOR_MEMORY.search(message)
        ):
            when = _eviction_time(pod)
            subject = f"pod {name_of(pod)} evicted: {message}"
            found.append(NodeSignal(str(node), "Evicted", subject, when, when, 1, "node", "pod"))
    return found


def _eviction_time(pod: KubeObject) -> datetime | None:
    conditions = _dicts(_dict(pod.get("status")).get("conditions"))
    times = [parse_time(c.get("lastTransitionTime")) for c in conditions]
    known = [t for t in times if t is not None]
    return max(known) if known else parse_time(meta(pod).get("creationTimestamp"))


def largest_allocatable_memory(nodes: list[KubeObject]) -> Decimal | None:
    """The most allocatable memory any of these nodes has."""
    sizes = [
        try_parse_quantity(_dict(_dict(n.get("status")).get("allocatable")).get("memory"))
        for n in nodes
    ]
    known = [s for s in sizes if s is not None and s > 0]
    return max(known) if known else None


@dataclass(frozen=True)
class Revision:
    """The container's memory settings in one revision (ReplicaSet) of a Deployment."""

    number: int | None
    name: str
    created: datetime | None
    memory: Memory
    image: str | None


def revisions(reader: ClusterReader, target: WorkloadRef, container: str) -> list[Revision]:
    """The Deployment's revisions that have the container, newest first ([] for other kinds)."""
    if target.kind != "Deployment":
        return []
    found: list[Revision] = []
    for replica_set in reader.workloads("ReplicaSet", target.namespace):
        owner = controller_ref(replica_set)
        if owner.get("kind") != "Deployment" or owner.get("name") != target.name:
            continue
        spec = next(
            (c for c in spec_containers(pod_template(replica_set)) if c.get("name") == container),
            None,
        )
        if spec is None:
            continue
        image = spec.get("image")
        found.append(
            Revision(
                number=_revision(replica_set),
                name=name_of(replica_set),
                created=parse_time(meta(replica_set).get("creationTimestamp")),
                memory=memory_of(spec),
                image=image if isinstance(image, str) else None,
            )
        )
    return sorted(found, key=lambda r: r.number or 0, reverse=True)


def controller_ref(obj: KubeObject) -> dict[str, Any]:
    """The controlling ownerReference, {} when absent or malformed (workloads.controller_of
    expects well-formed metadata)."""
    refs = _dicts(meta(obj).get("ownerReferences"))
    return next((r for r in refs if r.get("controller")), refs[0] if refs else {})


def _revision(replica_set: KubeObject) -> int | None:
    value = _dict(meta(replica_set).get("annotations")).get("deployment.kubernetes.io/revision")
    try:
        return int(value) if isinstance(value, str | int) else None
    except ValueError:
        return None


def lowered_limit(
    history: list[Revision], pods: list[KubeObject]
) -> tuple[Revision, Revision] | None:
    """(current, previous) when the revision the pods run lowered the memory limit."""
    owners = {str(controller_ref(p).get("name") or "") for p in pods}
    current = next((r for r in history if r.name in owners), history[0] if history else None)
    if current is None or current.memory.limit is None:
        return None
    older = history[history.index(current) + 1 :]
    previous = older[0] if older else None
    if previous is None or previous.memory.limit is None:
        return None
    return (current, previous) if previous.memory.limit > current.memory.limit else None
