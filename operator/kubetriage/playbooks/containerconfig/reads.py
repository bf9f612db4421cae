"""What the CreateContainerConfigError runbook reads: the waiting containers, the kubelet's
`Failed` events, the container's references to ConfigMaps and Secrets, the object the kubelet
names, the security context, and the workload's pods that do run. Secrets are never read: only
whether one exists, where the reader can tell (DESIGN.md section 8)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import CONTAINER_CONFIG_REASONS
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_spec,
    container_statuses,
    name_of,
    node_name,
    text,
)
from kubetriage.k8s.events import event_count, events_about
from kubetriage.k8s.owners import WorkloadRef, pods_of
from kubetriage.playbooks.containerconfig.messages import ConfigMessage, read_message
from kubetriage.playbooks.crashloop.reads import ConfigRef, config_view


@dataclass(frozen=True)
class WaitingContainer:
    """One container the kubelet cannot create, in one pod."""

    pod: str
    container: str
    reason: str
    message: ConfigMessage | None  # None when the kubelet left no message
    node: str | None


@dataclass(frozen=True)
class SecurityContext:
    """The non-root settings a container runs under, and where each is set."""

    run_as_non_root: bool | None
    non_root_from: str | None  # "the container's securityContext" | "the pod's securityContext"
    run_as_user: int | None
    user_from: str | None
    image: str


@dataclass
class ConfigFacts:
    """Everything the steps found, as the decision and the advice read it."""

    target: WorkloadRef
    container: str
    waiting: list[WaitingContainer]
    event_messages: Counter[str] = field(default_factory=Counter)  # text -> summed count
    message: ConfigMessage | None = None  # what most pods and events say
    refs: list[ConfigRef] = field(default_factory=list)  # references to the object named
    config_map_keys: set[str] | None = None  # of the ConfigMap named, when it exists
    secret_exists: bool | None = None  # of the Secret named, where the reader can tell
    security: SecurityContext | None = None
    running_pods: list[tuple[str, str]] = field(default_factory=list)  # (pod, startedAt)
    all_pods: int = 0

    @property
    def waiting_pods(self) -> list[str]:
        """The pods whose container waits, sorted."""
        return sorted({w.pod for w in self.waiting})


def waiting_containers(pods: list[KubeObject], container: str | None) -> list[WaitingContainer]:
    """The containers (of the name the sightings give, else any) that wait to be created."""
    found: list[WaitingContainer] = []
    for pod in pods:
        for status, _ in container_statuses(pod):
            name = text(status.get("name"))
            waiting = as_dict(as_dict(status.get("state")).get("waiting"))
            reason = text(waiting.get("reason"))
            if reason not in CONTAINER_CONFIG_REASONS or (container and name != container):
                continue
            message = text(waiting.get("message"))
            found.append(
                WaitingContainer(
                    name_of(pod),
                    name,
                    reason,
                    read_message(message) if message else None,
                    node_name(pod),
                )
            )
    return found


def failed_events(
    reader: ClusterReader, namespace: str, pods: list[str], container: str
) -> Counter[str]:
    """The kubelet's `Failed` event messages about the container in these pods, with the number
    of times each was seen (events are aggregated: `count`)."""
    counts: Counter[str] = Counter()
    for event in events_about(reader, namespace, "Pod", set(pods)):
        if text(event.get("reason")) != "Failed":
            continue
        path = text(as_dict(event.get("involvedObject")).get("fieldPath"))
        if path and path != f"spec.containers{{{container}}}" and container not in path:
            continue
        message = text(event.get("message"))
        if message.startswith("Error: "):
            counts[message] += event_count(event)
    return counts


def chosen_message(facts: ConfigFacts) -> ConfigMessage | None:
    """The message most waiting containers and events agree on: the waiting messages first
    (they are what the kubelet says now), events when the pods carry none."""
    texts: Counter[str] = Counter(w.message.text for w in facts.waiting if w.message is not None)
    if not texts:
        texts = Counter({read_message(m).text: n for m, n in facts.event_messages.items()})
    if not texts:
        return None
    return read_message(texts.most_common(1)[0][0])


def references(
    reader: ClusterReader,
    namespace: str,
    pod: KubeObject,
    container: str,
    message: ConfigMessage,
) -> list[ConfigRef]:
    """The container's references (env, envFrom, volumes) to the object the message names."""
    spec = as_dict(pod.get("spec"))
    view = config_view(reader, namespace, spec, container_spec(pod, container))
    return [
        ref
        for ref in view.refs
        if ref.kind == message.kind
        and ref.name == message.name
        and (message.key is None or ref.key == message.key)
    ]


def security_context(pod: KubeObject, container: str) -> SecurityContext:
    """runAsNonRoot and runAsUser as the kubelet resolves them: the container's own setting
    wins over the pod's."""
    own = as_dict(container_spec(pod, container).get("securityContext"))
    shared = as_dict(as_dict(pod.get("spec")).get("securityContext"))

    def pick(key: str) -> tuple[Any, str | None]:
        if key in own:
            return own[key], "the container's securityContext"
        if key in shared:
            return shared[key], "the pod's securityContext"
        return None, None

    non_root, non_root_from = pick("runAsNonRoot")
    user, user_from = pick("runAsUser")
    return SecurityContext(
        run_as_non_root=non_root if isinstance(non_root, bool) else None,
        non_root_from=non_root_from,
        run_as_user=user if isinstance(user, int) and not isinstance(user, bool) else None,
        user_from=user_from,
        image=text(container_spec(pod, container).get("image")),
    )


def running_pods(
    reader: ClusterReader, target: WorkloadRef, container: str
) -> tuple[list[tuple[str, str]], int]:
    """The workload's pods whose container runs, with when it started, and how many pods the
    workload has in all."""
    pods = pods_of(reader, target) if target.kind != "Pod" else []
    found: list[tuple[str, str]] = []
    for pod in pods:
        for status, _ in container_statuses(pod):
            running = as_dict(as_dict(status.get("state")).get("running"))
            if text(status.get("name")) == container and running:
                found.append((name_of(pod), text(running.get("startedAt"))))
    return sorted(found, key=lambda p: p[1]), len(pods)
