"""What the OOMKilled playbook recommends for each cause, sized, with its cost and ChangeScope.

- LimitTooLow: raise the limit to the peak + 25%, rounded up (a request equal to the limit
  follows it); without history, the current limit + 25%, said as such.
- MemoryLeak: find the leak (heap profiles an hour apart); a bigger limit is only a stop-gap
  that delays each kill by a computable time, and a restart schedule only hides it.
- NodePressure: give an unlimited container a request and limit of its peak + 25% (capped to
  what a node can hold, said as such); with a limit, raise the request to what it really uses so
  the scheduler stops overpacking the node, and look at the node's other tenants.

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

from kubetriage.k8s.access import clip
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import manifest_quantity
from kubetriage.k8s.time import format_duration
from kubetriage.models import Category, CostImpact, Patch, Recommendation, max_length
from kubetriage.playbooks.base import recommendation, strategic_patch
from kubetriage.playbooks.oom.decide import Findings, Verdict
from kubetriage.playbooks.oom.memory import bytes_text
from kubetriage.playbooks.oom.reads import WORKING_SET_METRIC, Memory, memory_of
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
_COST_SUMMARY_LIMIT = max_length(CostImpact, "summary")


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


def memory_quantity(value: int | float | Decimal) -> str:
    """Bytes as a patch carries a memory size: `640Mi`, `2Gi`, plain bytes otherwise."""
    return manifest_quantity("memory", value)


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


def _patched(
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
    advice = recommendation(
        summary=summary,
        patch=patch,
        command=command,
        rollback=rollback,
        validation=validation,
        cost_impact=cost,
    )
    return advice, ChangeScope(frozenset({Touch.RESOURCES}), percent)


def _unpatched(summary: str, command: str | None, validation: str) -> Recommendation:
    """A recommendation without a patch (nothing to size from yet)."""
    return recommendation(
        summary=summary,
        command=command or None,
        rollback="Nothing is changed by this step.",
        validation=validation,
    )


def _resources(limit: int | None, request: int | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    for key, value in (("limits", limit), ("requests", request)):
        if value is not None:
            resources[key] = {"memory": memory_quantity(value)}
    return resources


def _patch(
    plan: Plan, forward: dict[str, Any], backward: dict[str, Any]
) -> tuple[Patch | None, str | None, str]:
    """The patch (or, for an immutable object, the command) and the rollback."""
    key = "initContainers" if plan.init_container else "containers"
    target = plan.target

    def body(resources: dict[str, Any]) -> dict[str, Any]:
        pod_spec = {key: [{"name": plan.container, "resources": resources}]}
        return {"spec": {"template": {"spec": pod_spec}}}

    def cron_body(resources: dict[str, Any]) -> dict[str, Any]:
        return {"spec": {"jobTemplate": body(resources)}}

    if target.kind in _PATCHABLE or (target.kind == "Job" and plan.cron_job):
        cron = target.kind == "Job"
        patched = (
            WorkloadRef(target.namespace, "CronJob", str(plan.cron_job), "batch/v1")
            if cron
            else target
        )
        make = cron_body if cron else body
        patch = strategic_patch(patched, make(forward))
        reverse = json.dumps(make(backward), separators=(",", ":"))
        kubectl = f"kubectl patch {patched.kind.lower()} {patched.name} -n {target.namespace}"
        rollback = f"{kubectl} --type strategic -p '{reverse}'"
        if cron:
            rollback += (
                f" (the running Job {target.name} keeps its old template: delete it to rerun)"
            )
        # A patch that cannot be carried as written (see strategic_patch) is given as a command.
        forward_text = json.dumps(make(forward), separators=(",", ":"))
        command = None if patch else f"{kubectl} --type strategic -p '{forward_text}'"
        return patch, command, rollback
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
        old = f"{replicas} x {memory_quantity(before)}" if before else "none"
        parts.append(
            f"memory {kind} of {workload}: {old} -> {replicas} x {memory_quantity(after)} "
            f"= {memory_quantity(after * replicas)} in total ({moved})"
        )
    percent = percents.get("limits")
    if percent is None:
        percent = percents.get("requests")
    summary = "; ".join(parts) or "no change to memory requests or limits"
    rounded = None if percent is None else round(percent, 1)
    return rounded, CostImpact(summary=clip(redact(summary), _COST_SUMMARY_LIMIT), percent=rounded)


# -- what to recommend per cause -------------------------------------------------------------------


def recommendation_for(
    verdict: Verdict, f: Findings, plan: Plan, allocatable: Decimal | None
) -> tuple[Recommendation | None, ChangeScope]:
    """The recommendation and its ChangeScope for the verdict's category."""
    category = verdict.root.category
    if category is Category.OOM_LIMIT_TOO_LOW:
        return _raise_limit(f, plan)
    if category is Category.OOM_MEMORY_LEAK:
        return _find_leak(f, plan)
    return _node_pressure(f, plan, allocatable)


