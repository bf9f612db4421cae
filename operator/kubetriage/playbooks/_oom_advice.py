"""The changes the OOMKilled playbook recommends: memory sizing, the patch, and its cost.

Sizing rule (documented in the playbook and the decisions log):
- a new limit is the observed working-set peak plus 25% headroom, rounded UP to a multiple of
  64Mi (below 2Gi) or 256Mi (from 2Gi), so it reads as a quantity a person would write;
- it is never at or below the current limit: the kernel killed the container AT the limit, so
  the peak a scrape saw is a floor, not the need; then the current limit plus 25% is used;
- requests stay <= limits; a request equal to the limit is raised with it (the container keeps
  its memory reserved, and its QoS class);
- a size that no node can hold is capped at 90% of the largest node's allocatable memory,
  rounded down, and the recommendation says so.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import format_bytes
from kubetriage.models import CostImpact, Patch, PatchTarget, PatchType, Recommendation
from kubetriage.playbooks._oom_facts import Memory, memory_of
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

MI = 2**20
GI = 2**30
HEADROOM = 1.25
SMALL_STEP = 64 * MI
LARGE_STEP = 256 * MI
STEP_SWITCH = 2 * GI
NODE_FIT_SHARE = 0.9
HEADROOM_NOTE = "rounded up to a multiple of 64Mi, 256Mi from 2Gi"
_PATCHABLE = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}
_TEXT_LIMIT = 2048


def _step(value: float) -> int:
    return SMALL_STEP if value < STEP_SWITCH else LARGE_STEP


def round_up_memory(value: float) -> int:
    """`value` bytes rounded up to the sizing step (64Mi below 2Gi, 256Mi from 2Gi)."""
    step = _step(value)
    return max(step, math.ceil(value / step) * step)


def round_down_memory(value: float) -> int:
    """`value` bytes rounded down to the sizing step, at least one step."""
    step = _step(value)
    return max(step, math.floor(value / step) * step)


def size_from_peak(peak: float | None, limit: float | None) -> int | None:
    """The limit the sizing rule gives for an observed peak and the current limit."""
    if peak is None and limit is None:
        return None
    sized = round_up_memory(peak * HEADROOM) if peak is not None and peak > 0 else 0
    if limit is not None and sized <= limit:
        sized = round_up_memory(limit * HEADROOM)
    return sized or None


def quantity(value: int | float | Decimal) -> str:
    """Bytes as a canonical Kubernetes quantity (`640Mi`, `2Gi`, plain bytes otherwise)."""
    amount = int(value)
    for suffix, unit in (("Gi", GI), ("Mi", MI), ("Ki", 2**10)):
        if amount and amount % unit == 0:
            return f"{amount // unit}{suffix}"
    return str(amount)


def human(value: float | Decimal | None) -> str:
    """Bytes for a sentence (`503.5Mi`); `none` for None."""
    return "none" if value is None else format_bytes(Decimal(str(value)))


@dataclass(frozen=True)
class Plan:
    """Where a memory change goes: the workload, the container, and what it has now."""

    target: WorkloadRef
    container: str
    init_container: bool
    replicas: int
    template_containers: list[dict[str, Any]] = field(default_factory=list)
    selector: str | None = None
    cron_job: str | None = None  # a Job's CronJob: Job templates are immutable, CronJobs' are not

    @property
    def current(self) -> Memory:
        """The container's memory settings in the workload's template."""
        for spec in self.template_containers:
            if spec.get("name") == self.container:
                return memory_of(spec)
        return Memory(None, None, None, None)


@dataclass(frozen=True)
class Change:
    """New memory values for the container (None: leave as is)."""

    limit: int | None = None
    request: int | None = None


def recommend(
    plan: Plan, change: Change, summary: str, validation: str
) -> tuple[Recommendation, ChangeScope]:
    """A Recommendation carrying the patch for `change`, its rollback, cost, and ChangeScope."""
    current = plan.current
    forward = _resources(change.limit, change.request)
    # The rollback restores what the template said; null deletes a value that was not there.
    backward = {
        key: {"memory": text}
        for key, text, changed in (
            ("limits", current.limit_text, change.limit is not None),
            ("requests", current.request_text, change.request is not None),
        )
        if changed
    }
    patch, command, rollback = _patch(plan, forward, backward)
    percent, cost = _cost(plan, change)
    recommendation = Recommendation(
        summary=_clip(redact(summary), 1024),
        patch=patch,
        command=_clip(redact(command), _TEXT_LIMIT) if command else None,
        rollback=_clip(redact(rollback), _TEXT_LIMIT),
        validation=_clip(redact(validation), _TEXT_LIMIT),
        cost_impact=cost,
    )
    return recommendation, ChangeScope(frozenset({Touch.RESOURCES}), percent)


def advise_only(summary: str, command: str | None, validation: str) -> Recommendation:
    """A recommendation without a patch (nothing to size from yet)."""
    return Recommendation(
        summary=_clip(redact(summary), 1024),
        command=_clip(redact(command), _TEXT_LIMIT) if command else None,
        rollback="Nothing is changed by this step.",
        validation=_clip(redact(validation), _TEXT_LIMIT),
    )


def _resources(limit: int | None, request: int | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for key, value in (("limits", limit), ("requests", request)):
        if value is not None:
            resources[key] = {"memory": quantity(value)}
    return resources


def _patch(
    plan: Plan, forward: dict[str, Any], backward: dict[str, Any]
) -> tuple[Patch | None, str | None, str]:
    key = "initContainers" if plan.init_container else "containers"
    target = plan.target

    def body(resources: dict[str, Any]) -> dict[str, Any]:
        pod_spec = {key: [{"name": plan.container, "resources": resources}]}
        return {"spec": {"template": {"spec": pod_spec}}}

    def cron_body(resources: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"jobTemplate": body(resources)}}

    if target.kind in _PATCHABLE or (target.kind == "Job" and plan.cron_job):
        cron = target.kind == "Job"
        kind, name = ("CronJob", str(plan.cron_job)) if cron else (target.kind, target.name)
        api = "batch/v1" if cron else target.api_version
        make = cron_body if cron else body
        content = json.dumps(make(forward), separators=(",", ":"))
        reverse = json.dumps(make(backward), separators=(",", ":"))
        patch = Patch(
            type=PatchType.STRATEGIC,
            target=PatchTarget(api_version=api, kind=kind, name=name, namespace=target.namespace),
            content=content,
        )
        rollback = (
            f"kubectl patch {kind.lower()} {name} -n {target.namespace} --type strategic "
            f"-p '{reverse}'"
        )
        if cron:
            rollback += (
                f" (the running Job {target.name} keeps its old template: delete it to rerun)"
            )
        return patch, None, rollback
    # A Pod's resources and a Job's template are immutable: the object must be recreated.
    what = "pod" if target.kind == "Pod" else target.kind.lower()
    settings = json.dumps(forward, separators=(",", ":"))
    command = (
        f"kubectl get {what} {target.name} -n {target.namespace} -o yaml > {target.name}.yaml; "
        f"set container {plan.container}'s resources to {settings} in {target.name}.yaml; "
        f"kubectl replace --force -f {target.name}.yaml"
    )
    rollback = f"kubectl replace --force -f the saved original {target.name}.yaml"
    return None, command, rollback


def _cost(plan: Plan, change: Change) -> tuple[float | None, CostImpact]:
    """Percent change of the workload's total memory limits (requests when it had no limits)."""
    replicas = max(plan.replicas, 1)
    specs = plan.template_containers or [{"name": plan.container}]
    workload = f"{plan.target.kind.lower()}/{plan.target.name}"
    parts: list[str] = []
    percents: dict[str, float | None] = {}
    for kind, new_value in (("limits", change.limit), ("requests", change.request)):
        if new_value is None:
            continue
        before = after = Decimal(0)  # per replica, over the pod's containers
        for spec in specs:
            memory = memory_of(spec)
            value = (memory.limit if kind == "limits" else memory.request) or Decimal(0)
            before += value
            after += Decimal(new_value) if spec.get("name") == plan.container else value
        percent = float((after - before) / before * 100) if before > 0 else None
        percents[kind] = percent
        moved = f"{percent:+.0f}%" if percent is not None else "none before"
        old = f"{replicas} x {quantity(before)}" if before else "none"
        parts.append(
            f"memory {kind} of {workload}: {old} -> {replicas} x {quantity(after)} "
            f"= {quantity(after * replicas)} in total ({moved})"
        )
    percent = percents.get("limits")
    if percent is None:
        percent = percents.get("requests")
    summary = "; ".join(parts) or "no change to memory requests or limits"
    rounded = None if percent is None else round(percent, 1)
    return rounded, CostImpact(summary=_clip(redact(summary), 1024), percent=rounded)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
