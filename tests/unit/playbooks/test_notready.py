"""The NotReady runbook, case by case: given pods that run and fail their readiness probe, the
kubelet's Unhealthy events and the Services in front of them, the report names this cause,
with this evidence and this change.

Messages are the kubelet's (pkg/probe/http and pkg/kubelet/prober): `Readiness probe failed:
Get "http://10.4.2.17:8080/healthz": dial tcp 10.4.2.17:8080: connect: connection refused`,
`Readiness probe failed: HTTP probe failed with statuscode: 503`, `Readiness probe failed: Get
"...": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

import kubeobjects
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.detect import detect_pod
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.notready.messages import read_failure
from kubetriage.policy import Touch
from recordings import recorded, words

NS = "docs"
APP = "renderer"
CAPTURED = "2025-01-22T11:18:40Z"
STARTED = "2025-01-22T11:12:38Z"
POD_IP = "10.4.2.17"

REFUSED_8080 = (
    f'Readiness probe failed: Get "http://{POD_IP}:8080/healthz": dial tcp {POD_IP}:8080: '
    "connect: connection refused"
)
REFUSED_3000 = (
    f'Readiness probe failed: Get "http://{POD_IP}:3000/healthz": dial tcp {POD_IP}:3000: '
    "connect: connection refused"
)
NOT_FOUND = "Readiness probe failed: HTTP probe failed with statuscode: 404"
UNAVAILABLE = "Readiness probe failed: HTTP probe failed with statuscode: 503"
TIMEOUT = (
    f'Readiness probe failed: Get "http://{POD_IP}:3000/healthz": context deadline exceeded '
    "(Client.Timeout exceeded while awaiting headers)"
)
EXEC_OUTPUT = "Readiness probe failed: LOADING Redis is loading the dataset in memory"
REDIS_DOWN_LOG = (
    '{"level":"error","msg":"readiness check failed","check":"redis","error":"dial tcp '
    '10.96.40.7:6379: connect: connection refused"}\n'
)


def probe(port: int | str = 3000, **fields: Any) -> dict[str, Any]:
    """An httpGet readinessProbe on /healthz."""
    return {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10, **fields}


def app_container(readiness: dict[str, Any] | None) -> dict[str, Any]:
    """The renderer container: it listens on 3000 (named http)."""
    fields: dict[str, Any] = {"ports": [{"name": "http", "containerPort": 3000}]}
    if readiness is not None:
        fields["readinessProbe"] = readiness
    return kubeobjects.container(APP, "registry.acme.internal/docs/pdf-renderer:0.4.1", **fields)


def pod(
    name: str,
    readiness: dict[str, Any] | None = None,
    *,
    ready: bool = False,
    started: bool | None = True,
    started_at: str = STARTED,
    ready_since: str | None = "2025-01-22T11:12:29Z",
    ready_reason: str | None = "ContainersNotReady",
) -> dict[str, Any]:
    """A Running pod of deployment/renderer whose container runs, ready or not."""
    ready_condition = kubeobjects.condition(
        "Ready",
        "True" if ready else "False",
        reason=None if ready else ready_reason,
        message=None if ready else f"containers with unready status: [{APP}]",
        last_transition=ready_since,
    )
    return kubeobjects.pod(
        name,
        namespace=NS,
        labels={"app": APP, "pod-template-hash": "6d4b7f9c58"},
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-6d4b7f9c58"),
        spec={"containers": [app_container(probe() if readiness is None else readiness)]},
        status={
            "phase": "Running",
            "podIP": POD_IP,
            "conditions": [ready_condition],
            "containerStatuses": [
                kubeobjects.container_status(
                    APP, kubeobjects.running(started_at), ready=ready, started=started
                )
            ],
        },
    )


def unhealthy(pod_name: str, message: str, count: int = 35) -> dict[str, Any]:
    """The kubelet's aggregated Unhealthy event about the container."""
    return kubeobjects.event(
        "Pod",
        pod_name,
        "Unhealthy",
        message,
        namespace=NS,
        event_name=f"{pod_name}.{abs(hash(message)) % 10**12:012x}",
        count=count,
        field_path=f"spec.containers{{{APP}}}",
        last="2025-01-22T11:18:38Z",
    )


