"""The change that lets the Job's next run succeed, per category.

- BackoffLimitExceeded: the underlying cause's own recommendation (the crash-loop or OOM
  runbook's), since the pods failed for that reason; a Job's pod template cannot change in
  place, so the change goes to its CronJob or to the manifest the Job is created from.
- DeadlineExceeded: what the run reached and how long it took; a longer activeDeadlineSeconds
  or smaller work per run, which only the Job's owner can choose.
- PodFailurePolicy: the app said the failure is final (the exit code the rule names): its log
  says what to fix; a rerun without that fix fails again.
"""

from __future__ import annotations

from kubetriage.models import Category, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, Conclusion, recommendation
from kubetriage.playbooks.job.reads import JobFacts
from kubetriage.policy import ChangeScope

Advice = tuple[Recommendation, ChangeScope]


def _validation(facts: JobFacts) -> str:
    if facts.target.kind == "CronJob":
        return (
            f"the next run of CronJob {facts.target.name} completes: `kubectl get jobs -n "
            f"{facts.target.namespace}` lists it Complete"
        )
    return f"`kubectl get job {facts.job.name} -n {facts.job.namespace}` shows the rerun Complete"


def _rerun(facts: JobFacts) -> str:
    if facts.target.kind == "CronJob":
        return (
            f" Then run it once by hand: `kubectl create job --from=cronjob/{facts.target.name} "
            f"{facts.target.name}-manual -n {facts.target.namespace}`."
        )
    return " Then delete the failed Job and create it again from its fixed manifest."


def recommend(facts: JobFacts, category: Category, underlying: Conclusion | None) -> Advice:
    """The recommendation for `category` and what it touches."""
    ns = facts.job.namespace
    pod = facts.failed_pods[-1] if facts.failed_pods else None
    logs = (
        f"kubectl logs {pod['metadata']['name']} -n {ns}"
        if pod is not None
        else f"kubectl describe job {facts.job.name} -n {ns}"
    )
    if category is Category.JOB_BACKOFF_LIMIT_EXCEEDED and underlying is not None:
        inner = underlying.recommendation
        if inner is not None:
            proposal = inner.model_copy(
                update={
                    "summary": (inner.summary + _rerun(facts))[:1024],
                    "validation": _validation(facts),
                }
            )
            return proposal, underlying.scope
    if category is Category.JOB_DEADLINE_EXCEEDED:
        spec = facts.spec
        deadline = f"{spec.deadline}s" if spec is not None and spec.deadline else "its deadline"
        return recommendation(
            summary=(
                f"The run needed longer than {deadline}: raise activeDeadlineSeconds to what a "
                "whole run takes (the finished pods' run times say how long), or give each run "
                f"less work.{_rerun(facts)}"
            ),
            command=f"kubectl get job {facts.job.name} -n {ns} -o yaml",
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        ), ChangeScope()
    if category is Category.JOB_POD_FAILURE_POLICY:
        code = facts.failure.exit_code
        said = f"exit code {code}" if code is not None else "its failure"
        return recommendation(
            summary=(
                f"The app ended with {said}, which its podFailurePolicy treats as final: fix "
                "what its log names (an input, a setting) before running it again; a rerun "
                f"without the fix fails the same way.{_rerun(facts)}"
            ),
            command=logs,
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        ), ChangeScope()
    return recommendation(
        summary=f"Read why the Job's pods failed: their log and their exit codes.{_rerun(facts)}",
        command=logs,
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    ), ChangeScope()
