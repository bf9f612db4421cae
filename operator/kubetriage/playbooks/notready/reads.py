"""What the NotReady runbook reads: the unready containers, the kubelet's probe failures, the
probe and the ports it should reach, the app's log, and the Services the pods are behind.

Each function reads one thing through the `ClusterReader` and returns it as a value; nothing
here decides (`decide.py`) or advises (`advise.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_spec,
    container_statuses,
    dicts,
    int_field,
    labels_of,
    name_of,
    pod_ready,
    text,
)
from kubetriage.k8s.events import event_count, events_about
from kubetriage.k8s.owners import WorkloadRef, pods_of
from kubetriage.k8s.selectors import service_selects
from kubetriage.playbooks.crashloop.messages import Clue, Signal, scan_log, unretrievable
from kubetriage.playbooks.crashloop.reads import DependencyCheck, slice_counts
from kubetriage.playbooks.notready.messages import ReadinessFailure, read_failure

# The pods whose logs are read for a dependency the app reports down: enough to see that they
# agree, few enough to stay cheap on a large Deployment.
_LOGGED_PODS = 3


@dataclass(frozen=True)
class UnreadyContainer:
    """One container that runs and is not Ready, in one pod."""

    pod: str
    started_at: str
    restarts: int


@dataclass(frozen=True)
class ReadinessProbe:
    """A container's readinessProbe with the kubelet's defaults filled in, its port resolved
    against the container's named ports."""

    handler: str  # httpGet | tcpSocket | grpc | exec
    port: int | None
    port_spelling: str  # as the spec writes it: a number or a port name
    path: str | None
    initial_delay: int
    timeout: int
    period: int
    failure_threshold: int

    def describe(self) -> str:
        """The probe as one clause: what it asks, and how patiently."""
        if self.handler == "httpGet":
            asks = f"httpGet {self.path or '/'} on port {self.port_spelling}"
        elif self.handler in {"tcpSocket", "grpc"}:
            asks = f"{self.handler} on port {self.port_spelling}"
        else:
            asks = "an exec command"
        if self.port is not None and self.port_spelling != str(self.port):
            asks += f" ({self.port})"
        return (
            f"readinessProbe {asks}, every {self.period}s, timeout {self.timeout}s, "
            f"failureThreshold {self.failure_threshold}, initialDelaySeconds {self.initial_delay}"
        )


@dataclass(frozen=True)
class ServiceImpact:
    """A Service that selects the workload's pods, and how many of its endpoints are ready."""

    name: str
    ready: int
    not_ready: int
    counted: bool  # False: neither EndpointSlices nor Endpoints could be read


@dataclass(frozen=True)
class ReportedFailure:
    """One kind of readiness failure, the kubelet's newest message for it, and how many times
    the kubelet reported it over the pods."""

    failure: ReadinessFailure
    count: int


@dataclass
class NotReadyFacts:
    """Everything the steps found, as the decision and the advice read it."""

    target: WorkloadRef
    container: str
    unready: list[UnreadyContainer]
    pods: list[KubeObject] = field(default_factory=list)  # every pod of the workload
    probe: ReadinessProbe | None = None
    ports: list[tuple[int, str | None]] = field(default_factory=list)  # containerPorts
    failures: list[ReportedFailure] = field(default_factory=list)  # most often first
    dependency_clue: Clue | None = None
    dependency: DependencyCheck | None = None
    services: list[ServiceImpact] = field(default_factory=list)

    @property
    def unready_pods(self) -> list[str]:
        """The pods whose container is not ready, sorted."""
        return sorted({u.pod for u in self.unready})

    def most_common(self) -> ReadinessFailure | None:
        """The failure the kubelet reported most often."""
        return self.failures[0].failure if self.failures else None


def unready_containers(pods: list[KubeObject], container: str) -> list[UnreadyContainer]:
    """The pods' containers of this name that run and are not ready."""
    found: list[UnreadyContainer] = []
    for pod in pods:
        for status, is_init in container_statuses(pod):
            running = as_dict(as_dict(status.get("state")).get("running"))
            if is_init or text(status.get("name")) != container or not running:
                continue
            if status.get("ready"):
                continue
            found.append(
                UnreadyContainer(
                    name_of(pod),
                    text(running.get("startedAt")),
                    int_field(status, "restartCount", 0),
                )
            )
    return found


