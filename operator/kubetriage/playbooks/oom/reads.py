"""What the OOMKilled playbook reads: the kills, the memory settings, the memory history, the
nodes' memory signals, and the memory limit in the Deployment's revisions.

Readers of plain API dicts that never raise: a missing or malformed field becomes None, and the
playbook says what was missing instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from kubetriage.clients.kube import ClusterReader, Sample
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_spec,
    container_status,
    containers,
    dicts,
    meta,
    name_of,
    node_name,
    pod_template,
)
from kubetriage.k8s.events import event_count, event_time, involved_name
from kubetriage.k8s.history import replica_sets_of, revision_of
from kubetriage.k8s.owners import WorkloadRef, controller_of
from kubetriage.k8s.quantities import try_parse_quantity
from kubetriage.k8s.selectors import match_labels_string
from kubetriage.k8s.time import EPOCH, parse_time
from kubetriage.playbooks.oom.messages import (
    EVICTED_REASON,
    NODE,
    evicted_for_memory,
    node_event_scope,
)
from kubetriage.policy import ready_and_desired

WORKING_SET_METRIC = "container_memory_working_set_bytes"
# A node signal within this distance of a kill is taken to be about that kill (kubelet events
# and container status timestamps come from the same node clock, seconds apart).
KILL_CORRELATION = timedelta(minutes=5)
NODE_EVENTS_NAMESPACE = "default"
_MAX_BYTES = Decimal(2**60)  # a quantity this large ("1e999") is a typo, not a memory size


# -- the kills ------------------------------------------------------------------------------------


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


def read_kill(pod: KubeObject, container: str) -> Kill | None:
    """The container's OOM kill in this pod (current state first, else the last one)."""
    status = container_status(pod, container)
    state = as_dict(as_dict(status.get("state")).get("terminated"))
    last = as_dict(as_dict(status.get("lastState")).get("terminated"))
    terminated = state if state.get("reason") == "OOMKilled" else last
    if terminated.get("reason") != "OOMKilled":
        return None
    restarts = status.get("restartCount")
    exit_code = terminated.get("exitCode")
    return Kill(
        pod=name_of(pod),
        node=node_name(pod),
        started=parse_time(terminated.get("startedAt")),
        finished=parse_time(terminated.get("finishedAt")),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        restarts=restarts if isinstance(restarts, int) and restarts >= 0 else None,
        pod_started=parse_time(as_dict(pod.get("status")).get("startTime")),
    )


def first_container(pod: KubeObject) -> dict[str, Any]:
    """The container a kill is assumed to be about when no sighting names one: the first app
    container (the first init container only when the pod has no app container)."""
    spec = pod.get("spec")
    found = containers(spec, init=False) + containers(spec, init=True)
    return found[0] if found else {}


def not_running(pods: list[KubeObject], container: str) -> set[str]:
    """The pods whose container is not running now (killed, backing off, waiting)."""
    return {
        name_of(pod)
        for pod in pods
        if "running" not in as_dict(container_status(pod, container).get("state"))
    }


# -- the memory settings --------------------------------------------------------------------------


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
    resources = as_dict(spec.get("resources"))
    limit_raw = as_dict(resources.get("limits")).get("memory")
    request_raw = as_dict(resources.get("requests")).get("memory")
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


def pod_memory(pods: list[KubeObject], container: str) -> Memory:
    """The memory settings the killed instances ran with (the first pod that has the container)."""
    for pod in pods:
        spec = container_spec(pod, container)
        if spec:
            return memory_of(spec)
    return Memory(None, None, None, None)


# -- the workload ---------------------------------------------------------------------------------


def desired_replicas(workload: KubeObject | None, pods: int) -> int:
    """How many replicas the workload wants (at least 1; the pods seen when it is unknown)."""
    if not workload:
        return max(pods, 1)
    try:
        return max(ready_and_desired(workload)[1], 1)
    except (TypeError, ValueError):  # a replica count that is not a number
        return max(pods, 1)


def pod_selector(workload: KubeObject | None) -> str | None:
    """The workload's `matchLabels` as a `kubectl -l` argument, None for a bare Pod or none."""
    if not workload or workload.get("kind") == "Pod" or not isinstance(workload.get("spec"), dict):
        return None
    return match_labels_string(workload["spec"].get("selector"))


def cron_job_of(job: KubeObject | None) -> str | None:
    """The name of the CronJob that controls a Job, None when none does."""
    if not job:
        return None
    owner = as_dict(controller_of(job))
    if owner.get("kind") == "CronJob" and owner.get("name"):
        return str(owner["name"])
    return None


# -- the memory history ---------------------------------------------------------------------------


@dataclass
class MemoryHistory:
    """The working-set series of the container in each pod, and why the others are missing."""

    series: dict[str, list[Sample]] = field(default_factory=dict)
    without_source: int = 0  # pods the reader has no history source for
    empty: list[str] = field(default_factory=list)  # pods with no samples
    unread: list[str] = field(default_factory=list)  # pods the metrics source failed for
    failure: str = ""  # the source's last error, "" when it never failed


