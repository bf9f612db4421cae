"""The JobFailed runbook, case by case: given a Job the Job controller failed and its pods, the
report names the mechanism (backoff limit, deadline, podFailurePolicy) and, beneath a backoff
limit, the pods' own failure as `rootCause.underlying`.

Conditions are the Job controller's (pkg/controller/job): reason `BackoffLimitExceeded`, message
`Job has reached the specified backoff limit`; `DeadlineExceeded`, `Job was active longer than
specified deadline`; `PodFailurePolicy`, `Container transcoder for pod video/transcode-7781-n8x2k
failed with exit code 42 matching FailJob rule at index 0`.
"""

from __future__ import annotations

from typing import Any

import pytest

import kubeobjects
from kubetriage.detect import detect_job
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.job.messages import read_failure

NS = "finance"
JOB = "ledger-reconcile-20250611"
CAPTURED = "2025-06-11T02:58:37Z"
BACKOFF = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
POLICY = (
    "PodFailurePolicy",
    f"Container reconcile for pod {NS}/{JOB}-n8x2k failed with exit code 42 matching FailJob "
    "rule at index 0",
)
DNS_FAILURE = (
    'psycopg2.OperationalError: could not translate host name "ledger-db" to address: Name or '
    "service not known\n"
)


@pytest.mark.parametrize(
    ("reason", "message", "category"),
    [
        (*BACKOFF, Category.JOB_BACKOFF_LIMIT_EXCEEDED),
        (*DEADLINE, Category.JOB_DEADLINE_EXCEEDED),
        (*POLICY, Category.JOB_POD_FAILURE_POLICY),
        ("FailedIndexes", "Job has failed indexes", Category.JOB_BACKOFF_LIMIT_EXCEEDED),
        (
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
            Category.JOB_BACKOFF_LIMIT_EXCEEDED,
        ),
        ("SomethingNew", "a reason the controller does not write", None),
    ],
)
def test_the_job_controllers_reason_names_the_category(
    reason: str, message: str, category: Category | None
) -> None:
    assert read_failure(reason, message).category is category


def test_a_pod_failure_policy_message_names_the_rule_and_the_exit_code() -> None:
    failure = read_failure(*POLICY)
    assert (failure.rule, failure.container, failure.exit_code) == (0, "reconcile", 42)


# --- the cluster ---------------------------------------------------------------------------------


def job(
    failure: tuple[str, str] | None,
    *,
    name: str = JOB,
    first: str = "FailureTarget",
    cron_job: str | None = None,
    created: str = "2025-06-11T02:11:37Z",
    complete: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    """A Job the controller failed with `failure` (reason, message), or one still running."""
    conditions = []
    if failure is not None:
        for kind in (first, "Failed") if first != "Failed" else ("Failed",):
            conditions.append(
                kubeobjects.condition(
                    kind, "True", reason=failure[0], message=failure[1],
                    last_transition="2025-06-11T02:18:12Z",
                )
            )  # fmt: skip
    if complete:
        conditions.append(kubeobjects.condition("Complete", "True", reason="CompletionsReached"))
    owners = (
        [kubeobjects.owner_reference("CronJob", cron_job, api_version="batch/v1")]
        if cron_job
        else None
    )
    return kubeobjects.kube_object(
        "Job",
        name,
        namespace=NS,
        created=created,
        owners=owners,
        spec={"backoffLimit": 3, "completions": 1, **spec},
        status={
            "conditions": conditions,
            "startTime": "2025-06-11T02:11:37Z",
            "failed": 4 if failure else 0,
        },
    )


def failed_pod(
    index: int, *, reason: str = "Error", code: int = 1, job_name: str = JOB
) -> dict[str, Any]:
    """A pod of the Job whose one container ended with `code`."""
    name = f"{job_name}-p{index}"
    pod = kubeobjects.pod(
        name,
        namespace=NS,
        owner=kubeobjects.owner_reference("Job", job_name, api_version="batch/v1"),
        spec={
            "restartPolicy": "Never",
            "containers": [kubeobjects.container("reconcile", "ledger-reconcile:2.8.0")],
        },
        status={
            "phase": "Failed",
            "containerStatuses": [
                kubeobjects.container_status(
                    "reconcile",
                    kubeobjects.terminated(
                        code, reason, started=f"2025-06-11T02:1{index}:00Z",
                        finished=f"2025-06-11T02:1{index}:40Z",
                    ),
                )
            ],
        },
    )  # fmt: skip
    pod["metadata"]["creationTimestamp"] = f"2025-06-11T02:1{index}:00Z"
    return pod


def log(index: int, text: str) -> dict[str, Any]:
    return kubeobjects.container_log(
        f"{JOB}-p{index}", "reconcile", text, namespace=NS, previous=False
    )


def diagnose_job(*items: dict[str, Any]) -> Finding:
    reader = kubeobjects.snapshot_reader(*items, namespace=NS, captured_at=CAPTURED)
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.JOB_FAILED]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