def _limit(f: Findings, plan: Plan) -> float | None:
    value = f.memory.limit if f.memory.limit is not None else plan.current.limit
    return float(value) if value is not None else None


def _peak(f: Findings) -> float | None:
    return f.analysis.peak if f.analysis is not None else None


def _watch(plan: Plan) -> str:
    target = plan.target
    if target.kind == "Pod":
        return f"kubectl get pod {target.name} -n {target.namespace} -w"
    selector = f" -l {plan.selector}" if plan.selector else ""
    return f"kubectl get pods -n {target.namespace}{selector} -w"


def _query(plan: Plan, function: str, window: str) -> str:
    labels = f'namespace="{plan.target.namespace}",container="{plan.container}"'
    return f"{function}({WORKING_SET_METRIC}{{{labels}}}[{window}])"


def _with_request(plan: Plan, new_limit: int) -> int | None:
    """The request to set with a new limit: equal stays equal; never above the limit."""
    current = plan.current
    if current.request is None:
        return None
    if current.limit is not None and current.request == current.limit:
        return new_limit
    return new_limit if current.request > new_limit else None


def _raise_limit(f: Findings, plan: Plan) -> tuple[Recommendation | None, ChangeScope]:
    limit, peak = _limit(f, plan), _peak(f)
    new = size_from_peak(peak, limit)
    if new is None:
        return _measure(
            plan, "the limit is unreadable and there is no memory history"
        ), ChangeScope()
    old = bytes_text(limit)
    basis = (
        f"observed peak {bytes_text(peak)} + 25%"
        if peak and round_up_memory(peak * HEADROOM) > (limit or 0)
        else f"the current {old} + 25%" + ("" if peak else ", as no memory history was available")
    )
    request = _with_request(plan, new)
    sized = memory_quantity(new)
    summary = (
        f"Raise the memory limit of container {plan.container} from {old} to {sized} "
        f"({basis}, {HEADROOM_NOTE}): normal load needs more than {old}."
        + (f" requests.memory moves with it to {memory_quantity(request)}." if request else "")
    )
    if f.lowered is not None:
        _, previous = f.lowered
        summary += (
            f" Revision {previous.number} ran with {previous.memory.limit_text}: the peak seen "
            f"under {old} is a floor, so if {sized} still plateaus, go back to "
            f"{previous.memory.limit_text}."
        )
    validation = (
        f"{_watch(plan)}: the restart count stops rising and lastState no longer shows "
        f"OOMKilled; {_query(plan, 'max_over_time', '1d')} stays below 90% of {sized} "
        "under normal load."
    )
    return _patched(plan, Change(limit=new, request=request), summary, validation)


def _find_leak(f: Findings, plan: Plan) -> tuple[Recommendation | None, ChangeScope]:
    limit, peak = _limit(f, plan), _peak(f)
    rate = f.analysis.leak_rate_per_hour if f.analysis is not None else None
    new = size_from_peak(peak, limit)
    profile = (
        "Find and fix the leak: take two heap profiles of a running instance an hour apart and "
        "diff them (Go: /debug/pprof/heap; JVM: jcmd <pid> GC.heap_dump; Python: tracemalloc or "
        "memray; Node.js: --heapsnapshot-signal), and check what changed in the release it "
        "started with. A scheduled restart is not a fix either: it only hides the leak."
    )
    if new is None or limit is None:
        summary = f"Raising the memory limit only delays the next kill. {profile}"
        return _measure(plan, summary, leak=True), ChangeScope()
    gain = (new - limit) / rate * 3600 if rate else None
    delay = (
        f", which at ~{bytes_text(rate)}/h buys ~{format_duration(gain)} per instance"
        if gain
        else ""
    )
    request = _with_request(plan, new)
    summary = (
        f"{profile} Raising the memory limit only delays the next kill: the patch raises it "
        f"from {bytes_text(limit)} to {memory_quantity(new)}{delay}, a stop-gap while the leak "
        "is found."
    )
    validation = (
        f"After the fix ships, {_query(plan, 'deriv', '1h')} stays near 0 once the instance has "
        f"warmed up, and {_watch(plan)} shows no new OOMKilled; with the stop-gap alone the kills "
        "continue, only further apart."
    )
    return _patched(plan, Change(limit=new, request=request), summary, validation)


