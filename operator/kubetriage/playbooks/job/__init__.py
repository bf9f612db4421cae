"""The JobFailed runbook: why did the Job controller give up on the Job?

A Job fails when its pods failed more often than its backoffLimit allows, when it ran past
its activeDeadlineSeconds, or when a podFailurePolicy rule made one failure final (DESIGN.md
section 12); the Job controller names which in the Job's `FailureTarget` and `Failed`
conditions (`messages.py`). For a backoff limit the mechanism is not the cause: the failed
pods' terminations and logs go through the crash-loop runbook (the OOM runbook for pods the
kernel killed), and its category is the report's `rootCause.underlying`. A CronJob's report
counts the runs it kept. `decide.py` holds the rules, `advise.py` the changes.
"""

from __future__ import annotations

from typing import ClassVar

from kubetriage.detect import DetectedSymptom
from kubetriage.k8s.access import name_of
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import (
    Conclusion,
    Context,
    Investigation,
    Playbook,
    StepDoc,
    conclude,
)
from kubetriage.playbooks.crashloop import CrashLoopPlaybook
from kubetriage.playbooks.crashloop.messages import headline
from kubetriage.playbooks.job.advise import recommend
from kubetriage.playbooks.job.decide import decide, duration, rule_text, runs_text
from kubetriage.playbooks.job.messages import read_failure
from kubetriage.playbooks.job.reads import (
    JobFacts,
    cron_runs,
    failed_job,
    failed_pods,
    job_ref,
    job_spec,
    terminations,
)
from kubetriage.playbooks.oom import OOMKilledPlaybook

S_FAILURE = "Read the Job's failure"
S_PODS = "Read the failed pods' terminations"
S_UNDERLYING = "Classify why the pods failed"
S_RUNS = "Count the CronJob's failed runs"
S_FIX = "Choose the fix"


