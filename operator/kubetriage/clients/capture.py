"""`kubetriage capture`: a snapshot of exactly what the playbooks read for one workload.

The capture runs the diagnosis itself through a reader that records every answer, then writes
those answers as a snapshot (DESIGN.md section 10). `diagnose --snapshot` of the file therefore
reads the same objects and reaches the same conclusion. ConfigMaps are kept as keys only, and
Secrets are never read, so a snapshot can be shared as freely as a report. A ConfigMap the
reader said does not exist is written down as absent (`SnapshotInfo.absent`), so that the
snapshot tells it apart from one it did not capture.
"""

from __future__ import annotations

from typing import Any, cast

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject
from kubetriage.k8s.time import format_time

KUBETRIAGE_API = "kubetriage.io/v1alpha1"


class RecordingReader:
    """Wraps a reader; remembers every object, log and series it returns."""

    def __init__(self, inner: ClusterReader) -> None:
        self._inner = inner
        self._objects: dict[tuple[str, str, str], KubeObject] = {}
        self._extras: list[dict[str, Any]] = []
        self._absent: set[tuple[str, str, str]] = set()

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._inner, method)

        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = target(*args, **kwargs)
            self._record(method, args, kwargs, result)
            return result

        return recorded

    def as_reader(self) -> ClusterReader:
        """This wrapper, typed as the reader it stands in for."""
        return cast(ClusterReader, self)

    def _record(
        self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
    ) -> None:
        if method == "container_log" and isinstance(result, str):
            namespace, pod, container = args[:3]
            self._extras.append(
                {
                    "apiVersion": KUBETRIAGE_API,
                    "kind": "ContainerLog",
                    "metadata": {"namespace": namespace, "name": pod},
                    "container": container,
                    "previous": bool(kwargs.get("previous")),
                    "text": result,
                }
            )
        elif method == "metric_series" and result:
            namespace, pod, container, metric = args[:4]
            self._extras.append(
                {
                    "apiVersion": KUBETRIAGE_API,
                    "kind": "MetricSeries",
                    "metadata": {"namespace": namespace, "name": pod},
                    "container": container,
                    "metric": metric,
                    "samples": [list(s) for s in result],
                }
            )
        elif method == "config_map_keys" and result is not None:
            namespace, name = args[:2]
            self._keep(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"namespace": namespace, "name": name},
                    "data": dict.fromkeys(sorted(result), ""),
                }
            )
        elif method == "config_map_exists" and result is False:
            namespace, name = args[:2]
            self._absent.add(("ConfigMap", str(namespace), str(name)))
        elif isinstance(result, dict):
            self._keep(result)
        elif isinstance(result, list):
            for item in result:
                if isinstance(item, dict):
                    self._keep(item)

    def _keep(self, obj: KubeObject) -> None:
        meta = obj.get("metadata") or {}
        kind = str(obj.get("kind") or "")
        if not kind or kind == "Secret":
            return
        slim = {key: value for key, value in obj.items() if key != "metadata"}
        slim["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
        self._objects[(kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = slim

    def snapshot(self) -> dict[str, Any]:
        """The recorded answers as a snapshot document."""
        info: dict[str, Any] = {
            "apiVersion": KUBETRIAGE_API,
            "kind": "SnapshotInfo",
            "metadata": {"name": "snapshot"},
            "capturedAt": format_time(self._inner.now()),
            "clusterName": self._inner.cluster_name(),
        }
        if self._absent:
            info["absent"] = [
                {"kind": kind, "namespace": namespace, "name": name}
                for kind, namespace, name in sorted(self._absent)
            ]
        objects = [self._objects[key] for key in sorted(self._objects)]
        return {"apiVersion": "v1", "kind": "List", "items": [info, *objects, *self._extras]}
