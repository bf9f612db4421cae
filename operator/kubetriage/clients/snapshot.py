"""A `ClusterReader` over a captured snapshot file (DESIGN.md section 10).

A snapshot is a Kubernetes `v1 List` whose items are API objects as the API returns them, plus
`kubetriage.io/v1alpha1` items: `ContainerLog`, `MetricSeries` and one optional `SnapshotInfo`.
A plain `kubectl get pods,events,nodes,... -A -o json` output is a valid snapshot.

"Now" is `SnapshotInfo.capturedAt`, else the newest timestamp found in the snapshot, so that a
diagnosis of an old capture reads the same today as on the day it was taken.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubetriage.clients.kube import Sample
from kubetriage.k8s.access import KubeObject, as_dict, is_scheduled
from kubetriage.k8s.time import parse_time

KUBETRIAGE_API = "kubetriage.io/v1alpha1"
# Timestamps that say when something happened, for "now" when the snapshot does not say.
_TIME_FIELDS = (
    "lastTimestamp",
    "eventTime",
    "lastObservedTime",
    "finishedAt",
    "startedAt",
    "lastTransitionTime",
    "lastHeartbeatTime",
    "creationTimestamp",
)


class SnapshotError(ValueError):
    """A snapshot file that cannot be read as a snapshot. The message says why."""


class SnapshotReader:
    """Answers every `ClusterReader` question from the items of one snapshot."""

    def __init__(self, items: list[Any], *, source: str = "<snapshot>") -> None:
        self.source = source
        self.skipped_items = 0
        self._by_kind: dict[str, list[KubeObject]] = defaultdict(list)
        self._by_namespace: dict[tuple[str, str | None], list[KubeObject]] = defaultdict(list)
        self._by_name: dict[tuple[str, str | None, str], KubeObject] = {}
        self._logs: dict[tuple[str, str, str, bool], str] = {}
        self._series: dict[tuple[str, str, str, str], list[Sample]] = {}
        self._captured_at: datetime | None = None
        self._cluster_name = "default"
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
                self.skipped_items += 1
                continue
            self._add(item)

    @classmethod
    def from_file(cls, path: str | Path) -> SnapshotReader:
        """Load a snapshot file; raises SnapshotError for anything that is not one."""
        file = Path(path)
        try:
            document = json.loads(file.read_bytes())
        except OSError as error:
            raise SnapshotError(
                f"cannot read snapshot {file}: {error.strerror or error}"
            ) from error
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SnapshotError(f"{file} is not a JSON snapshot: {error}") from error
        return cls.from_document(document, source=str(file))

    @classmethod
    def from_document(cls, document: Any, *, source: str = "<snapshot>") -> SnapshotReader:
        """Read a parsed snapshot: a `v1 List`, or a single object."""
        if isinstance(document, dict) and isinstance(document.get("items"), list):
            return cls(document["items"], source=source)
        if isinstance(document, dict) and isinstance(document.get("kind"), str):
            return cls([document], source=source)
        raise SnapshotError(f"{source} is not a Kubernetes List (no 'items' array)")

    # -- loading --------------------------------------------------------------------------------

    def _add(self, item: KubeObject) -> None:
        kind = item["kind"]
        if item.get("apiVersion") == KUBETRIAGE_API and kind in {"ContainerLog", "MetricSeries"}:
            self._add_kubetriage_item(item)
            return
        if kind == "SnapshotInfo":
            self._captured_at = parse_time(item.get("capturedAt"))
            if isinstance(item.get("clusterName"), str) and item["clusterName"]:
                self._cluster_name = item["clusterName"]
            return
        if kind.endswith("List") and isinstance(item.get("items"), list):
            for nested in item["items"]:
                if isinstance(nested, dict) and isinstance(nested.get("kind"), str):
                    self._add(nested)
                else:
                    self.skipped_items += 1
            return
        meta = item.get("metadata")
        if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
            self.skipped_items += 1
            return
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
        self._by_kind[kind].append(item)
        self._by_namespace[(kind, namespace)].append(item)
        self._by_name.setdefault((kind, namespace, meta["name"]), item)

    def _add_kubetriage_item(self, item: KubeObject) -> None:
        meta = as_dict(item.get("metadata"))
        namespace = _text(item.get("namespace")) or _text(meta.get("namespace"))
        pod = _text(item.get("pod")) or _text(meta.get("name"))
        container = _text(item.get("container"))
        if not (namespace and pod and container):
            self.skipped_items += 1
            return
        if item["kind"] == "ContainerLog":
            text = item.get("text")
            if isinstance(text, str):
                self._logs[(namespace, pod, container, bool(item.get("previous")))] = text
            else:
                self.skipped_items += 1
            return
        samples = _samples(item.get("samples"))
        metric = item.get("metric")
        if samples is None or not isinstance(metric, str):
            self.skipped_items += 1
            return
        self._series[(namespace, pod, container, metric)] = samples

    # -- ClusterReader --------------------------------------------------------------------------

    def now(self) -> datetime:
        """Capture time, else the newest timestamp in the snapshot, else the clock."""
        if self._captured_at is not None:
            return self._captured_at
        newest = max(
            (t for items in self._by_kind.values() for item in items for t in _times(item)),
            default=None,
        )
        self._captured_at = newest or datetime.now(UTC)
        return self._captured_at

    def cluster_name(self) -> str:
        """The `SnapshotInfo.clusterName`, else `default`."""
        return self._cluster_name

    def namespace(self, name: str) -> KubeObject | None:
        """A Namespace by name."""
        return self._find("Namespace", None, name)

    def pods(self, namespace: str | None = None) -> list[KubeObject]:
        """Pods of one namespace, or all."""
        return self._in_namespace("Pod", namespace)

    def scheduled_pods(self) -> list[KubeObject]:
        """Every pod of the snapshot that is bound to a node and not finished."""
        return [pod for pod in self.pods(None) if is_scheduled(pod)]

    def events(self, namespace: str) -> list[KubeObject]:
        """Events of a namespace."""
        return self._in_namespace("Event", namespace)

    def nodes(self) -> list[KubeObject]:
        """Every Node."""
        return list(self._by_kind.get("Node", []))

    def workloads(self, kind: str, namespace: str | None = None) -> list[KubeObject]:
        """Objects of one workload kind."""
        return self._in_namespace(kind, namespace)

    def workload(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One workload object."""
        return self._find(kind, namespace, name)

    def persistent_volume_claim(self, namespace: str, name: str) -> KubeObject | None:
        """A PersistentVolumeClaim."""
        return self._find("PersistentVolumeClaim", namespace, name)

    def storage_class(self, name: str) -> KubeObject | None:
        """A StorageClass."""
        return self._find("StorageClass", None, name)

    def storage_classes(self) -> list[KubeObject]:
        """Every StorageClass."""
        return list(self._by_kind.get("StorageClass", []))

    def service(self, namespace: str, name: str) -> KubeObject | None:
        """A Service."""
        return self._find("Service", namespace, name)

    def endpoints(self, namespace: str, name: str) -> KubeObject | None:
        """Endpoints of a Service."""
        return self._find("Endpoints", namespace, name)

    def resource_quotas(self, namespace: str) -> list[KubeObject]:
        """ResourceQuotas of a namespace."""
        return self._in_namespace("ResourceQuota", namespace)

    def service_account(self, namespace: str, name: str) -> KubeObject | None:
        """A ServiceAccount."""
        return self._find("ServiceAccount", namespace, name)

    def config_map_keys(self, namespace: str, name: str) -> set[str] | None:
        """Keys of a ConfigMap, None when the snapshot does not have it."""
        config_map = self._find("ConfigMap", namespace, name)
        if config_map is None:
            return None
        keys: set[str] = set()
        for field in ("data", "binaryData"):
            if isinstance(config_map.get(field), dict):
                keys.update(config_map[field])
        return keys

    def secret_exists(self, namespace: str, name: str) -> bool | None:
        """True when the snapshot holds the Secret; None (unknown) otherwise: captures skip them."""
        return True if self._find("Secret", namespace, name) is not None else None

    def container_log(
        self, namespace: str, pod: str, container: str, *, previous: bool
    ) -> str | None:
        """A captured log."""
        return self._logs.get((namespace, pod, container, previous))

    def metric_series(
        self, namespace: str, pod: str, container: str, metric: str
    ) -> list[Sample] | None:
        """A captured series; None when the snapshot has no series at all (no history source)."""
        if not self._series:
            return None
        return self._series.get((namespace, pod, container, metric), [])

    # -- helpers --------------------------------------------------------------------------------

    def _in_namespace(self, kind: str, namespace: str | None) -> list[KubeObject]:
        if namespace is None:
            return list(self._by_kind.get(kind, []))
        return list(self._by_namespace.get((kind, namespace), []))

    def _find(self, kind: str, namespace: str | None, name: str) -> KubeObject | None:
        return self._by_name.get((kind, namespace, name))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _samples(raw: Any) -> list[Sample] | None:
    if not isinstance(raw, list):
        return None
    samples: list[Sample] = []
    for pair in raw:
        if (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        ):
            samples.append((float(pair[0]), float(pair[1])))
    return sorted(samples)


def _times(item: KubeObject) -> list[datetime]:
    found: list[datetime] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _TIME_FIELDS and isinstance(value, str):
                    parsed = parse_time(value)
                    if parsed is not None:
                        found.append(parsed)
                elif isinstance(value, dict | list):
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node:
                walk(value, depth + 1)

    walk(item, 0)
    return found
