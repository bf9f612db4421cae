"""The Pending playbook on the causes issue 16 names, read from snapshots of a real control plane.

Each scenario under tests/scenarios/pending was recorded on kube-scheduler, kube-controller-manager
and kube-apiserver v1.36.3 with kwok nodes (see that folder's README): the scheduler's messages,
the node lifecycle controller's taints and conditions are the components' own. For each, the
report must name the cause that actually blocks, with its facts, and a recommendation that fits
it: host ports (`didn't have free ports for the requested pod ports`), volumes pinned where no
node is (`didn't match PersistentVolume's node affinity`, before 1.33 `had volume node affinity
conflict`), topology spread and inter-pod (anti-)affinity, nodes that are all cordoned, NotReady
or unreachable, a selector aimed at a full pool, a claim that waits for its first consumer, and
a request above every node's allocatable beside a taint (issue 15).

The older phrasings (kube-scheduler 1.29-1.32: `had untolerated taint {key: value}`, `had volume
node affinity conflict`) are checked on the same clusters with the message as those releases
write it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from helpers import REPO_ROOT
from kubetriage.clients.capture import RecordingReader
from kubetriage.clients.kube import ClusterReadError, LiveClusterReader
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.models import Category, Symptom
from kubetriage.playbooks.pending import PendingPlaybook
from kubetriage.playbooks.pending.messages import parse_scheduler_message
from kubetriage.policy import Touch

SCENARIOS = REPO_ROOT / "tests" / "scenarios" / "pending"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCENARIOS / name).read_text())
    return document


def findings_of(document: dict[str, Any]) -> dict[str, Finding]:
    found = diagnose(SnapshotReader.from_document(document))
    return {f.target.name: f for f in found if f.symptom is Symptom.PENDING}


def finding(name: str, target: str, document: dict[str, Any] | None = None) -> Finding:
    found = findings_of(document or load(name))
    assert target in found, f"no Pending report for {target}: {sorted(found)}"
    return found[target]


def written(found: Finding) -> str:
    """Everything the recommendation says: summary, command, patch, rollback."""
    rec = found.conclusion.recommendation
    assert rec is not None, "no recommendation"
    parts = [rec.summary, rec.command, rec.rollback, rec.patch.content if rec.patch else None]
    return "\n".join(p for p in parts if p)


def steps(found: Finding) -> dict[str, str]:
    return {s.name: s.outcome for s in found.investigation.steps}


def with_message(document: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The same snapshot with the scheduler's message as an older release writes it."""
    changed = copy.deepcopy(document)
    hits = 0
    for item in changed["items"]:
        if item.get("kind") == "Event" and old in str(item.get("message")):
            item["message"] = item["message"].replace(old, new)
            hits += 1
        for cond in (item.get("status") or {}).get("conditions") or []:
            if item.get("kind") == "Pod" and old in str(cond.get("message")):
                cond["message"] = cond["message"].replace(old, new)
    assert hits, f"{old!r} is not in the snapshot"
    return changed


@dataclass
class Expect:
    """What one scenario's report must say."""

    file: str
    target: str
    category: Category
    summary: tuple[str, ...] = ()
    recommendation: tuple[str, ...] = ()
    not_recommended: tuple[str, ...] = ()
    touches: frozenset[Touch] | None = None
    not_alternatives: tuple[Category, ...] = ()
    min_confidence: float = 0.7


