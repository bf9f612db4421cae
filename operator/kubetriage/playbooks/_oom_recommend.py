"""What the OOMKilled playbook recommends for each cause (the sizing rule is in `_oom_advice`).

- LimitTooLow: raise the limit to the peak + 25%, rounded up (a request equal to the limit
  follows it); without history, the current limit + 25%, said as such.
- MemoryLeak: find the leak (heap profiles an hour apart); a bigger limit is only a stop-gap
  that delays each kill by a computable time, and a restart schedule only hides it.
- NodePressure: give an unlimited container a request and limit of its peak + 25% (capped to
  what a node can hold, said as such); with a limit, raise the request to what it really uses so
  the scheduler stops overpacking the node, and look at the node's other tenants.
"""

from __future__ import annotations

from decimal import Decimal

from kubetriage.models import Category, Recommendation
from kubetriage.playbooks._oom_advice import (
    HEADROOM,
    HEADROOM_NOTE,
    NODE_FIT_SHARE,
    Change,
    Plan,
    advise_only,
    human,
    quantity,
    recommend,
    round_down_memory,
    round_up_memory,
    size_from_peak,
)
from kubetriage.playbooks._oom_decide import Findings, Verdict, duration
from kubetriage.policy import ChangeScope

METRIC = "container_memory_working_set_bytes"


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
    return f"{function}({METRIC}{{{labels}}}[{window}])"


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
    old = human(limit)
    basis = (
        f"observed peak {human(peak)} + 25%"
        if peak and round_up_memory(peak * HEADROOM) > (limit or 0)
        else f"the current {old} + 25%" + ("" if peak else ", as no memory history was available")
    )
    request = _with_request(plan, new)
    summary = (
        f"Raise the memory limit of container {plan.container} from {old} to {quantity(new)} "
        f"({basis}, {HEADROOM_NOTE}): normal load needs more than {old}."
        + (f" requests.memory moves with it to {quantity(request)}." if request else "")
    )
    if f.lowered is not None:
        _, previous = f.lowered
        summary += (
            f" Revision {previous.number} ran with {previous.memory.limit_text}: the peak seen "
            f"under {old} is a floor, so if {quantity(new)} still plateaus, go back to "
            f"{previous.memory.limit_text}."
        )
    validation = (
        f"{_watch(plan)}: the restart count stops rising and lastState no longer shows "
        f"OOMKilled; {_query(plan, 'max_over_time', '1d')} stays below 90% of {quantity(new)} "
        "under normal load."
    )
    return recommend(plan, Change(limit=new, request=request), summary, validation)


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
    delay = f", which at ~{human(rate)}/h buys ~{duration(gain)} per instance" if gain else ""
    request = _with_request(plan, new)
    summary = (
        f"{profile} Raising the memory limit only delays the next kill: the patch raises it "
        f"from {human(limit)} to {quantity(new)}{delay}, a stop-gap while the leak is found."
    )
    validation = (
        f"After the fix ships, {_query(plan, 'deriv', '1h')} stays near 0 once the instance has "
        f"warmed up, and {_watch(plan)} shows no new OOMKilled; with the stop-gap alone the kills "
        "continue, only further apart."
    )
    return recommend(plan, Change(limit=new, request=request), summary, validation)


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
        return advise_only(summary, measure, validation), ChangeScope()
    if limit is None:
        size = round_up_memory(peak * HEADROOM)
        cap = round_down_memory(float(allocatable) * NODE_FIT_SHARE) if allocatable else None
        capped = cap is not None and size > cap
        chosen = cap if capped and cap is not None else size
        summary = (
            f"Give container {plan.container} a memory request and limit of {quantity(chosen)} "
            f"(observed peak {human(peak)} + 25%, {HEADROOM_NOTE}): the request makes the "
            "scheduler reserve what it really uses, and the limit keeps a runaway inside its own "
            f"cgroup instead of the node's OOM killer picking victims on {node}."
        )
        if capped:
            summary += (
                f" It needs {human(size)}, more than any node can hold (largest allocatable "
                f"{human(allocatable)}): the patch caps it at {quantity(chosen)}, so it is killed "
                "at its own limit rather than taking the node down; the lasting fix is a node "
                "pool with more memory or a smaller working set (smaller batches, a heap cap)."
            )
        return recommend(plan, Change(limit=chosen, request=chosen), summary, validation)
    wanted = min(round_up_memory(peak * HEADROOM), int(limit))
    current = plan.current.request
    if current is not None and wanted <= current:
        summary = (
            f"Container {plan.container} already requests {human(current)}, above its peak "
            f"{human(peak)}: the node's other tenants use more than they request. Find them "
            f"on {node} and raise their requests, or add node memory."
        )
        return advise_only(summary, inspect, validation), ChangeScope()
    summary = (
        f"Raise container {plan.container}'s memory request from {human(current)} to "
        f"{quantity(wanted)} (observed peak {human(peak)} + 25%, at most its limit) so the "
        f"scheduler stops packing {node} beyond its memory; then check what else on {node} "
        "uses more than it requests."
    )
    return recommend(plan, Change(request=wanted), summary, validation)


def _measure(plan: Plan, why: str, *, leak: bool = False) -> Recommendation:
    target = plan.target
    selector = f" -l {plan.selector}" if plan.selector else ""
    command = f"kubectl top pod -n {target.namespace}{selector} --containers"
    summary = (
        why if leak else f"Measure container {plan.container}'s memory before sizing it: {why}."
    )
    validation = f"{_watch(plan)} shows no new OOMKilled after the change."
    return advise_only(summary, command, validation)
