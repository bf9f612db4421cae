"""A `ClusterReader` over a captured snapshot file (DESIGN.md section 10).

A snapshot is a Kubernetes `v1 List` whose items are API objects as the API returns them, plus
`kubetriage.io/v1alpha1` items: `ContainerLog`, `MetricSeries` and one optional `SnapshotInfo`.
A plain `kubectl get pods,events,nodes,... -A -o json` output is a valid snapshot.

"Now" is `SnapshotInfo.capturedAt`, else the newest timestamp found in the snapshot, so that a
diagnosis of an old capture reads the same today as on the day it was taken.

A snapshot holds only some objects, so an object it lacks may be absent from the cluster or
merely not captured. A ConfigMap is known to be absent when `SnapshotInfo.absent` lists it (the
capture writes down each one the API said is not there) or when the snapshot holds other
ConfigMaps of its namespace (a listing of them, as `kubectl get configmaps -n NS -o json` gives,
which always has `kube-root-ca.crt`); otherwise the reader says it cannot tell.

A snapshot file is read from anyone, so reading one is bounded: at most `MAX_SNAPSHOT_BYTES`
are read (a larger file is refused before it is read, an endless stream after the limit), and a
document that is not JSON, nested too deep for the JSON reader, or not a List is refused with a
`SnapshotError`. An item no apiserver could have written (nested deeper than `MAX_ITEM_DEPTH`,
or holding a number outside what JSON from Go carries) is skipped and counted in
`skipped_items`. Strings are made valid Unicode here, once: JSON may spell a lone UTF-16
surrogate (`"\\ud800"`), which Python reads into a `str` that no report can hold (pydantic and
UTF-8 refuse it), and a snapshot is the only way such text reaches kubetriage: the apiserver and
its logs are decoded as UTF-8, which has no surrogates.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
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


# The most a snapshot file may hold. A capture of one workload is kilobytes and a `kubectl get
# -A -o json` of a 10,000-pod cluster about 50 MB; parsing JSON takes several times its size in
# memory, so a larger file is far more likely a mistake (or /dev/zero) than a snapshot.
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
# The deepest an item may nest, counted from the item itself. A Pod is about 10 levels deep and
# a CRD's schema rarely 30; some readers copy or dump parts of an object recursively, which a
# value nested hundreds of levels deep would break.
MAX_ITEM_DEPTH = 100
# Integers as JSON from Go carries them (int64 and uint64 fields); floats are finite there.
_INT_RANGE = range(-(2**63), 2**64)
# The longest names the apiserver accepts: a DNS subdomain (objects), a DNS label (namespaces).
_MAX_NAME = 253
_MAX_NAMESPACE = 63
_READ_CHUNK = 1024 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


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
        self._absent: set[tuple[str, str, str]] = set()  # (kind, namespace, name)
        for item in items:
            safe = _api_object(item)
            if safe is None or not isinstance(safe.get("kind"), str):
                self.skipped_items += 1
                continue
            self._add(safe)

    @classmethod
    def from_file(cls, path: str | Path, *, max_bytes: int = MAX_SNAPSHOT_BYTES) -> SnapshotReader:
        """Load a snapshot file of at most `max_bytes`; raises SnapshotError for anything that
        is not one, with a message that names the file and says why."""
        file = Path(path)
        data = _read_bounded(file, max_bytes)
        try:
            # A byte that is not UTF-8 (a raw binary log) becomes U+FFFD, as the live reader
            # decodes logs, instead of making the whole snapshot unreadable.
            text = data.decode(json.detect_encoding(data), "replace")
            del data  # a second copy of up to 512 MiB is not kept while the JSON is parsed
            document = json.loads(text)
        except RecursionError as error:
            raise SnapshotError(
                f"{file} is not a JSON snapshot: it is nested deeper than the JSON reader follows"
            ) from error
        except ValueError as error:  # JSON, Unicode, and integers of more than 4,300 digits
            raise SnapshotError(f"{file} is not a JSON snapshot: {error}") from error
        return cls.from_document(document, source=str(file))

    @classmethod
    def from_document(cls, document: Any, *, source: str = "<snapshot>") -> SnapshotReader:
        """Read a parsed snapshot: a `v1 List`, or a single object."""
        if isinstance(document, dict) and "items" in document:
            if not isinstance(document["items"], list):
                raise SnapshotError(
                    f"{source} is not a Kubernetes List: its 'items' is not a list "
                    f"but {_json_type(document['items'])}"
                )
            return cls(document["items"], source=source)
        if isinstance(document, dict) and isinstance(document.get("kind"), str):
            if document["kind"].endswith("List"):
                raise SnapshotError(f"{source} is a {document['kind']} without 'items'")
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
            absent_items = item.get("absent")
            for absent in absent_items if isinstance(absent_items, list) else []:
                fields = as_dict(absent)
                key = (_text(fields.get("kind")), _text(fields.get("namespace")))
                if all(key) and _text(fields.get("name")):
                    self._absent.add((*key, _text(fields.get("name"))))
            return
        if kind.endswith("List") and isinstance(item.get("items"), list):
            for nested in item["items"]:
                if isinstance(nested, dict) and isinstance(nested.get("kind"), str):
                    self._add(nested)
                else:
                    self.skipped_items += 1
            return
        meta = item.get("metadata")
        if not isinstance(meta, dict) or not _is_name(meta.get("name"), _MAX_NAME):
            self.skipped_items += 1
            return
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
        if namespace is not None and not _is_name(namespace, _MAX_NAMESPACE):
            self.skipped_items += 1
            return
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

    def persistent_volume(self, name: str) -> KubeObject | None:
        """A PersistentVolume; None when the snapshot does not hold it."""
        return self._find("PersistentVolume", None, name)

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

    def services(self, namespace: str | None = None) -> list[KubeObject]:
        """Services of one namespace, or all."""
        return self._in_namespace("Service", namespace)

    def endpoint_slices(self, namespace: str, service: str) -> list[KubeObject]:
        """The EndpointSlices labelled as the Service's."""
        return [
            item
            for item in self._in_namespace("EndpointSlice", namespace)
            if as_dict(as_dict(item.get("metadata")).get("labels")).get(
                "kubernetes.io/service-name"
            )
            == service
        ]

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

    def config_map_exists(self, namespace: str, name: str) -> bool | None:
        """True when the snapshot holds the ConfigMap; False when it records it as absent or
        holds the namespace's ConfigMaps without it; None (not captured) otherwise."""
        if self._find("ConfigMap", namespace, name) is not None:
            return True
        if ("ConfigMap", namespace, name) in self._absent:
            return False
        return False if self._in_namespace("ConfigMap", namespace) else None

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


