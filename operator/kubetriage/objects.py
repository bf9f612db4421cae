"""Small readers of Kubernetes objects that every playbook needs: events, containers, templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubetriage.clients.kube import ClusterReader, KubeObject
from kubetriage.timeutil import parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else {}: snapshots and API objects can be malformed."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value if it is a list, else []."""
    return value if isinstance(value, list) else []


def meta(obj: KubeObject) -> dict[str, Any]:
    """The object's metadata, {} when absent or malformed."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def name_of(obj: KubeObject) -> str:
    """The object's name."""
    return str(meta(obj).get("name") or "")


def event_time(event: KubeObject) -> datetime | None:
    """When an event last happened, whichever API wrote it: legacy core/v1 events carry
    `lastTimestamp`; events.k8s.io ones (the scheduler's) carry `series.lastObservedTime` and
    `eventTime` and leave the legacy fields null."""
    series = as_dict(event.get("series"))
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        meta(event).get("creationTimestamp"),
    ):
        parsed = parse_time(value)
        if parsed is not None:
            return parsed
    return None


def event_count(event: KubeObject) -> int:
    """How many times an event happened (`count`, or `series.count` for new-style events)."""
    series = as_dict(event.get("series"))
    for value in (series.get("count"), event.get("count")):
        if isinstance(value, int) and value > 0:
            return value
    return 1


def events_about(
    reader: ClusterReader, namespace: str, kind: str, names: set[str] | str
) -> list[KubeObject]:
    """Events whose involvedObject is one of these objects, newest first."""
    wanted = {names} if isinstance(names, str) else names
    found = []
    for event in reader.events(namespace):
        involved = as_dict(event.get("involvedObject"))
        name = involved.get("name")
        if involved.get("kind") == kind and isinstance(name, str) and name in wanted:
            found.append(event)
    return sorted(found, key=lambda e: event_time(e) or _EPOCH, reverse=True)


def containers(pod_spec: dict[str, Any], *, init: bool | None = None) -> list[dict[str, Any]]:
    """The containers of a pod spec (init containers first when `init` is None)."""
    fields = {
        None: ("initContainers", "containers"),
        True: ("initContainers",),
        False: ("containers",),
    }[init]
    return [c for f in fields for c in as_list(pod_spec.get(f)) if isinstance(c, dict)]


def container_spec(pod: KubeObject, name: str | None) -> dict[str, Any]:
    """A container of a pod by name (or the first), {} when there is none."""
    spec = as_dict(pod.get("spec"))
    candidates = containers(spec)
    return next(
        (c for c in candidates if c.get("name") == name),
        candidates[0] if candidates and name is None else {},
    )


def container_status(pod: KubeObject, name: str | None) -> dict[str, Any]:
    """A container's status by name (init containers included), {} when there is none."""
    status = as_dict(pod.get("status"))
    for field in ("initContainerStatuses", "containerStatuses"):
        for item in as_list(status.get(field)):
            if isinstance(item, dict) and (name is None or item.get("name") == name):
                return item
    return {}


def pod_template(workload: KubeObject | None) -> dict[str, Any]:
    """The pod template spec of a workload (its `spec` for a bare Pod), {} when unknown."""
    if not workload:
        return {}
    spec = as_dict(workload.get("spec"))
    if workload.get("kind") == "Pod":
        return spec
    template = as_dict(spec.get("template"))
    inner = template.get("spec")
    return inner if isinstance(inner, dict) else {}
