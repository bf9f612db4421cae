"""The read-only view of a cluster that playbooks read through.

Playbooks never call the Kubernetes client: they ask a `ClusterReader`. The same playbook then
runs live (the implementation over the API, with the operator), offline on a captured snapshot
(`clients.snapshot.SnapshotReader`), and in unit tests. Objects are plain dicts exactly as the
API returns them in JSON (camelCase keys), so a snapshot and a live read look the same.

The reader never exposes Secret data: `secret_exists` answers existence only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import urllib3
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.k8s.access import KubeObject, is_scheduled

Sample = tuple[float, float]


class ClusterReadError(RuntimeError):
    """A read the apiserver did not answer: unreachable, throttled, a 5xx, a body that is not
    JSON. Transient by nature, so the diagnosis that made it is retried; any other exception
    raised while diagnosing is a bug of the playbook and is not."""


class ClusterReader(Protocol):
    """Everything a playbook may read. Each method returns [] or None for what is not there."""

    def now(self) -> datetime:
        """The current time: the clock live, the capture time of a snapshot."""
        ...

    def cluster_name(self) -> str:
        """The cluster's name as reports and issues call it."""
        ...

    def namespace(self, name: str) -> KubeObject | None:
        """A Namespace (its labels mark production)."""
        ...

    def pods(self, namespace: str | None = None) -> list[KubeObject]:
        """Pods of a namespace, or of every namespace for None."""
        ...

    def scheduled_pods(self) -> list[KubeObject]:
        """Every pod bound to a node and not finished, cluster-wide: what the scheduler counts
        against each node's allocatable. Each has at least its name, namespace, node, phase and
        requests; the rest of the pod may be left out."""
        ...

    def events(self, namespace: str) -> list[KubeObject]:
        """core/v1 Events of a namespace (scheduler events included, as core/v1 reads them)."""
        ...

    def nodes(self) -> list[KubeObject]:
        """Every Node."""
        ...

    def workloads(self, kind: str, namespace: str | None = None) -> list[KubeObject]:
        """Objects of an apps/batch kind: Deployment, ReplicaSet, StatefulSet, DaemonSet, Job,
        CronJob."""
        ...

    def workload(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One object of an apps/batch kind, by name."""
        ...

    def persistent_volume_claim(self, namespace: str, name: str) -> KubeObject | None:
        """A PersistentVolumeClaim."""
        ...

    def persistent_volume(self, name: str) -> KubeObject | None:
        """A PersistentVolume (cluster-scoped): where a bound claim's volume may be used."""
        ...

    def storage_class(self, name: str) -> KubeObject | None:
        """A StorageClass."""
        ...

    def storage_classes(self) -> list[KubeObject]:
        """Every StorageClass (to find the default one)."""
        ...

    def service(self, namespace: str, name: str) -> KubeObject | None:
        """A Service."""
        ...

    def endpoints(self, namespace: str, name: str) -> KubeObject | None:
        """The Endpoints of a Service."""
        ...

    def services(self, namespace: str | None = None) -> list[KubeObject]:
        """Services of a namespace, or of every namespace for None: to find the Service a
        ClusterIP in a log belongs to."""
        ...

    def endpoint_slices(self, namespace: str, service: str) -> list[KubeObject]:
        """The discovery.k8s.io/v1 EndpointSlices of a Service (label
        `kubernetes.io/service-name`): its endpoints and whether each is ready."""
        ...

    def resource_quotas(self, namespace: str) -> list[KubeObject]:
        """ResourceQuotas of a namespace."""
        ...

    def service_account(self, namespace: str, name: str) -> KubeObject | None:
        """A ServiceAccount."""
        ...

    def config_map_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a ConfigMap (never its values), None when the reader does not have it."""
        ...

    def config_map_exists(self, namespace: str, name: str) -> bool | None:
        """Whether a ConfigMap exists: live, always known; None from a snapshot that did not
        capture it (which is not the same as "it does not exist")."""
        ...

    def secret_exists(self, namespace: str, name: str) -> bool | None:
        """Whether a Secret exists; None when the reader cannot tell. Never reads its data."""
        ...

    def container_log(
        self, namespace: str, pod: str, container: str, *, previous: bool
    ) -> str | None:
        """A container's log (bounded by the reader), None when there is none."""
        ...

    def metric_series(
        self, namespace: str, pod: str, container: str, metric: str
    ) -> list[Sample] | None:
        """Samples [(unix seconds, value)] of a metric; None when there is no history source."""
        ...


class LiveClusterReader:
    """A `ClusterReader` over the Kubernetes API (the official client, synchronous).

    Use one instance per diagnosis: it remembers what it read, so a playbook that asks for the
    events of a namespace five times costs one LIST. Run it off the event loop
    (`asyncio.to_thread`). Reads are raw JSON, so objects look exactly like a snapshot's.
    Secrets are never read: `secret_exists` answers None (unknown) because the operator's RBAC
    grants no access to Secrets at all.
    """

    def __init__(
        self,
        api: ApiClient,
        *,
        cluster_name: str = "default",
        history: MetricHistory | None = None,
        shared: SharedCache | None = None,
        scheduled: Callable[[], list[KubeObject] | None] | None = None,
        log_limit_bytes: int = 256 * 1024,
        log_tail_lines: int = 500,
        request_timeout: float = 10.0,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._batch = client.BatchV1Api(api)
        self._storage = client.StorageV1Api(api)
        self._discovery = client.DiscoveryV1Api(api)
        self._cluster_name = cluster_name
        self._history = history
        self._shared = shared
        self._scheduled = scheduled
        self._log_limit_bytes = log_limit_bytes
        self._log_tail_lines = log_tail_lines
        self._timeout = request_timeout
        self._memo: dict[tuple[Any, ...], Any] = {}
        self.requests = 0

    def _json(
        self,
        method: Callable[..., Any],
        *args: Any,
        missing: frozenset[int] = frozenset(),
        **kwargs: Any,
    ) -> Any:
        """One request's JSON body; None for an answer whose status is in `missing`."""
        return _answer(self._raw, missing, method, *args, **kwargs)

    def _raw(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
        self.requests += 1
        response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
        return _body(response)

    def _read(self, key: tuple[Any, ...], method: Callable[..., Any], *args: Any) -> Any:
        """GET one object, memoized; None when it does not exist."""
        if key not in self._memo:
            self._memo[key] = self._json(method, *args, missing=_NOT_FOUND)
        return self._memo[key]

    def _list(
        self, key: tuple[Any, ...], method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> list[KubeObject]:
        """LIST objects, memoized, with `kind` set on each item as `kubectl get -o json` does."""
        if key not in self._memo:
            document = self._json(method, *args, **kwargs)
            kind = str(document.get("kind", "")).removesuffix("List")
            api_version = document.get("apiVersion")
            items = [
                dict(item, kind=kind, apiVersion=api_version)
                for item in document.get("items") or []
            ]
            self._memo[key] = items
        return list(self._memo[key])

    def now(self) -> datetime:
        """The clock."""
        return datetime.now(UTC)

    def cluster_name(self) -> str:
        """The configured cluster name."""
        return self._cluster_name

    def namespace(self, name: str) -> KubeObject | None:
        """A Namespace (its labels change rarely: shared between readers for a while)."""
        if self._shared is not None:
            cached = self._shared.get(("ns", name))
            if cached is not None:
                return cast(KubeObject | None, cached[0])
        found: KubeObject | None = self._read(("ns", name), self._core.read_namespace, name)
        if self._shared is not None:
            self._shared.put(("ns", name), (found,))
        return found

    def pods(self, namespace: str | None = None) -> list[KubeObject]:
        """Pods of a namespace, or of all."""
        if namespace is None:
            return self._list(("pods",), self._core.list_pod_for_all_namespaces)
        return self._list(("pods", namespace), self._core.list_namespaced_pod, namespace)

    def scheduled_pods(self) -> list[KubeObject]:
        """Scheduled pods from the operator's watch when it keeps them (no request at all),
        else from a LIST of every pod."""
        kept = self._scheduled() if self._scheduled is not None else None
        if kept is not None:
            return kept
        return [pod for pod in self.pods(None) if is_scheduled(pod)]

    def events(self, namespace: str) -> list[KubeObject]:
        """core/v1 Events of a namespace."""
        return self._list(("events", namespace), self._core.list_namespaced_event, namespace)

    def nodes(self) -> list[KubeObject]:
        """Every Node."""
        return self._list(("nodes",), self._core.list_node)

    def _workload_api(
        self, kind: str
    ) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
        apis = {
            "Deployment": (
                self._apps.list_namespaced_deployment,
                self._apps.list_deployment_for_all_namespaces,
                self._apps.read_namespaced_deployment,
            ),
            "ReplicaSet": (
                self._apps.list_namespaced_replica_set,
                self._apps.list_replica_set_for_all_namespaces,
                self._apps.read_namespaced_replica_set,
            ),
            "StatefulSet": (
                self._apps.list_namespaced_stateful_set,
                self._apps.list_stateful_set_for_all_namespaces,
                self._apps.read_namespaced_stateful_set,
            ),
            "DaemonSet": (
                self._apps.list_namespaced_daemon_set,
                self._apps.list_daemon_set_for_all_namespaces,
                self._apps.read_namespaced_daemon_set,
            ),
            "Job": (
                self._batch.list_namespaced_job,
                self._batch.list_job_for_all_namespaces,
                self._batch.read_namespaced_job,
            ),
            "CronJob": (
                self._batch.list_namespaced_cron_job,
                self._batch.list_cron_job_for_all_namespaces,
                self._batch.read_namespaced_cron_job,
            ),
        }
        if kind not in apis:
            raise ValueError(f"not a workload kind: {kind}")
        return apis[kind]

    def workloads(self, kind: str, namespace: str | None = None) -> list[KubeObject]:
        """Objects of one workload kind."""
        namespaced, everywhere, _ = self._workload_api(kind)
        if namespace is None:
            return self._list((kind,), everywhere)
        return self._list((kind, namespace), namespaced, namespace)

    def workload(self, kind: str, namespace: str, name: str) -> KubeObject | None:
        """One workload object."""
        if kind == "Pod":
            found: KubeObject | None = self._read(
                ("pod", namespace, name), self._core.read_namespaced_pod, name, namespace
            )
            return found
        _, _, read = self._workload_api(kind)
        found = self._read((kind, namespace, name), read, name, namespace)
        return None if found is None else dict(found, kind=kind)

    def persistent_volume_claim(self, namespace: str, name: str) -> KubeObject | None:
        """A PersistentVolumeClaim."""
        found: KubeObject | None = self._read(
            ("pvc", namespace, name),
            self._core.read_namespaced_persistent_volume_claim,
            name,
            namespace,
        )
        return found

    def persistent_volume(self, name: str) -> KubeObject | None:
        """A PersistentVolume."""
        found: KubeObject | None = self._read(("pv", name), self._core.read_persistent_volume, name)
        return found

    def storage_class(self, name: str) -> KubeObject | None:
        """A StorageClass."""
        found: KubeObject | None = self._read(("sc", name), self._storage.read_storage_class, name)
        return found

    def storage_classes(self) -> list[KubeObject]:
        """Every StorageClass."""
        return self._list(("storageclasses",), self._storage.list_storage_class)

    def service(self, namespace: str, name: str) -> KubeObject | None:
        """A Service."""
        found: KubeObject | None = self._read(
            ("svc", namespace, name), self._core.read_namespaced_service, name, namespace
        )
        return found

    def endpoints(self, namespace: str, name: str) -> KubeObject | None:
        """The Endpoints of a Service."""
        found: KubeObject | None = self._read(
            ("ep", namespace, name), self._core.read_namespaced_endpoints, name, namespace
        )
        return found

    def services(self, namespace: str | None = None) -> list[KubeObject]:
        """Services of a namespace, or of all."""
        if namespace is None:
            return self._list(("services",), self._core.list_service_for_all_namespaces)
        return self._list(("services", namespace), self._core.list_namespaced_service, namespace)

    def endpoint_slices(self, namespace: str, service: str) -> list[KubeObject]:
        """A Service's EndpointSlices, listed by the label the EndpointSlice controller sets."""
        return self._list(
            ("endpointslices", namespace, service),
            self._discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=f"kubernetes.io/service-name={service}",
        )

    def resource_quotas(self, namespace: str) -> list[KubeObject]:
        """ResourceQuotas of a namespace."""
        return self._list(
            ("quotas", namespace), self._core.list_namespaced_resource_quota, namespace
        )

    def service_account(self, namespace: str, name: str) -> KubeObject | None:
        """A ServiceAccount."""
        found: KubeObject | None = self._read(
            ("sa", namespace, name), self._core.read_namespaced_service_account, name, namespace
        )
        return found

    def config_map_keys(self, namespace: str, name: str) -> set[str] | None:
        """The keys of a ConfigMap; its values are dropped as soon as they are read."""
        config_map = self._read(
            ("cm", namespace, name), self._core.read_namespaced_config_map, name, namespace
        )
        if config_map is None:
            return None
        return {key for field in ("data", "binaryData") for key in (config_map.get(field) or {})}

    def config_map_exists(self, namespace: str, name: str) -> bool | None:
        """Whether the ConfigMap exists (the same GET as its keys): the API always knows."""
        return self.config_map_keys(namespace, name) is not None

    def secret_exists(self, namespace: str, name: str) -> bool | None:
        """Unknown: the operator may not read Secrets, not even their metadata."""
        return None

    def container_log(
        self, namespace: str, pod: str, container: str, *, previous: bool
    ) -> str | None:
        """The log's tail, bounded in lines and bytes; None when the kubelet has none."""
        key = ("log", namespace, pod, container, previous)
        if key not in self._memo:
            # 400: the container has no previous instance (or is waiting); 404: no such pod.
            body = _answer(
                self._raw,
                _NO_LOG,
                self._core.read_namespaced_pod_log,
                pod,
                namespace,
                container=container,
                previous=previous,
                tail_lines=self._log_tail_lines,
                limit_bytes=self._log_limit_bytes,
                decode=False,
            )
            self._memo[key] = None if body is None else body.decode("utf-8", "replace")
        found: str | None = self._memo[key]
        return found

    def metric_series(
        self, namespace: str, pod: str, container: str, metric: str
    ) -> list[Sample] | None:
        """History from the configured source; None without one."""
        if self._history is None:
            return None
        return self._history.series(namespace, pod, container, metric)


_NOT_FOUND = frozenset({404})
_NO_LOG = frozenset({400, 404})


def _answer(
    raw: Callable[..., bytes],
    missing: frozenset[int],
    method: Callable[..., Any],
    *args: Any,
    decode: bool = True,
    **kwargs: Any,
) -> Any:
    """A request's body (parsed JSON unless `decode` is false), None for a status in `missing`;
    every other failure becomes a ClusterReadError naming the request."""
    try:
        body = raw(method, *args, **kwargs)
        return json.loads(body) if decode else body
    except ApiException as error:
        if error.status in missing:
            return None
        raise ClusterReadError(f"{method.__name__}: HTTP {error.status} {error.reason}") from error
    except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        raise ClusterReadError(f"{method.__name__}: {type(error).__name__}: {error}") from error


def _body(response: Any) -> bytes:
    """A raw response's body. The connection goes back to the pool only when released: without
    it, every request pays a new TLS handshake (5x the cost of the request itself)."""
    try:
        return bytes(response.data)
    finally:
        response.release_conn()


class SharedCache:
    """A small time-bounded cache shared by the readers of many diagnoses, for objects that
    change rarely (Namespaces): a burst of 50 diagnoses then costs one GET, not 50."""

    def __init__(
        self, ttl_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The cached value (boxed in a tuple, so None can be cached), or None when stale."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or self._clock() - entry[0] > self._ttl:
                return None
            return entry[1]

    def put(self, key: tuple[str, ...], value: tuple[Any, ...]) -> None:
        """Remember a value from now on."""
        with self._lock:
            self._entries[key] = (self._clock(), value)


class MetricHistory(Protocol):
    """Where memory history comes from (Prometheus, in clients/prometheus.py)."""

    def series(self, namespace: str, pod: str, container: str, metric: str) -> list[Sample] | None:
        """Samples of one container's metric, [] when there is no such series.

        Raises when the source fails (timeout, unreachable): the playbook says so as evidence.
        """
        ...