def _is_name(value: Any, longest: int) -> bool:
    return isinstance(value, str) and len(value) <= longest


def _read_bounded(file: Path, max_bytes: int) -> bytes:
    """At most `max_bytes` of the file, or SnapshotError: a regular file larger than that is
    refused by its size without being read, anything else (a pipe, a device) once it has given
    one byte more. Input that cannot begin a JSON document (as /dev/zero, /dev/urandom or an
    image) is refused after its first chunk."""
    limit = f"the {_size(max_bytes)} a snapshot may have"
    try:
        with file.open("rb") as handle:
            status = os.fstat(handle.fileno())
            if stat.S_ISREG(status.st_mode) and status.st_size > max_bytes:
                raise SnapshotError(f"{file} is larger than {limit} ({status.st_size} bytes)")
            chunks: list[bytes] = []
            read = 0
            while read <= max_bytes:
                chunk = handle.read(min(_READ_CHUNK, max_bytes + 1 - read))
                if not chunk:
                    break
                if not chunks and not _may_start_json(chunk):
                    raise SnapshotError(
                        f"{file} is not a JSON snapshot: it does not start with '{{' or '['"
                    )
                chunks.append(chunk)
                read += len(chunk)
    except OSError as error:
        raise SnapshotError(f"cannot read snapshot {file}: {error.strerror or error}") from error
    if read > max_bytes:
        raise SnapshotError(f"{file} is larger than {limit} (read {read} bytes and stopped)")
    return b"".join(chunks)


def _may_start_json(head: bytes) -> bool:
    """Whether the first bytes of a file may begin a JSON object or array, in any encoding
    `json.loads` reads (UTF-8 with or without a BOM, UTF-16, UTF-32)."""
    start = head[:64].decode(json.detect_encoding(head), "replace").lstrip("\ufeff \t\r\n")
    return not start or start[0] in "{["


def _size(value: int) -> str:
    mib = value / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{value} bytes"


def _json_type(value: Any) -> str:
    names = {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _api_object(item: Any) -> dict[str, Any] | None:
    """The item as an API object a reader can take: its strings valid Unicode; None when it is
    not a mapping, or holds what no apiserver writes (deeper than MAX_ITEM_DEPTH, a number out
    of the range of JSON from Go). One walk, without recursion, over every value."""
    if not isinstance(item, dict):
        return None
    surrogates = False
    stack: list[tuple[Any, int]] = [(item, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_ITEM_DEPTH:
            return None
        if type(node) is dict:
            values: Any = node.values()
            surrogates = surrogates or any(_has_surrogate(key) for key in node)
        else:
            values = node
        # Exact types, not isinstance: this runs for every value of the snapshot, and JSON
        # gives no subclasses (a bool, which is an int subclass, passes untouched).
        for value in values:
            kind = type(value)
            if kind is str:
                surrogates = surrogates or _has_surrogate(value)
            elif kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif kind is int:
                if value not in _INT_RANGE:
                    return None
            elif kind is float and not math.isfinite(value):
                return None
    if not surrogates:
        return item
    # Rare, so done the simple way: within MAX_ITEM_DEPTH, the JSON round trip cannot recurse
    # too deep. Every surrogate left in a str is a lone one (json pairs the others).
    try:
        repaired: dict[str, Any] = json.loads(
            _SURROGATE.sub("\ufffd", json.dumps(item, ensure_ascii=False))
        )
    except (TypeError, ValueError):  # an item built in Python, with what JSON cannot hold
        return None
    return repaired


def _has_surrogate(value: Any) -> bool:
    return type(value) is str and not value.isascii() and _SURROGATE.search(value) is not None


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
