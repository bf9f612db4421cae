"""Escalation end to end: the operator on the real control plane, Linear as the local stand-in.

Given a production Deployment that starts crash-looping, on-call gets exactly one Linear issue
naming the root cause and the change, and the workload is left as it was. Faults, crashes and
bad keys never duplicate or lose an escalation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterkit import OperatorProcess, get_json, report_of, wait_for_report
from helpers import wait_until
from linear_standin import DEFAULT_TEAM_ID, LinearStandin
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def standin() -> Iterator[LinearStandin]:
    with LinearStandin() as server:
        yield server


@pytest.fixture(scope="module")
def escalating_operator(
    cluster: LocalCluster,
    operator: OperatorProcess,
    standin: LinearStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """An operator with Linear configured; the session's plain operator pauses meanwhile, so
    that one writer owns each report, as in a real install."""
    operator.stop()
    escalating = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("escalating-operator"),
        {
            "KUBETRIAGE_GRACE_SECONDS": "0",
            "KUBETRIAGE_RESOLVE_AFTER_SECONDS": "3",
            "KUBETRIAGE_CLUSTER_NAME": "integration",
            "KUBETRIAGE_LINEAR_API_URL": standin.url,
            "KUBETRIAGE_LINEAR_API_KEY": standin.api_key,
            "KUBETRIAGE_LINEAR_TEAM_ID": DEFAULT_TEAM_ID,
            "KUBETRIAGE_LINEAR_TIMEOUT_SECONDS": "2",
            **FAST_RETRIES,
        },
    )
    escalating.start()
    try:
        yield escalating
    finally:
        escalating.stop()
        operator.start()


# Delivery's back-off scaled down, so that outages longer than any schedule fit in a test.
FAST_RETRIES = {
    "KUBETRIAGE_LINEAR_RETRY_BASE_SECONDS": "0.5",
    "KUBETRIAGE_LINEAR_RETRY_MAX_SECONDS": "2",
    "KUBETRIAGE_LINEAR_FAILED_RETRY_SECONDS": "5",
}


def production_namespace(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "kubetriage.io/environment=production")


def escalation_of(cluster: LocalCluster, namespace: str, name: str, symptom: str) -> dict[str, Any]:
    escalation: dict[str, Any] = (
        report_of(cluster, namespace, name, symptom).get("status", {}).get("escalation") or {}
    )
    return escalation


def wait_for_state(
    cluster: LocalCluster, namespace: str, name: str, symptom: str, state: str, timeout: float = 90
) -> dict[str, Any]:
    seen: list[dict[str, Any]] = [{}]

    def reached() -> dict[str, Any] | None:
        seen[0] = report_of(cluster, namespace, name, symptom).get("status") or {}
        escalation: dict[str, Any] = seen[0].get("escalation") or {}
        return escalation if escalation.get("state") == state else None

    try:
        return wait_until(reached, timeout=timeout, what=f"escalation {state} for {name}")
    except AssertionError as error:
        raise AssertionError(f"{error}; the report's status: {seen[0]!r}") from None


def issues_for(standin: LinearStandin, name: str) -> list[Any]:
    return [issue for issue in standin.issues_created() if f"/Deployment/{name}:" in issue.title]


def test_a_production_crash_loop_opens_exactly_one_issue_and_changes_nothing(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production_namespace(cluster, namespace)
    workload = deployment("api", namespace, replicas=2, simulate="CrashLoopBackOff", exit_code=127)
    workload["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "value": "Pl4nted-Env-S3cret"}
    ]
    cluster.apply(workload)
    before = get_json(cluster, "deployment", "api", namespace)
    escalation = wait_for_state(cluster, namespace, "api", "CrashLoopBackOff", "Opened")
    (issue,) = issues_for(standin, "api")
    assert escalation["identifier"] == issue.identifier
    assert escalation["url"] == issue.url
    assert "CrashLoop.CommandNotFound" in issue.title
    assert "## Root cause" in (issue.description or "")
    assert "## Recommended change" in (issue.description or "")
    assert issue.priority == 1, "a production workload with no ready replica is critical"
    after = get_json(cluster, "deployment", "api", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert standin.requests_containing("Pl4nted-Env-S3cret") == []
    assert standin.invalid_documents == []


def test_outside_production_an_autonomous_change_opens_no_issue_and_a_cost_one_does(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    # The crash loop's recommendation is a command to inspect the dependency: autonomous.
    cluster.apply(deployment("worker", namespace, simulate="CrashLoopBackOff"))
    wait_for_state(cluster, namespace, "worker", "CrashLoopBackOff", "NotRequired")
    # Raising the memory limit by 25% is a cost change: a human decides.
    cluster.apply(
        deployment("resizer", namespace, simulate="OOMKilled", limits={"memory": "256Mi"})
    )
    escalation = wait_for_state(cluster, namespace, "resizer", "OOMKilled", "Opened")
    assert issues_for(standin, "worker") == []
    assert len(issues_for(standin, "resizer")) == 1
    report = report_of(cluster, namespace, "resizer", "OOMKilled")
    assert "cost" in report["status"]["recommendation"]["classes"]
    assert escalation["identifier"].startswith("OPS-")


def test_faults_delay_but_never_duplicate_an_escalation(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production_namespace(cluster, namespace)
    for kind in ("http429", "ratelimited", "http500", "slow"):
        standin.fail_next(kind, times=1, seconds=3.0, retry_after=1)
    cluster.apply(deployment("flaky-linear", namespace, simulate="ErrImagePull"))
    escalation = wait_for_state(
        cluster, namespace, "flaky-linear", "ImagePullBackOff", "Opened", timeout=120
    )
    assert len(issues_for(standin, "flaky-linear")) == 1
    assert escalation["attempts"] >= 2


def test_a_kill_between_issue_create_and_status_write_leaves_one_issue(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production_namespace(cluster, namespace)
    # Linear applies the create, then holds every create's answer past the client's timeout:
    # the issue exists, the report still says Pending, and then the operator dies.
    standin.fail_next("slow", times=50, seconds=30.0, process_first=True, only="IssueCreate")
    cluster.apply(deployment("crashy", namespace, simulate="CrashLoopBackOff"))
    wait_until(lambda: issues_for(standin, "crashy"), what="the issue created in Linear")
    assert escalation_of(cluster, namespace, "crashy", "CrashLoopBackOff")["state"] == "Pending"
    escalating_operator.kill()
    standin.fail_next("slow", times=0)
    with standin._lock:
        standin._faults.clear()
    escalating_operator.start()
    wait_for_state(cluster, namespace, "crashy", "CrashLoopBackOff", "Opened")
    assert len(issues_for(standin, "crashy")) == 1


def test_relapse_and_resolution_each_add_one_comment(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production_namespace(cluster, namespace)
    cluster.apply(deployment("cycler", namespace, simulate="CrashLoopBackOff"))
    opened = wait_for_state(cluster, namespace, "cycler", "CrashLoopBackOff", "Opened")
    cluster.apply(deployment("cycler", namespace, image="registry.example/cycler:2"))
    wait_until(
        lambda: report_of(cluster, namespace, "cycler", "CrashLoopBackOff")["status"]["phase"]
        == "Resolved",
        what="resolved", timeout=90,
    )  # fmt: skip
    wait_until(lambda: len(standin.comments_on(opened["issueId"])) == 1, what="resolution comment")
    cluster.apply(deployment("cycler", namespace, simulate="CrashLoopBackOff",
                             image="registry.example/cycler:3"))  # fmt: skip
    wait_until(lambda: len(standin.comments_on(opened["issueId"])) == 2, what="relapse comment")
    bodies = [c.body for c in standin.comments_on(opened["issueId"])]
    assert bodies[0].startswith("## Resolved")
    assert bodies[1].startswith("Relapsed")
    assert len(issues_for(standin, "cycler")) == 1


def test_a_refused_key_fails_readably_and_diagnosis_goes_on(
    cluster: LocalCluster,
    escalating_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
    tmp_path: Path,
) -> None:
    production_namespace(cluster, namespace)
    standin.set_api_key_valid(False)
    try:
        cluster.apply(deployment("locked-out", namespace, simulate="CrashLoopBackOff"))
        failed = wait_for_state(cluster, namespace, "locked-out", "CrashLoopBackOff", "Failed")
        assert "API key" in failed["reason"]
        cluster.apply(deployment("still-diagnosed", namespace, simulate="ErrImagePull"))
        report = wait_for_report(cluster, namespace, "still-diagnosed", "ImagePullBackOff")
        assert report["status"]["rootCause"]["category"] == "ImagePull.NotFound"
        assert escalating_operator.proc is not None
        assert escalating_operator.proc.poll() is None, "no crash loop of the operator"
        assert json.dumps(failed).find(standin.api_key) == -1
    finally:
        standin.set_api_key_valid(True)
