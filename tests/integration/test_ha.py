"""More than one instance on the real control plane: leader election on a Lease, and shards.

Each test starts its own `kubetriage run` processes, each with its own client certificate so
that the audit log tells their requests apart, and restricted to the test's own namespaces.
Who wrote what is proven per instance (audit log, the instance's own log), so another operator
running in the same session cannot make a test pass.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kubernetes import client

from clusterkit import OperatorProcess
from helpers import wait_until
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def session_operator_paused(request: pytest.FixtureRequest) -> Iterator[None]:
    """The session's cluster-wide operator, when an earlier module started it, pauses while
    these replicas run, so that the instances under test are the only writers, as in a real
    install (test_escalation_e2e.py does the same). With it running, a new leader was seen
    never to diagnose within 90 s; issue noted for a follow-up."""
    session = request.session
    started: OperatorProcess | None = getattr(session, "_kubetriage_operator", None)
    running = started is not None and started.proc is not None and started.proc.poll() is None
    if running:
        assert started is not None
        started.stop()
    try:
        yield
    finally:
        if running:
            assert started is not None
            started.start()


LEASE = "kubetriage"
# Short timings for speed; the defaults (15/10/2) are measured by hack/bench/failover.py.
LEASE_SECONDS, RENEW_SECONDS, RETRY_SECONDS = 4.0, 3.0, 0.5
# How late a takeover may be on a loaded 2-core machine beyond what the protocol allows.
SLACK_SECONDS = 4.0
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


class Replica(OperatorProcess):
    """An operator process with its own user in the audit log."""

    def __init__(self, cluster: LocalCluster, log_dir: Path, env: dict[str, str], user: str):
        kubeconfig = cluster.issue_kubeconfig(user, user=user, group="system:masters")
        super().__init__(cluster, log_dir, env, kubeconfig=kubeconfig, name=user)
        self.user = user


class Replicas:
    """Operator processes of one test."""

    def __init__(self, cluster: LocalCluster, log_dir: Path) -> None:
        self.cluster, self.log_dir = cluster, log_dir
        self.suffix = uuid.uuid4().hex[:6]
        self.processes: list[Replica] = []

    def new(self, name: str, env: dict[str, str]) -> Replica:
        process = Replica(self.cluster, self.log_dir, env, f"kubetriage-{name}-{self.suffix}")
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def replicas(cluster: LocalCluster, crd: str, tmp_path: Path) -> Iterator[Replicas]:
    group = Replicas(cluster, tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def elected(namespace: str, identity: str, **timing: float) -> dict[str, str]:
    lease, renew, retry = (timing.get(k) for k in ("lease", "renew", "retry"))
    return {
        "KUBETRIAGE_GRACE_SECONDS": "0",
        "KUBETRIAGE_CLUSTER_NAME": "integration",
        "KUBETRIAGE_NAMESPACES": namespace,
        "KUBETRIAGE_LEADER_ELECTION": "true",
        "KUBETRIAGE_LEADER_ELECTION_NAMESPACE": namespace,
        "KUBETRIAGE_LEADER_ELECTION_LEASE_SECONDS": str(lease or LEASE_SECONDS),
        "KUBETRIAGE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": str(renew or RENEW_SECONDS),
        "KUBETRIAGE_LEADER_ELECTION_RETRY_SECONDS": str(retry or RETRY_SECONDS),
        "POD_NAME": identity,
    }


def lease_spec(api: client.ApiClient, namespace: str) -> dict[str, Any]:
    try:
        lease = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "coordination.k8s.io", "v1", namespace, "leases", LEASE
        )
    except client.ApiException as error:
        if error.status == 404:
            return {}
        raise
    spec: dict[str, Any] = cast(dict[str, Any], lease).get("spec") or {}
    return spec


def timed(probe: Callable[[], Any], *, timeout: float, what: str) -> float:
    """Seconds until `probe` is truthy, polled every 50 ms."""
    started = time.monotonic()
    wait_until(probe, timeout=timeout, interval=0.05, what=what)
    return time.monotonic() - started


def log_events(process: OperatorProcess, event: str | None = None) -> list[dict[str, Any]]:
    """The instance's JSON log lines (of one event)."""
    found = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if event is None or entry.get("event") == event:
                found.append(entry)
    return found


def diagnosed(process: OperatorProcess, namespace: str, name: str) -> bool:
    report = f"{namespace}/deployment-{name}-crashloopbackoff"
    return any(e.get("report") == report for e in log_events(process, "diagnosed"))


def requests_of(cluster: LocalCluster, process: Replica) -> list[dict[str, Any]]:
    return [e for e in cluster.audit_events() if e["user"]["username"] == process.user]


