"""The operator on the real control plane: given a broken workload, a DiagnosisReport appears
with the right root cause, the workload gets a `Diagnosed` event, and nothing else is written.

Failure states come from kwok's stages (crash loops, OOM kills, image pulls) and from the real
scheduler, quota controller and deployment controller (Pending, stuck rollouts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clusterkit import (
    OPERATOR_USER,
    OperatorProcess,
    get_json,
    report_of,
    wait_for_report,
)
from helpers import wait_until
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    """One broken workload and what the report must say about it."""

    name: str
    symptom: str
    category: str
    objects: Callable[[str], list[dict[str, Any]]]
    setup: Callable[[LocalCluster, str], None] = field(default=lambda cluster, ns: None)
    cleanup: Callable[[LocalCluster, str], None] = field(default=lambda cluster, ns: None)


def fill_nodes(cluster: LocalCluster, namespace: str) -> None:
    """Take 3 of the 4 cpus of every default node, so a 2-cpu pod fits nowhere for now."""
    cluster.apply(deployment("filler", namespace, replicas=3, requests={"cpu": "3"}))
    wait_until(
        lambda: (
            get_json(cluster, "deployment", "filler", namespace)["status"].get("readyReplicas") == 3
        ),
        what="filler pods running",
    )


def remove_filler(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("delete", "deployment", "filler", "-n", namespace, "--wait=true")
    cluster.kubectl(
        "wait", "--for=delete", "pod", "-l", "app=filler", "-n", namespace, "--timeout=60s"
    )


def add_gpu_nodes(cluster: LocalCluster, _namespace: str) -> None:
    for index in range(4):
        cluster.create_node(
            f"kwok-gpu-{index}",
            labels={"pool": "gpu"},
            taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
        )


def remove_gpu_nodes(cluster: LocalCluster, _namespace: str) -> None:
    cluster.kubectl("delete", "node", "-l", "pool=gpu", "--wait=true")


CASES = [
    Case("crashloop", "CrashLoopBackOff", "CrashLoop.CommandNotFound",
         lambda ns: [deployment("crasher", ns, simulate="CrashLoopBackOff", exit_code=127)]),
    Case("oomkilled", "OOMKilled", "OOMKilled.LimitTooLow",
         lambda ns: [deployment("eater", ns, simulate="OOMKilled", limits={"memory": "256Mi"})]),
    Case("imagepull", "ImagePullBackOff", "ImagePull.NotFound",
         lambda ns: [deployment("puller", ns, simulate="ErrImagePull")]),
    Case("pending-insufficient", "Pending", "Pending.InsufficientResources",
         lambda ns: [deployment("wide", ns, requests={"cpu": "2"})],
         setup=fill_nodes, cleanup=remove_filler),
    Case("pending-too-big", "Pending", "Pending.RequestExceedsNodeCapacity",
         lambda ns: [deployment("huge", ns, requests={"cpu": "64"})]),
    Case("pending-taint", "Pending", "Pending.UntoleratedTaint",
         lambda ns: [deployment("gpu-job", ns, node_selector={"pool": "gpu"})],
         setup=add_gpu_nodes, cleanup=remove_gpu_nodes),
    Case("pending-selector", "Pending", "Pending.NodeSelectorMismatch",
         lambda ns: [deployment("picky", ns, node_selector={"disktype": "ssd"})]),
    Case("pending-pvc", "Pending", "Pending.UnboundPersistentVolumeClaim",
         lambda ns: [
             {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
              "metadata": {"name": "data", "namespace": ns},
              "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                       "resources": {"requests": {"storage": "1Gi"}}}},
             deployment("wiki", ns, volumes=[{"name": "data",
                                              "persistentVolumeClaim": {"claimName": "data"}}]),
         ]),
    Case("rollout-quota", "RolloutStuck", "Rollout.QuotaExceeded",
         lambda ns: [
             {"apiVersion": "v1", "kind": "ResourceQuota",
              "metadata": {"name": "pods", "namespace": ns}, "spec": {"hard": {"pods": "2"}}},
             deployment("checkout", ns, replicas=4),
         ]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_workload_gets_one_report_with_its_root_cause(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str, case: Case
) -> None:
    case.setup(cluster, namespace)
    try:
        cluster.apply(case.objects(namespace))
        workload = case.objects(namespace)[-1]["metadata"]["name"]
        report = wait_for_report(cluster, namespace, workload, case.symptom, operator=operator)
        assert report["spec"]["target"]["kind"] == "Deployment"
        assert report["status"]["rootCause"]["category"] == case.category, json.dumps(
            report["status"], indent=1
        )
        assert report["status"]["phase"] == "Open"
        assert report["status"]["evidence"]
        recommendation = report["status"]["recommendation"]
        if "patch" in recommendation:
            assert recommendation["dryRun"]["result"] == "Passed", recommendation["dryRun"]
        else:
            assert recommendation["dryRun"]["result"] == "Skipped"
        owner = report["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Deployment", workload)
        table = cluster.kubectl("get", "diag", "-n", namespace).stdout
        assert case.category in table

        def diagnosed_events() -> list[dict[str, Any]] | None:
            items: list[dict[str, Any]] = json.loads(
                cluster.kubectl(
                    "get", "events", "-n", namespace, "-o", "json",
                    f"--field-selector=involvedObject.kind=Deployment,involvedObject.name={workload},reason=Diagnosed",
                ).stdout
            )["items"]  # fmt: skip
            return items or None

        # The Event follows the report's write: it may land a moment after the report does.
        events = wait_until(diagnosed_events, timeout=30, what="the workload's Diagnosed event")
        assert report["metadata"]["name"] in events[0]["message"]
    finally:
        case.cleanup(cluster, namespace)


def test_a_bad_revision_is_reported_with_the_revision_to_roll_back_to(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    good = deployment("pricing", namespace, replicas=2, progress_deadline=2)
    cluster.apply(good)
    wait_until(
        lambda: (
            get_json(cluster, "deployment", "pricing", namespace)["status"].get("readyReplicas")
            == 2
        ),
        what="revision 1 ready",
    )
    broken = deployment(
        "pricing", namespace, replicas=2, progress_deadline=2,
        simulate="CrashLoopBackOff", image="registry.example/pricing:2.0.0",
    )  # fmt: skip
    cluster.apply(broken)
    report = wait_for_report(
        cluster, namespace, "pricing", "RolloutStuck", operator=operator, timeout=90
    )
    assert report["status"]["rootCause"]["category"] == "Rollout.BadRevision"
    assert "--to-revision=1" in report["status"]["recommendation"]["command"]


def test_ten_failing_replicas_make_one_report(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(deployment("fleet", namespace, replicas=10, simulate="CrashLoopBackOff"))
    wait_until(
        lambda: len(report_of(cluster, namespace, "fleet", "CrashLoopBackOff")
                    .get("status", {}).get("affectedPods", [])) == 10,
        what="one report listing all 10 pods", timeout=60,
    )  # fmt: skip
    reports = json.loads(cluster.kubectl("get", "diag", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    assert [r["metadata"]["name"] for r in reports] == ["deployment-fleet-crashloopbackoff"]


def test_fixing_resolves_the_report_and_breaking_again_reopens_it(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(deployment("flaky", namespace, simulate="CrashLoopBackOff"))
    first = wait_for_report(cluster, namespace, "flaky", "CrashLoopBackOff", operator=operator)
    uid = first["metadata"]["uid"]
    cluster.apply(deployment("flaky", namespace, image="registry.example/flaky:1.0.1"))

    def phase(expected: str) -> dict[str, Any] | None:
        report = report_of(cluster, namespace, "flaky", "CrashLoopBackOff")
        return report if report.get("status", {}).get("phase") == expected else None

    resolved = wait_until(lambda: phase("Resolved"), what="the report Resolved", timeout=90)
    assert resolved["status"]["resolvedAt"]
    # What fixed it: the template diff, the revision it came with, and who wrote it.
    assert first["status"]["failingRevision"]["replicaSet"].startswith("flaky-")
    resolution = resolved["status"]["resolution"]
    assert {
        "field": "containers[app].image",
        "before": "registry.example/shop/app:1.0.0",
        "after": "registry.example/flaky:1.0.1",
    } in resolution["changes"]
    assert resolution["revision"] == "2"
    assert resolution["changedBy"].startswith("kubectl"), resolution
    assert resolution["summary"].startswith("Fixed by revision 2 (kubectl"), resolution
    cluster.apply(deployment("flaky", namespace, simulate="CrashLoopBackOff",
                             image="registry.example/flaky:1.0.2"))  # fmt: skip
    reopened = wait_until(lambda: phase("Open"), what="the report re-opened", timeout=90)
    assert reopened["metadata"]["uid"] == uid, "a relapse re-opens the same report"
    assert reopened["status"]["occurrences"] == 2


def test_a_sigkill_mid_burst_loses_and_duplicates_nothing(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    burst = [f"burst-{i}" for i in range(6)]
    for name in burst[:4]:
        cluster.apply(deployment(name, namespace, simulate="CrashLoopBackOff"))
    wait_until(lambda: any(report_of(cluster, namespace, n, "CrashLoopBackOff") for n in burst[:4]),
               what="the first report of the burst")  # fmt: skip
    operator.kill()
    # Broken while the operator is down: must be diagnosed from kopf's initial listing.
    for name in burst[4:]:
        cluster.apply(deployment(name, namespace, simulate="CrashLoopBackOff"))
    operator.start()
    for name in burst:
        wait_for_report(cluster, namespace, name, "CrashLoopBackOff", operator=operator)
    reports = json.loads(cluster.kubectl("get", "diag", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    assert sorted(r["metadata"]["name"] for r in reports) == sorted(
        f"deployment-{name}-crashloopbackoff" for name in burst
    )
    assert {r["status"]["occurrences"] for r in reports} == {1}


def test_capture_then_diagnose_gives_the_same_root_cause(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    cluster.apply(deployment("replay", namespace, simulate="ErrImagePull"))
    live = wait_for_report(cluster, namespace, "replay", "ImagePullBackOff", operator=operator)
    snapshot = tmp_path / "replay.json"
    kubetriage = str(Path(sys.executable).parent / "kubetriage")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    subprocess.run(
        [kubetriage, "capture", "deployment/replay", "-n", namespace, "-o", str(snapshot)],
        env=env, check=True, capture_output=True,
    )  # fmt: skip
    offline = subprocess.run(
        [kubetriage, "diagnose", "--snapshot", str(snapshot), "-o", "json"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (report,) = json.loads(offline.stdout)["items"]
    assert report["metadata"]["name"] == live["metadata"]["name"]
    assert report["status"]["rootCause"] == live["status"]["rootCause"]
    assert "Secret" not in {item["kind"] for item in json.loads(snapshot.read_text())["items"]}


def test_node_room_comes_from_the_watch_not_from_a_list_of_every_pod(
    cluster: LocalCluster, operator: OperatorProcess
) -> None:
    """Run after the Pending cases: each compared the pod with every node's room, which counts
    every scheduled pod in the cluster. The operator keeps those from its pod watch (a kopf
    index), so its diagnoses never LIST every pod; only kopf's own initial listing does."""
    pending_cases = [c for c in CASES if c.symptom == "Pending"]
    assert pending_cases, "the Pending cases above must have run"
    lists_of_every_pod = [
        (e["userAgent"], e["requestURI"])
        for e in cluster.audit_events()
        if e["user"]["username"] == OPERATOR_USER
        and e["verb"] == "list"
        and e.get("objectRef", {}).get("resource") == "pods"
        and not e["objectRef"].get("namespace")
    ]
    by_kopf = [uri for agent, uri in lists_of_every_pod if agent.startswith("kopf/")]
    by_diagnoses = [uri for agent, uri in lists_of_every_pod if not agent.startswith("kopf/")]
    assert by_kopf, "kopf's initial listing should be in the audit log"
    assert by_diagnoses == []


