"""What the JobFailed runbook reads: the failed Job's spec and status, its pods that failed
(their terminations and logs go to the crash-loop and OOM runbooks for the underlying cause),
and for a CronJob the other runs it kept.

Each function reads one thing and returns it as a value; nothing here decides (`decide.py`) or
advises (`advise.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import DetectedSymptom
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    condition,
    container_statuses,
    dicts,
    int_field,
    meta,
    name_of,
    pod_phase,
    text,
)
from kubetriage.k8s.owners import WorkloadRef, owned_by
from kubetriage.k8s.time import parse_time
from kubetriage.models import RootCause
from kubetriage.playbooks.job.messages import JobFailure, read_failure


@dataclass(frozen=True)
class Termination:
    """How one container of one failed pod ended."""

    pod: str
    container: str
    exit_code: int | None
    reason: str
    started: datetime | None
    finished: datetime | None


@dataclass(frozen=True)
class JobSpec:
    """The parts of a Job's spec and status that say how it may fail."""

    backoff_limit: int
    deadline: int | None  # activeDeadlineSeconds
    completions: int
    succeeded: int
    failed: int
    completed_indexes: str
    started: datetime | None
    failed_at: datetime | None
    rules: tuple[dict[str, Any], ...]  # podFailurePolicy.rules


@dataclass
class JobFacts:
    """Everything the steps found, as the decision and the advice read it."""

    target: WorkloadRef  # the Job, or the CronJob that owns it
    job: WorkloadRef
    failure: JobFailure
    spec: JobSpec | None = None
    terminations: list[Termination] = field(default_factory=list)
    failed_pods: list[KubeObject] = field(default_factory=list)
    underlying: RootCause | None = None  # the crash-loop or OOM runbook's cause for the pods
    runs: list[tuple[str, str]] = field(default_factory=list)  # a CronJob's Jobs: (name, state)


def failed_job(sightings: list[DetectedSymptom]) -> tuple[str, JobFailure] | None:
    """The Job the sighting names, and its failure condition read."""
    sighting = next((s for s in sightings if s.object_kind == "Job"), None)
    if sighting is None:
        return None
    return sighting.object_name, read_failure(sighting.reason, sighting.message)


def job_spec(job: KubeObject) -> JobSpec:
    """The Job's limits and counts, with the Job controller's defaults."""
    spec, status = as_dict(job.get("spec")), as_dict(job.get("status"))
    deadline = spec.get("activeDeadlineSeconds")
    failed_at = condition(job, "FailureTarget") or condition(job, "Failed") or {}
    return JobSpec(
        backoff_limit=int_field(spec, "backoffLimit", 6),
        deadline=deadline if isinstance(deadline, int) and not isinstance(deadline, bool) else None,
        completions=int_field(spec, "completions", 1),
        succeeded=int_field(status, "succeeded", 0),
        failed=int_field(status, "failed", 0),
        completed_indexes=text(status.get("completedIndexes")),
        started=parse_time(status.get("startTime")),
        failed_at=parse_time(failed_at.get("lastTransitionTime")),
        rules=tuple(dicts(as_dict(spec.get("podFailurePolicy")).get("rules"))),
    )


def failed_pods(reader: ClusterReader, job: WorkloadRef) -> list[KubeObject]:
    """The Job's pods that failed, oldest first (those the Job controller has not removed)."""
    pods = [
        pod
        for pod in reader.pods(job.namespace)
        if owned_by(pod, "Job", job.name) and pod_phase(pod) == "Failed"
    ]
    return sorted(pods, key=lambda p: text(meta(p).get("creationTimestamp")) or name_of(p))


def terminations(pods: list[KubeObject]) -> list[Termination]:
    """How each failed pod's containers ended."""
    found = []
    for pod in pods:
        for status, is_init in container_statuses(pod):
            ended = as_dict(as_dict(status.get("state")).get("terminated"))
            if is_init and ended.get("exitCode") == 0:
                continue
            if not ended:
                continue
            code = ended.get("exitCode")
            found.append(
                Termination(
                    pod=name_of(pod),
                    container=text(status.get("name")),
                    exit_code=code
                    if isinstance(code, int) and not isinstance(code, bool)
                    else None,
                    reason=text(ended.get("reason")),
                    started=parse_time(ended.get("startedAt")),
                    finished=parse_time(ended.get("finishedAt")),
                )
            )
    return found


def cron_runs(reader: ClusterReader, cron_job: WorkloadRef) -> list[tuple[str, str]]:
    """A CronJob's Jobs the cluster kept (its history limits), newest first, each with how it
    ended: Failed, Complete or Running."""
    jobs = [
        j
        for j in reader.workloads("Job", cron_job.namespace)
        if owned_by(j, "CronJob", cron_job.name)
    ]
    jobs.sort(key=lambda j: text(meta(j).get("creationTimestamp")), reverse=True)
    runs = []
    for job in jobs:
        state = "Running"
        for kind in ("Failed", "FailureTarget", "Complete"):
            found = condition(job, kind)
            if found is not None and found.get("status") == "True":
                state = "Failed" if kind != "Complete" else "Complete"
                break
        runs.append((name_of(job), state))
    return runs


def job_ref(target: WorkloadRef, name: str) -> WorkloadRef:
    """The failed Job itself, whatever the report targets."""
    if target.kind == "Job":
        return target
    return WorkloadRef(target.namespace, "Job", name, "batch/v1")
