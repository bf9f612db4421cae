"""What every node holds, kept from the pod watch instead of listed per diagnosis.

A Pending diagnosis compares a pod's requests with each node's room, which needs every pod bound
to a node, cluster-wide. Listing them costs a LIST of every pod (about 40 MB of JSON at 10,000
pods) per diagnosis; the operator already sees every pod on its watch, so `ScheduledPods` keeps
the few fields that count against a node (`placement_of`) and diagnoses read a copy of it.

kopf's own indexes would do the same, but kopf creates one readiness toggle per object during
the initial listing and wakes every waiting worker for each: at 10,000 pods the listing took
minutes instead of seconds. So the index is ours. It is ready once kopf has moved from its
initial listing (events without a type) to watching (the first typed event), or once the listing
has gone quiet; until then a reader waits for it. An empty cluster lists nothing, so the first
pod's ADDED is what makes it ready there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kubetriage.k8s.access import KubeObject

_FINISHED = frozenset({"Succeeded", "Failed"})
# The initial listing comes in pages of 500 pods; a pause this long between two listing events
# means it is over.
_LISTING_QUIET_SECONDS = 2.0
# How long a diagnosis waits for the initial listing before it lists the pods itself.
_READY_WAIT_SECONDS = 60.0


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sized(container: Any, *, init: bool) -> dict[str, Any]:
    fields = _mapping(container)
    resources = _mapping(fields.get("resources"))
    kept: dict[str, Any] = {
        "resources": {
            key: dict(_mapping(resources.get(key)))
            for key in ("requests", "limits")
            if resources.get(key)
        }
    }
    if init and fields.get("restartPolicy"):
        kept["restartPolicy"] = fields["restartPolicy"]
    return kept


def placement_of(pod: Mapping[str, Any]) -> tuple[str, KubeObject] | None:
    """The node a pod is bound to, and the pod cut down to what counts against that node:
    name, namespace, phase, and each container's requests and limits (init containers with
    their restart policy, for sidecars) and the pod overhead. None for a pod that holds no room:
    not yet bound, or finished."""
    spec = _mapping(pod.get("spec"))
    status = _mapping(pod.get("status"))
    node = spec.get("nodeName")
    phase = status.get("phase")
    if (
        not isinstance(node, str)
        or not node
        or not isinstance(phase, str | None)
        or phase in _FINISHED
    ):
        return None
    metadata = _mapping(pod.get("metadata"))
    containers = spec.get("containers")
    init_containers = spec.get("initContainers")
    slim_spec: dict[str, Any] = {
        "nodeName": node,
        "containers": [
            _sized(c, init=False) for c in (containers if isinstance(containers, list) else [])
        ],
    }
    if isinstance(init_containers, list) and init_containers:
        slim_spec["initContainers"] = [_sized(c, init=True) for c in init_containers]
    if spec.get("overhead"):
        slim_spec["overhead"] = dict(_mapping(spec.get("overhead")))
    return node, {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace")},
        "spec": slim_spec,
        "status": {"phase": phase},
    }


class ScheduledPods:
    """Every scheduled pod of the cluster, cut down, kept from the operator's pod watch.

    `observe` runs on the event loop for every pod event; `copy` runs in diagnosis threads. A
    lock keeps the two apart; both hold it only for a dictionary operation.
    """

    def __init__(
        self,
        *,
        quiet_seconds: float = _LISTING_QUIET_SECONDS,
        wait_seconds: float = _READY_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._quiet = quiet_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[str, KubeObject] = {}
        self._last_listing: float | None = None
        self._watching = False

    def observe(self, event_type: str | None, pod: Mapping[str, Any]) -> None:
        """One pod event: `None` while kopf lists, then ADDED, MODIFIED, DELETED."""
        metadata = _mapping(pod.get("metadata"))
        key = str(metadata.get("uid") or f"{metadata.get('namespace')}/{metadata.get('name')}")
        placed = None if event_type == "DELETED" else placement_of(pod)
        with self._lock:
            if event_type is None:
                self._last_listing = self._clock()
            else:
                self._watching = True
            if placed is None:
                self._pods.pop(key, None)
            else:
                self._pods[key] = placed[1]

    @property
    def ready(self) -> bool:
        """Whether the initial listing has been seen whole."""
        with self._lock:
            last, watching = self._last_listing, self._watching
        return watching or (last is not None and self._clock() - last >= self._quiet)

    def copy(self) -> list[KubeObject] | None:
        """Every scheduled, unfinished pod (cut down), once the listing is over; None when it
        has not ended within the wait (the caller then lists the pods itself)."""
        deadline = self._clock() + self._wait
        while not self.ready:
            if self._clock() >= deadline:
                return None
            time.sleep(min(0.2, self._quiet))
        with self._lock:
            return list(self._pods.values())
