"""`make demo`: kubetriage diagnosing one broken workload per symptom on a local cluster.

Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
(hack/localcluster.py), installs the CRD, runs the operator (`kubetriage run`), then breaks one
workload per symptom: kwok stages for CrashLoopBackOff, OOMKilled and ImagePullBackOff, a pod too
big for any node and one with an untolerated taint for Pending, a ResourceQuota for a stuck
rollout. It prints `kubectl get diag -A` as the reports arrive; Ctrl-C stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localcluster import Binaries, LocalCluster, free_port
from localcluster import kwok_deployment as deployment

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD = REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml"
NAMESPACE = "shop"
EXPECTED_REPORTS = 6
WAIT_SECONDS = 90


def broken_workloads() -> list[dict[str, Any]]:
    """One broken workload per symptom, in namespace shop (labelled production)."""
    return [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {"kubetriage.io/environment": "production"}}},
        deployment("api", NAMESPACE, replicas=3, simulate="CrashLoopBackOff", exit_code=127),
        deployment("image-resizer", NAMESPACE, simulate="OOMKilled", limits={"memory": "256Mi"}),
        deployment("storefront", NAMESPACE, simulate="ErrImagePull",
                   image="registry.example/shop/storefront:9.9.9-typo"),
        deployment("ml-inference", NAMESPACE, requests={"cpu": "64", "memory": "512Gi"}),
        deployment("embedding-api", NAMESPACE, node_selector={"pool": "gpu"}),
        {"apiVersion": "v1", "kind": "ResourceQuota",
         "metadata": {"name": "compute", "namespace": NAMESPACE}, "spec": {"hard": {"pods": "8"}}},
        deployment("checkout", NAMESPACE, replicas=6),
    ]  # fmt: skip


def main() -> int:
    """Run the demo; returns the exit code."""
    stop = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    workdir = Path(tempfile.mkdtemp(prefix="kubetriage-demo-"))
    print(f"starting a local control plane in {workdir} ...", flush=True)
    with LocalCluster(workdir, Binaries.find()) as cluster:
        # More GPU nodes than general ones, so the taint is what blocks most nodes.
        for index in range(4):
            cluster.create_node(
                f"kwok-gpu-{index}",
                labels={"pool": "gpu"},
                taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
            )
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "KUBETRIAGE_GRACE_SECONDS": "0",
            "KUBETRIAGE_CLUSTER_NAME": "demo",
            "KUBETRIAGE_LOG_FORMAT": "console",
            "KUBETRIAGE_HEALTH_PORT": str(free_port()),
        }
        log_path = workdir / "logs" / "operator.log"
        with log_path.open("ab") as log:
            operator = subprocess.Popen(
                [str(Path(sys.executable).parent / "kubetriage"), "run"],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            print(f"operator running (log: {log_path}); breaking one workload per symptom ...")
            cluster.apply(broken_workloads())
            deadline = time.monotonic() + WAIT_SECONDS
            while not stop and time.monotonic() < deadline:
                listed = cluster.kubectl("get", "diag", "-A", "--no-headers", check=False).stdout
                if len(listed.strip().splitlines()) >= EXPECTED_REPORTS:
                    break
                time.sleep(2)
            print("\n$ kubectl get diag -A")
            print(cluster.kubectl("get", "diag", "-A").stdout, flush=True)
            print(f"$ kubectl describe diag -n {NAMESPACE} deployment-api-crashloopbackoff")
            print(f"export KUBECONFIG={cluster.kubeconfig}  # look around; Ctrl-C stops everything")
            while not stop:
                time.sleep(0.5)
            print("stopping the operator and the control plane ...", flush=True)
        finally:
            operator.terminate()
            try:
                operator.wait(timeout=20)
            except subprocess.TimeoutExpired:
                operator.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