def readiness_failures(
    reader: ClusterReader, namespace: str, pods: list[str], container: str
) -> list[ReportedFailure]:
    """The kubelet's readiness `Unhealthy` events about the container in these pods, grouped by
    what they say (every pod's message carries its own IP: the same failure across the pods is
    one group), most often reported first."""
    groups: dict[tuple[str, int | None, int | None], ReportedFailure] = {}
    for event in events_about(reader, namespace, "Pod", set(pods)):  # newest first
        if text(event.get("reason")) != "Unhealthy":
            continue
        path = text(as_dict(event.get("involvedObject")).get("fieldPath"))
        if path and path != f"spec.containers{{{container}}}":
            continue
        failure = read_failure(text(event.get("message")))
        if failure is None:
            continue
        key = (failure.kind, failure.port, failure.status)
        seen = groups.get(key)
        count = event_count(event) + (seen.count if seen else 0)
        groups[key] = ReportedFailure(seen.failure if seen else failure, count)
    return sorted(groups.values(), key=lambda g: -g.count)


def container_ports(spec: dict[str, Any]) -> list[tuple[int, str | None]]:
    """The container's declared ports: (number, name)."""
    return [
        (port["containerPort"], text(port.get("name")) or None)
        for port in dicts(spec.get("ports"))
        if isinstance(port.get("containerPort"), int)
    ]


def readiness_probe(spec: dict[str, Any]) -> ReadinessProbe | None:
    """The container's readinessProbe, None when it has none."""
    probe = as_dict(spec.get("readinessProbe"))
    if not probe:
        return None
    handler = next((h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in probe), "exec")
    action = as_dict(probe.get(handler))
    raw = action.get("port")
    spelling = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else text(raw)
    port: int | None = None
    if spelling.isdigit():
        port = int(spelling)
    elif spelling:
        port = next((n for n, name in container_ports(spec) if name == spelling), None)
    return ReadinessProbe(
        handler=handler,
        port=port,
        port_spelling=spelling,
        path=text(action.get("path")) or None,
        initial_delay=int_field(probe, "initialDelaySeconds", 0),
        timeout=int_field(probe, "timeoutSeconds", 1),
        period=int_field(probe, "periodSeconds", 10),
        failure_threshold=int_field(probe, "failureThreshold", 3),
    )


def probe_of(
    pods: list[KubeObject], container: str
) -> tuple[dict[str, Any], ReadinessProbe | None]:
    """The container's spec (from the first pod) and its readinessProbe."""
    spec = container_spec(pods[0], container) if pods else {}
    return spec, readiness_probe(spec)


def dependency_clue(
    reader: ClusterReader, namespace: str, pods: list[str], container: str
) -> Clue | None:
    """The last failed connection the app's current log reports, over the first few unready
    pods: the dependency an app that answers 503 says is down."""
    for pod in pods[:_LOGGED_PODS]:
        log = reader.container_log(namespace, pod, container, previous=False)
        if log is None or unretrievable(log):
            continue
        clues = [c for c in scan_log(log) if c.signal is Signal.DEPENDENCY]
        named = [c for c in clues if c.subject or c.host_ip]
        if named or clues:
            return (named or clues)[-1]
    return None


def workload_pods(
    reader: ClusterReader, target: WorkloadRef, pods: list[KubeObject]
) -> list[KubeObject]:
    """Every pod of the workload (the affected ones alone for a bare pod)."""
    if target.kind == "Pod":
        return pods
    return pods_of(reader, target) or pods


def service_impact(
    reader: ClusterReader, namespace: str, pods: list[KubeObject]
) -> list[ServiceImpact]:
    """The Services whose selector selects any of the pods, each with its ready and not-ready
    endpoints (EndpointSlices; the Endpoints object where no slice is there; the selected pods'
    Ready condition where neither could be read)."""
    impacts: list[ServiceImpact] = []
    for service in reader.services(namespace):
        selector = as_dict(service.get("spec")).get("selector")
        if not any(service_selects(selector, labels_of(pod)) for pod in pods):
            continue
        name = name_of(service)
        slices = reader.endpoint_slices(namespace, name)
        if slices:
            ready, not_ready, _ = slice_counts(slices)
            impacts.append(ServiceImpact(name, ready, not_ready, True))
            continue
        endpoints = reader.endpoints(namespace, name)
        if endpoints is not None:
            subsets = dicts(endpoints.get("subsets"))
            ready = sum(len(dicts(s.get("addresses"))) for s in subsets)
            not_ready = sum(len(dicts(s.get("notReadyAddresses"))) for s in subsets)
            impacts.append(ServiceImpact(name, ready, not_ready, True))
            continue
        selected = [pod for pod in pods if service_selects(selector, labels_of(pod))]
        ready = sum(1 for pod in selected if pod_ready(pod))
        impacts.append(ServiceImpact(name, ready, len(selected) - ready, False))
    return sorted(impacts, key=lambda i: i.name)
