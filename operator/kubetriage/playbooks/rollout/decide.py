"""How the RolloutStuck runbook decides (DESIGN.md section 3).

- A ReplicaSet `FailedCreate` (event or `ReplicaFailure` condition) that says "exceeded quota"
  is `Rollout.QuotaExceeded`: the quota's used/hard, read from the ResourceQuota (or from the
  message when the quota cannot be read, at lower confidence), and the hard values that would
  admit the missing pods. "failed quota: ... must specify" is the same category (the fix is to
  declare resources). A LimitRange rejection has no category of its own; it is named
  QuotaExceeded at low confidence because its fix is of the same kind (change the pod's
  resources or the namespace's policy).
- Otherwise the newest revision's pods are examined: the pod-level symptom they show (the same
  detection the pod reports use), or that they never become Ready, or that admission rejects
  them. With the previous revision healthy (ready replicas) that is `Rollout.BadRevision`, and
  the template diff between the two is the evidence. When the previous revision's health is not
  on record it is still BadRevision at lower confidence (a rollback is the safe move either way);
  when it was itself failing, or there is no previous revision, lower still, and the
  recommendation says rolling back may not help or is impossible.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from kubetriage.k8s.history import Revision, describe
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import manifest_quantity, round_quantity
from kubetriage.models import Category, RootCause, Symptom, TemplateChange
from kubetriage.playbooks.base import cause
from kubetriage.playbooks.rollout.messages import QuotaFailure
from kubetriage.playbooks.rollout.reads import ready_text


@dataclass(frozen=True)
class QuotaNeed:
    """One quota resource that must rise for the missing pods to be admitted."""

    resource: str
    used: Decimal
    hard: Decimal
    needed: Decimal

    def text(self) -> str:
        """`limits.memory 12Gi -> 18Gi (used 12Gi)`."""
        return (
            f"{self.resource} {manifest_quantity(self.resource, self.hard)} -> "
            f"{manifest_quantity(self.resource, self.needed)} "
            f"(used {manifest_quantity(self.resource, self.used)})"
        )


@dataclass
class RolloutFacts:
    """What the steps found, for the decision and the advice."""

    revisions: list[Revision] = field(default_factory=list)
    newest: Revision | None = None
    previous: Revision | None = None
    quota_failure: QuotaFailure | None = None
    other_refusals: list[str] = field(default_factory=list)
    refused_replica_set: str | None = None
    quota_text: str = ""
    quota_read: bool = False
    quota_raises: list[QuotaNeed] = field(default_factory=list)
    missing_pods: int = 1
    lower_instead: list[tuple[str, Decimal]] | None = None
    new_symptom: str = ""
    new_pod_symptom: Symptom | None = None
    changes: list[TemplateChange] = field(default_factory=list)

    @property
    def newest_label(self) -> str:
        """`revision 8` (`revision ?` when no ReplicaSet is readable)."""
        return f"revision {self.newest.number if self.newest else '?'}"

    @property
    def symptom_text(self) -> str:
        """What fails on the newest revision, for a sentence."""
        return self.new_symptom or "no pod-level failure is visible on its pods"


def needs(
    failure: QuotaFailure,
    used: dict[str, Decimal],
    hard: dict[str, Decimal],
    pod: dict[str, Decimal],
    missing_pods: int,
) -> list[QuotaNeed]:
    """Every quota resource that blocks `missing_pods` more pods, with the hard value that fits
    them. The message's numbers stand in for a quota that could not be read."""
    used = {**failure.used, **used}
    hard = {**failure.limited, **hard}
    per = {**pod, **failure.requested}
    found: list[QuotaNeed] = []
    for resource in sorted(hard):
        if resource not in per or resource not in used:
            continue
        needed = used[resource] + per[resource] * missing_pods
        if needed > hard[resource]:
            found.append(
                QuotaNeed(
                    resource,
                    used[resource],
                    hard[resource],
                    round_quantity(resource, needed, up=True),
                )
            )
    return found


def fitting_per_pod(
    need: QuotaNeed, per_pod_value: Decimal, current_pods: int, desired_pods: int
) -> Decimal | None:
    """The per-pod value at which all desired pods fit under the current hard limit, if any:
    what the rest of the namespace uses stays, this workload's share is re-divided."""
    if desired_pods <= 0:
        return None
    others = need.used - per_pod_value * current_pods
    allowed = (need.hard - others) / desired_pods
    if allowed <= 0 or allowed >= per_pod_value:
        return None
    return round_quantity(need.resource, allowed, up=False)


def lower_instead(
    raises: list[QuotaNeed], per: dict[str, Decimal], current: int, desired: int
) -> list[tuple[str, Decimal]] | None:
    """Per-pod values that fit every desired pod under the current quota, when lowering the
    pod's resources can work for every blocking resource (a pod count never can)."""
    lowered = []
    for need in raises:
        fits = fitting_per_pod(need, per.get(need.resource, need.needed), current, desired)
        if fits is None or not need.resource.startswith(("limits.", "requests.")):
            return None
        lowered.append((need.resource, fits))
    return lowered or None


def decide(target: WorkloadRef, facts: RolloutFacts) -> tuple[RootCause, tuple[RootCause, ...]]:
    """The root cause and its alternatives: a refusal by quota or LimitRange first, else the
    newest revision."""
    failure = facts.quota_failure
    if failure is None:
        return _bad_revision(target, facts), ()
    bad_alternative: tuple[RootCause, ...] = ()
    if facts.new_symptom and facts.newest and facts.newest.pods:
        bad_alternative = (
            cause(
                Category.ROLLOUT_BAD_REVISION,
                f"revision {facts.newest.number}: {facts.new_symptom}",
                0.35,
            ),
        )
    if failure.kind == "exceeded":
        summary = facts.quota_text or f"pods refused by ResourceQuota {failure.quota}"
        # Numbers from the ResourceQuota itself confirm the refusal; the message alone is older.
        confidence = (0.95 if facts.quota_read else 0.85) if facts.quota_raises else 0.7
    else:
        summary = failure.message
        confidence = 0.9 if failure.kind == "must-specify" else 0.6
    root = cause(
        Category.ROLLOUT_QUOTA_EXCEEDED,
        f"deployment/{target.name} cannot create pods: {summary}",
        confidence,
    )
    return root, bad_alternative


def _bad_revision(target: WorkloadRef, facts: RolloutFacts) -> RootCause:
    newest, previous = facts.newest, facts.previous
    health = previous.healthy() if previous else None
    if newest and newest.pods and not facts.new_symptom:
        confidence = 0.3
    elif previous is None:
        confidence = 0.4
    elif health is True:
        confidence = 0.9 if facts.changes else 0.75
        if facts.new_pod_symptom is Symptom.PENDING:
            confidence = 0.55  # pods that cannot be scheduled may be capacity, not the revision
    else:
        confidence = 0.6 if health is None else 0.45
    if not facts.new_symptom:
        confidence = min(confidence, 0.3)
    diff = "; ".join(describe(c) for c in facts.changes[:4])
    prev_text = ""
    if previous:
        prev_text = (
            f" while revision {previous.number} "
            + {
                True: f"runs {ready_text(previous)}",
                False: "was failing too",
                None: "has no health on record",
            }[health]
        )
    summary = f"deployment/{target.name} {facts.newest_label}: {facts.symptom_text}{prev_text}" + (
        f"; changed: {diff}" if diff else ""
    )
    return cause(Category.ROLLOUT_BAD_REVISION, summary, confidence)