def report_writes(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (e["objectRef"].get("namespace", ""), e["objectRef"].get("name", ""))
        for e in events
        if e["verb"] in WRITES and e.get("objectRef", {}).get("resource") == "diagnosisreports"
    ]


def reports_in(cluster: LocalCluster, namespace: str) -> list[str]:
    listed = json.loads(cluster.kubectl("get", "diag", "-n", namespace, "-o", "json").stdout)
    return sorted(item["metadata"]["name"] for item in listed["items"])


def test_one_of_two_replicas_diagnoses_and_the_other_takes_over_when_it_is_killed(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, replicas: Replicas
) -> None:
    a = replicas.new("a", elected(namespace, "a"))
    b = replicas.new("b", elected(namespace, "b"))
    a.start()
    b.start()  # a follower passes the liveness probe too: start() waits for /healthz
    holder = wait_until(lambda: lease_spec(api, namespace).get("holderIdentity"),
                        what="a holder of the Lease")  # fmt: skip
    leader, follower = (a, b) if holder == "a" else (b, a)
    assert holder in {"a", "b"}

    cluster.apply(deployment("first", namespace, simulate="CrashLoopBackOff"))
    wait_until(lambda: diagnosed(leader, namespace, "first"), timeout=90,
               what=f"the leader's diagnosis of first\n{leader.logs()}")  # fmt: skip
    assert reports_in(cluster, namespace) == ["deployment-first-crashloopbackoff"]
    assert not log_events(follower, "diagnosed"), follower.logs()
    assert any(e.get("holder") == holder for e in log_events(follower, "waiting for leadership"))
    assert (namespace, "deployment-first-crashloopbackoff") in report_writes(
        requests_of(cluster, leader)
    )
    touched = {e.get("objectRef", {}).get("resource") for e in requests_of(cluster, follower)}
    assert touched == {"leases"}, "a follower reads the Lease and nothing else"
    transitions = lease_spec(api, namespace).get("leaseTransitions", 0)

    leader.kill()
    killed = time.monotonic()
    cluster.apply(deployment("second", namespace, simulate="CrashLoopBackOff"))
    new_holder = "b" if holder == "a" else "a"
    to_leader = timed(lambda: lease_spec(api, namespace).get("holderIdentity") == new_holder,
                      timeout=60, what="the follower to take the Lease over")  # fmt: skip
    wait_until(lambda: diagnosed(follower, namespace, "second"), timeout=90,
               what=f"the new leader's diagnosis of second\n{follower.logs()}")  # fmt: skip
    to_report = time.monotonic() - killed
    print(f"\nFAILOVER sigkill lease={LEASE_SECONDS:g}s/{RENEW_SECONDS:g}s/{RETRY_SECONDS:g}s: "
          f"kill->new leader {to_leader:.2f}s, kill->report of a workload broken after the "
          f"kill {to_report:.2f}s")  # fmt: skip
    assert to_leader <= LEASE_SECONDS + RETRY_SECONDS * 1.2 + SLACK_SECONDS
    spec = lease_spec(api, namespace)
    assert spec["leaseTransitions"] == transitions + 1
    assert not log_events(leader, "released the Lease"), "a SIGKILL releases nothing"
    assert reports_in(cluster, namespace) == [
        "deployment-first-crashloopbackoff",
        "deployment-second-crashloopbackoff",
    ]


def test_a_clean_stop_hands_the_lease_over_at_once(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, replicas: Replicas
) -> None:
    # A lease long enough that waiting it out would show: only a release explains a fast handover.
    timing = {"lease": 15.0, "renew": 10.0, "retry": RETRY_SECONDS}
    a = replicas.new("a", elected(namespace, "a", **timing))
    b = replicas.new("b", elected(namespace, "b", **timing))
    a.start()
    wait_until(lambda: lease_spec(api, namespace).get("holderIdentity") == "a", what="a leads")
    b.start()

    # A follower stops at once, exit 0, and leaves the Lease alone.
    assert b.proc is not None
    b.proc.terminate()
    stopped = time.monotonic()
    assert b.proc.wait(timeout=20) == 0, b.logs()
    assert time.monotonic() - stopped < 5, "a follower should stop promptly"
    assert log_events(b, "stopped while following")
    assert lease_spec(api, namespace)["holderIdentity"] == "a"

    b.start()
    assert a.proc is not None
    a.proc.terminate()
    to_leader = timed(lambda: lease_spec(api, namespace).get("holderIdentity") == "b",
                      timeout=30, what="b to take the released Lease")  # fmt: skip
    assert a.proc.wait(timeout=20) == 0, a.logs()
    assert log_events(a, "released the Lease")
    cluster.apply(deployment("after-handover", namespace, simulate="CrashLoopBackOff"))
    wait_until(lambda: diagnosed(b, namespace, "after-handover"), timeout=90,
               what=f"b's diagnosis\n{b.logs()}")  # fmt: skip
    print(f"\nFAILOVER sigterm lease=15s/10s/{RETRY_SECONDS:g}s: SIGTERM->new leader "
          f"{to_leader:.2f}s")  # fmt: skip
    assert to_leader < timing["lease"] / 2, "the Lease should have been released, not expired"


