"""The Evicted runbook, case by case: given pods the kubelet evicted (or the node controller is
taking off a lost node) and the nodes they ran on, the report names this cause, with this
evidence and this change.

Messages are the kubelet eviction manager's (pkg/kubelet/eviction/helpers.go): `The node was
low on resource: memory. Threshold quantity: 100Mi, available: 98304Ki. Container app was
using 1729880Ki, request is 512Mi, has larger consumption of memory. `, `Pod ephemeral local
storage usage exceeds the total limit of containers 2Gi. `; the taint manager's DisruptionTarget
`Taint manager: deleting due to NoExecute taint`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

import kubeobjects
from kubetriage.detect import detect_pod
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.eviction.messages import read_message
from kubetriage.playbooks.eviction.reads import node_state
from kubetriage.policy import Touch

NS = "reporting"
APP = "report-worker"
CAPTURED = "2025-04-16T07:12:48Z"
NOW = datetime(2025, 4, 16, 7, 12, 48, tzinfo=UTC)
NODE = "ip-10-0-44-12.us-west-2.compute.internal"

MEMORY = (
    "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91416Ki. "
    "Container app was using 1843476Ki, request is 512Mi, has larger consumption of memory. "
)
DISK = (
    "The node was low on resource: ephemeral-storage. Threshold quantity: 10120387379, "
    "available: 9876532Ki. Container app was using 38291456Ki, request is 0, has larger "
    "consumption of ephemeral-storage. "
)
INODES = "The node was low on resource: inodes. Threshold quantity: 5%, available: 4%. "
PIDS = "The node was low on resource: pids. Threshold quantity: 1000, available: 912. "
POD_STORAGE = "Pod ephemeral local storage usage exceeds the total limit of containers 2Gi. "
CONTAINER_STORAGE = 'Container app exceeded its local ephemeral storage limit "1Gi". '
EMPTY_DIR = 'Usage of EmptyDir volume "scratch" exceeds the limit "4Gi". '
TAINT_MANAGER = "Taint manager: deleting due to NoExecute taint"


@pytest.mark.parametrize(
    ("message", "category", "resource"),
    [
        (MEMORY, Category.EVICTION_MEMORY_PRESSURE, "memory"),
        (DISK, Category.EVICTION_DISK_PRESSURE, "ephemeral-storage"),
        (INODES, Category.EVICTION_DISK_PRESSURE, "inodes"),
        (PIDS, Category.EVICTION_PID_PRESSURE, "pids"),
        (POD_STORAGE, Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, None),
        (CONTAINER_STORAGE, Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, None),
        (EMPTY_DIR, Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, None),
        ("Evicted by a descheduler policy", None, None),
    ],
)
def test_the_kubelets_message_names_the_category(
    message: str, category: Category | None, resource: str | None
) -> None:
    read = read_message(message)
    assert (read.category, read.resource) == (category, resource)


def test_the_container_that_used_most_is_named_with_its_request() -> None:
    (use,) = read_message(MEMORY).users
    assert (use.container, use.using, use.request, use.resource) == (
        "app",
        "1843476Ki",
        "512Mi",
        "memory",
    )


# --- the cluster ---------------------------------------------------------------------------------


def evicted(
    name: str,
    message: str = MEMORY,
    *,
    at: str = "2025-04-16T07:11:46Z",
    node: str = NODE,
    restarts: int = 0,
) -> dict[str, Any]:
    """A pod of deployment/report-worker the kubelet evicted at `at`."""
    return kubeobjects.pod(
        name,
        namespace=NS,
        labels={"app": APP, "pod-template-hash": "8d6c5b9f47"},
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-8d6c5b9f47"),
        spec={
            "nodeName": node,
            "containers": [
                kubeobjects.container(
                    "app", "report-worker:9.2.0", resources={"requests": {"memory": "512Mi"}}
                )
            ],
        },
        status={
            "phase": "Failed",
            "reason": "Evicted",
            "message": message,
            "conditions": [
                kubeobjects.condition(
                    "DisruptionTarget",
                    "True",
                    reason="TerminationByKubelet",
                    message=message,
                    last_transition=at,
                ),
                kubeobjects.condition("Ready", "False", reason="PodFailed", last_transition=at),
            ],
            "containerStatuses": [
                kubeobjects.container_status(
                    "app",
                    kubeobjects.terminated(137, "Error", finished=at),
                    restart_count=restarts,
                )
            ],
        },
    )


def running(name: str, *, node: str = NODE, ready: bool = True) -> dict[str, Any]:
    """A pod of deployment/report-worker that runs."""
    return kubeobjects.pod(
        name,
        namespace=NS,
        labels={"app": APP, "pod-template-hash": "8d6c5b9f47"},
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-8d6c5b9f47"),
        spec={"nodeName": node, "containers": [kubeobjects.container("app", "report-worker")]},
        status={
            "phase": "Running",
            "conditions": [kubeobjects.condition("Ready", "True" if ready else "False")],
            "containerStatuses": [
                kubeobjects.container_status(
                    "app", kubeobjects.running("2025-04-16T07:11:50Z"), ready=ready, started=True
                )
            ],
        },
    )


def node(name: str = NODE, **conditions: str) -> dict[str, Any]:
    """A node with the defined conditions given (type=status), each at the capture's time."""
    return kubeobjects.node(
        name,
        conditions=[
            {
                "type": kind,
                "status": status,
                "reason": f"Kubelet{kind}",
                "lastHeartbeatTime": CAPTURED,
            }
            for kind, status in conditions.items()
        ],
    )