def service(name: str, selector: dict[str, str], cluster_ip: str) -> dict[str, Any]:
    """A ClusterIP Service."""
    return kubeobjects.kube_object(
        "Service",
        name,
        namespace=NS,
        spec={"selector": selector, "clusterIP": cluster_ip, "ports": [{"port": 80}]},
    )


def endpoint_slice(service_name: str, endpoints: dict[str, bool]) -> dict[str, Any]:
    """The EndpointSlice of a Service: each pod with its ready condition."""
    return kubeobjects.kube_object(
        "EndpointSlice",
        f"{service_name}-x7k2p",
        namespace=NS,
        api_version="discovery.k8s.io/v1",
        labels={"kubernetes.io/service-name": service_name},
        addressType="IPv4",
        endpoints=[
            {
                "addresses": [f"10.4.2.{index + 10}"],
                "conditions": {"ready": is_ready},
                "targetRef": {"kind": "Pod", "name": name, "namespace": NS},
            }
            for index, (name, is_ready) in enumerate(endpoints.items())
        ],
    )


def deployment(replicas: int = 2) -> dict[str, Any]:
    """deployment/renderer, its rollout done."""
    return kubeobjects.deployment(
        APP,
        namespace=NS,
        replicas=replicas,
        selector={"app": APP},
        pod_spec={"containers": [app_container(probe())]},
        ready=0,
    )


def replica_set() -> dict[str, Any]:
    """The ReplicaSet of deployment/renderer."""
    return kubeobjects.replica_set(
        f"{APP}-6d4b7f9c58",
        namespace=NS,
        owner=kubeobjects.owner_reference("Deployment", APP),
        revision=1,
        pod_spec={"containers": [app_container(probe())]},
        status=kubeobjects.replica_counts(2),
    )


def diagnose_not_ready(*items: dict[str, Any]) -> Finding:
    """The NotReady finding of a snapshot of namespace docs holding `items`, through the real
    detect -> playbook path."""
    reader = kubeobjects.snapshot_reader(
        deployment(), replica_set(), *items, namespace=NS, captured_at=CAPTURED
    )
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.NOT_READY]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


def evidence(finding: Finding, source: EvidenceSource) -> list[str]:
    return [e.summary for e in finding.investigation.evidence if e.source is source]


# --- the kubelet's messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "port", "status"),
    [
        (REFUSED_8080, "refused", 8080, None),
        (NOT_FOUND, "status", None, 404),
        (UNAVAILABLE, "status", None, 503),
        (TIMEOUT, "timeout", None, None),
        (EXEC_OUTPUT, "other", None, None),
        (
            'Readiness probe failed: Get "http://[fd00::17]:8081/": dial tcp [fd00::17]:8081: '
            "connect: connection refused",
            "refused",
            8081,
            None,
        ),
    ],
)
def test_a_readiness_message_is_read_for_its_kind_port_and_status(
    message: str, kind: str, port: int | None, status: int | None
) -> None:
    failure = read_failure(message)
    assert failure is not None
    assert (failure.kind, failure.port, failure.status) == (kind, port, status)
    assert failure.text == message


@pytest.mark.parametrize(
    "message",
    [
        "Liveness probe failed: HTTP probe failed with statuscode: 503",
        "Startup probe failed: dial tcp 10.4.2.17:3000: connect: connection refused",
        "Container renderer failed liveness probe, will be restarted",
    ],
)
def test_other_probes_are_not_readiness_failures(message: str) -> None:
    assert read_failure(message) is None


# --- detection ----------------------------------------------------------------------------------

NOW = datetime(2025, 1, 22, 11, 18, 40, tzinfo=UTC)