def read_memory_history(
    reader: ClusterReader, namespace: str, pods: list[KubeObject], container: str
) -> MemoryHistory:
    """The container's working set in each pod, from Prometheus or a snapshot's MetricSeries."""
    history = MemoryHistory()
    for pod in pods:
        name = name_of(pod)
        try:
            samples = reader.metric_series(namespace, name, container, WORKING_SET_METRIC)
        except Exception as error:  # a broken metrics source must not fail the diagnosis
            history.failure = f"{type(error).__name__}: {error}"
            history.unread.append(name)
            continue
        if samples is None:
            history.without_source += 1
        elif samples:
            history.series[name] = samples
        else:
            history.empty.append(name)
    return history


# -- the nodes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSignal:
    """One sign that a node ran short of memory (or, for `cgroup`, that a limit was hit)."""

    node: str
    reason: str
    message: str
    first: datetime | None
    last: datetime | None
    count: int
    scope: str  # messages.NODE: the node ran out; messages.CGROUP: a container hit its limit
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
    """Memory signals of these nodes (conditions, node events, memory evictions), newest first,
    and the Node objects that were found."""
    found: list[NodeSignal] = []
    node_objects = [n for n in reader.nodes() if name_of(n) in nodes]
    for node in node_objects:
        for condition in dicts(as_dict(node.get("status")).get("conditions")):
            if condition.get("type") == "MemoryPressure" and condition.get("status") == "True":
                since = parse_time(condition.get("lastTransitionTime"))
                message = str(condition.get("message") or condition.get("reason") or "")
                found.append(
                    NodeSignal(
                        name_of(node), "MemoryPressure", message, since, since, 1, NODE, "condition"
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
    found.sort(key=lambda s: s.last or EPOCH, reverse=True)
    return found, node_objects


def _event_signal(event: KubeObject, nodes: set[str]) -> NodeSignal | None:
    involved = as_dict(event.get("involvedObject"))
    reason = str(event.get("reason") or "")
    message = str(event.get("message") or event.get("note") or "")
    last = event_time(event)
    first = parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime")) or last
    count = event_count(event)
    name = involved_name(event)
    if involved.get("kind") == "Node" and name is not None and name in nodes:
        scope = node_event_scope(reason, message)
        if scope is None:
            return None
        return NodeSignal(name, reason, message, first, last, count, scope)
    host = as_dict(event.get("source")).get("host")
    if (
        reason == EVICTED_REASON
        and isinstance(host, str)
        and host in nodes
        and evicted_for_memory(message)
    ):
        subject = f"pod {involved.get('name')} evicted: {message}"
        return NodeSignal(host, reason, subject, first, last, count, NODE)
    return None


def _evicted_pods(reader: ClusterReader, namespace: str, nodes: set[str]) -> list[NodeSignal]:
    """Pods evicted for memory from these nodes: the status outlives the event by far."""
    found: list[NodeSignal] = []
    for pod in reader.pods(namespace):
        status = as_dict(pod.get("status"))
        node = node_name(pod)
        message = str(status.get("message") or "")
        if (
            status.get("reason") == EVICTED_REASON
            and node is not None
            and node in nodes
            and evicted_for_memory(message)
        ):
            when = _eviction_time(pod)
            subject = f"pod {name_of(pod)} evicted: {message}"
            found.append(NodeSignal(node, EVICTED_REASON, subject, when, when, 1, NODE, "pod"))
    return found


def _eviction_time(pod: KubeObject) -> datetime | None:
    conditions = dicts(as_dict(pod.get("status")).get("conditions"))
    times = [parse_time(c.get("lastTransitionTime")) for c in conditions]
    known = [t for t in times if t is not None]
    return max(known) if known else parse_time(meta(pod).get("creationTimestamp"))


def largest_allocatable_memory(nodes: list[KubeObject]) -> Decimal | None:
    """The most allocatable memory any of these nodes has."""
    sizes = [
        try_parse_quantity(as_dict(as_dict(n.get("status")).get("allocatable")).get("memory"))
        for n in nodes
    ]
    known = [s for s in sizes if s is not None and s > 0]
    return max(known) if known else None


# -- the revisions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryRevision:
    """The container's memory settings in one revision (ReplicaSet) of a Deployment."""

    number: int | None
    name: str
    created: datetime | None
    memory: Memory
    image: str | None


def revisions(reader: ClusterReader, target: WorkloadRef, container: str) -> list[MemoryRevision]:
    """The Deployment's revisions that have the container, newest first ([] for other kinds)."""
    if target.kind != "Deployment":
        return []
    found: list[MemoryRevision] = []
    for replica_set in replica_sets_of(target, reader):
        specs = containers(pod_template(replica_set), init=False)
        spec = next((c for c in specs if c.get("name") == container), None)
        if spec is None:
            continue
        image = spec.get("image")
        found.append(
            MemoryRevision(
                number=revision_of(replica_set),
                name=name_of(replica_set),
                created=parse_time(meta(replica_set).get("creationTimestamp")),
                memory=memory_of(spec),
                image=image if isinstance(image, str) else None,
            )
        )
    return found


def lowered_limit(
    history: list[MemoryRevision], pods: list[KubeObject]
) -> tuple[MemoryRevision, MemoryRevision] | None:
    """(current, previous) when the revision the pods run lowered the memory limit."""
    owners = {str(as_dict(controller_of(p)).get("name") or "") for p in pods}
    current = next((r for r in history if r.name in owners), history[0] if history else None)
    if current is None or current.memory.limit is None:
        return None
    older = history[history.index(current) + 1 :]
    previous = older[0] if older else None
    if previous is None or previous.memory.limit is None:
        return None
    return (current, previous) if previous.memory.limit > current.memory.limit else None