def test_the_operator_writes_nothing_but_reports_and_events(
    cluster: LocalCluster, operator: OperatorProcess
) -> None:
    """Run last in this module: by now it has diagnosed every case above."""
    requests = [e for e in cluster.audit_events() if e["user"]["username"] == OPERATOR_USER]
    assert requests, "the audit log should show the operator's requests"
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    # A recommended patch is checked with dryRun=All: admission runs, nothing is stored.
    dry_runs = [e for e in requests if "dryRun=All" in e.get("requestURI", "")]
    persisted = [e for e in requests if e not in dry_runs]
    offending = [
        (e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("name"))
        for e in persisted
        if e.get("objectRef")
        and (
            (
                e["verb"] in writes
                and e["objectRef"].get("resource") not in {"diagnosisreports", "events"}
            )
            or e["objectRef"].get("resource") == "secrets"
        )
    ]
    assert offending == []
    written = {
        e["objectRef"]["resource"] for e in persisted if e["verb"] in writes and e.get("objectRef")
    }
    assert written == {"diagnosisreports", "events"}
    assert dry_runs, "the OOM case's patch should have been dry-run"
    assert {e["verb"] for e in dry_runs} == {"patch"}
    assert not any(e["objectRef"].get("resource") == "secrets" for e in dry_runs)