EXPECTED = {
    "host port: more replicas than nodes, each node's port held by a replica": Expect(
        "hostport-more-replicas-than-nodes.json",
        "edge-proxy",
        Category.PENDING_HOST_PORT_CONFLICT,
        summary=(
            "host port 8443/TCP",
            "all 3 usable nodes already have it taken",
            "3 replica(s) of deployment/edge-proxy",
            "2 of its 5 replica(s) cannot be placed",
        ),
        recommendation=(
            "Run at most 3 replica(s) of deployment/edge-proxy",
            "kubectl scale deployment/edge-proxy -n edge --replicas=3",
            "kubectl scale deployment/edge-proxy -n edge --replicas=5",
            "add 2 node(s)",
        ),
        not_recommended=("Add capacity", "lower the"),
        min_confidence=0.9,
    ),
    "host port: held on every node by another workload's pods": Expect(
        "hostport-held-by-another-workload.json",
        "fraud-metrics",
        Category.PENDING_HOST_PORT_CONFLICT,
        summary=("host port 9100/TCP", "daemonset/node-exporter -n monitoring"),
        recommendation=(
            "taken on every node by daemonset/node-exporter -n monitoring",
            '"ports":[{"containerPort":9100,"hostPort":null}]',
            '"ports":[{"containerPort":9100,"hostPort":9100}]',
        ),
        not_recommended=("Add capacity", "kubectl scale"),
        min_confidence=0.9,
    ),
    "host port beside an unreachable node: the port, and the node to bring back": Expect(
        "hostport-one-node-unreachable.json",
        "syslog-relay",
        Category.PENDING_HOST_PORT_CONFLICT,
        summary=(
            "host port 514/UDP",
            "all 2 usable nodes already have it taken",
            "kwok-node-3 is NotReady",
            "1 of its 3 replica(s) cannot be placed",
        ),
        recommendation=(
            "Bring back kwok-node-3",
            "Kubelet stopped posting node status.",
            "--replicas=2",
        ),
        not_recommended=("toleration", "Add capacity"),
        not_alternatives=(Category.PENDING_UNTOLERATED_TAINT,),
    ),
    "volume pinned to a zone without nodes": Expect(
        "volume-in-a-zone-without-nodes.json",
        "postgres",
        Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
        summary=(
            "PersistentVolume pvc-7b2e41d0-5c3a-4f8e-9d61-0e2a9c4b7f13 (claim data-postgres-0)",
            "topology.kubernetes.io/zone=eu-west-1c",
            "none of the 3 nodes (kwok-node-0, kwok-node-1, kwok-node-2) is there",
            "topology.kubernetes.io/zone=eu-west-1a (2 node(s))",
        ),
        recommendation=(
            "add a node in topology.kubernetes.io/zone=eu-west-1c",
            "restore it into a new claim",
            "kubectl get nodes -L topology.kubernetes.io/zone",
        ),
        not_recommended=("Relax the pod's affinity",),
        touches=frozenset({Touch.NODES, Touch.PERSISTENT_VOLUME_CLAIM}),
        min_confidence=0.9,
    ),
    "local volume on the one node that is cordoned": Expect(
        "volume-on-a-cordoned-node.json",
        "redis",
        Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
        summary=(
            "PersistentVolume pvc-c41d9e7a-2b6f-4e0d-8a35-91f7d2e6b508 (claim data-redis-0)",
            "kubernetes.io/hostname=kwok-node-2",
            "kwok-node-2, is cordoned",
        ),
        recommendation=("kubectl uncordon kwok-node-2", "kubectl cordon kwok-node-2"),
        not_recommended=("Relax the pod's affinity", "Add capacity"),
        touches=frozenset({Touch.NODES}),
        min_confidence=0.9,
    ),
    "zone spread while the other zone's only node is cordoned": Expect(
        "spread-zone-cordoned.json",
        "checkout",
        Category.PENDING_TOPOLOGY_CONSTRAINT,
        summary=(
            "topology spread constraint on topology.kubernetes.io/zone (maxSkew 1",
            "app=checkout",
            "eu-west-1a holds 1 matching pod(s), eu-west-1b 0",
            "eu-west-1b's only node(s) (kwok-node-2) are cordoned",
        ),
        recommendation=(
            "kubectl uncordon kwok-node-2",
            "whenUnsatisfiable: ScheduleAnyway",
            '"path":"/spec/template/spec/topologySpreadConstraints/0/whenUnsatisfiable",'
            '"value":"ScheduleAnyway"',
            '"value":"DoNotSchedule"',
        ),
        not_recommended=("Add capacity",),
        not_alternatives=(Category.PENDING_NODE_SELECTOR_MISMATCH,),
    ),
    "spread on a label no node has": Expect(
        "spread-missing-topology-label.json",
        "indexer",
        Category.PENDING_TOPOLOGY_CONSTRAINT,
        summary=(
            "keys on topology.kubernetes.io/rack, a label none of the 3 nodes has",
            "topology.kubernetes.io/zone",
        ),
        recommendation=("topology.kubernetes.io/rack",),
        min_confidence=0.9,
    ),
    "required anti-affinity per hostname, more replicas than nodes": Expect(
        "anti-affinity-more-replicas-than-nodes.json",
        "kafka",
        Category.PENDING_TOPOLOGY_CONSTRAINT,
        summary=(
            "deployment/kafka wants 5 replica(s)",
            "required pod anti-affinity (app=kafka, one per kubernetes.io/hostname)",
            "each of the 3 nodes already runs one",
        ),
        recommendation=(
            "Run at most 3 replica(s) of deployment/kafka",
            "add 2 node(s)",
            "kubectl scale deployment/kafka -n data --replicas=3",
            "preferredDuringSchedulingIgnoredDuringExecution",
        ),
        min_confidence=0.9,
    ),
    "required pod affinity to pods that do not exist": Expect(
        "pod-affinity-no-matching-pods.json",
        "session-api",
        Category.PENDING_TOPOLOGY_CONSTRAINT,
        summary=("app=redis-cache", "no pod in namespace api carries it"),
        recommendation=("kubectl get pods -n api -l app=redis-cache",),
        min_confidence=0.9,
    ),
    "two nodes cordoned, the third unreachable: about the nodes, never capacity": Expect(
        "no-nodes-cordoned-and-unreachable.json",
        "orders-api",
        Category.PENDING_NO_NODES,
        summary=(
            "2 cordoned (kwok-node-0, kwok-node-1)",
            "1 NotReady (kwok-node-3: Ready=Unknown, Kubelet stopped posting node status.)",
        ),
        recommendation=(
            "kubectl uncordon kwok-node-0 kwok-node-1",
            "kubectl describe node kwok-node-3",
            "Kubelet stopped posting node status.",
            "kubectl cordon kwok-node-0 kwok-node-1",
        ),
        not_recommended=("capacity", "add nodes", "toleration"),
        touches=frozenset({Touch.NODES}),
        not_alternatives=(Category.PENDING_UNTOLERATED_TAINT,),
        min_confidence=0.9,
    ),
    "every node NotReady (CNI not initialized): the Ready condition, not a toleration": Expect(
        "no-nodes-not-ready-cni.json",
        "ledger",
        Category.PENDING_NO_NODES,
        summary=("3 NotReady", "cni plugin not initialized"),
        recommendation=("network plugin (CNI)", "kubectl describe node ip-10-0-1-23"),
        not_recommended=("toleration", "capacity", "add nodes"),
        touches=frozenset({Touch.NODES}),
        not_alternatives=(Category.PENDING_UNTOLERATED_TAINT,),
        min_confidence=0.9,
    ),
    "a selector aimed at a full pool: InsufficientResources for that pool": Expect(
        "selector-pool-full.json",
        "report-builder",
        Category.PENDING_INSUFFICIENT_RESOURCES,
        summary=("The 2 nodes deployment/report-builder selects (pool=batch) are all full",),
        recommendation=(
            "Add capacity to the nodes deployment/report-builder selects (pool=batch)",
            "kubectl get nodes -l pool=batch",
        ),
        not_recommended=("Nothing to change",),
        min_confidence=0.85,
    ),
    "a claim waiting for its first consumer is not a blocker": Expect(
        "wait-for-first-consumer-not-blocking.json",
        "trainer",
        Category.PENDING_INSUFFICIENT_RESOURCES,
        summary=("3 of 3 nodes are full",),
        not_alternatives=(Category.PENDING_UNBOUND_PVC,),
        min_confidence=0.9,
    ),
    "the demo's ml-inference: above every node's allocatable decides before the taint": Expect(
        "demo-request-exceeds-with-taint.json",
        "ml-inference",
        Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY,
        summary=("can never be scheduled", "requests cpu 64 but the largest node"),
        recommendation=("Lower the cpu request from 64",),
        not_recommended=("toleration",),
        min_confidence=0.95,
    ),
}