def test_a_running_container_failing_readiness_is_not_ready_since_the_later_of_delay_and_turn() -> (
    None
):
    sightings = detect_pod(pod("a", probe(initialDelaySeconds=30)), NOW)
    assert [(s.symptom, s.container) for s in sightings] == [(Symptom.NOT_READY, APP)]
    # Started 11:12:38 + 30 s of initial delay is later than the Ready condition's turn.
    assert sightings[0].since == datetime(2025, 1, 22, 11, 13, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("case", "the_pod"),
    [
        ("within the probe's initial delay", pod("a", probe(initialDelaySeconds=600))),
        ("ready", pod("a", ready=True)),
        ("its startup probe has not passed", pod("a", started=False)),
        ("no readiness probe", pod("a", {})),
        (
            "not ready for its node (the node controller's reason)",
            pod("a", ready_reason="NodeNotReady"),
        ),
    ],
)
def test_a_pod_that_is_not_failing_its_readiness_probe_is_not_not_ready(
    case: str, the_pod: dict[str, Any]
) -> None:
    assert [s for s in detect_pod(the_pod, NOW) if s.symptom is Symptom.NOT_READY] == [], case


def test_a_crash_looping_container_is_a_crash_loop_not_also_not_ready() -> None:
    the_pod = pod("a")
    the_pod["status"]["containerStatuses"] = [
        kubeobjects.container_status(
            APP,
            kubeobjects.running("2025-01-22T11:18:30Z"),
            restart_count=7,
            last_state=kubeobjects.terminated(
                1, "Error", started="2025-01-22T11:15:00Z", finished="2025-01-22T11:18:29Z"
            ),
            started=True,
        )
    ]
    assert [s.symptom for s in detect_pod(the_pod, NOW)] == [Symptom.CRASH_LOOP_BACK_OFF]


# --- the runbook --------------------------------------------------------------------------------


