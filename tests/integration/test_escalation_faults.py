"""Escalations that are never lost, on the real control plane, with Linear faulted on purpose.

The operator runs as a user runs it (`kubetriage run`), Linear is the stand-in, and each fault
of issue 14's table is made to happen: an outage longer than any retry schedule, SIGKILL right
after a burst of breakages, a create whose answer is lost, a wrong key fixed by a restart, a 500
on a resolution comment, and a storm of kills at random moments. After each, every report's
escalation ends Opened (or Failed where a person must act) with exactly one issue, and every
comment is delivered once. Delivery's back-off is scaled down (FAST_RETRIES) so that outages
longer than its schedule fit in a test.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from clusterkit import OperatorProcess, report_of
from helpers import wait_until
from linear_standin import DEFAULT_TEAM_ID, LinearStandin
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration

FAST_RETRIES = {
    "KUBETRIAGE_LINEAR_RETRY_BASE_SECONDS": "0.5",
    "KUBETRIAGE_LINEAR_RETRY_MAX_SECONDS": "2",
    "KUBETRIAGE_LINEAR_FAILED_RETRY_SECONDS": "5",
}


@pytest.fixture(scope="module")
def standin() -> Iterator[LinearStandin]:
    with LinearStandin() as server:
        yield server


def environment(standin: LinearStandin, *, key: str | None = None) -> dict[str, str]:
    return {
        "KUBETRIAGE_GRACE_SECONDS": "0",
        "KUBETRIAGE_RESOLVE_AFTER_SECONDS": "3",
        "KUBETRIAGE_CLUSTER_NAME": "faults",
        "KUBETRIAGE_LINEAR_API_URL": standin.url,
        "KUBETRIAGE_LINEAR_API_KEY": key or standin.api_key,
        "KUBETRIAGE_LINEAR_TEAM_ID": DEFAULT_TEAM_ID,
        "KUBETRIAGE_LINEAR_TIMEOUT_SECONDS": "2",
        **FAST_RETRIES,
    }


@pytest.fixture(scope="module")
def faulted_operator(
    cluster: LocalCluster,
    operator: OperatorProcess,
    standin: LinearStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator with Linear configured; the session's plain operator pauses meanwhile."""
    operator.stop()
    faulted = OperatorProcess(cluster, tmp_path_factory.mktemp("faulted"), environment(standin))
    faulted.start()
    try:
        yield faulted
    finally:
        faulted.stop()
        operator.start()


@pytest.fixture(autouse=True)
def no_faults_left(standin: LinearStandin) -> Iterator[None]:
    yield
    standin.clear_faults()
    standin.set_api_key_valid(True)


def production(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "kubetriage.io/environment=production")


def escalation(cluster: LocalCluster, namespace: str, name: str, symptom: str) -> dict[str, Any]:
    found: dict[str, Any] = (
        report_of(cluster, namespace, name, symptom).get("status", {}).get("escalation") or {}
    )
    return found


def all_in_state(
    cluster: LocalCluster, namespace: str, names: list[str], state: str, timeout: float = 120
) -> dict[str, dict[str, Any]]:
    def reached() -> dict[str, dict[str, Any]] | None:
        found = {n: escalation(cluster, namespace, n, "CrashLoopBackOff") for n in names}
        return found if all(e.get("state") == state for e in found.values()) else None

    return wait_until(reached, timeout=timeout, what=f"{names} {state}")


def issues_of(standin: LinearStandin, namespace: str) -> Counter[str]:
    """How many issues each workload of the namespace has."""
    return Counter(
        issue.title.split("/Deployment/")[1].split(":")[0]
        for issue in standin.issues_created()
        if f"] {namespace}/Deployment/" in issue.title
    )


def crash_loops(cluster: LocalCluster, namespace: str, names: list[str]) -> None:
    cluster.apply([deployment(n, namespace, simulate="CrashLoopBackOff") for n in names])


@pytest.mark.parametrize("restart_during", [False, True], ids=["outage", "outage-and-restart"])
def test_an_outage_longer_than_any_retry_schedule_delivers_every_escalation_after_it(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
    restart_during: bool,
) -> None:
    production(cluster, namespace)
    names = [f"down-{i}" for i in range(5)]
    standin.fail_for(25)
    crash_loops(cluster, namespace, names)
    all_in_state(cluster, namespace, names, "Pending", timeout=60)

    def each_says_what_failed() -> bool:
        found = [escalation(cluster, namespace, n, "CrashLoopBackOff") for n in names]
        return all(e.get("state") == "Pending" and e.get("lastError") for e in found)

    wait_until(each_says_what_failed, timeout=20, what="each escalation's lastError")
    if restart_during:
        faulted_operator.stop()
        faulted_operator.start()
    opened = all_in_state(cluster, namespace, names, "Opened", timeout=120)
    assert issues_of(standin, namespace) == dict.fromkeys(names, 1)
    assert not any(e.get("lastError") for e in opened.values()), "delivered: no error left"


