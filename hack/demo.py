"""`make demo` and `make demo-real`: kubetriage diagnosing one broken workload per symptom.

`make demo` (any machine that builds the control plane) starts etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (hack/localcluster.py); kwok plays each failure
as a real kubelet shows it (hack/kwok/cycle-stages.yaml: terminated most of the time, restarts
with a growing back-off, pulls alternating ErrImagePull and ImagePullBackOff).

`make demo-real` (Linux, root, the Debian packages of hack/realnode.py) starts the same control
plane with one real node instead (kubelet, containerd, runc, CNI, local registries), where the
containers of hack/realnode_cases.py really crash, are OOM-killed and fail their pulls.

Either installs the CRD, runs the operator (`kubetriage run`, grace 0 so that a report comes as
soon as the symptom shows), breaks the workloads, prints one line per report as it lands, then
`kubectl get diag -A` and commands to look around with. Ctrl-C stops everything and removes the
work folder (it holds the cluster's CA keys and an admin kubeconfig) unless `--keep` (make demo
KEEP=1) was given, in which case it says where the folder is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from localcluster import REAL_NODE_COMPONENTS, Binaries, LocalCluster, free_port
from localcluster import kwok_deployment as deployment
from realnode import RealNode, unavailable_reason
from realnode_cases import NAMESPACE as REAL_NAMESPACE
from realnode_cases import failures, manifests, second_revisions

REPO_ROOT = Path(__file__).resolve().parent.parent
CRD = REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml"
NAMESPACE = "shop"
# The real node's failures shown by `make demo-real`: one per symptom (the rest of
# hack/realnode_cases.py is the real-node tier's; the memory leak needs Prometheus).
REAL_DEMO = ("dependency", "oom-at-limit", "image-not-found", "too-big", "bad-rollout")
WAIT_SECONDS = 90.0
REAL_WAIT_SECONDS = 180.0  # real restarts back off 10 s, 20 s, 40 s: the loop shows after ~30 s
Stage = Callable[[str], None]


@dataclass(frozen=True)
class Demo:
    """What one demo breaks and how long it waits for the reports."""

    namespace: str
    objects: list[dict[str, Any]]
    later: list[dict[str, Any]]  # applied once the first objects' rollouts are done
    expected: int
    wait_seconds: float


def kwok_demo() -> Demo:
    """One broken workload per symptom, in namespace shop (labelled production), each a faithful
    picture of one cause: `api` exits 1 after its log says it cannot reach its database."""
    objects = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": NAMESPACE, "labels": {"kubetriage.io/environment": "production"}}},
        deployment("api", NAMESPACE, replicas=3, simulate="CrashLoopBackOff", exit_code=1,
                   cycle=True, container_name="api"),
        deployment("image-resizer", NAMESPACE, simulate="OOMKilled", limits={"memory": "256Mi"},
                   cycle=True),
        deployment("storefront", NAMESPACE, simulate="ErrImagePull",
                   image="registry.example/shop/storefront:9.9.9-typo", cycle=True),
        deployment("ml-inference", NAMESPACE, requests={"cpu": "64", "memory": "512Gi"}),
        deployment("embedding-api", NAMESPACE, node_selector={"pool": "gpu"}),
        {"apiVersion": "v1", "kind": "ResourceQuota",
         "metadata": {"name": "compute", "namespace": NAMESPACE}, "spec": {"hard": {"pods": "8"}}},
        deployment("checkout", NAMESPACE, replicas=6),
    ]  # fmt: skip
    return Demo(NAMESPACE, objects, [], expected=6, wait_seconds=WAIT_SECONDS)


def real_demo(node: RealNode) -> Demo:
    """The real node's failures of REAL_DEMO, with images from its local registries."""
    every = manifests(node.image)
    chosen = set(REAL_DEMO)
    objects = [every[0]] + [
        o for o in every[1:]
        if o["kind"] != "Deployment" or o["metadata"]["name"] in chosen
    ]  # fmt: skip
    later = [o for o in second_revisions(node.image) if o["metadata"]["name"] in chosen]
    # A bad revision gets two reports: its pods' crash loop, and the rollout stuck on it.
    expected = sum(2 if f.revision else 1 for f in failures(node.image) if f.name in chosen)
    return Demo(REAL_NAMESPACE, objects, later, expected, wait_seconds=REAL_WAIT_SECONDS)


class Clock:
    """Seconds since the demo began, for the stage lines."""

    def __init__(self) -> None:
        self.began = time.monotonic()

    def stage(self, text: str) -> None:
        """Print one stage line."""
        print(f"[{time.monotonic() - self.began:5.1f}s] {text}", flush=True)


def _interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


@contextmanager
def operator(cluster: LocalCluster, log_path: Path, stage: Stage) -> Iterator[None]:
    """`kubetriage run` against the cluster, healthy before the body runs, stopped after."""
    health = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "KUBETRIAGE_GRACE_SECONDS": "0",
        "KUBETRIAGE_CLUSTER_NAME": "demo",
        "KUBETRIAGE_LOG_FORMAT": "console",
        "KUBETRIAGE_HEALTH_PORT": str(health),
        "KUBETRIAGE_METRICS_PORT": str(free_port()),
    }
    stage(f"starting the operator: kubetriage run (log: {log_path})")
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "kubetriage"), "run"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _healthy(health):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the operator did not start; its log is {log_path}")
            time.sleep(0.3)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return True
    except OSError:
        return False


