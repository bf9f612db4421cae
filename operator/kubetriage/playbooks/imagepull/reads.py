"""What the ImagePull playbook reads: the failing container and its pull errors, the revision that
last ran, the pull secrets the kubelet would use (by name and existence, never their data), and
the nodes the pods wait on: which of them hold the image, and their platform.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    container_status,
    containers,
    dicts,
    labels_of,
    meta,
    name_of,
    node_images,
    node_name,
    pod_phase,
    pod_template,
    text,
)
from kubetriage.k8s.events import involved_name
from kubetriage.models import EvidenceSource
from kubetriage.playbooks.base import Context
from kubetriage.playbooks.imagepull.messages import PullError, parse_image, same_image

# The kubelet's default nodeStatusMaxImages: a node listing this many may hold more.
IMAGE_LIST_CAP = 50
_PULLED = re.compile(r'^Successfully pulled image "([^"]+)"')


@dataclass
class PullMessage:
    """One pull error text, where it was read, how often, and what it names."""

    text: str
    source: EvidenceSource
    count: int
    when: datetime
    error: PullError | None = None


@dataclass
class PullReading:
    """What the first steps read of the failing container and its pull errors."""

    container: str
    init_container: bool
    image: str
    reasons: Counter[str] = field(default_factory=Counter)
    messages: list[PullMessage] = field(default_factory=list)
    unretrieved_secrets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revisions:
    """The failing revision and the one that last ran, as far as the history shows."""

    failing: int | None = None
    previous: int | None = None
    previous_image: str | None = None
    previous_healthy: bool | None = None


@dataclass(frozen=True)
class Credentials:
    """Pull secrets the pod would use, and what is known of each (existence only)."""

    service_account: str = "default"
    pod_secrets: tuple[str, ...] = ()
    account_secrets: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    neighbour_secret: str | None = None

    @property
    def configured(self) -> tuple[str, ...]:
        """Every secret name the kubelet will try, pod's first."""
        return tuple(dict.fromkeys((*self.pod_secrets, *self.account_secrets)))


def secret_names(value: Any) -> tuple[str, ...]:
    """The names in an `imagePullSecrets` list, () when it is absent or malformed."""
    return tuple(str(s["name"]) for s in dicts(value) if s.get("name"))


def template_image(replica_set: KubeObject, container: str) -> str | None:
    """The image a ReplicaSet's pod template gives the named container, None when it has none."""
    spec = pod_template(replica_set)
    # App containers before init containers: the first match wins.
    for item in (*containers(spec, init=False), *containers(spec, init=True)):
        if item.get("name") == container and item.get("image"):
            return str(item["image"])
    return None


def neighbour_secret(context: Context, image: str) -> str | None:
    """A pull secret other pods of the namespace use for the same registry, if any."""
    ref = parse_image(image)
    if ref is None:
        return None
    affected = {name_of(p) for p in context.pods}
    for pod in context.reader.pods(context.namespace):
        spec = as_dict(pod.get("spec"))
        secrets = secret_names(spec.get("imagePullSecrets"))
        if name_of(pod) in affected or not secrets or meta(pod).get("deletionTimestamp"):
            continue
        for item in containers(spec):
            other = parse_image(str(item.get("image") or ""))
            if other is not None and other.registry == ref.registry:
                return secrets[0]
    return None


@dataclass(frozen=True)
class NodePlacement:
    """Where the failing pods wait, and what the nodes report about the image."""

    nodes_read: int = 0
    waiting_on: tuple[tuple[str, int], ...] = ()
    unscheduled: int = 0
    holders: tuple[str, ...] = ()
    capped: tuple[tuple[str, int], ...] = ()
    platforms: tuple[tuple[str, str], ...] = ()
    runs_on: tuple[tuple[str, str, str], ...] = ()
    registry_pull: tuple[str, str] | None = None
    tool: str | None = None
    cluster: str | None = None

    @property
    def failing_nodes(self) -> tuple[str, ...]:
        """The nodes the pods wait on, most pods first."""
        return tuple(name for name, _ in self.waiting_on)

    @property
    def elsewhere(self) -> tuple[str, ...]:
        """Nodes that hold the image while no pod waits on them."""
        return tuple(n for n in self.holders if n not in self.failing_nodes)

    @property
    def failing_holders(self) -> tuple[str, ...]:
        """Nodes that list the image although a pod waits on them for it."""
        return tuple(n for n in self.holders if n in self.failing_nodes)

    def platforms_text(self) -> str:
        """The platforms of the nodes the pods wait on, each with its nodes:
        `linux/arm64 (node worker-arm-1)`."""
        by_platform: dict[str, list[str]] = {}
        for node, platform in self.platforms:
            by_platform.setdefault(platform, []).append(node)
        if not by_platform:
            return "the platform of the node(s) the pods wait on"
        return ", ".join(
            f"{platform} ({'node' if len(nodes) == 1 else 'nodes'} {', '.join(nodes)})"
            for platform, nodes in by_platform.items()
        )


