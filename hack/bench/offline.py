"""Offline diagnosis benchmark: `kubetriage diagnose` over a generated 5,000-pod snapshot.

Generates a cluster of healthy Deployments with a share of workloads broken across every symptom
(crash loops with logs, OOM kills with memory series, image pulls, unschedulable pods, stuck
rollouts), then runs `kubetriage diagnose --snapshot ... -o json` as a child process a few times
and reports wall time and the child's peak RSS.

    python hack/bench/offline.py [--pods 5000] [--failing 0.02] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PODS_PER_DEPLOYMENT = 10
SYMPTOMS = ("CrashLoopBackOff", "OOMKilled", "ImagePullBackOff", "Pending", "RolloutStuck")
NOW = "2026-01-01T12:00:00Z"
NOW_TS = 1767268800.0


def container(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"registry.example/bench/{name}:1.0.0",
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
        "env": [{"name": "MODE", "value": "bench"}],
    }


def owner(kind: str, name: str, uid: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}]


def deployment_items(index: int, namespace: str, broken: str | None) -> list[dict[str, Any]]:
    """A Deployment, its ReplicaSet, its pods, and what a broken one leaves behind."""
    name = f"app-{index}"
    rs_name = f"{name}-7c9f8d6b5"
    dep_uid, rs_uid = f"dep-{index}", f"rs-{index}"
    spec = {"containers": [container(name)]}
    ready = 0 if broken else PODS_PER_DEPLOYMENT
    conditions = [{"type": "Available", "status": "True" if ready else "False"}]
    if broken == "RolloutStuck":
        conditions.append(
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": f'ReplicaSet "{rs_name}" has timed out progressing.',
                "lastTransitionTime": NOW,
            }
        )
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": dep_uid, "generation": 1},
            "spec": {"replicas": PODS_PER_DEPLOYMENT, "template": {"spec": spec}},
            "status": {
                "replicas": PODS_PER_DEPLOYMENT,
                "readyReplicas": ready,
                "conditions": conditions,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "uid": rs_uid,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": owner("Deployment", name, dep_uid),
            },
            "spec": {"replicas": PODS_PER_DEPLOYMENT, "template": {"spec": spec}},
            "status": {"replicas": PODS_PER_DEPLOYMENT, "readyReplicas": ready},
        },
    ]
    for replica in range(PODS_PER_DEPLOYMENT):
        items += pod_items(
            f"{rs_name}-{replica:05d}", namespace, name, rs_name, rs_uid, spec, broken
        )
    return items


def pod_items(  # noqa: PLR0917 (one generator's private helper)
    pod: str,
    namespace: str,
    app: str,
    rs_name: str,
    rs_uid: str,
    spec: dict[str, Any],
    broken: str | None,
) -> list[dict[str, Any]]:
    """One pod in the state its symptom leaves it in, with its events, logs and series."""
    running = {"running": {"startedAt": NOW}}
    status: dict[str, Any] = {
        "name": app,
        "ready": broken is None,
        "restartCount": 0,
        "image": spec["containers"][0]["image"],
        "state": running,
    }
    pod_status: dict[str, Any] = {"phase": "Running", "containerStatuses": [status]}
    extra: list[dict[str, Any]] = []
    if broken in ("CrashLoopBackOff", "OOMKilled"):
        reason, code = ("OOMKilled", 137) if broken == "OOMKilled" else ("Error", 1)
        status.update(
            restartCount=8,
            state={
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off 5m0s restarting failed container={app} "
                    f"pod={pod}_{namespace}(u)",
                }
            },
            lastState={
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": NOW,
                    "finishedAt": NOW,
                }
            },
        )
        extra.append(
            {
                "apiVersion": "kubetriage.io/v1alpha1",
                "kind": "ContainerLog",
                "metadata": {"namespace": namespace, "name": pod},
                "container": app,
                "previous": True,
                "text": "starting\n" * 200
                + "panic: dial tcp 10.0.0.7:5432: connect: connection refused\n",
            }
        )
        if broken == "OOMKilled":
            samples = [
                [NOW_TS - 3600 + 30 * i, 200e6 + 56e6 * min(1.0, i / 40)] for i in range(120)
            ]
            extra.append(
                {
                    "apiVersion": "kubetriage.io/v1alpha1",
                    "kind": "MetricSeries",
                    "metadata": {"namespace": namespace, "name": pod},
                    "container": app,
                    "metric": "container_memory_working_set_bytes",
                    "samples": samples,
                }
            )
    elif broken == "ImagePullBackOff":
        image = spec["containers"][0]["image"]
        status.update(
            state={
                "waiting": {
                    "reason": "ImagePullBackOff",
                    "message": f'Back-off pulling image "{image}"',
                }
            }
        )
        pod_status["phase"] = "Pending"
        extra.append(
            event(
                pod,
                namespace,
                "Failed",
                f'Failed to pull image "{image}": rpc error: code = NotFound desc = failed to '
                f'pull and unpack image "{image}": failed to resolve reference "{image}": '
                f"{image}: not found",
            )
        )
    elif broken == "Pending":
        pod_status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "lastTransitionTime": NOW,
                    "message": "0/50 nodes are available: 50 Insufficient cpu. preemption: "
                    "0/50 nodes are available: 50 No preemption victims found for incoming pod..",
                }
            ],
        }
    items = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod,
                "namespace": namespace,
                "uid": f"uid-{pod}",
                "labels": {"app": app, "pod-template-hash": rs_name.rsplit("-", 1)[1]},
                "ownerReferences": owner("ReplicaSet", rs_name, rs_uid),
            },
            "spec": {**spec, "nodeName": None if broken == "Pending" else "node-1"},
            "status": pod_status,
        },
    ]
    return items + extra


def event(pod: str, namespace: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod}.{reason}", "namespace": namespace},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": namespace},
        "reason": reason,
        "type": "Warning",
        "count": 3,
        "lastTimestamp": NOW,
        "message": message,
    }


def generate(pods: int, failing: float) -> tuple[dict[str, Any], int]:
    """The snapshot, and how many workloads in it are broken."""
    deployments = max(1, pods // PODS_PER_DEPLOYMENT)
    broken_count = max(len(SYMPTOMS), round(deployments * failing))
    step = max(1, deployments // broken_count)
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "kubetriage.io/v1alpha1",
            "kind": "SnapshotInfo",
            "capturedAt": NOW,
            "clusterName": "bench",
        },
    ]
    for node in range(50):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": f"node-{node}"},
                "status": {"allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"}},
            }
        )
    broken = 0
    for index in range(deployments):
        namespace = f"team-{index % 20}"
        symptom = None
        if index % step == 0 and broken < broken_count:
            symptom = SYMPTOMS[broken % len(SYMPTOMS)]
            broken += 1
        items += deployment_items(index, namespace, symptom)
    for team in range(20):
        items.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"team-{team}"}}
        )
    return {"apiVersion": "v1", "kind": "List", "items": items}, broken


def main() -> int:
    """Generate, run `diagnose` `--runs` times, print one Markdown table row per run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--failing", type=float, default=0.02, help="share of broken workloads")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    snapshot, broken = generate(args.pods, args.failing)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-snapshot.json"
        path.write_text(json.dumps(snapshot))
        size_mib = path.stat().st_size / 2**20
        kubetriage = Path(sys.executable).parent / "kubetriage"
        times: list[float] = []
        reports = 0
        for _ in range(args.runs):
            start = time.perf_counter()
            result = subprocess.run(
                [str(kubetriage), "diagnose", "--snapshot", str(path), "-o", "json"],
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(time.perf_counter() - start)
            reports = len(json.loads(result.stdout)["items"])
        # ru_maxrss of children is the largest of them, in KiB on Linux.
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}, {len(snapshot['items'])} items, {size_mib:.1f} MiB snapshot"
    )
    print("| pods | broken workloads | reports | wall time median (min-max) | peak RSS |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.pods} | {broken} | {reports} | {statistics.median(times):.2f} s "
        f"({min(times):.2f}-{max(times):.2f}) | {peak_mib:.0f} MiB |"
    )
    return 0 if reports >= broken else 1


if __name__ == "__main__":
    sys.exit(main())
