"""What the CrashLoopBackOff runbook reads beyond the pod, through every `ClusterReader`: Services
(to find one by its ClusterIP), a Service's EndpointSlices (discovery.k8s.io/v1), and whether a
ConfigMap exists at all, which a snapshot may not know ("not captured" is not "does not exist").

The live reader is driven through the Kubernetes client's own API objects with their HTTP call
replaced, so that the request it makes (path parameters, label selector), its memo and its
errors are what is checked; the snapshot reader and the capture over plain snapshots.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

import kubeobjects
from kubetriage.clients.capture import RecordingReader
from kubetriage.clients.kube import ClusterReadError, LiveClusterReader
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.playbooks.crashloop.messages import Signal, scan_log
from kubetriage.playbooks.crashloop.reads import check_dependency

NS = "checkout"


def svc(name: str, ip: str, selector: dict[str, str] | None, ns: str = NS) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "clusterIP": ip,
        "clusterIPs": [ip],
        "ports": [{"name": "redis", "port": 6379, "targetPort": 6379, "protocol": "TCP"}],
        "type": "ClusterIP",
    }
    if selector is not None:
        spec["selector"] = selector
    return kubeobjects.kube_object("Service", name, namespace=ns, spec=spec)


def slice_of(service: str, name: str, endpoints: list[dict[str, Any]] | None) -> dict[str, Any]:
    return kubeobjects.kube_object(
        "EndpointSlice",
        name,
        namespace=NS,
        api_version="discovery.k8s.io/v1",
        labels={"kubernetes.io/service-name": service},
        addressType="IPv4",
        endpoints=endpoints,
        ports=[{"name": "redis", "port": 6379, "protocol": "TCP"}],
    )


def endpoint(pod: str, ip: str, *, ready: bool | None) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready, "serving": ready}
    return {
        "addresses": [ip],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod, "namespace": NS},
    }


def redis_pod(name: str, ip: str, labels: dict[str, str], *, ready: bool) -> dict[str, Any]:
    return kubeobjects.pod(
        name,
        namespace=NS,
        labels=labels,
        spec={"containers": [kubeobjects.container("redis", "redis:7.2.5")]},
        status={
            "phase": "Running",
            "podIP": ip,
            "conditions": [kubeobjects.condition("Ready", "True" if ready else "False")],
        },
    )


# --- the snapshot reader ------------------------------------------------------------------------


def test_the_snapshot_reader_lists_services_and_a_services_endpoint_slices() -> None:
    reader = kubeobjects.snapshot_reader(
        svc("redis", "10.100.45.12", {"app": "redis"}),
        svc("db", "10.100.9.40", {"app": "db"}, ns="data"),
        slice_of("redis", "redis-7xq2m", [endpoint("redis-0", "10.0.2.1", ready=True)]),
        slice_of("redis-headless", "redis-headless-x", None),
    )
    assert [s["metadata"]["name"] for s in reader.services(NS)] == ["redis"]
    assert sorted(s["metadata"]["name"] for s in reader.services(None)) == ["db", "redis"]
    assert [s["metadata"]["name"] for s in reader.endpoint_slices(NS, "redis")] == ["redis-7xq2m"]
    assert reader.endpoint_slices(NS, "missing") == []


def test_the_snapshot_reader_tells_a_missing_configmap_from_one_it_did_not_capture() -> None:
    captured_none = kubeobjects.snapshot_reader(kubeobjects.namespace(NS))
    assert captured_none.config_map_exists(NS, "flags") is None
    has = kubeobjects.snapshot_reader(
        kubeobjects.config_map("flags", namespace=NS, data={"a": "1"})
    )
    assert has.config_map_exists(NS, "flags") is True
    listing = kubeobjects.snapshot_reader(
        kubeobjects.config_map("kube-root-ca.crt", namespace=NS, data={"ca.crt": "x"})
    )
    assert listing.config_map_exists(NS, "flags") is False, "the namespace's ConfigMaps are there"
    assert listing.config_map_exists("other", "flags") is None
    recorded = SnapshotReader.from_document(
        {
            "kind": "List",
            "items": [
                {
                    "apiVersion": "kubetriage.io/v1alpha1",
                    "kind": "SnapshotInfo",
                    "capturedAt": "2025-06-12T09:30:00Z",
                    "absent": [{"kind": "ConfigMap", "namespace": NS, "name": "flags"}],
                }
            ],
        }
    )
    assert recorded.config_map_exists(NS, "flags") is False
    assert recorded.config_map_keys(NS, "flags") is None


# --- the live reader ------------------------------------------------------------------------


class Response:
    def __init__(self, body: Any) -> None:
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.released = False

    def release_conn(self) -> None:
        self.released = True


def answering(name: str, body: Any, calls: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> Any:
    def call(*args: Any, **kwargs: Any) -> Response:
        calls.append((args, kwargs))
        if isinstance(body, Exception):
            raise body
        return Response(body)

    call.__name__ = name
    return call


SLICE_LIST = {
    "apiVersion": "discovery.k8s.io/v1",
    "kind": "EndpointSliceList",
    "items": [{"metadata": {"name": "redis-7xq2m", "namespace": NS}, "endpoints": None}],
}


def test_the_live_reader_lists_a_services_endpoint_slices_by_its_label_once() -> None:
    reader = LiveClusterReader(ApiClient())
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    reader._discovery.list_namespaced_endpoint_slice = answering(  # type: ignore[method-assign]
        "list_namespaced_endpoint_slice", SLICE_LIST, calls
    )
    first = reader.endpoint_slices(NS, "redis")
    again = reader.endpoint_slices(NS, "redis")
    assert (
        first
        == again
        == [
            {
                "metadata": {"name": "redis-7xq2m", "namespace": NS},
                "endpoints": None,
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
            }
        ]
    )
    assert len(calls) == 1
    assert reader.requests == 1
    (args, kwargs) = calls[0]
    assert args == (NS,)
    assert kwargs["label_selector"] == "kubernetes.io/service-name=redis"


def test_the_live_reader_lists_services_of_a_namespace_and_of_all() -> None:
    reader = LiveClusterReader(ApiClient())
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    body = {"apiVersion": "v1", "kind": "ServiceList", "items": [{"metadata": {"name": "redis"}}]}
    reader._core.list_namespaced_service = answering("list_namespaced_service", body, calls)  # type: ignore[method-assign]
    reader._core.list_service_for_all_namespaces = answering(  # type: ignore[method-assign]
        "list_service_for_all_namespaces", body, calls
    )
    assert reader.services(NS)[0]["kind"] == "Service"
    assert reader.services(None)[0]["apiVersion"] == "v1"
    assert [c[0] for c in calls] == [(NS,), ()]


@pytest.mark.parametrize(
    "failure",
    [ApiException(status=500, reason="Internal Server Error"), b"<html>proxy error</html>"],
    ids=["http-500", "not-json"],
)
def test_a_failed_endpoint_slice_read_is_a_cluster_read_error(failure: Any) -> None:
    reader = LiveClusterReader(ApiClient())
    reader._discovery.list_namespaced_endpoint_slice = answering(  # type: ignore[method-assign]
        "list_namespaced_endpoint_slice", failure, []
    )
    with pytest.raises(ClusterReadError, match="list_namespaced_endpoint_slice"):
        reader.endpoint_slices(NS, "redis")


def test_the_live_reader_says_a_configmap_it_cannot_find_does_not_exist() -> None:
    reader = LiveClusterReader(ApiClient())
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    reader._core.read_namespaced_config_map = answering(  # type: ignore[method-assign]
        "read_namespaced_config_map", ApiException(status=404, reason="Not Found"), calls
    )
    assert reader.config_map_exists(NS, "flags") is False
    assert reader.config_map_keys(NS, "flags") is None
    assert len(calls) == 1, "one GET answers both"


# --- the capture -----------------------------------------------------------------------------


def test_the_capture_records_services_endpoint_slices_and_a_configmap_it_did_not_find() -> None:
    inner = kubeobjects.snapshot_reader(
        svc("redis", "10.100.45.12", {"app": "redis"}),
        slice_of("redis", "redis-7xq2m", [endpoint("redis-0", "10.0.2.1", ready=False)]),
        captured_at="2025-06-12T09:30:00Z",
    )
    recording = RecordingReader(inner)
    reader = recording.as_reader()
    reader.services(None)
    reader.endpoint_slices(NS, "redis")
    assert reader.config_map_keys(NS, "flags") is None
    assert reader.config_map_exists(NS, "flags") is None  # the inner snapshot does not know
    listing = kubeobjects.config_map("kube-root-ca.crt", namespace="shop", data={"ca.crt": "x"})
    replay = SnapshotReader.from_document(recording.snapshot())
    assert replay.services(NS) == inner.services(NS)
    assert replay.endpoint_slices(NS, "redis") == inner.endpoint_slices(NS, "redis")
    # A reader that knows the ConfigMap is not there: the capture writes that down.
    knowing = RecordingReader(kubeobjects.snapshot_reader(listing))
    assert knowing.as_reader().config_map_keys("shop", "flags") is None
    assert knowing.as_reader().config_map_exists("shop", "flags") is False
    absent = SnapshotReader.from_document(knowing.snapshot())
    assert absent.config_map_exists("shop", "flags") is False
    assert absent.config_map_keys("shop", "flags") is None


# --- a bare IP, mapped ------------------------------------------------------------------------


def test_a_cluster_ip_is_mapped_to_its_service_and_why_it_has_no_ready_endpoint() -> None:
    reader = kubeobjects.snapshot_reader(
        kubeobjects.namespace(NS),
        svc("redis", "10.100.45.12", {"app.kubernetes.io/name": "redis", "tier": "cache"}),
        slice_of("redis", "redis-7xq2m", None),
        redis_pod("cart-redis-0", "10.0.2.188", {"app.kubernetes.io/name": "redis"}, ready=True),
    )
    check = check_dependency(reader, NS, None, "10.100.45.12", 6379)
    assert (check.scope, check.service, check.namespace, check.state) == (
        "service",
        "redis",
        NS,
        "no-ready-endpoints",
    )
    sentence = check.sentence()
    assert "10.100.45.12:6379 is the ClusterIP of Service redis in namespace checkout" in sentence
    assert "its selector app.kubernetes.io/name=redis,tier=cache matches no pod" in sentence


def test_endpoint_slices_are_preferred_to_endpoints_and_count_ready_pods() -> None:
    legacy = kubeobjects.kube_object(
        "Endpoints", "redis", namespace=NS, subsets=[{"addresses": [{"ip": "10.0.9.9"}]}]
    )
    reader = kubeobjects.snapshot_reader(
        svc("redis", "10.100.45.12", {"app": "redis"}),
        slice_of(
            "redis",
            "redis-a",
            [
                endpoint("redis-0", "10.0.2.1", ready=False),
                endpoint("redis-1", "10.0.2.2", ready=None),  # nil means ready
            ],
        ),
        legacy,
    )
    check = check_dependency(reader, NS, "redis", None, 6379)
    assert (check.state, check.ready, check.not_ready) == ("ready", 1, 1)


def test_an_ip_of_no_service_and_no_pod_is_said_so() -> None:
    reader = kubeobjects.snapshot_reader(kubeobjects.namespace(NS))
    check = check_dependency(reader, NS, None, "10.0.7.7", 5432)
    assert check.scope == "ip"
    assert check.sentence() == (
        "10.0.7.7 is not the ClusterIP of any Service in the cluster, nor the IP of a pod in "
        "namespace checkout"
    )


def test_a_pod_ip_is_mapped_to_its_pod() -> None:
    pod = redis_pod("redis-0", "10.0.2.1", {"app": "redis"}, ready=False)
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 6379}]
    reader = kubeobjects.snapshot_reader(pod)
    check = check_dependency(reader, NS, None, "10.0.2.1", 6379)
    assert check.scope == "pod"
    assert (
        check.sentence()
        == "10.0.2.1:6379 is the IP of pod redis-0 in namespace checkout, which is not ready"
    )


@pytest.mark.parametrize(
    "line",
    [
        "redis.exceptions.ConnectionError: Error 111 connecting to db:5432. Connection refused.",
        "dial tcp db:5432: connect: connection refused",
        "org.postgresql.util.PSQLException: Connection to db:5432 refused. Check that the "
        "hostname and port are correct and that the postmaster is accepting TCP/IP connections.",
    ],
)
def test_db_5432_is_a_service_name_never_an_ip_address(line: str) -> None:
    """Issue 15: a log line's `db:5432` was called "an IP address"."""
    (clue,) = [c for c in scan_log(line) if c.signal == Signal.DEPENDENCY]
    assert (clue.subject, clue.host_ip, clue.port) == ("db", None, 5432)
    reader = kubeobjects.snapshot_reader(svc("db", "10.100.9.40", {"app": "postgres"}))
    check = check_dependency(reader, NS, clue.subject, clue.host_ip, clue.port)
    assert check.scope == "service"
    assert "IP address" not in check.sentence()
    assert check.sentence().startswith("Service db in namespace checkout exists")
