"""What the kubelet's eviction manager says when it evicts a pod. Pure: a message in, what it
names out.

The kubelet writes the reason into the pod's `status.message` (and its `Evicted` event), built
from these parts (pkg/kubelet/eviction/helpers.go):

- `The node was low on resource: memory. Threshold quantity: 100Mi, available: 98304Ki.
  Container app was using 1729880Ki, request is 512Mi, has larger consumption of memory. `
  (the resource is memory, ephemeral-storage, inodes or pids; one `Container ...` part per
  container that used more than its request);
- `Pod ephemeral local storage usage exceeds the total limit of containers 2Gi. `;
- `Container exporter exceeded its local ephemeral storage limit "1Gi". `;
- `Usage of EmptyDir volume "scratch" exceeds the limit "4Gi". `.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubetriage.models import Category

_NODE_LOW = re.compile(r"The node was low on resource: (?P<resource>[\w.-]+)\.")
_THRESHOLD = re.compile(
    r"Threshold quantity: (?P<threshold>[^,\s]+), available: (?P<available>\S+?)\."
)
_CONTAINER_USE = re.compile(
    r"Container (?P<container>\S+) was using (?P<using>\S+?), request is (?P<request>\S+?), has "
    r"larger consumption of (?P<resource>[\w.-]+)\."
)
_POD_STORAGE = re.compile(
    r"Pod ephemeral local storage usage exceeds the total limit of containers (?P<limit>\S+?)\.\s*$"
)
_CONTAINER_STORAGE = re.compile(
    r'Container (?P<container>\S+) exceeded its local ephemeral storage limit "(?P<limit>[^"]+)"'
)
_EMPTY_DIR = re.compile(
    r'Usage of EmptyDir volume "(?P<volume>[^"]+)" exceeds the limit "(?P<limit>[^"]+)"'
)
_PRESSURE = {
    "memory": Category.EVICTION_MEMORY_PRESSURE,
    "pids": Category.EVICTION_PID_PRESSURE,
    # Inode exhaustion is a disk that is full in another way (DESIGN.md section 12).
    "ephemeral-storage": Category.EVICTION_DISK_PRESSURE,
    "inodes": Category.EVICTION_DISK_PRESSURE,
}


@dataclass(frozen=True)
class ContainerUse:
    """One container the kubelet ranked by its use above its request."""

    container: str
    using: str
    request: str
    resource: str


@dataclass(frozen=True)
class EvictionMessage:
    """One eviction message, read."""

    category: Category | None  # None: a message none of the kubelet's formats matches
    text: str
    resource: str | None = None  # what the node ran low on
    threshold: str | None = None
    available: str | None = None
    users: tuple[ContainerUse, ...] = ()
    limit: str | None = None  # the limit a pod, container or emptyDir went over
    container: str | None = None  # the container that went over its own limit
    volume: str | None = None  # the emptyDir that went over its sizeLimit


def read_message(message: str) -> EvictionMessage:
    """What one eviction message names."""
    text = message.strip()
    if match := _NODE_LOW.search(text):
        resource = match["resource"]
        threshold = _THRESHOLD.search(text)
        users = tuple(
            ContainerUse(m["container"], m["using"], m["request"], m["resource"])
            for m in _CONTAINER_USE.finditer(text)
        )
        return EvictionMessage(
            _PRESSURE.get(resource, Category.EVICTION_DISK_PRESSURE),
            text,
            resource=resource,
            threshold=threshold["threshold"] if threshold else None,
            available=threshold["available"] if threshold else None,
            users=users,
        )
    if match := _POD_STORAGE.search(text):
        return EvictionMessage(
            Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, text, limit=match["limit"]
        )
    if match := _CONTAINER_STORAGE.search(text):
        return EvictionMessage(
            Category.EVICTION_EPHEMERAL_STORAGE_LIMIT,
            text,
            limit=match["limit"],
            container=match["container"],
        )
    if match := _EMPTY_DIR.search(text):
        return EvictionMessage(
            Category.EVICTION_EPHEMERAL_STORAGE_LIMIT,
            text,
            limit=match["limit"],
            volume=match["volume"],
        )
    return EvictionMessage(None, text)