@pytest.mark.parametrize("case", list(EXPECTED.values()), ids=list(EXPECTED))
def test_the_report_names_what_blocks_and_advises_on_it(case: Expect) -> None:
    found = finding(case.file, case.target)
    root = found.conclusion.root_cause
    assert root.category is case.category, root.summary
    for text in case.summary:
        assert text in root.summary, f"{text!r} not in {root.summary!r}"
    said = written(found)
    for text in case.recommendation:
        assert text in said, f"{text!r} not in the recommendation:\n{said}"
    for text in case.not_recommended:
        assert text.lower() not in said.lower(), f"{text!r} in the recommendation:\n{said}"
    if case.touches is not None:
        assert found.conclusion.scope.touches == case.touches
    alternatives = [a.category for a in found.conclusion.alternatives]
    for category in case.not_alternatives:
        assert category not in alternatives, found.conclusion.alternatives
    assert root.confidence >= case.min_confidence
    rec = found.conclusion.recommendation
    assert rec is not None
    assert rec.validation


def test_the_decision_step_names_the_category_the_report_names() -> None:
    """Issue 15: the capacity step said the pod can never fit while the decision named the
    taint. Every scenario: the decision step's outcome starts with the report's category."""
    for path in sorted(SCENARIOS.glob("*.json")):
        if path.name == "expected.json":
            continue
        for found in findings_of(json.loads(path.read_text())).values():
            outcome = steps(found)["Decide the root cause"]
            assert outcome.startswith(found.conclusion.root_cause.category.value), (
                path.name,
                outcome,
            )


