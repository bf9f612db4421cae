"""kubetriage on a real node: real containers crash, are OOM-killed by the kernel, fail their
probes and their pulls (hack/realnode_cases.py), and kubetriage must name what DESIGN.md
sections 3 and 12 say for each, at any moment of the crash cycle.

`kubetriage run` watches from before the failures begin, with its default grace periods, and
must write the same root causes as DiagnosisReports. The cycle is sampled: `kubetriage scan -o
json` SAMPLES times, SAMPLE_EVERY seconds apart, once every crash-looping pod has restarted
twice (tests/realnode/conftest.py), so a sample may find a container running, terminated, or
waiting in CrashLoopBackOff. Then `kubetriage capture` and `kubetriage diagnose --snapshot` per
workload, which must agree. No assertion is marked xfail: a failure here is a real gap, and the
terminal summary's table says what kubetriage printed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from clusterkit import RealCluster, ScrapingPrometheus, TierRun
from helpers import wait_until
from realnode import CNI_NETWORK, NODE_IP, POD_SUBNET, read_sysctls
from realnode_cases import NAMES, NAMESPACE, failures

pytestmark = pytest.mark.realnode
EXPECTED = {f.name: (f.symptom, f.category) for f in failures()}


def _sample_lines(run: TierRun, name: str) -> str:
    return "\n".join(
        f"  {s.seconds:.0f}s: pod {s.pods.get(name, '?')} -> "
        f"{s.error or s.reports.get(name) or 'no report'}"
        for s in run.samples
    )


@pytest.mark.parametrize("name", NAMES)
def test_scan_names_the_root_cause_at_every_moment_of_the_cycle(
    tier_run: TierRun, name: str
) -> None:
    symptom, category = EXPECTED[name]
    wrong = [s for s in tier_run.samples if (symptom, category) not in s.reports.get(name, [])]
    assert not wrong, (
        f"{name}: expected {symptom}/{category} at every sample; kubetriage scan said:\n"
        + _sample_lines(tier_run, name)
    )


@pytest.mark.parametrize("name", NAMES)
def test_capture_then_diagnose_offline_names_the_same_root_cause(
    tier_run: TierRun, name: str
) -> None:
    symptom, category = EXPECTED[name]
    assert name not in tier_run.offline_errors, tier_run.offline_errors.get(name)
    offline = tier_run.offline.get(name, [])
    assert (symptom, category) in offline, (
        f"{name}: expected {symptom}/{category} from the snapshot; "
        f"diagnose said {offline or 'nothing'}"
        f"\n(live samples:\n{_sample_lines(tier_run, name)})"
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_operator_reports_the_root_cause_after_its_default_grace_period(
    tier_run: TierRun, name: str
) -> None:
    """`kubetriage run`, watching from before the failures began, with no grace setting: the
    grace counts from when the symptom began, not from the last flip of the container's state."""
    symptom, category = EXPECTED[name]
    written = tier_run.operator.get(name, [])
    assert (symptom, category) in written, (
        f"{name}: expected a {symptom}/{category} DiagnosisReport from `kubetriage run`; it "
        f"wrote {written or 'nothing'}\noperator log:\n{tier_run.operator_log}"
    )


def _pod(real_cluster: RealCluster, app: str) -> dict[str, Any]:
    pods = json.loads(
        real_cluster.cluster.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"app={app}",
                                     "-o", "json").stdout
    )["items"]  # fmt: skip
    assert pods, f"no pod of {app}"
    newest: dict[str, Any] = max(pods, key=lambda p: p["metadata"]["creationTimestamp"])
    return newest


def test_the_node_is_a_real_kubelet_on_containerd(real_cluster: RealCluster) -> None:
    node = json.loads(
        real_cluster.cluster.kubectl("get", "node", real_cluster.node.name, "-o", "json").stdout
    )
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.36.")
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == NODE_IP