class JobFailedPlaybook(Playbook):
    """Names why a Job failed and, beneath a backoff limit, why its pods did."""

    symptom: ClassVar[Symptom] = Symptom.JOB_FAILED
    title: ClassVar[str] = "JobFailed"
    description: ClassVar[str] = (
        "A Job has failed (FailureTarget or Failed True), or a CronJob's most recent run did. "
        "The Job controller's reason names the mechanism: the backoff limit (the pods kept "
        "failing: the crash-loop or OOM runbook names why, as rootCause.underlying), the "
        "active deadline (how long it ran, how far it got), or a podFailurePolicy rule (which "
        "rule and exit code made the failure final). A CronJob's report targets the CronJob "
        "and counts the runs it kept that failed."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_FAILURE,
            "the Job's FailureTarget and Failed conditions, backoffLimit, "
            "activeDeadlineSeconds, podFailurePolicy, and its succeeded and failed counts",
            "`kubectl describe job` starts here: the Job controller's reason says which limit "
            "the Job reached.",
        ),
        StepDoc(
            S_PODS,
            "the Job's pods that failed: each container's exit code, reason and run time",
            "The pods are where the work failed; the Job only counted them.",
        ),
        StepDoc(
            S_UNDERLYING,
            "the crash-loop runbook (the OOM runbook for OOMKilled) over the failed pods and "
            "their logs",
            "A backoff limit is the mechanism; the pods' own failure is the cause to fix.",
        ),
        StepDoc(
            S_RUNS,
            "the CronJob's Jobs the cluster kept (its history limits)",
            "One failed night is an incident; every run failing is a broken job.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "The underlying cause's fix, a deadline that fits the work, or the input the app "
            "refused; and how to run it again.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.JOB_BACKOFF_LIMIT_EXCEEDED,
        Category.JOB_DEADLINE_EXCEEDED,
        Category.JOB_POD_FAILURE_POLICY,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the failed Job."""
        named = failed_job(context.sightings)
        name, failure = named if named is not None else (context.target.name, read_failure("", ""))
        facts = JobFacts(context.target, job_ref(context.target, name), failure)
        _read_failure(context, investigation, facts)
        _read_pods(context, investigation, facts)
        underlying = _classify(context, investigation, facts)
        _count_runs(context, investigation, facts)
        verdict = decide(facts)
        return conclude(
            investigation, S_FIX, verdict, recommend(facts, verdict.root.category, underlying)
        )


# -- steps -------------------------------------------------------------------------------------


def _read_failure(context: Context, investigation: Investigation, facts: JobFacts) -> None:
    job = context.reader.workload("Job", facts.job.namespace, facts.job.name)
    if job is None:
        investigation.step(S_FAILURE, f"Job {facts.job.name} is not readable any more.")
        return
    facts.spec = spec = job_spec(job)
    parts = [
        f"{facts.failure.reason or 'failed'}: {facts.failure.message or 'no message'}",
        f"{spec.failed} failed and {spec.succeeded} succeeded of {spec.completions} completions",
        f"backoffLimit {spec.backoff_limit}",
    ]
    if spec.deadline is not None:
        parts.append(f"activeDeadlineSeconds {spec.deadline}")
    if spec.started and spec.failed_at:
        parts.append(f"ran {duration((spec.failed_at - spec.started).total_seconds())}")
    parts.extend(f"podFailurePolicy rule {i}: {rule_text(r)}" for i, r in enumerate(spec.rules[:3]))
    summary = f"Job {facts.job.name}: " + "; ".join(parts)
    investigation.add_evidence(EvidenceSource.WORKLOAD, summary)
    investigation.step(S_FAILURE, summary + ".")


def _read_pods(context: Context, investigation: Investigation, facts: JobFacts) -> None:
    facts.failed_pods = failed_pods(context.reader, facts.job)
    facts.terminations = terminations(facts.failed_pods)
    if not facts.terminations:
        investigation.step(
            S_PODS, "No failed pod of the Job is left (the Job controller removed them)."
        )
        return
    shown = []
    for ended in facts.terminations[-3:]:
        ran = (
            f" after {duration((ended.finished - ended.started).total_seconds())}"
            if ended.started and ended.finished
            else ""
        )
        shown.append(
            f"{ended.pod}: container {ended.container} exited with code {ended.exit_code} "
            f"({ended.reason or 'no reason'}){ran}"
        )
    summary = f"{len(facts.failed_pods)} failed pod(s); " + "; ".join(shown)
    investigation.add_evidence(EvidenceSource.POD_STATUS, summary)
    investigation.step(S_PODS, summary + ".")
    if facts.failure.category is Category.JOB_POD_FAILURE_POLICY:
        # The run the rule stopped is the one to read: the app says why its failure is final.
        last = facts.terminations[-1]
        text = context.reader.container_log(
            facts.job.namespace, last.pod, last.container, previous=False
        )
        said = headline(text)
        if said:
            investigation.add_evidence(EvidenceSource.LOGS, f"log of {last.pod}: {said}")


def _classify(context: Context, investigation: Investigation, facts: JobFacts) -> Conclusion | None:
    if (
        facts.failure.category is not Category.JOB_BACKOFF_LIMIT_EXCEEDED
        and facts.failure.category is not None
    ):
        investigation.step(S_UNDERLYING, "Not needed: the Job did not fail on its backoff limit.")
        return None
    if not facts.terminations:
        investigation.step(S_UNDERLYING, "No failed pod is left to classify.")
        return None
    killed = any(t.reason == "OOMKilled" for t in facts.terminations)
    symptom = Symptom.OOM_KILLED if killed else Symptom.CRASH_LOOP_BACK_OFF
    wanted = {t.pod for t in facts.terminations if not killed or t.reason == "OOMKilled"}
    pods = [p for p in facts.failed_pods if name_of(p) in wanted]
    sightings = [
        DetectedSymptom(
            symptom, facts.job.namespace, "Pod", t.pod, container=t.container, reason=t.reason
        )
        for t in facts.terminations
        if t.pod in wanted
    ]
    inner = Context(
        reader=context.reader,
        target=facts.job,
        symptom=symptom,
        sightings=sightings,
        pods=pods,
        workload=context.reader.workload("Job", facts.job.namespace, facts.job.name),
        now=context.now,
        leak_min_climb_seconds=context.leak_min_climb_seconds,
    )
    runbook = OOMKilledPlaybook() if killed else CrashLoopPlaybook()
    below = Investigation()
    conclusion = runbook.run(inner, below)
    facts.underlying = conclusion.root_cause
    for item in below.evidence:
        if item.source in {EvidenceSource.LOGS, EvidenceSource.ENDPOINTS, EvidenceSource.SERVICE}:
            investigation.add_evidence(item.source, item.summary, item.detail)
    investigation.step(
        S_UNDERLYING,
        f"The {runbook.title} runbook over {len(pods)} failed pod(s): "
        f"{conclusion.root_cause.category.value}: {conclusion.root_cause.summary}",
    )
    return conclusion


def _count_runs(context: Context, investigation: Investigation, facts: JobFacts) -> None:
    if facts.target.kind != "CronJob":
        investigation.step(S_RUNS, "Not needed: no CronJob owns the Job.")
        return
    facts.runs = cron_runs(context.reader, facts.target)
    summary = runs_text(facts).removeprefix("; ") or f"CronJob {facts.target.name} kept no run"
    shown = ", ".join(f"{name} {state}" for name, state in facts.runs[:5])
    investigation.add_evidence(
        EvidenceSource.WORKLOAD, f"{summary} ({shown})" if shown else summary
    )
    investigation.step(S_RUNS, summary[0].upper() + summary[1:] + ".")