def test_a_request_above_every_node_is_the_cause_even_where_taints_block_more_nodes() -> None:
    found = finding("demo-request-exceeds-with-taint.json", "ml-inference")
    alternatives = {a.category: a.summary for a in found.conclusion.alternatives}
    assert alternatives[Category.PENDING_UNTOLERATED_TAINT].startswith("4 of 7 nodes: ")
    assert found.conclusion.scope.touches == frozenset({Touch.RESOURCES})


def test_a_claim_waiting_for_its_first_consumer_is_never_also_blocking() -> None:
    found = finding("wait-for-first-consumer-not-blocking.json", "trainer")
    assert not any("also blocking" in a.summary for a in found.conclusion.alternatives)
    claims = steps(found)["Check the pod's PersistentVolumeClaims"]
    assert "waits for its first consumer" in claims
    assert "not a blocker" in claims


def test_a_pod_that_requests_nothing_is_not_told_its_nodes_report_no_allocatable() -> None:
    """Issue 15: kwok nodes that report allocatable were said to have "no allocatable reported"
    because the pod (the demo's embedding-api) requests nothing to compare them with."""
    found = finding("demo-request-exceeds-with-taint.json", "embedding-api")
    evidence = [e.summary for e in found.investigation.evidence]
    assert not any("no allocatable reported" in e for e in evidence), evidence
    assert "kwok-gpu-0: cpu 4 free of 4, memory 16Gi free of 16Gi" in evidence