def test_logs_and_exec_go_through_the_apiserver_to_the_kubelet(
    real_cluster: RealCluster, tier_run: TierRun
) -> None:
    """The crashed run's log is the current one while the container is `terminated` (there,
    `--previous` names the run before it, which the kubelet has already removed), and the
    previous one once it waits or runs again."""
    cluster = real_cluster.cluster
    pod = _pod(real_cluster, "dependency")
    name = pod["metadata"]["name"]
    terminated = "terminated" in pod["status"]["containerStatuses"][0]["state"]
    args = ("logs", name, "-n", NAMESPACE) if terminated else ("logs", name, "-n", NAMESPACE, "-p")
    crashed_run = cluster.kubectl(*args).stdout
    assert "lookup db on 10.0.0.10:53: no such host" in crashed_run, (terminated, crashed_run)
    running = _pod(real_cluster, "readiness-closed-port")["metadata"]["name"]
    echoed = cluster.kubectl("exec", running, "-n", NAMESPACE, "--", "echo", "exec works")
    assert echoed.stdout.strip() == "exec works"


def test_a_pod_reaches_only_the_pod_bridge(real_cluster: RealCluster, tier_run: TierRun) -> None:
    """No default route, nothing but the bridge's subnet; the node forwards nothing."""
    cluster = real_cluster.cluster
    pod = _pod(real_cluster, "readiness-closed-port")["metadata"]["name"]
    routes = cluster.kubectl("exec", pod, "-n", NAMESPACE, "--", "ip", "-4", "route").stdout
    assert routes.split("\n")[0].startswith(str(POD_SUBNET)), routes
    assert "default" not in routes, routes
    # A route lookup sends nothing: it only asks the pod's kernel where a packet would go.
    outside = cluster.kubectl(
        "exec", pod, "-n", NAMESPACE, "--", "ip", "route", "get", "192.0.2.1", check=False
    )
    assert outside.returncode != 0
    assert "unreachable" in (outside.stderr + outside.stdout).lower()
    assert (
        read_sysctls()["net/ipv4/ip_forward"]
        == real_cluster.node.footprint.sysctls["net/ipv4/ip_forward"]
    )
    conflist = (real_cluster.node.workdir / "cni" / "net.d" / "10-kubetriage.conflist").read_text()
    assert json.loads(conflist)["name"] == CNI_NETWORK
    assert '"ipMasq": false' in conflist
    assert '"isGateway": false' in conflist


def test_cadvisor_reports_the_leaking_container_apart_from_its_pod_and_sandbox(
    cadvisor: ScrapingPrometheus, tier_run: TierRun
) -> None:
    selector = f'namespace="{NAMESPACE}",pod=~"memory-leak-.*"'

    def series() -> list[dict[str, Any]] | None:
        found = cadvisor.query(f"container_memory_working_set_bytes{{{selector}}}")
        containers = [s for s in found if s["metric"].get("container") == "app"]
        return found if containers else None

    found = wait_until(series, timeout=60, interval=2, what="the leaking container's series")
    print(json.dumps([s["metric"] for s in found], indent=1))  # the label sets, for the record
    for series_of_app in (s for s in found if s["metric"].get("container") == "app"):
        labels = series_of_app["metric"]
        for label in ("container", "id", "image", "name", "namespace", "pod"):
            assert labels.get(label), f"{label} missing from {labels}"
        assert labels["image"].endswith("kubetriage/busybox:1.36")
    # The pod's own cgroup: no container, no image. The sandbox (pause): no container name,
    # the pause image. Neither may be taken for the app.
    pod_level = [
        s for s in found if not s["metric"].get("container") and not s["metric"].get("image")
    ]
    sandbox = [s for s in found if not s["metric"].get("container") and s["metric"].get("image")]
    assert pod_level, json.dumps(found, indent=1)
    assert sandbox, json.dumps(found, indent=1)
    assert all("pause" in s["metric"]["image"] for s in sandbox), json.dumps(found, indent=1)
    # It leaks: a container's working set grows steadily while it runs (one series per
    # container id: each restart starts a new one, from the bottom again).
    history = cadvisor.query_range(
        f'container_memory_working_set_bytes{{{selector},container="app"}}', seconds=300
    )
    growth = {
        run["metric"]["id"]: max(float(v) for _, v in run["values"])
        - min(float(v) for _, v in run["values"])
        for run in history
    }
    assert max(growth.values(), default=0.0) > 16 * 1024 * 1024, growth