def workload() -> list[dict[str, Any]]:
    """deployment/report-worker and its ReplicaSet."""
    spec = {"containers": [kubeobjects.container("app", "report-worker:9.2.0")]}
    return [
        kubeobjects.deployment(APP, namespace=NS, replicas=3, selector={"app": APP}, pod_spec=spec),
        kubeobjects.replica_set(
            f"{APP}-8d6c5b9f47",
            namespace=NS,
            owner=kubeobjects.owner_reference("Deployment", APP),
            revision=1,
            pod_spec=spec,
            pod_labels={"app": APP, "pod-template-hash": "8d6c5b9f47"},
            status=kubeobjects.replica_counts(3, 2),
        ),
    ]


def diagnose_eviction(*items: dict[str, Any]) -> Finding:
    reader = kubeobjects.snapshot_reader(*workload(), *items, namespace=NS, captured_at=CAPTURED)
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.EVICTED]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


def evidence(finding: Finding, source: EvidenceSource) -> list[str]:
    return [e.summary for e in finding.investigation.evidence if e.source is source]


# --- detection -----------------------------------------------------------------------------------


def test_an_evicted_pod_is_an_eviction_and_nothing_else_even_after_restarts() -> None:
    sightings = detect_pod(evicted("a", restarts=3), NOW)
    assert [(s.symptom, s.reason) for s in sightings] == [(Symptom.EVICTED, "Evicted")]
    assert sightings[0].since == datetime(2025, 4, 16, 7, 11, 46, tzinfo=UTC)


def test_an_eviction_older_than_an_hour_is_history() -> None:
    assert detect_pod(evicted("a", at="2025-04-16T06:10:00Z"), NOW) == []


def lost_node_pod(reason: str) -> dict[str, Any]:
    pod = running("rabbitmq-1")
    pod["metadata"]["deletionTimestamp"] = "2025-03-31T22:43:36Z"
    pod["status"]["conditions"] = [
        kubeobjects.condition(
            "DisruptionTarget", "True", reason=reason, message=TAINT_MANAGER,
            last_transition="2025-03-31T22:41:36Z",
        ),
        kubeobjects.condition("Ready", "False", last_transition="2025-03-31T22:36:31Z"),
    ]  # fmt: skip
    return pod


def test_a_pod_the_taint_manager_deletes_is_taken_off_a_lost_node() -> None:
    (sighting,) = detect_pod(lost_node_pod("DeletionByTaintManager"), NOW)
    assert (sighting.symptom, sighting.reason) == (Symptom.EVICTED, "DeletionByTaintManager")


def test_a_drain_is_a_planned_disruption_not_a_failure() -> None:
    assert detect_pod(lost_node_pod("EvictionByEvictionAPI"), NOW) == []


def test_a_pod_marked_unready_while_its_containers_are_ready_is_on_a_lost_node() -> None:
    pod = running("rabbitmq-1")
    pod["status"]["conditions"] = [kubeobjects.condition("Ready", "False")]
    (sighting,) = detect_pod(pod, NOW)
    assert (sighting.symptom, sighting.reason) == (Symptom.EVICTED, "NodeNotReady")


