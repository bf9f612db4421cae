"""What the Job controller says when it fails a Job. Pure: a condition in, what it names out.

The Job controller (pkg/controller/job) writes the reason and message of the Job's
`FailureTarget` and `Failed` conditions:

- `BackoffLimitExceeded`: `Job has reached the specified backoff limit`;
- `DeadlineExceeded`: `Job was active longer than specified deadline`;
- `PodFailurePolicy`: `Container transcoder for pod video/transcode-batch-7781-n8x2k failed
  with exit code 42 matching FailJob rule at index 0` (or `Pod video/x has condition
  DisruptionTarget matching FailJob rule at index 1`);
- `FailedIndexes` / `MaxFailedIndexesExceeded` (backoffLimitPerIndex): `Job has failed indexes`,
  `Job has exceeded the specified maximal number of failed indexes`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubetriage.models import Category

_RULE = re.compile(r"matching (?P<action>\w+) rule at index (?P<index>\d+)")
_EXIT = re.compile(
    r"Container (?P<container>\S+) for pod (?P<pod>\S+) failed with exit code (?P<code>\d+)"
)
_CATEGORIES = {
    "BackoffLimitExceeded": Category.JOB_BACKOFF_LIMIT_EXCEEDED,
    "FailedIndexes": Category.JOB_BACKOFF_LIMIT_EXCEEDED,
    "MaxFailedIndexesExceeded": Category.JOB_BACKOFF_LIMIT_EXCEEDED,
    "DeadlineExceeded": Category.JOB_DEADLINE_EXCEEDED,
    "PodFailurePolicy": Category.JOB_POD_FAILURE_POLICY,
}


@dataclass(frozen=True)
class JobFailure:
    """One Job failure condition, read."""

    category: Category | None  # None: a reason the Job controller does not write
    reason: str
    message: str
    rule: int | None = None  # the podFailurePolicy rule's index
    container: str | None = None  # the container whose exit code matched the rule
    pod: str | None = None
    exit_code: int | None = None


def read_failure(reason: str, message: str) -> JobFailure:
    """What a Job's failure condition names."""
    rule = _RULE.search(message)
    exit_code = _EXIT.search(message)
    return JobFailure(
        _CATEGORIES.get(reason),
        reason,
        message,
        rule=int(rule["index"]) if rule else None,
        container=exit_code["container"] if exit_code else None,
        pod=exit_code["pod"] if exit_code else None,
        exit_code=int(exit_code["code"]) if exit_code else None,
    )
