"""Detection latency: from a pod's status change to its DiagnosisReport, with grace 0.

Starts the local control plane and the operator (`kubetriage run`), creates N bare pods that kwok
turns into CrashLoopBackOff, and watches pods and reports from this process: a pod's latency is
the time between this watcher first seeing it crash-loop and first seeing its report. Both are
seen through the same apiserver by the same clock, so the watch delay cancels out.

    python hack/bench/latency.py [--pods 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # hack/, for localcluster
from localcluster import SIMULATE, Binaries, LocalCluster, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "latency"


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {SIMULATE: "CrashLoopBackOff"},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/latency:1"}]},
    }


def watch_pods(api: client.ApiClient, seen: dict[str, float], stop: threading.Event) -> None:
    for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
        client.CoreV1Api(api).list_namespaced_pod, NAMESPACE,
                                      timeout_seconds=120):  # fmt: skip
        obj = event["object"]
        statuses = obj.status.container_statuses or []
        waiting = [s.state.waiting.reason for s in statuses if s.state and s.state.waiting]
        if "CrashLoopBackOff" in waiting:
            seen.setdefault(obj.metadata.name, time.monotonic())
        if stop.is_set():
            return


def watch_reports(api: client.ApiClient, seen: dict[str, float], stop: threading.Event) -> None:
    custom = client.CustomObjectsApi(api)
    for event in watch.Watch().stream(  # type: ignore[no-untyped-call]
        custom.list_namespaced_custom_object, "kubetriage.io",
                                      "v1alpha1", NAMESPACE, "diagnosisreports",
                                      timeout_seconds=120):  # fmt: skip
        obj = event["object"]
        if (obj.get("status") or {}).get("rootCause"):
            seen.setdefault(obj["spec"]["target"]["name"], time.monotonic())
        if stop.is_set():
            return


def main() -> int:
    """Measure and print a Markdown table row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=50)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kubetriage-latency-"))
    with LocalCluster(workdir, Binaries.find()) as cluster:
        cluster.kubectl(
            "apply", "-f", str(REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml")
        )
        cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.wait_for_default_service_account(NAMESPACE)
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "KUBETRIAGE_GRACE_SECONDS": "0",
               "KUBETRIAGE_HEALTH_PORT": str(free_port())}  # fmt: skip
        with (workdir / "operator.log").open("ab") as log:
            operator = subprocess.Popen([str(Path(sys.executable).parent / "kubetriage"), "run"],
                                        env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            time.sleep(5)  # the operator's initial listing
            api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
            pods_seen: dict[str, float] = {}
            reports_seen: dict[str, float] = {}
            stop = threading.Event()
            threads = [
                threading.Thread(target=watch_pods, args=(api, pods_seen, stop), daemon=True),
                threading.Thread(target=watch_reports, args=(api, reports_seen, stop), daemon=True),
            ]
            for thread in threads:
                thread.start()
            time.sleep(1)
            cluster.apply([pod(f"crasher-{i:03d}") for i in range(args.pods)])
            deadline = time.monotonic() + 120
            while len(reports_seen) < args.pods and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
        finally:
            operator.terminate()
            operator.wait(timeout=30)
    latencies = sorted(reports_seen[n] - pods_seen[n] for n in reports_seen if n in pods_seen)
    if len(latencies) < args.pods:
        print(f"only {len(latencies)} of {args.pods} pods got a report in time", file=sys.stderr)
        return 1
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print("| failing pods | p50 | p95 | max |")
    print("|---|---|---|---|")
    median, worst = statistics.median(latencies), latencies[-1]
    print(f"| {args.pods} | {median:.3f} s | {p95:.3f} s | {worst:.3f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