def platform_of(node: KubeObject) -> str | None:
    """A node's `os/arch` from its labels (as the scheduler matches them), else its nodeInfo."""
    labels = labels_of(node)
    info = as_dict(as_dict(node.get("status")).get("nodeInfo"))
    arch = labels.get("kubernetes.io/arch") or text(info.get("architecture"))
    system = labels.get("kubernetes.io/os") or text(info.get("operatingSystem")) or "linux"
    return f"{system}/{arch}" if arch else None


def read_placement(
    context: Context, image: str, *, images: bool = False, platforms: bool = False
) -> NodePlacement:
    """The nodes the affected pods are bound to; with `images`, the nodes that list `image` in
    status.images and a kubelet's record of pulling it from its registry; with `platforms`,
    the platforms of the pods' nodes and the other pods that run the image. The nodes, the
    namespace's pods and its events are read only when asked for."""
    waiting: Counter[str] = Counter()
    unscheduled = 0
    for pod in context.pods:
        bound = node_name(pod)
        if bound:
            waiting[bound] += 1
        else:
            unscheduled += 1
    placement = NodePlacement(waiting_on=tuple(waiting.most_common()), unscheduled=unscheduled)
    if not (images or platforms):
        return placement
    nodes = {name_of(n): n for n in context.reader.nodes() if name_of(n)}
    tool, cluster = _cluster_tool([nodes[n] for n in waiting if n in nodes])
    placement = replace(placement, nodes_read=len(nodes), tool=tool, cluster=cluster)
    if images:
        holders, capped = _holders(nodes, image)
        placement = replace(
            placement,
            holders=holders,
            capped=capped,
            registry_pull=_registry_pull(context, image),
        )
    if platforms:
        placement = replace(
            placement,
            platforms=tuple(
                (name, platform)
                for name, _ in waiting.most_common()
                if (platform := platform_of(nodes.get(name) or {}))
            ),
            runs_on=_runs_on(context, nodes, image),
        )
    return placement


def _holders(
    nodes: dict[str, KubeObject], image: str
) -> tuple[tuple[str, ...], tuple[tuple[str, int], ...]]:
    """The nodes that list `image`, and those that do not but list as many images as the
    kubelet reports by default (so may hold it unlisted)."""
    ref = parse_image(image)
    if ref is None:
        return (), ()
    # A cheap test first: a node lists up to 250 names, and parsing each is not free.
    last = ref.repository.rsplit("/", 1)[-1]
    holders: list[str] = []
    capped: list[tuple[str, int]] = []
    for name, node in nodes.items():
        listed = node_images(node)
        names = (n for names in listed for n in names if last in n)
        if any(same_image(n, image) for n in names):
            holders.append(name)
        elif len(listed) >= IMAGE_LIST_CAP:
            capped.append((name, len(listed)))
    return tuple(holders), tuple(capped)


def _runs_on(
    context: Context, nodes: dict[str, KubeObject], image: str
) -> tuple[tuple[str, str, str], ...]:
    """(pod, node, platform) of the namespace's other pods whose container runs `image`."""
    affected = {name_of(p) for p in context.pods}
    found: list[tuple[str, str, str]] = []
    for pod in context.reader.pods(context.namespace):
        where = node_name(pod)
        if name_of(pod) in affected or not where or pod_phase(pod) != "Running":
            continue
        for item in containers(as_dict(pod.get("spec"))):
            state = as_dict(container_status(pod, text(item.get("name"))).get("state"))
            if same_image(text(item.get("image")), image) and "running" in state:
                platform = platform_of(nodes.get(where) or {})
                if platform:
                    found.append((name_of(pod), where, platform))
                break
    return tuple(found)


def _registry_pull(context: Context, image: str) -> tuple[str, str] | None:
    """(pod, the kubelet's message) of a `Pulled` event that says it fetched `image`."""
    for event in context.reader.events(context.namespace):
        message = text(event.get("message"))
        pulled = _PULLED.match(message)
        kind = as_dict(event.get("involvedObject")).get("kind")
        if event.get("reason") != "Pulled" or kind != "Pod" or not pulled:
            continue
        if same_image(pulled.group(1), image):
            return involved_name(event) or "?", message
    return None


def _cluster_tool(nodes: list[KubeObject]) -> tuple[str | None, str | None]:
    """(`kind` or `minikube`, the cluster's name) when every node the pods wait on belongs to
    one (they load images with their own command), else (None, None). A kind node's
    providerID is `kind://<provider>/<cluster>/<node>`."""
    providers = [text(as_dict(n.get("spec")).get("providerID")) for n in nodes]
    if nodes and all(p.startswith("kind://") for p in providers):
        parts = providers[0].split("/")
        return "kind", parts[3] if len(parts) > 4 and parts[3] else None
    profiles = {labels_of(n).get("minikube.k8s.io/name") for n in nodes}
    if nodes and None not in profiles and len(profiles) == 1:
        return "minikube", profiles.pop()
    return None, None