def _report_line(report: dict[str, Any]) -> str | None:
    """`report NS/NAME: CATEGORY - summary` (or why the diagnosis failed); None while the
    report has no status yet."""
    meta, status = report.get("metadata") or {}, report.get("status") or {}
    root = status.get("rootCause") or {}
    where = f"{meta.get('namespace')}/{meta.get('name')}"
    if root:
        return f"report {where}: {root.get('category')} - {root.get('summary')}"
    failed = next(
        (c.get("message") for c in status.get("conditions") or []
         if c.get("type") == "DiagnosisFailed" and c.get("status") == "True"),
        None,
    )  # fmt: skip
    return f"report {where}: diagnosis failed: {failed}" if failed else None


def show(cluster: LocalCluster, demo: Demo, workdir: Path, stage: Stage, *, once: bool) -> None:
    """Install the CRD, run the operator, break the workloads, print the reports as they land
    and then the table, and wait for Ctrl-C (unless `once`)."""
    stage("installing the DiagnosisReport CRD")
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
    with operator(cluster, workdir / "operator.log", stage):
        names = [o["metadata"]["name"] for o in demo.objects if o["kind"] == "Deployment"]
        stage(f"breaking {len(names)} workloads in namespace {demo.namespace}: {', '.join(names)}")
        cluster.apply(demo.objects[:1])
        cluster.wait_for_default_service_account(demo.namespace)
        cluster.apply(demo.objects[1:])
        pending_revisions = list(demo.later)
        seen: set[str] = set()
        deadline = time.monotonic() + demo.wait_seconds
        while len(seen) < demo.expected and time.monotonic() < deadline:
            if pending_revisions and _rolled_out(cluster, demo.namespace, pending_revisions):
                stage("rolling out a bad revision of " + ", ".join(
                    o["metadata"]["name"] for o in pending_revisions
                ))  # fmt: skip
                cluster.apply(pending_revisions)
                pending_revisions = []
            listed = cluster.kubectl("get", "diag", "-A", "-o", "json", check=False).stdout
            for report in json.loads(listed or '{"items": []}').get("items") or []:
                key = f"{report['metadata']['namespace']}/{report['metadata']['name']}"
                line = _report_line(report)
                if key not in seen and line is not None:  # its status is written too
                    seen.add(key)
                    stage(line)
            time.sleep(1)
        if len(seen) < demo.expected:
            stage(f"{len(seen)} of {demo.expected} reports after {demo.wait_seconds:.0f}s; "
                  f"the operator's log is {workdir / 'operator.log'}")  # fmt: skip
        print("\n$ kubectl get diag -A")
        print(cluster.kubectl("get", "diag", "-A").stdout, flush=True)
        first = sorted(seen)[0].split("/") if seen else [demo.namespace, "<report>"]
        print("Try it yourself (suggestions; the cluster runs until Ctrl-C):")
        print(f"  export KUBECONFIG={cluster.kubeconfig}")
        print("  kubectl get diag -A")
        print(f"  kubectl describe diag -n {first[0]} {first[1]}")
        print(f"  kubectl get events -n {demo.namespace} --field-selector reason=Diagnosed")
        print("  kubetriage plans --dir plans/", flush=True)
        while not once:
            time.sleep(0.5)


def _rolled_out(cluster: LocalCluster, namespace: str, objects: list[dict[str, Any]]) -> bool:
    for obj in objects:
        got = cluster.kubectl(
            "get", "deployment", obj["metadata"]["name"], "-n", namespace, "-o", "json",
            check=False,
        )  # fmt: skip
        status = (json.loads(got.stdout or "{}").get("status") or {}) if got.returncode == 0 else {}
        if not status.get("availableReplicas"):
            return False
    return True


def run_kwok(workdir: Path, stage: Stage, *, once: bool) -> None:
    """The kwok demo."""
    stage(f"starting a local control plane in {workdir}")
    cluster = LocalCluster(workdir / "cluster", Binaries.find(), on_stage=lambda s: stage(f"  {s}"))
    with cluster:
        # More GPU nodes than general ones, so the taint is what blocks most nodes.
        for index in range(4):
            cluster.create_node(
                f"kwok-gpu-{index}",
                labels={"pool": "gpu"},
                taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}],
            )
        stage("control plane up: 3 general kwok nodes, 4 tainted GPU nodes")
        show(cluster, kwok_demo(), workdir, stage, once=once)


def run_real(workdir: Path, stage: Stage, *, once: bool) -> None:
    """The real-node demo."""
    binaries = Binaries.find(components=REAL_NODE_COMPONENTS)
    stage(f"starting a local control plane in {workdir}")
    cluster = LocalCluster(
        workdir / "cluster", binaries, nodes=0, on_stage=lambda s: stage(f"  {s}")
    )
    with cluster:
        stage("starting a real node: containerd, kubelet, CNI bridge, local registries")
        with RealNode(cluster, workdir / "node", binaries) as node:
            stage(f"real node {node.name} Ready after {node.setup_seconds:.1f}s")
            show(cluster, real_demo(node), workdir, stage, once=once)


def main(argv: list[str] | None = None) -> int:
    """Run the demo until Ctrl-C; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--real", action="store_true", help="on a real node (Linux, root)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder at the end")
    parser.add_argument("--once", action="store_true", help="stop after the table (for tests)")
    args = parser.parse_args(argv)
    if args.real and (reason := unavailable_reason()):
        print(f"make demo-real needs a machine that can run a real node: {reason}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupt)
    clock = Clock()
    workdir = Path(tempfile.mkdtemp(prefix="kubetriage-demo-"))
    try:
        (run_real if args.real else run_kwok)(workdir, clock.stage, once=args.once)
    except KeyboardInterrupt:
        print("\nstopping the operator and the cluster ...", flush=True)
    finally:
        if args.keep:
            print(f"kept the work folder {workdir} (kubeconfig: {workdir / 'cluster'}"
                  "/admin.kubeconfig, component logs: cluster/logs)")  # fmt: skip
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"removed the work folder {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