def test_scan_prints_what_the_operator_would_write(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(deployment("scanned", namespace, simulate="ErrImagePull"))
    live = wait_for_report(cluster, namespace, "scanned", "ImagePullBackOff", operator=operator)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubetriage"), "scan", "-n", namespace, "-o", "json"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (scanned,) = json.loads(result.stdout)["items"]
    assert scanned["metadata"]["name"] == live["metadata"]["name"]
    assert scanned["status"]["rootCause"]["category"] == live["status"]["rootCause"]["category"]


def test_the_operators_metrics_move_with_its_work(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    def total(samples: dict[str, float], prefix: str) -> float:
        return sum(v for k, v in samples.items() if k.startswith(prefix))

    before = operator.scrape()
    cluster.apply(deployment("metered", namespace, simulate="CrashLoopBackOff"))
    wait_for_report(cluster, namespace, "metered", "CrashLoopBackOff", operator=operator)

    def grown() -> dict[str, float] | None:
        samples = operator.scrape()
        grew = total(samples, "kubetriage_diagnoses_total") > total(
            before, "kubetriage_diagnoses_total"
        )
        return samples if grew else None

    after = wait_until(grown, what="kubetriage_diagnoses_total to grow")
    assert total(after, "kubetriage_watch_events_total") > total(
        before, "kubetriage_watch_events_total"
    )
    assert total(after, "kubetriage_diagnosis_duration_seconds_count") > total(
        before, "kubetriage_diagnosis_duration_seconds_count"
    )
    assert any(
        k.startswith("kubetriage_diagnoses_total{") and 'symptom="CrashLoopBackOff"' in k
        for k in after
    )
    assert after["kubetriage_open_reports"] >= 1


def test_every_log_line_of_a_diagnosis_carries_its_id(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.apply(deployment("traced", namespace, simulate="ErrImagePull"))
    wait_for_report(cluster, namespace, "traced", "ImagePullBackOff", operator=operator)

    def diagnosed_lines() -> list[dict[str, Any]]:
        # The line is logged after the report and its Event are written: wait for it too.
        lines = [json.loads(line) for line in operator.logs(400).splitlines() if line[:1] == "{"]
        return [
            line for line in lines
            if line.get("event") == "diagnosed"
            and line.get("report", "").startswith(f"{namespace}/")
        ]  # fmt: skip

    diagnosed = wait_until(diagnosed_lines, timeout=30, what="the operator's diagnosed line")
    assert diagnosed, "the operator logs one JSON line per diagnosis"
    assert all(len(line["diagnosis_id"]) == 12 for line in diagnosed)
    assert all(line["target"] == f"deployment/traced -n {namespace}" for line in diagnosed)


def test_many_diagnoses_with_dry_runs_at_once_see_no_protocol_error(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    """Each OOM report's patch is dry-run by the apiserver (a Deployment, tens of KB, comes
    back) while other diagnoses read and write on the same connection pool: no request may read
    another's answer (ProtocolError / BadStatusLine), none may fail and be retried."""
    before = operator.scrape()
    offset = operator.log_path.stat().st_size
    names = [f"load-{i}" for i in range(24)]
    cluster.apply(
        [deployment(n, namespace, simulate="OOMKilled", limits={"memory": "256Mi"}) for n in names]
    )
    for name in names:
        report = wait_for_report(cluster, namespace, name, "OOMKilled", operator=operator)
        assert report["status"]["recommendation"]["dryRun"]["result"] == "Passed", name
    with operator.log_path.open("rb") as log:
        log.seek(offset)
        written = log.read().decode("utf-8", "replace")
    for sign in ("ProtocolError", "BadStatusLine", "Connection aborted", "RemoteDisconnected"):
        assert sign not in written, sign
    after = operator.scrape()
    failures = "kubetriage_diagnosis_failures_total"
    assert after.get(failures, 0.0) == before.get(failures, 0.0), "no diagnosis was retried"
