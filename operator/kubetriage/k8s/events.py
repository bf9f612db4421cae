"""Events about an object, whichever API wrote them (core/v1 or events.k8s.io)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from kubetriage.k8s.access import KubeObject, as_dict, meta
from kubetriage.k8s.time import EPOCH, parse_time

if TYPE_CHECKING:
    from kubetriage.clients.kube import ClusterReader


def event_time(event: KubeObject) -> datetime | None:
    """When an event last happened. Legacy core/v1 events carry `lastTimestamp`;
    events.k8s.io ones (the scheduler's) carry `series.lastObservedTime` and `eventTime` and
    leave the legacy fields null."""
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
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 1


def involved_name(event: KubeObject) -> str | None:
    """The name of the object an event is about, None when it names none."""
    name = as_dict(event.get("involvedObject")).get("name")
    return name if isinstance(name, str) else None


def about(events: Iterable[KubeObject], kind: str, names: set[str] | str) -> list[KubeObject]:
    """The events whose involvedObject is one of these objects, newest first."""
    wanted = {names} if isinstance(names, str) else names
    found = [
        event
        for event in events
        if isinstance(event, dict)
        and as_dict(event.get("involvedObject")).get("kind") == kind
        and involved_name(event) in wanted
    ]
    return sorted(found, key=lambda e: event_time(e) or EPOCH, reverse=True)


def events_about(
    reader: ClusterReader, namespace: str, kind: str, names: set[str] | str
) -> list[KubeObject]:
    """The namespace's events whose involvedObject is one of these objects, newest first."""
    return about(reader.events(namespace), kind, names)