def test_only_the_conditions_kubernetes_defines_are_read_off_a_node() -> None:
    state = node_state(
        node(
            Ready="True",
            MemoryPressure="False",
            KernelDeadlock="True",
            FrequentKubeletRestart="True",
        )
    )
    assert [c[0] for c in state.conditions] == ["Ready", "MemoryPressure"]
    assert state.troubles() == []


# --- the runbook ---------------------------------------------------------------------------------


def test_memory_pressure_names_the_container_above_its_request_and_requests_its_use() -> None:
    finding = diagnose_eviction(
        evicted("report-worker-8d6c5b9f47-h8frd"),
        running("report-worker-8d6c5b9f47-m4ct7", node="ip-10-0-16-201"),
        running("report-worker-8d6c5b9f47-88xh2", node="ip-10-0-16-201", ready=False),
        node(Ready="True", MemoryPressure="True", DiskPressure="False"),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.EVICTION_MEMORY_PRESSURE
    assert root.confidence == 0.9
    assert "the node ran low on memory (89.3Mi available, eviction threshold 100Mi)" in root.summary
    assert "container app used 1.8Gi of memory against a request of 512Mi" in root.summary
    assert "2 of its pods run now, 1 ready" in root.summary
    assert evidence(finding, EvidenceSource.NODE) == [
        f"node {NODE}: MemoryPressure=True (KubeletMemoryPressure, last heartbeat {CAPTURED})"
    ]
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    (container,) = json.loads(recommendation.patch.content)["spec"]["template"]["spec"][
        "containers"
    ]
    assert container == {"name": "app", "resources": {"requests": {"memory": "1801Mi"}}}
    assert finding.conclusion.scope.touches == frozenset({Touch.RESOURCES})


@pytest.mark.parametrize(
    ("message", "category", "confidence", "said"),
    [
        (DISK, Category.EVICTION_DISK_PRESSURE, 0.9,
         "used 36.5Gi of ephemeral-storage against no request"),
        (PIDS, Category.EVICTION_PID_PRESSURE, 0.8, "the node ran low on pids"),
        (POD_STORAGE, Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, 0.95,
         "the pod's local storage went over its containers' ephemeral-storage limits (2Gi in all)"),
        (EMPTY_DIR, Category.EVICTION_EPHEMERAL_STORAGE_LIMIT, 0.95,
         "emptyDir volume scratch went over its sizeLimit 4Gi"),
    ],
)  # fmt: skip
def test_the_message_decides_and_nothing_is_patched_where_the_node_is_the_place_to_look(
    message: str, category: Category, confidence: float, said: str
) -> None:
    finding = diagnose_eviction(
        evicted("report-worker-8d6c5b9f47-h8frd", message), node(Ready="True")
    )
    root = finding.conclusion.root_cause
    assert (root.category, root.confidence) == (category, confidence)
    assert said in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None


def test_a_lost_node_is_named_with_its_last_heartbeat_and_taints() -> None:
    lost = kubeobjects.node(
        NODE,
        spec={"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
        conditions=[
            {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
             "lastHeartbeatTime": "2025-03-31T22:35:50Z"},
        ],
    )  # fmt: skip
    finding = diagnose_eviction(lost_node_pod("DeletionByTaintManager"), lost)
    root = finding.conclusion.root_cause
    assert root.category is Category.EVICTION_NODE_NOT_READY
    assert root.confidence == 0.95
    assert (
        f"node {NODE} stopped reporting (Ready=Unknown, last heartbeat 2025-03-31T22:35:50Z, "
        "tainted node.kubernetes.io/unreachable:NoExecute)"
    ) in root.summary
    assert finding.conclusion.scope.touches == frozenset({Touch.NODES})
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.command == f"kubectl describe node {NODE}"


def test_a_lost_node_that_is_gone_is_said_so_at_lower_confidence() -> None:
    finding = diagnose_eviction(lost_node_pod("DeletionByTaintManager"))
    root = finding.conclusion.root_cause
    assert root.category is Category.EVICTION_NODE_NOT_READY
    assert root.confidence == 0.75
    assert "is not readable: it may have been deleted" in root.summary
