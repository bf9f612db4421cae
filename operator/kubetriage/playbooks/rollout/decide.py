"""How the RolloutStuck runbook decides (DESIGN.md section 3).

- A ReplicaSet `FailedCreate` (event or `ReplicaFailure` condition) that says "exceeded quota"
  is `Rollout.QuotaExceeded`: the quota's used/hard, read from the ResourceQuota (or from the
  message when the quota cannot be read, at lower confidence), and the hard values that would
  admit the missing pods. "failed quota: ... must specify" is the same category (the fix is to
  declare resources). A LimitRange rejection is `Rollout.LimitRangeViolation` (0.9): the
  message names the bound and the container's value.
- Other admission refusals (DESIGN.md section 12), named by the component that refused: a
  webhook the apiserver could not call is `AdmissionWebhookFailure` (0.95 when its Service is
  confirmed to have no ready endpoints or not to exist, else 0.85); a webhook or
  ValidatingAdmissionPolicy that denied is `AdmissionDenied` (0.9, its message quoted);
  PodSecurity is `PodSecurityViolation` (0.95 with the namespace's enforce label read, else
  0.85); a missing ServiceAccount is `ServiceAccountMissing` (0.95 when the reader confirms it
  is absent, else 0.85).
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
from kubetriage.playbooks.crashloop.reads import DependencyCheck
from kubetriage.playbooks.rollout.messages import AdmissionRefusal, QuotaFailure, refused_text
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
    admission: AdmissionRefusal | None = None  # a refusal by webhook, policy, PodSecurity, SA
    webhook_backend: DependencyCheck | None = None  # the Service a failing webhook is called at
    enforce_level: str | None = None  # the namespace's pod-security.kubernetes.io/enforce
    service_account_exists: bool | None = None  # of the ServiceAccount the refusal names
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
    if failure is None and facts.admission is not None:
        return _admission(target, facts, facts.admission), _bad_alternative(facts)
    if failure is None:
        return _bad_revision(target, facts), ()
    bad_alternative = _bad_alternative(facts)
    if failure.kind == "limit-range":
        root = cause(
            Category.ROLLOUT_LIMIT_RANGE_VIOLATION,
            f"deployment/{target.name} cannot create pods: the namespace's LimitRange refuses "
            f"them: {refused_text(failure.message)}",
            0.9,
        )
        return root, bad_alternative
    if failure.kind == "exceeded":
        summary = facts.quota_text or f"pods refused by ResourceQuota {failure.quota}"
        # Numbers from the ResourceQuota itself confirm the refusal; the message alone is older.
        confidence = (0.95 if facts.quota_read else 0.85) if facts.quota_raises else 0.7
    else:
        summary = failure.message
        confidence = 0.9
    root = cause(
        Category.ROLLOUT_QUOTA_EXCEEDED,
        f"deployment/{target.name} cannot create pods: {summary}",
        confidence,
    )
    return root, bad_alternative


def _bad_alternative(facts: RolloutFacts) -> tuple[RootCause, ...]:
    if facts.new_symptom and facts.newest and facts.newest.pods:
        text = f"revision {facts.newest.number}: {facts.new_symptom}"
        return (cause(Category.ROLLOUT_BAD_REVISION, text, 0.35),)
    return ()


def _admission(target: WorkloadRef, facts: RolloutFacts, refusal: AdmissionRefusal) -> RootCause:
    head = f"deployment/{target.name} cannot create pods: "
    category = refusal.category
    if category is Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE:
        backend = facts.webhook_backend
        confirmed = backend is not None and backend.state in {"no-service", "no-ready-endpoints"}
        why = f" ({refusal.reason})" if refusal.reason else ""
        shown = backend is not None and backend.scope == "service"
        found = f"; {backend.sentence()}" if backend is not None and shown else ""
        summary = f"the apiserver cannot call admission {refusal.component}{why}{found}"
        return cause(category, head + summary, 0.95 if confirmed else 0.85)
    if category is Category.ROLLOUT_ADMISSION_DENIED:
        summary = f"admission {refusal.component} denies them: {refusal.detail}"
        return cause(category, head + summary, 0.9)
    if category is Category.ROLLOUT_POD_SECURITY_VIOLATION:
        checks = ", ".join(v.check for v in refusal.violations) or refusal.detail
        enforced = (
            f"namespace {target.namespace} enforces pod-security level {facts.enforce_level}"
            if facts.enforce_level
            else f"PodSecurity enforces {refusal.level}"
        )
        summary = f"{enforced} and the pod template violates it: {checks}"
        return cause(category, head + summary, 0.95 if facts.enforce_level else 0.85)
    account = refusal.service_account or "its ServiceAccount"
    absent = facts.service_account_exists is False
    summary = f"ServiceAccount {account} does not exist in namespace {target.namespace}"
    return cause(category, head + summary, 0.95 if absent else 0.85)


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