def test_a_leader_that_finds_the_lease_taken_exits_at_once(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, replicas: Replicas
) -> None:
    a = replicas.new("a", elected(namespace, "a"))
    a.start()
    wait_until(lambda: lease_spec(api, namespace).get("holderIdentity") == "a", what="a leads")
    leases = client.CustomObjectsApi(api)
    lease = cast(
        dict[str, Any],
        leases.get_namespaced_custom_object(
            "coordination.k8s.io", "v1", namespace, "leases", LEASE
        ),
    )
    lease["spec"]["holderIdentity"] = "intruder"
    leases.replace_namespaced_custom_object(
        "coordination.k8s.io", "v1", namespace, "leases", LEASE, lease
    )
    assert a.proc is not None
    assert a.proc.wait(timeout=LEASE_SECONDS + SLACK_SECONDS) == 1, a.logs()
    assert any("leadership lost" in str(e.get("event")) for e in log_events(a)), a.logs()
    assert lease_spec(api, namespace)["holderIdentity"] == "intruder", "and releases nothing"


@pytest.fixture
def shard_namespaces(cluster: LocalCluster) -> Iterator[tuple[str, list[str]]]:
    """Three namespaces under one fresh prefix: `<p>-a-1`, `<p>-a-2`, `<p>-b`."""
    prefix = f"shard-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}-a-1", f"{prefix}-a-2", f"{prefix}-b"]
    for name in names:
        cluster.kubectl("create", "namespace", name)
    for name in names:
        cluster.wait_for_default_service_account(name)
    yield prefix, names
    for name in names:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_two_shards_each_diagnose_their_own_namespaces_and_touch_no_others(
    cluster: LocalCluster, shard_namespaces: tuple[str, list[str]], replicas: Replicas
) -> None:
    prefix, (ns1, ns2, ns3) = shard_namespaces
    base = {"KUBETRIAGE_GRACE_SECONDS": "0", "KUBETRIAGE_CLUSTER_NAME": "integration"}
    # A by a kopf glob, B by name.
    a = replicas.new("shard-a", {**base, "KUBETRIAGE_NAMESPACES": f"{prefix}-a-*"})
    b = replicas.new("shard-b", {**base, "KUBETRIAGE_NAMESPACES": ns3})
    a.start()
    b.start()
    for ns in (ns1, ns2, ns3):
        cluster.apply(deployment("crasher", ns, simulate="CrashLoopBackOff"))
    owner = {ns1: a, ns2: a, ns3: b}
    for ns, process in owner.items():
        wait_until(functools.partial(diagnosed, process, ns, "crasher"), timeout=90,
                   what=f"the diagnosis of crasher in {ns}\n{process.logs()}")  # fmt: skip
    for ns in owner:
        assert reports_in(cluster, ns) == ["deployment-crasher-crashloopbackoff"]

    mine = {a: {ns1, ns2}, b: {ns3}}
    for process, namespaces in mine.items():
        events = requests_of(cluster, process)
        refs = [e.get("objectRef") or {} for e in events]
        # Anything namespaced, and Namespace objects by name (a start-up warm-up reads
        # `default`; a diagnosis reads its namespace's labels).
        touched = {r.get("namespace") for r in refs if r.get("resource") != "namespaces"}
        touched |= {r.get("name") for r in refs if r.get("resource") == "namespaces"}
        foreign = touched & ({ns1, ns2, ns3} - namespaces)
        assert not foreign, f"{process.user} touched another shard's {foreign}"
        assert touched - {None, "default"} <= namespaces, touched
        written = report_writes(events)
        assert {ns for ns, _ in written} == namespaces
        reports = {e["report"] for e in log_events(process, "diagnosed")}
        assert reports == {f"{ns}/deployment-crasher-crashloopbackoff" for ns in namespaces}
    # No report has two writers.
    writers: dict[tuple[str, str], set[str]] = {}
    for process in (a, b):
        for key in report_writes(requests_of(cluster, process)):
            writers.setdefault(key, set()).add(process.user)
    assert all(len(users) == 1 for users in writers.values()), writers
