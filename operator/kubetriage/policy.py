"""Escalation policy and severity (DESIGN.md sections 4 and 5).

A playbook says what its recommended change touches (`ChangeScope`); this module decides which
escalation classes that puts the change in, and how severe the report is. Nothing here applies
anything: a change in any class but `autonomous` goes to a human.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kubetriage.k8s.access import KubeObject, as_dict
from kubetriage.models import EscalationClass, Severity

COST_THRESHOLD_PERCENT = 20.0


class Touch(StrEnum):
    """A part of a workload a recommended change modifies."""

    RESOURCES = "resources"
    IMAGE = "image"
    COMMAND = "command"
    ENV = "env"
    PROBES = "probes"
    IMAGE_PULL_SECRETS = "imagePullSecrets"
    SERVICE_ACCOUNT = "serviceAccount"
    RBAC = "rbac"
    SECURITY_CONTEXT = "securityContext"
    SECRET = "secret"  # a credential the workload reads (rotating it is an access change)
    VOLUMES = "volumes"
    PERSISTENT_VOLUME_CLAIM = "persistentVolumeClaim"
    STORAGE_CLASS = "storageClass"
    ROLLBACK = "rollback"
    DEPLOY_STRATEGY = "deployStrategy"
    SCHEDULING = "scheduling"
    QUOTA = "quota"
    NODES = "nodes"


_ACCESS = {
    Touch.IMAGE_PULL_SECRETS,
    Touch.SERVICE_ACCOUNT,
    Touch.RBAC,
    Touch.SECURITY_CONTEXT,
    Touch.SECRET,
}
_DATA = {Touch.VOLUMES, Touch.PERSISTENT_VOLUME_CLAIM, Touch.STORAGE_CLASS}
_ROLLOUT = {Touch.ROLLBACK, Touch.DEPLOY_STRATEGY}


@dataclass(frozen=True)
class ChangeScope:
    """What a recommended change touches, and by how much it moves requests/limits."""

    touches: frozenset[Touch] = field(default_factory=frozenset)
    resource_change_percent: float | None = None


@dataclass(frozen=True)
class Classification:
    """The escalation classes of a change and the reason, as the report states them."""

    classes: tuple[EscalationClass, ...]
    reason: str

    @property
    def needs_human(self) -> bool:
        """Whether the change must be escalated rather than applied."""
        return self.classes != (EscalationClass.AUTONOMOUS,)


def classify(scope: ChangeScope, *, production: bool, namespace: str) -> Classification:
    """The escalation classes of a change (section 4), most important first, with why."""
    classes: list[EscalationClass] = []
    reasons: list[str] = []
    if production:
        classes.append(EscalationClass.PRODUCTION)
        reasons.append(f"namespace {namespace} is production")
    percent = scope.resource_change_percent
    if percent is not None and percent > COST_THRESHOLD_PERCENT:
        classes.append(EscalationClass.COST)
        reasons.append(f"raises the workload's requests/limits by {percent:.0f}% (> 20%)")
    for touched, klass, what in (
        (_ACCESS, EscalationClass.ACCESS, "security or access"),
        (_DATA, EscalationClass.DATA, "storage"),
        (_ROLLOUT, EscalationClass.ROLLOUT, "how the workload is rolled out"),
    ):
        hit = sorted(scope.touches & touched)
        if hit:
            classes.append(klass)
            reasons.append(f"touches {what} ({', '.join(hit)})")
    if not classes:
        return Classification((EscalationClass.AUTONOMOUS,), "no escalation class applies")
    return Classification(tuple(classes), "; ".join(reasons))


def _count(value: object, default: int = 0) -> int:
    return (
        value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
    )


def ready_and_desired(workload: KubeObject | None) -> tuple[int, int]:
    """(ready, desired) replicas of a workload; a bare pod is 1 desired."""
    if not workload:
        return 0, 1
    spec = as_dict(workload.get("spec"))
    status = as_dict(workload.get("status"))
    kind = workload.get("kind")
    if kind == "Pod":
        conditions = status.get("conditions")
        ready = any(
            isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
            for c in (conditions if isinstance(conditions, list) else [])
        )
        return int(ready), 1
    if kind == "DaemonSet":
        return _count(status.get("numberReady")), _count(status.get("desiredNumberScheduled"))
    if kind == "Job":
        # `active` counts pods that exist, crash-looping ones too; `ready` those that serve.
        # A Job wants `parallelism` pods, fewer when fewer completions are left.
        desired = _count(spec.get("parallelism"), 1)
        completions = spec.get("completions")
        if isinstance(completions, int) and not isinstance(completions, bool):
            desired = min(desired, max(0, completions - _count(status.get("succeeded"))))
        return _count(status.get("ready")), desired
    return _count(status.get("readyReplicas")), _count(spec.get("replicas"), 1)


def severity(workload: KubeObject | None, *, production: bool) -> Severity:
    """critical: production and nothing ready; warning: production degraded, or non-production
    down; info: otherwise (DESIGN.md section 5)."""
    ready, desired = ready_and_desired(workload)
    down = ready == 0 and desired > 0
    if production and down:
        return Severity.CRITICAL
    if (production and ready < desired) or down:
        return Severity.WARNING
    return Severity.INFO