def test_the_scheduler_evidence_quotes_the_reasons_not_the_commentary_after_them() -> None:
    found = finding("demo-request-exceeds-with-taint.json", "ml-inference")
    scheduler = [e.summary for e in found.investigation.evidence if e.source.value == "scheduler"]
    assert scheduler[0].endswith(
        "0/7 nodes are available: 3 Insufficient cpu, 3 Insufficient memory, 4 node(s) had "
        "untolerated taint(s)."
    ), scheduler


# --- the same clusters, as kube-scheduler 1.29-1.32 words it ------------------------------------


def test_an_unreachable_node_named_in_the_older_taint_phrasing_is_a_node_to_bring_back() -> None:
    """The message DESIGN.md quotes: the taint's key was in the text before 1.33."""
    document = with_message(
        load("hostport-one-node-unreachable.json"),
        "1 node(s) had untolerated taint(s)",
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }",
    )
    found = finding("", "syslog-relay", document)
    assert found.conclusion.root_cause.category is Category.PENDING_HOST_PORT_CONFLICT
    alternatives = [a.category for a in found.conclusion.alternatives]
    assert Category.PENDING_UNTOLERATED_TAINT not in alternatives
    assert "Bring back kwok-node-3" in written(found)


def test_the_older_volume_conflict_phrasing_is_the_same_cause() -> None:
    document = with_message(
        load("volume-in-a-zone-without-nodes.json"),
        "didn't match PersistentVolume's node affinity",
        "had volume node affinity conflict",
    )
    found = finding("", "postgres", document)
    assert found.conclusion.root_cause.category is Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT


def test_the_older_not_ready_taint_phrasing_on_every_node_is_no_nodes() -> None:
    document = with_message(
        load("no-nodes-not-ready-cni.json"),
        "3 node(s) had untolerated taint(s)",
        "3 node(s) had untolerated taint {node.kubernetes.io/not-ready: }",
    )
    found = finding("", "ledger", document)
    assert found.conclusion.root_cause.category is Category.PENDING_NO_NODES
    assert "toleration" not in written(found).lower()


# --- the parser, on the real texts ---------------------------------------------------------------

MESSAGES = {
    "host ports (1.36, with the DRA commentary)": (
        "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports. "
        "no new claims to deallocate, preemption: 0/3 nodes are available: 3 No preemption "
        "victims found for incoming pod.",
        [(3, "ports")],
    ),
    "untolerated taint without the taint (1.33+), beside host ports": (
        "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't have free "
        "ports for the requested pod ports. no new claims to deallocate, preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
        "found for incoming pod.",
        [(1, "taint"), (2, "ports")],
    ),
    "the volume's node affinity (1.33+)": (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match "
        "PersistentVolume's node affinity. no new claims to deallocate, preemption: 0/3 nodes "
        "are available: 3 Preemption is not helpful for scheduling.",
        [(1, "unschedulable"), (2, "volume-affinity")],
    ),
    "the volume's node affinity (before 1.33)": (
        "0/3 nodes are available: 3 node(s) had volume node affinity conflict. preemption: 0/3 "
        "nodes are available: 3 Preemption is not helpful for scheduling..",
        [(3, "volume-affinity")],
    ),
    "a volume zone (VolumeZone plugin)": (
        "0/2 nodes are available: 2 node(s) had no available volume zone.",
        [(2, "volume-affinity")],
    ),
    "topology spread": (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match pod "
        "topology spread constraints. no new claims to deallocate, preemption: 0/3 nodes are "
        "available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found "
        "for incoming pod.",
        [(1, "unschedulable"), (2, "topology-spread")],
    ),
    "topology spread on a missing label": (
        "0/3 nodes are available: 3 node(s) didn't match pod topology spread constraints "
        "(missing required label). no new claims to deallocate, preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.",
        [(3, "topology-spread")],
    ),
    "pod anti-affinity, pod affinity, existing pods' anti-affinity": (
        "0/6 nodes are available: 3 node(s) didn't match pod anti-affinity rules, 2 node(s) "
        "didn't match pod affinity rules, 1 node(s) didn't satisfy existing pods anti-affinity "
        "rules.",
        [(3, "pod-affinity"), (2, "pod-affinity"), (1, "pod-affinity")],
    ),
}