def test_a_probe_on_a_port_the_container_does_not_declare_is_misconfigured_and_repointed() -> None:
    finding = diagnose_not_ready(
        pod("renderer-a", probe(8080)),
        pod("renderer-b", probe(8080)),
        unhealthy("renderer-a", REFUSED_8080),
        unhealthy("renderer-b", REFUSED_8080.replace(POD_IP, "10.4.3.231")),
        service(APP, {"app": APP}, "10.60.1.9"),
        endpoint_slice(APP, {"renderer-a": False, "renderer-b": False}),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.NOTREADY_PROBE_MISCONFIGURED
    assert root.confidence == 0.9
    assert "dials port 8080, which the container does not declare (its ports: 3000 (http))" in (
        root.summary
    )
    assert "Service renderer has 0 of 2 endpoints ready" in root.summary
    # The two pods' messages differ only in their IPs: one failure, counted over both.
    (events,) = evidence(finding, EvidenceSource.EVENTS)
    assert events.startswith("kubelet Unhealthy (x70): Readiness probe failed: Get ")
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    body = json.loads(recommendation.patch.content)
    (container,) = body["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": APP,
        "readinessProbe": {"httpGet": {"port": "http", "path": "/healthz"}},
    }
    assert finding.conclusion.scope.touches == frozenset({Touch.PROBES})
    assert recommendation.rollback == f"kubectl rollout undo deployment/{APP} -n {NS}"


def test_a_404_is_a_path_the_app_does_not_serve_and_no_path_is_guessed() -> None:
    finding = diagnose_not_ready(pod("renderer-a"), unhealthy("renderer-a", NOT_FOUND))
    root = finding.conclusion.root_cause
    assert root.category is Category.NOTREADY_PROBE_MISCONFIGURED
    assert "answers 404 at /healthz" in root.summary
    assert "no Service selects its pods" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None
    assert "readinessProbe" in (recommendation.command or "")


def test_a_503_and_a_refused_dependency_in_the_log_is_the_dependency_and_no_change_here() -> None:
    redis = kubeobjects.kube_object(
        "Service",
        "redis",
        namespace=NS,
        spec={"selector": {"app": "redis"}, "clusterIP": "10.96.40.7", "ports": [{"port": 6379}]},
    )
    finding = diagnose_not_ready(
        pod("renderer-a"),
        unhealthy("renderer-a", UNAVAILABLE, count=244),
        kubeobjects.container_log("renderer-a", APP, REDIS_DOWN_LOG, namespace=NS, previous=False),
        redis,
        endpoint_slice("redis", {}),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.NOTREADY_DEPENDENCY_UNAVAILABLE
    assert root.confidence == 0.9
    assert "10.96.40.7:6379 is the ClusterIP of Service redis in namespace docs" in root.summary
    assert "no ready endpoints" in root.summary
    assert evidence(finding, EvidenceSource.LOGS) == [f"log: {REDIS_DOWN_LOG.strip()}"]
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None
    assert "Nothing in this workload needs to change" in recommendation.summary
    assert finding.conclusion.scope.touches == frozenset()


def test_a_503_with_a_quiet_log_is_a_failing_check_with_the_dependency_as_runner_up() -> None:
    finding = diagnose_not_ready(
        pod("renderer-a"),
        unhealthy("renderer-a", UNAVAILABLE),
        kubeobjects.container_log("renderer-a", APP, "listening on :3000\n", namespace=NS),
    )
    assert finding.conclusion.root_cause.category is Category.NOTREADY_READINESS_PROBE_FAILURE
    assert finding.conclusion.root_cause.confidence == 0.6
    assert [a.category for a in finding.conclusion.alternatives] == [
        Category.NOTREADY_DEPENDENCY_UNAVAILABLE
    ]


def test_a_timeout_gets_a_longer_probe_timeout_and_the_advice_to_find_the_slowness() -> None:
    finding = diagnose_not_ready(
        pod("renderer-a", probe(timeoutSeconds=1)),
        pod("renderer-b", probe(timeoutSeconds=1), ready=True),
        unhealthy("renderer-a", TIMEOUT, count=172),
        service(APP, {"app": APP}, "10.60.1.9"),
        endpoint_slice(APP, {"renderer-a": False, "renderer-b": True}),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.NOTREADY_READINESS_PROBE_FAILURE
    assert root.confidence == 0.75
    assert "not Ready in 1 of 2 pods" in root.summary
    assert "does not answer its readinessProbe within 1s" in root.summary
    assert "Service renderer has 1 of 2 endpoints ready" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    (container,) = json.loads(recommendation.patch.content)["spec"]["template"]["spec"][
        "containers"
    ]
    assert container == {"name": APP, "readinessProbe": {"timeoutSeconds": 5}}


@pytest.mark.parametrize(
    ("message", "confidence", "said"),
    [
        (REFUSED_3000, 0.6, "nothing listens on port 3000 yet"),
        (EXEC_OUTPUT, 0.7, "'LOADING Redis is loading the dataset in memory'"),
        (None, 0.4, "Unhealthy events about it are gone"),
    ],
)
def test_a_failing_check_is_named_with_what_the_kubelet_says(
    message: str | None, confidence: float, said: str
) -> None:
    events = [unhealthy("renderer-a", message)] if message else []
    finding = diagnose_not_ready(pod("renderer-a"), *events)
    root = finding.conclusion.root_cause
    assert root.category is Category.NOTREADY_READINESS_PROBE_FAILURE
    assert root.confidence == confidence
    assert said in root.summary


# --- what the real node wrote -------------------------------------------------------------------


def test_the_real_kubelets_refused_probe_on_port_8081_is_a_misconfigured_probe() -> None:
    """The real node's recording: busybox httpd on 8080, the readinessProbe on 8081."""
    finding = recorded("readiness-closed-port")
    root = finding.conclusion.root_cause
    assert (finding.symptom, root.category) == (
        Symptom.NOT_READY,
        Category.NOTREADY_PROBE_MISCONFIGURED,
    )
    text = words(finding)
    assert "dials port 8081, which the container does not declare (its ports: 8080 (http))" in text
    assert (
        'kubelet Unhealthy (x305): Readiness probe failed: Get "http://10.88.77.15:8081/": dial '
        "tcp 10.88.77.15:8081: connect: connection refused"
    ) in text


def test_a_snapshot_without_services_or_slices_still_names_the_impact() -> None:
    reader = SnapshotReader.from_document(
        kubeobjects.snapshot(pod("renderer-a"), namespace=NS, captured_at=CAPTURED)
    )
    (problem,) = find_problems(reader)
    finding = diagnose_problem(reader, problem, Options())
    assert evidence(finding, EvidenceSource.SERVICE) == ["No Service selects its pods"]
