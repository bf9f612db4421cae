"""Failover of two replicas under leader election, with the default Lease timing (15/10/2 s).

Starts the local control plane and two `kubetriage run` replicas with
KUBETRIAGE_LEADER_ELECTION=true, then, N times each, stops the leader and measures from that
instant (one clock, this process):

- to the other replica holding the Lease (read every 50 ms);
- to the report of a Deployment broken right after the stop (grace 0), which only the new
  leader can write.

A SIGKILL (node lost) leaves the Lease to expire; a SIGTERM (rolling update) releases it. The
stopped replica is started again as the follower before the next round.

    python hack/bench/failover.py [--kills 5] [--terms 5] [--settle 5]

Prints a Markdown table on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # clusterkit, helpers
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # localcluster
from clusterkit import OperatorProcess
from localcluster import LocalCluster, kwok_deployment, running_cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "failover"
LEASE = "kubetriage"


def progress(message: str) -> None:
    print(f"[failover] {message}", file=sys.stderr, flush=True)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    python = platform.python_version()
    return f"{os.cpu_count()} cores ({model}, {platform.machine()}), Python {python}"


def holder(api: client.ApiClient) -> str:
    try:
        lease = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "coordination.k8s.io", "v1", NAMESPACE, "leases", LEASE
        )
    except client.ApiException:
        return ""
    return str((cast(dict[str, Any], lease).get("spec") or {}).get("holderIdentity") or "")


def has_report(api: client.ApiClient, name: str) -> bool:
    try:
        report = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kubetriage.io", "v1alpha1", NAMESPACE, "diagnosisreports",
            f"deployment-{name}-crashloopbackoff",
        )  # fmt: skip
    except client.ApiException:
        return False
    return bool((cast(dict[str, Any], report).get("status") or {}).get("rootCause"))


def seconds_until(probe: Callable[[], bool], since: float, timeout: float = 120) -> float:
    while not probe():
        if time.monotonic() - since > timeout:
            raise TimeoutError(f"nothing after {timeout:.0f}s")
        time.sleep(0.05)
    return time.monotonic() - since


class Pair:
    """Two replicas, `r1` and `r2`, with their own client certificates."""

    def __init__(self, cluster: LocalCluster, workdir: Path) -> None:
        self.replicas: dict[str, OperatorProcess] = {}
        for identity in ("r1", "r2"):
            env = {
                "KUBETRIAGE_GRACE_SECONDS": "0",
                "KUBETRIAGE_NAMESPACES": NAMESPACE,
                "KUBETRIAGE_LEADER_ELECTION": "true",
                "KUBETRIAGE_LEADER_ELECTION_NAMESPACE": NAMESPACE,
                "POD_NAME": identity,
            }
            user = f"kubetriage-{identity}"
            kubeconfig = cluster.issue_kubeconfig(user, user=user, group="system:masters")
            self.replicas[identity] = OperatorProcess(
                cluster, workdir, env, kubeconfig=kubeconfig, name=identity
            )

    def other(self, identity: str) -> str:
        return "r2" if identity == "r1" else "r1"

    def stop_all(self) -> None:
        for replica in self.replicas.values():
            replica.stop()


def round_trip(api: client.ApiClient, cluster: LocalCluster, pair: Pair, *, how: str,
               index: int, settle: float) -> tuple[float, float]:  # fmt: skip
    """Stop the leader (`kill` or `term`), return (to new leader, to report) in seconds."""
    leader = ""
    deadline = time.monotonic() + 120
    while leader not in pair.replicas:
        if time.monotonic() > deadline:
            raise TimeoutError("no leader")
        time.sleep(0.1)
        leader = holder(api)
    time.sleep(settle)  # let the follower watch a few renewals, as in steady state
    follower = pair.other(leader)
    process = pair.replicas[leader]
    assert process.proc is not None
    workload = f"broken-{how}-{index}"
    if how == "kill":
        process.kill()
    else:
        process.proc.terminate()
    stopped = time.monotonic()
    cluster.apply(kwok_deployment(workload, NAMESPACE, simulate="CrashLoopBackOff"))
    to_leader = seconds_until(lambda: holder(api) == follower, stopped)
    to_report = seconds_until(lambda: has_report(api, workload), stopped)
    if how == "term":
        code = process.proc.wait(timeout=30)
        if code != 0:
            raise RuntimeError(f"{leader} exited {code} on SIGTERM:\n{process.logs()}")
    progress(f"{how} #{index}: {leader} -> {follower}: leader {to_leader:.2f}s, "
             f"report {to_report:.2f}s")  # fmt: skip
    process.start()  # back as the follower
    return to_leader, to_report


def row(how: str, results: list[tuple[float, float]]) -> str:
    leaders = [r[0] for r in results]
    reports = [r[1] for r in results]
    stop = {"kill": "SIGKILL (Lease expires)", "term": "SIGTERM (Lease released)"}[how]
    return (
        f"| {stop} | {len(results)} | {statistics.median(leaders):.2f} s | {max(leaders):.2f} s "
        f"| {statistics.median(reports):.2f} s | {max(reports):.2f} s |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--kills", type=int, default=5, help="SIGKILL rounds")
    parser.add_argument("--terms", type=int, default=5, help="SIGTERM rounds")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds between a round's start and the stop")  # fmt: skip
    args = parser.parse_args()
    with running_cluster() as cluster:
        progress(f"control plane up in {cluster.workdir}")
        cluster.kubectl(
            "apply", "-f", str(REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml")
        )
        cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
        cluster.kubectl("create", "namespace", NAMESPACE)
        cluster.wait_for_default_service_account(NAMESPACE)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        pair = Pair(cluster, cluster.workdir)
        try:
            for replica in pair.replicas.values():
                replica.start()
            results: dict[str, list[tuple[float, float]]] = {"kill": [], "term": []}
            for how, rounds in (("kill", args.kills), ("term", args.terms)):
                for index in range(rounds):
                    results[how].append(
                        round_trip(api, cluster, pair, how=how, index=index, settle=args.settle)
                    )
        finally:
            pair.stop_all()
    print(f"Machine: {machine()}. Lease 15 s, renew deadline 10 s, retry 2 s (the defaults).\n")
    print("| leader stopped by | rounds | to new leader p50 | max | to report p50 | max |")
    print("|---|---|---|---|---|---|")
    for how, found in results.items():
        if found:
            print(row(how, found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