def _node_pressure(
    f: Findings, plan: Plan, allocatable: Decimal | None
) -> tuple[Recommendation | None, ChangeScope]:
    peak = _peak(f)
    nodes = sorted(
        {s.node for s in f.kill_signals or f.node_signals} or {k.node for k in f.kills if k.node}
    )
    node = nodes[0] if nodes else "<node>"
    inspect = (
        f"kubectl describe node {node}; kubectl get pods -A --field-selector "
        f"spec.nodeName={node} -o wide"
    )
    validation = (
        f"No new SystemOOM or EvictionThresholdMet events on the node (kubectl get events -n "
        f"default --field-selector involvedObject.kind=Node,involvedObject.name={node}), its "
        f"MemoryPressure condition is False, and {_watch(plan)} shows no new OOMKilled."
    )
    limit = _limit(f, plan)
    if peak is None:
        why = (
            "it has no memory limit" if limit is None else "the node ran out of memory"
        ) + " and there is no memory history to size a request from"
        summary = (
            f"Measure container {plan.container}'s real memory use (kubectl top pod "
            f"--containers over a full load cycle, {why}), then set requests.memory to it and "
            f"limits.memory to it + 25%; check what else on {node} uses more than it requests."
        )
        target = plan.target
        selector = f" -l {plan.selector}" if plan.selector else ""
        measure = f"kubectl top pod -n {target.namespace}{selector} --containers; {inspect}"
        return _unpatched(summary, measure, validation), ChangeScope()
    if limit is None:
        size = round_up_memory(peak * HEADROOM)
        cap = round_down_memory(float(allocatable) * NODE_FIT_SHARE) if allocatable else None
        capped = cap is not None and size > cap
        chosen = cap if capped and cap is not None else size
        sized = memory_quantity(chosen)
        summary = (
            f"Give container {plan.container} a memory request and limit of {sized} "
            f"(observed peak {bytes_text(peak)} + 25%, {HEADROOM_NOTE}): the request makes the "
            "scheduler reserve what it really uses, and the limit keeps a runaway inside its own "
            f"cgroup instead of the node's OOM killer picking victims on {node}."
        )
        if capped:
            summary += (
                f" It needs {bytes_text(size)}, more than any node can hold (largest allocatable "
                f"{bytes_text(allocatable)}): the patch caps it at {sized}, so it is killed "
                "at its own limit rather than taking the node down; the lasting fix is a node "
                "pool with more memory or a smaller working set (smaller batches, a heap cap)."
            )
        return _patched(plan, Change(limit=chosen, request=chosen), summary, validation)
    wanted = min(round_up_memory(peak * HEADROOM), int(limit))
    current = plan.current.request
    if current is not None and wanted <= current:
        summary = (
            f"Container {plan.container} already requests {bytes_text(current)}, above its peak "
            f"{bytes_text(peak)}: the node's other tenants use more than they request. Find them "
            f"on {node} and raise their requests, or add node memory."
        )
        return _unpatched(summary, inspect, validation), ChangeScope()
    summary = (
        f"Raise container {plan.container}'s memory request from {bytes_text(current)} to "
        f"{memory_quantity(wanted)} (observed peak {bytes_text(peak)} + 25%, at most its "
        f"limit) so the scheduler stops packing {node} beyond its memory; then check what else "
        f"on {node} uses more than it requests."
    )
    return _patched(plan, Change(request=wanted), summary, validation)


def _measure(plan: Plan, why: str, *, leak: bool = False) -> Recommendation:
    target = plan.target
    selector = f" -l {plan.selector}" if plan.selector else ""
    command = f"kubectl top pod -n {target.namespace}{selector} --containers"
    summary = (
        why if leak else f"Measure container {plan.container}'s memory before sizing it: {why}."
    )
    validation = f"{_watch(plan)} shows no new OOMKilled after the change."
    return _unpatched(summary, command, validation)
