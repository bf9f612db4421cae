"""`make demo`: a local control plane with kubetriage's DiagnosisReport API, until Ctrl-C.

Starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok
(hack/localcluster.py),
installs the CRD from crds/, writes a sample report, and prints `kubectl get diag -A`. The
cluster stays up so you can look around with the printed KUBECONFIG; Ctrl-C stops everything.
"""

from __future__ import annotations

import json
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

from localcluster import Binaries, LocalCluster

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD = REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml"
SAMPLE = Path(__file__).resolve().parent / "demo" / "sample-report.yaml"


def write_sample_report(cluster: LocalCluster) -> None:
    """Create the sample report, then its status through the status subresource."""
    report = yaml.safe_load(SAMPLE.read_text())
    status = report.pop("status")
    namespace = report["metadata"]["namespace"]
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-f", "-", input_text=json.dumps(report))
    cluster.kubectl(
        "patch", "diag", report["metadata"]["name"], "-n", namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}),
    )  # fmt: skip


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
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
        write_sample_report(cluster)
        print(cluster.kubectl("get", "nodes").stdout)
        print("$ kubectl get diag -A")
        print(cluster.kubectl("get", "diag", "-A").stdout, flush=True)
        print(f"export KUBECONFIG={cluster.kubeconfig}   # to look around; Ctrl-C stops everything")
        while not stop:
            time.sleep(0.5)
        print("stopping the control plane ...", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
