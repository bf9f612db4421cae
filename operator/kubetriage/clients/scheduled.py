"""What every node holds, kept from the pod watch instead of listed per diagnosis.

A Pending diagnosis compares a pod's requests with each node's room, which needs every pod bound
to a node, cluster-wide. Listing them costs a LIST of every pod (about 40 MB of JSON at 10,000
pods) per diagnosis; the operator already sees every pod on its watch, so a kopf index keeps the
few fields that count against a node (`placement_of`), and diagnoses read a copy of it
(`ScheduledPods`). kopf holds every handler back until its indexes are fully populated by the
initial listing, so no diagnosis ever sees a partial view.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Mapping
from typing import Any

from kubetriage.clients.kube import KubeObject

_FINISHED = frozenset({"Succeeded", "Failed"})
# How long a diagnosis thread waits for the event loop to copy the index: the loop is never
# blocked for long, so a wait this long means it is stuck, and the reader falls back to a LIST.
_COPY_TIMEOUT_SECONDS = 10.0


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
    if not isinstance(node, str) or not node or phase in _FINISHED:
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
    """The operator's index of scheduled pods, readable from diagnosis threads.

    kopf's index lives on the event loop and changes with every pod event; iterating it from
    another thread could see it change mid-way. A copy is therefore made on the loop, and the
    diagnosis thread waits for it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._index: Mapping[str, Any] | None = None

    @property
    def attached(self) -> bool:
        """Whether kopf has handed over its index (with the first pod event)."""
        return self._index is not None

    def attach(self, index: Mapping[str, Any]) -> None:
        """Keep kopf's index (the same object for the operator's whole life)."""
        self._index = index

    def _copy(self) -> list[KubeObject]:
        index = self._index
        return [dict(pod) for node in list(index or {}) for pod in (index or {}).get(node, ())]

    def copy(self) -> list[KubeObject] | None:
        """Every scheduled, unfinished pod (cut down), or None when there is no index yet or
        the event loop did not answer in time."""
        if self._index is None:
            return None
        if self._on_loop_thread():
            return self._copy()
        result: concurrent.futures.Future[list[KubeObject]] = concurrent.futures.Future()

        def copy_on_loop() -> None:
            try:
                result.set_result(self._copy())
            except Exception as error:  # handed to the waiting thread
                result.set_exception(error)

        try:
            self._loop.call_soon_threadsafe(copy_on_loop)
            return result.result(timeout=_COPY_TIMEOUT_SECONDS)
        except (RuntimeError, concurrent.futures.TimeoutError):
            return None

    def _on_loop_thread(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:  # no loop in this thread: a diagnosis thread
            return False