def test_a_sigkill_right_after_a_burst_leaves_no_report_without_its_issue(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    names: list[str] = []
    for round_ in range(5):
        burst = [f"burst-{round_}-{i}" for i in range(3)]
        names += burst
        crash_loops(cluster, namespace, burst)
        time.sleep(0.3)
        faulted_operator.kill()
        faulted_operator.start()
    all_in_state(cluster, namespace, names, "Opened", timeout=180)
    assert issues_of(standin, namespace) == dict.fromkeys(names, 1)


def test_a_create_whose_answer_is_lost_is_found_by_its_id_and_attached(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    # Linear makes the issue, then answers after the client gave up; its retry is refused.
    standin.fail_next("slow", times=3, seconds=4.0, process_first=True, only="IssueCreate")
    crash_loops(cluster, namespace, ["slow-answer"])
    opened = all_in_state(cluster, namespace, ["slow-answer"], "Opened")["slow-answer"]
    assert issues_of(standin, namespace) == {"slow-answer": 1}
    assert standin.attachments_on(opened["issueId"]), "the issue found again is attached"


def test_a_wrong_key_is_failed_until_a_restart_with_the_right_key_opens_the_issue(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    production(cluster, namespace)
    faulted_operator.stop()
    wrong = OperatorProcess(
        cluster, tmp_path_factory.mktemp("wrong-key"), environment(standin, key="lin_api_wrong")
    )
    wrong.start()
    try:
        crash_loops(cluster, namespace, ["locked"])
        failed = all_in_state(cluster, namespace, ["locked"], "Failed")["locked"]
        assert "KUBETRIAGE_LINEAR_API_KEY" in failed["reason"]
        assert failed["lastError"].startswith("issue")
        assert "lin_api_wrong" not in str(failed)
        assert "WARNING" in wrong.logs().upper()
    finally:
        wrong.stop()
    faulted_operator.start()  # the right key: a person fixed the Secret and restarted
    all_in_state(cluster, namespace, ["locked"], "Opened", timeout=60)
    assert issues_of(standin, namespace) == {"locked": 1}


def test_a_500_on_the_resolution_comment_is_retried_until_it_lands_once(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    crash_loops(cluster, namespace, ["healer"])
    opened = all_in_state(cluster, namespace, ["healer"], "Opened")["healer"]
    standin.fail_next("http500", times=3, only="CommentCreate")
    cluster.apply(deployment("healer", namespace, image="registry.example/healer:2"))
    wait_until(
        lambda: len(standin.comments_on(opened["issueId"])) == 1,
        what="the resolution comment",
        timeout=90,
    )
    time.sleep(5)  # any duplicate would have come by now
    (comment,) = standin.comments_on(opened["issueId"])
    assert comment.body.startswith("## Resolved")
    final = escalation(cluster, namespace, "healer", "CrashLoopBackOff")
    assert [c["state"] for c in final["comments"]] == ["Sent"]


def test_a_reports_attempts_count_only_its_own_requests(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    names = ["count-a", "count-b", "count-c"]
    standin.fail_next("http500", times=4)
    crash_loops(cluster, namespace, names)
    opened = all_in_state(cluster, namespace, names, "Opened")
    for found in opened.values():
        mine = [r for r in standin.requests if found["issueId"] in r.body]
        assert found["attempts"] == len(mine), (found, [r.operation for r in mine])


def test_a_rollout_stuck_on_its_own_pods_shares_their_issue(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    cluster.apply(
        deployment("deadline", namespace, simulate="CrashLoopBackOff", progress_deadline=5)
    )
    pods = all_in_state(cluster, namespace, ["deadline"], "Opened")["deadline"]

    def shared() -> dict[str, Any] | None:
        found = escalation(cluster, namespace, "deadline", "RolloutStuck")
        return found if found.get("state") == "Opened" else None

    rollout = wait_until(shared, timeout=120, what="the stuck rollout's escalation")
    category = report_of(cluster, namespace, "deadline", "RolloutStuck")["status"]["rootCause"]
    assert category["category"] == "Rollout.BadRevision"
    assert rollout["identifier"] == pods["identifier"], "one incident, one issue"
    assert issues_of(standin, namespace) == {"deadline": 1}
    comments = [c.body for c in standin.comments_on(pods["issueId"])]
    assert any("is stuck too" in body for body in comments), comments


def test_a_storm_of_kills_leaves_exactly_one_issue_and_no_comment_twice(
    cluster: LocalCluster,
    faulted_operator: OperatorProcess,
    standin: LinearStandin,
    namespace: str,
) -> None:
    production(cluster, namespace)
    chance = random.Random(14)
    names: list[str] = []
    for round_ in range(10):
        burst = [f"storm-{round_}-{i}" for i in range(2)]
        names += burst
        crash_loops(cluster, namespace, burst)
        time.sleep(chance.uniform(0.1, 3.0))
        faulted_operator.kill()
        faulted_operator.start()
    opened = all_in_state(cluster, namespace, names, "Opened", timeout=240)
    assert issues_of(standin, namespace) == dict.fromkeys(names, 1)
    for found in opened.values():
        bodies = [c.body for c in standin.comments_on(found["issueId"])]
        assert len(bodies) == len(set(bodies)), bodies