@pytest.mark.parametrize(("message", "reasons"), list(MESSAGES.values()), ids=list(MESSAGES))
def test_the_new_reasons_are_read_with_their_node_counts(
    message: str, reasons: list[tuple[int, str]]
) -> None:
    parsed = parse_scheduler_message(message)
    assert [(r.nodes, r.blocker.value) for r in parsed.reasons] == reasons


def test_every_new_category_is_documented_and_named_by_the_playbook() -> None:
    new = {
        Category.PENDING_HOST_PORT_CONFLICT,
        Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
        Category.PENDING_TOPOLOGY_CONSTRAINT,
    }
    assert new <= set(PendingPlaybook.categories)
    document = (REPO_ROOT / "docs" / "playbooks.md").read_text()
    for category in new:
        assert f"`{category.value}`" in document


def test_the_scenarios_folder_lists_every_file() -> None:
    expected = json.loads((SCENARIOS / "expected.json").read_text())
    files = {p.name for p in SCENARIOS.glob("*.json")} - {"expected.json"}
    assert files == set(expected)


# --- PersistentVolumes through the ClusterReader -------------------------------------------------

PV_NAME = "pvc-7b2e41d0-5c3a-4f8e-9d61-0e2a9c4b7f13"


class _Response:
    def __init__(self, body: Any) -> None:
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def release_conn(self) -> None:
        pass


def _answering(body: Any, calls: list[tuple[Any, ...]]) -> Any:
    def read_persistent_volume(*args: Any, **kwargs: Any) -> _Response:
        calls.append(args)
        if isinstance(body, Exception):
            raise body
        return _Response(body)

    return read_persistent_volume


def test_the_live_reader_reads_a_persistent_volume_once_as_the_api_returns_it() -> None:
    volume = next(i for i in load("volume-in-a-zone-without-nodes.json")["items"]
                  if i["kind"] == "PersistentVolume")  # fmt: skip
    reader = LiveClusterReader(ApiClient())
    calls: list[tuple[Any, ...]] = []
    reader._core.read_persistent_volume = _answering(volume, calls)  # type: ignore[method-assign]
    assert reader.persistent_volume(PV_NAME) == volume
    assert reader.persistent_volume(PV_NAME) == volume
    assert calls == [(PV_NAME,)]
    assert reader.requests == 1


@pytest.mark.parametrize("status", [404, 500])
def test_the_live_reader_says_none_for_a_missing_volume_and_fails_on_any_other_error(
    status: int,
) -> None:
    reader = LiveClusterReader(ApiClient())
    failure = ApiException(status=status, reason="Not Found" if status == 404 else "Internal")
    reader._core.read_persistent_volume = _answering(failure, [])  # type: ignore[method-assign]
    if status == 404:
        assert reader.persistent_volume(PV_NAME) is None
    else:
        with pytest.raises(ClusterReadError, match="read_persistent_volume: HTTP 500"):
            reader.persistent_volume(PV_NAME)


def test_the_snapshot_reader_finds_a_persistent_volume_by_name() -> None:
    reader = SnapshotReader.from_document(load("volume-in-a-zone-without-nodes.json"))
    volume = reader.persistent_volume(PV_NAME)
    assert volume is not None
    assert volume["spec"]["claimRef"]["name"] == "data-postgres-0"
    assert reader.persistent_volume("pvc-missing") is None


def test_a_capture_keeps_the_volume_the_playbook_read() -> None:
    recording = RecordingReader(
        SnapshotReader.from_document(load("volume-in-a-zone-without-nodes.json"))
    )
    diagnose(recording.as_reader())
    replayed = SnapshotReader.from_document(recording.snapshot())
    assert replayed.persistent_volume(PV_NAME) is not None