# --- detection -----------------------------------------------------------------------------------


def test_failure_target_is_reacted_to_before_failed_is_set() -> None:
    (sighting,) = detect_job(job(BACKOFF, first="FailureTarget"))
    assert (sighting.symptom, sighting.reason) == (Symptom.JOB_FAILED, "BackoffLimitExceeded")
    running = job(None)
    assert detect_job(running) == []


def test_a_cronjobs_report_is_its_most_recent_runs_and_targets_the_cronjob() -> None:
    older = job(BACKOFF, name="backup-100", cron_job="backup", created="2025-06-10T01:30:00Z")
    newer = job(BACKOFF, name="backup-200", cron_job="backup", created="2025-06-11T01:30:00Z")
    reader = kubeobjects.snapshot_reader(older, newer, namespace=NS, captured_at=CAPTURED)
    (problem,) = find_problems(reader)
    assert (problem.target.kind, problem.target.name) == ("CronJob", "backup")
    assert [s.object_name for s in problem.sightings] == ["backup-200"]


def test_a_failed_run_with_a_newer_run_since_is_history() -> None:
    failed = job(BACKOFF, name="backup-100", cron_job="backup", created="2025-06-10T01:30:00Z")
    ran = job(
        None, name="backup-200", cron_job="backup", created="2025-06-11T01:30:00Z", complete=True
    )
    reader = kubeobjects.snapshot_reader(failed, ran, namespace=NS, captured_at=CAPTURED)
    assert find_problems(reader) == []


# --- the runbook ---------------------------------------------------------------------------------


def test_a_backoff_limit_names_the_pods_own_failure_as_underlying() -> None:
    finding = diagnose_job(
        job(BACKOFF),
        *(failed_pod(i) for i in range(4)),
        *(log(i, DNS_FAILURE) for i in range(4)),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.JOB_BACKOFF_LIMIT_EXCEEDED
    assert root.underlying is Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE
    assert root.confidence == 0.9
    assert "its pods failed 4 time(s) (backoffLimit 3)" in root.summary
    assert "the failed pods show CrashLoop.DependencyUnavailable" in root.summary
    logs = [e.summary for e in finding.investigation.evidence if e.source is EvidenceSource.LOGS]
    assert any("could not translate host name" in line for line in logs)
    report = finding.conclusion.root_cause.to_api()
    assert report["underlying"] == "CrashLoop.DependencyUnavailable"
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "recovers by itself" not in recommendation.summary
    assert "does not run again by itself" in recommendation.summary
    assert "delete the failed Job and create it again" in recommendation.summary


def test_pods_the_kernel_killed_go_to_the_oom_runbook() -> None:
    finding = diagnose_job(job(BACKOFF), failed_pod(0, reason="OOMKilled", code=137))
    root = finding.conclusion.root_cause
    assert root.category is Category.JOB_BACKOFF_LIMIT_EXCEEDED
    assert root.underlying is not None
    assert root.underlying.value.startswith("OOMKilled.")


def test_no_failed_pod_left_is_said_so_without_an_underlying_cause() -> None:
    root = diagnose_job(job(BACKOFF)).conclusion.root_cause
    assert (root.category, root.underlying, root.confidence) == (
        Category.JOB_BACKOFF_LIMIT_EXCEEDED,
        None,
        0.75,
    )
    assert "no failed pod is left to say why" in root.summary


def test_a_deadline_says_how_long_it_ran_against_its_limit() -> None:
    root = diagnose_job(job(DEADLINE, activeDeadlineSeconds=300)).conclusion.root_cause
    assert root.category is Category.JOB_DEADLINE_EXCEEDED
    assert "its deadline passed after running 6m35s (activeDeadlineSeconds 300)" in root.summary
    assert "0 of 1 completions done" in root.summary


def test_a_pod_failure_policy_names_its_rule_and_is_not_retried() -> None:
    exit_42 = {"containerName": "reconcile", "operator": "In", "values": [42]}
    rules = {"rules": [{"action": "FailJob", "onExitCodes": exit_42}]}
    finding = diagnose_job(job(POLICY, podFailurePolicy=rules), failed_pod(0, code=42))
    root = finding.conclusion.root_cause
    assert root.category is Category.JOB_POD_FAILURE_POLICY
    assert root.confidence == 0.95
    assert (
        "container reconcile exited with code 42, which rule 0 of its podFailurePolicy (FailJob "
        "on exit codes In [42] of reconcile) makes fatal"
    ) in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.command == f"kubectl logs {JOB}-p0 -n {NS}"
