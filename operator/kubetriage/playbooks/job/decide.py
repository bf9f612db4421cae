"""The JobFailed decision: the Job controller's reason names the category; the pods' failures,
the deadline and the podFailurePolicy rule say why. Pure.

- `BackoffLimitExceeded` (and the per-index `FailedIndexes`, `MaxFailedIndexesExceeded`) ->
  Job.BackoffLimitExceeded, 0.9, with `underlying` the category the crash-loop or OOM runbook
  names for the failed pods (0.75 when no failed pod is left to classify).
- `DeadlineExceeded` -> Job.DeadlineExceeded, 0.9: how long it ran against
  activeDeadlineSeconds, and how many completions it reached.
- `PodFailurePolicy` -> Job.PodFailurePolicy, 0.95: the rule that failed it and the exit code.
- a reason the Job controller does not write -> Job.BackoffLimitExceeded, 0.5.
"""

from __future__ import annotations

from typing import Any

from kubetriage.models import Category
from kubetriage.playbooks.base import Verdict, cause
from kubetriage.playbooks.job.reads import JobFacts

C = Category


def duration(seconds: float) -> str:
    """`1h0m5s`, `3m2s`, `41s`."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def rule_text(rule: dict[str, Any]) -> str:
    """A podFailurePolicy rule as one clause: `FailJob on exit codes In [42] of transcoder`."""
    action = str(rule.get("action") or "?")
    codes = rule.get("onExitCodes")
    if isinstance(codes, dict):
        of = f" of {codes['containerName']}" if codes.get("containerName") else ""
        return f"{action} on exit codes {codes.get('operator', 'In')} {codes.get('values')}{of}"
    conditions = rule.get("onPodConditions")
    if isinstance(conditions, list):
        kinds = ", ".join(str(c.get("type")) for c in conditions if isinstance(c, dict))
        return f"{action} on pod condition {kinds}"
    return action


def runs_text(facts: JobFacts) -> str:
    """A CronJob's kept runs: `2 of its last 3 runs failed`."""
    if not facts.runs:
        return ""
    failed = sum(1 for _, state in facts.runs if state == "Failed")
    return f"; {failed} of the {len(facts.runs)} runs CronJob {facts.target.name} kept failed"


def decide(facts: JobFacts) -> Verdict:
    """Apply the rules of this module's docstring."""
    failure, spec = facts.failure, facts.spec
    head = f"Job {facts.job.name} failed"
    tail = runs_text(facts)
    if failure.category is C.JOB_DEADLINE_EXCEEDED:
        ran = ""
        if spec is not None and spec.started and spec.failed_at:
            ran = f" after running {duration((spec.failed_at - spec.started).total_seconds())}"
        limit = f" (activeDeadlineSeconds {spec.deadline})" if spec and spec.deadline else ""
        done = f"; {spec.succeeded} of {spec.completions} completions done" if spec else ""
        if spec and spec.completed_indexes:
            done += f" (indexes {spec.completed_indexes})"
        return Verdict(
            cause(
                C.JOB_DEADLINE_EXCEEDED, f"{head}: its deadline passed{ran}{limit}{done}{tail}", 0.9
            )
        )
    if failure.category is C.JOB_POD_FAILURE_POLICY:
        rules = spec.rules if spec is not None else ()
        rule = (
            rules[failure.rule] if failure.rule is not None and failure.rule < len(rules) else None
        )
        matched = (
            f"rule {failure.rule} of its podFailurePolicy"
            if failure.rule is not None
            else "its podFailurePolicy"
        )
        if rule is not None:
            matched += f" ({rule_text(rule)})"
        exit_code = (
            f"container {failure.container} exited with code {failure.exit_code}, which "
            if failure.exit_code is not None
            else ""
        )
        summary = f"{head} at once: {exit_code}{matched} makes fatal, so it was not retried{tail}"
        return Verdict(cause(C.JOB_POD_FAILURE_POLICY, summary, 0.95))
    known = failure.category is not None
    limit = f" (backoffLimit {spec.backoff_limit})" if spec is not None else ""
    attempts = (
        f"its pods failed {spec.failed} time(s){limit}"
        if spec is not None
        else "its pods kept failing"
    )
    underlying = facts.underlying
    if underlying is None:
        summary = f"{head}: {attempts}; no failed pod is left to say why{tail}"
        return Verdict(cause(C.JOB_BACKOFF_LIMIT_EXCEEDED, summary, 0.75 if known else 0.5))
    summary = (
        f"{head}: {attempts}; the failed pods show {underlying.category.value}: "
        f"{underlying.summary}{tail}"
    )
    root = cause(C.JOB_BACKOFF_LIMIT_EXCEEDED, summary, 0.9 if known else 0.5)
    return Verdict(root.model_copy(update={"underlying": underlying.category}))
