"""The OOMKilled playbook: why the kernel killed a container for memory, and what to change.

An on-call engineer reads the kill from the pod status, the limit from the spec, the working set
history from Prometheus, and the node's memory state from its condition and events; then tells a
limit that is too low (plateau at the limit) from a leak (a steady climb for hours, every
instance) from a node that ran out of memory (no limit, or a kill below the limit). This module
holds the steps and how each words its evidence; the reads are in `reads`, the node's texts in
`messages`, the history analysis in `memory`, the decision rules in `decide`, the sizing rule
and the recommendation in `advise`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from kubetriage.k8s.access import KubeObject, containers, name_of, node_name, pod_template
from kubetriage.k8s.time import format_duration, format_time
from kubetriage.models import Category, EvidenceSource, Recommendation, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc
from kubetriage.playbooks.oom.advise import Plan, recommendation_for
from kubetriage.playbooks.oom.decide import Findings, decide
from kubetriage.playbooks.oom.memory import (
    LEAK_MIN_CLIMB_SECONDS,
    NEAR_LIMIT,
    MemoryAnalysis,
    Pattern,
    Shape,
    analyze_memory,
    bytes_text,
)
from kubetriage.playbooks.oom.messages import CGROUP, NODE
from kubetriage.playbooks.oom.reads import (
    WORKING_SET_METRIC,
    Kill,
    Memory,
    MemoryRevision,
    NodeSignal,
    cron_job_of,
    desired_replicas,
    first_container,
    largest_allocatable_memory,
    lowered_limit,
    node_signals,
    not_running,
    pod_memory,
    pod_selector,
    read_kill,
    read_memory_history,
    revisions,
)
from kubetriage.policy import ChangeScope

MAX_PODS_READ = 20  # enough replicas to see a pattern; a 40-pod workload repeats itself
MAX_LISTED = 5
MAX_TABLE_ROWS = 40
_NEAR = f"{NEAR_LIMIT:.0%}"

STEP_KILLS = "Read the OOM kills"
STEP_SPEC = "Read the memory limit and request"
STEP_HISTORY = "Read the memory history"
STEP_NODES = "Check the nodes for memory pressure"
STEP_DECIDE = "Decide the cause"
STEP_RECOMMEND = "Recommend a change"


class OOMKilledPlaybook(Playbook):
    """The runbook for a container the kernel killed for memory (exit code 137, OOMKilled)."""

    symptom: ClassVar[Symptom] = Symptom.OOM_KILLED
    title: ClassVar[str] = "OOMKilled"
    description: ClassVar[str] = (
        "A container was killed by the kernel's OOM killer. The playbook tells apart a memory "
        "limit that is too low for normal load (the working set climbs to the limit and stays "
        "there), a memory leak (every instance climbs steadily for hours until the kill: a "
        "bigger limit only delays it), and a node that ran out of memory (no limit, or a kill "
        "below the limit while the node was under pressure). Without memory history it still "
        "answers from the limit, the restart count and the kill timing, at lower confidence, "
        "and says what was missing."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            STEP_KILLS,
            "each affected pod's container status (state/lastState terminated: reason, exit "
            "code, startedAt, finishedAt; restartCount) and its node",
            "How long each instance lived before the kill already separates a limit that is "
            "too low (dead minutes after start) from a leak (dead hours after start).",
        ),
        StepDoc(
            STEP_SPEC,
            "the container's resources in the pod spec and the workload's pod template, the "
            "replica count, and the limit in the Deployment's previous revision (ReplicaSet)",
            "Without a limit only the node's OOM killer can kill a container; with one, the "
            "limit is the line usage is measured against and the base of a change and its cost; "
            "a revision that lowered it is the first suspect.",
        ),
        StepDoc(
            STEP_HISTORY,
            f"`{WORKING_SET_METRIC}` of the container in every affected pod (Prometheus, or a "
            "snapshot's MetricSeries), cut into one run per container instance",
            "The shape of each instance is the diagnosis: peak, p95/p50, growth rate per hour "
            "and time to the limit tell a plateau from a steady climb from a kill far below it.",
        ),
        StepDoc(
            STEP_NODES,
            "the MemoryPressure condition of the pods' nodes, node events in `default` and the "
            "pod's namespace (SystemOOM, EvictionThresholdMet, NodeHasInsufficientMemory, "
            "node-problem-detector OOMKilling) and pods evicted for memory",
            "A kill by the node's OOM killer is fixed with requests and node capacity, not with "
            "this container's limit.",
        ),
        StepDoc(
            STEP_DECIDE,
            "what the previous steps found",
            "No limit or a kill below it with the node short of memory: NodePressure; a steady "
            "climb over a long time in every instance: MemoryLeak; the limit reached and held: "
            "LimitTooLow. Without history, kill timing decides at lower confidence.",
        ),
        StepDoc(
            STEP_RECOMMEND,
            "the verdict, the container's resources in the workload's template, the replica "
            "count and the nodes' allocatable memory",
            "Sizing rule: the observed peak + 25%, rounded up to a multiple of 64Mi (256Mi from "
            "2Gi) and above the current limit; requests stay <= limits. The change is a "
            "strategic merge patch on the container's resources with its cost across replicas; "
            "for a leak the fix is in the code and the patch only buys time.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.OOM_LIMIT_TOO_LOW,
        Category.OOM_MEMORY_LEAK,
        Category.OOM_NODE_PRESSURE,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods of one workload."""
        container = _container(context)
        pods = context.pods[:MAX_PODS_READ]
        kills = _read_kills(pods, container, context, investigation)
        memory, plan, lowered = _read_spec(context, pods, container, investigation)
        analysis, gap = _read_history(context, pods, container, memory, investigation)
        past = _past_kills(analysis, pods)
        signals = _check_nodes(context, pods, kills + past, investigation)
        findings = Findings(
            container=container,
            workload=f"{context.target.kind.lower()}/{context.target.name}",
            memory=memory,
            kills=kills,
            analysis=analysis,
            history_gap=gap,
            signals=signals,
            lowered=lowered,
            past_kills=past,
        )
        verdict = decide(findings)
        others = ", ".join(a.category.value for a in verdict.alternatives)
        investigation.step(
            STEP_DECIDE,
            f"{verdict.root.category.value} at {verdict.root.confidence:.2f} ({verdict.rule})"
            + (f"; alternatives: {others}" if others else ""),
        )
        allocatable = largest_allocatable_memory(context.reader.nodes())
        recommendation, scope = recommendation_for(verdict, findings, plan, allocatable)
        investigation.step(STEP_RECOMMEND, _recommend_outcome(recommendation, scope))
        return Conclusion(verdict.root, verdict.alternatives, recommendation, scope)


def _container(context: Context) -> str:
    if context.container:
        return context.container
    for pod in context.pods:
        name = first_container(pod).get("name")
        if isinstance(name, str) and name:
            return name
    return "unknown"


# -- the steps ------------------------------------------------------------------------------------


def _read_kills(
    pods: list[KubeObject], container: str, context: Context, investigation: Investigation
) -> list[Kill]:
    kills = [kill for pod in pods if (kill := read_kill(pod, container)) is not None]
    for kill in kills[:MAX_LISTED]:
        investigation.add_evidence(
            EvidenceSource.POD_STATUS, _kill_text(kill, container, context.now)
        )
    if not kills:
        outcome = f"no OOMKilled termination of {container} is left in the pod statuses"
        investigation.step(STEP_KILLS, outcome)
        return kills
    lives = [k.lifetime for k in kills if k.lifetime is not None]
    restarts = sum(k.restarts or 0 for k in kills)
    outcome = f"{len(kills)} pod(s) with {container} OOMKilled, {restarts} restarts in total"
    if lives:
        shortest, longest = format_duration(min(lives)), format_duration(max(lives))
        span = shortest if shortest == longest else f"{shortest} to {longest}"
        outcome += f"; the killed instance(s) lived {span}"
    investigation.step(STEP_KILLS, outcome)
    return kills


def _read_spec(
    context: Context, pods: list[KubeObject], container: str, investigation: Investigation
) -> tuple[Memory, Plan, tuple[MemoryRevision, MemoryRevision] | None]:
    memory = pod_memory(pods, container)
    init = any(s.init_container for s in context.sightings if s.container == container)
    template = pod_template(context.workload) or (pods[0].get("spec") if pods else None)
    plan = Plan(
        target=context.target,
        container=container,
        init_container=init,
        replicas=desired_replicas(context.workload, len(pods)),
        template_containers=containers(template, init=init),
        selector=pod_selector(context.workload),
        cron_job=cron_job_of(context.workload) if context.target.kind == "Job" else None,
    )
    if memory.limit is not None:
        limit = f"limits.memory {memory.limit_text}"
    elif memory.limit_unreadable:
        limit = f"limits.memory {memory.limit_text!r} is not a quantity"
    else:
        limit = "no memory limit"
    request = (
        f"requests.memory {memory.request_text}" if memory.request_text else "no memory request"
    )
    statuses = [p["status"] for p in pods if isinstance(p.get("status"), dict)]
    qos = next((str(s["qosClass"]) for s in statuses if s.get("qosClass")), None)
    text = f"container {container}: {limit}, {request}" + (f" (QoS {qos})" if qos else "")
    text += f"; {plan.target.kind.lower()}/{plan.target.name} runs {plan.replicas} replica(s)"
    investigation.add_evidence(EvidenceSource.POD_SPEC, text)
    current = plan.current
    if current.limit is not None and memory.limit is not None and current.limit != memory.limit:
        investigation.add_evidence(
            EvidenceSource.WORKLOAD,
            f"the pod template now says limits.memory {current.limit_text}; the killed pods ran "
            f"with {memory.limit_text}",
        )
    lowered = lowered_limit(revisions(context.reader, context.target, container), pods)
    if lowered is not None:
        investigation.add_evidence(EvidenceSource.REPLICASET, _revision_text(*lowered))
        text += "; " + _revision_text(*lowered)
    investigation.step(STEP_SPEC, text)
    return memory, plan, lowered


def _read_history(
    context: Context,
    pods: list[KubeObject],
    container: str,
    memory: Memory,
    investigation: Investigation,
) -> tuple[MemoryAnalysis | None, str | None]:
    history = read_memory_history(context.reader, context.namespace, pods, container)
    if not history.series:
        gap = _history_gap(container, history.without_source, history.empty, history.failure)
        investigation.add_evidence(
            EvidenceSource.PROMETHEUS,
            f"{gap}: peak, p95/p50, growth rate and time-to-limit are unknown; the diagnosis "
            "rests on the limit, the restart count and the kill timing",
        )
        investigation.step(STEP_HISTORY, gap)
        return None, gap
    limit = float(memory.limit) if memory.limit is not None else None
    # A container that is not running now ended its last instance too (killed, backing off).
    analysis = analyze_memory(
        history.series,
        limit,
        finished=not_running(pods, container),
        leak_min_seconds=context.leak_min_climb_seconds or LEAK_MIN_CLIMB_SECONDS,
    )
    for summary, detail in _history_items(analysis, container, history.empty):
        investigation.add_evidence(EvidenceSource.PROMETHEUS, summary, detail)
    if history.unread:
        investigation.add_evidence(
            EvidenceSource.PROMETHEUS,
            f"the metrics source failed for pod(s) {', '.join(history.unread[:MAX_LISTED])} "
            f"({history.failure}): the history covers {len(history.series)} of {len(pods)} pod(s)",
        )
    investigation.step(STEP_HISTORY, _history_outcome(analysis))
    if analysis.pattern in {Pattern.NO_DATA, Pattern.TOO_FEW_SAMPLES, Pattern.INCONCLUSIVE}:
        gap = f"the memory history was {analysis.pattern.value} ({analysis.samples} usable samples)"
        return analysis, gap
    return analysis, None


def _past_kills(analysis: MemoryAnalysis | None, pods: list[KubeObject]) -> list[Kill]:
    """Every ended instance in the history, as a kill at its last sample on its pod's node."""
    if analysis is None:
        return []
    nodes = {name_of(p): node_name(p) for p in pods}
    return [
        Kill(i.series, nodes.get(i.series), None, datetime.fromtimestamp(i.end, tz=UTC),
             None, None, None)
        for i in analysis.instances
        if i.ended
    ]  # fmt: skip


def _history_gap(container: str, no_source: int, empty: list[str], failed: str) -> str:
    if failed:
        return f"no memory history: the metrics source failed ({failed})"
    if no_source and not empty:
        return "no memory history: no metrics source (Prometheus) is configured"
    listed = ", ".join(empty[:MAX_LISTED])
    return (
        f"no memory history: no {WORKING_SET_METRIC} series for container {container} in "
        f"pod(s) {listed}"
    )


def _check_nodes(
    context: Context, pods: list[KubeObject], kills: list[Kill], investigation: Investigation
) -> list[NodeSignal]:
    nodes = {k.node for k in kills if k.node} | {n for p in pods if (n := node_name(p))}
    if not nodes:
        investigation.step(STEP_NODES, "the pods name no node: node memory could not be checked")
        return []
    signals, found = node_signals(context.reader, context.namespace, nodes)
    for signal in signals[: MAX_LISTED * 2]:
        investigation.add_evidence(*_signal_item(signal, kills))
    names = ", ".join(sorted(nodes)[:MAX_LISTED])
    pressure = sorted({f"{s.reason} on {s.node}" for s in signals if s.scope == NODE})
    if not pressure:
        unread = len(nodes) - len(found)
        missing = f" ({unread} node object(s) not readable)" if unread else ""
        investigation.add_evidence(
            EvidenceSource.NODE,
            f"node(s) {names}: no MemoryPressure, no SystemOOM or memory eviction events{missing} "
            "(events expire an hour after their last update)",
        )
    outcome = f"node memory pressure: {', '.join(pressure[:6])}" if pressure else (
        f"no memory pressure on {names}"
    )  # fmt: skip
    cgroup = [s for s in signals if s.scope == CGROUP]
    if cgroup:
        outcome += f"; the kernel reported {len(cgroup)} memory cgroup (limit) kill(s)"
    investigation.step(STEP_NODES, outcome)
    return signals


def _recommend_outcome(recommendation: Recommendation | None, scope: ChangeScope) -> str:
    if recommendation is None:
        return "no change recommended"
    kind = "patch" if recommendation.patch else "command" if recommendation.command else "advice"
    outcome = f"{kind}: {recommendation.summary.rstrip('.')}"
    if scope.resource_change_percent is not None:
        outcome += f"; memory requests/limits {scope.resource_change_percent:+.0f}%"
    return outcome


# -- how the steps word their evidence ------------------------------------------------------------


def _kill_text(kill: Kill, container: str, now: datetime) -> str:
    """One pod's OOM kill, with its timing."""
    when = format_time(kill.finished) if kill.finished else "an unknown time"
    code = kill.exit_code if kill.exit_code is not None else "unknown"
    text = f"pod {kill.pod}: container {container} OOMKilled (exit code {code}) at {when}"
    if kill.lifetime is not None:
        text += f" after running {format_duration(kill.lifetime)}"
    if kill.node:
        text += f" on node {kill.node}"
    if kill.restarts is not None:
        text += f"; {kill.restarts} restarts"
    every = kill.restart_interval(now)
    if every is not None:
        text += f" (one every {format_duration(every)} since the pod started)"
    return text


def _revision_text(current: MemoryRevision, previous: MemoryRevision) -> str:
    """A revision that lowered the memory limit."""
    when = f" on {format_time(current.created)}" if current.created else ""
    same = " with the same image" if current.image and current.image == previous.image else ""
    return (
        f"revision {current.number} ({current.name}, created{when}) lowered limits.memory from "
        f"{previous.memory.limit_text} (revision {previous.number}, {previous.name}) to "
        f"{current.memory.limit_text}{same}"
    )


def _history_items(
    analysis: MemoryAnalysis, container: str, empty: list[str]
) -> list[tuple[str, str | None]]:
    """Evidence (summary, detail) for a memory history: the numbers, the trend, what is missing."""
    limit, peak = analysis.limit, analysis.peak
    share = f" ({peak / limit:.0%} of the {bytes_text(limit)} limit)" if limit and peak else ""
    pods = len({i.series for i in analysis.instances})
    summary = (
        f"{WORKING_SET_METRIC} of {container} in {pods} pod(s): {analysis.samples} samples, "
        f"{len(analysis.instances)} container instances; peak {bytes_text(peak)}{share}, "
        f"p95 {bytes_text(analysis.p95)}, p50 {bytes_text(analysis.p50)}"
    )
    if analysis.discarded:
        summary += f"; {analysis.discarded} invalid or duplicate samples dropped"
    items: list[tuple[str, str | None]] = [(summary, _instance_table(analysis))]
    trend = _trend_text(analysis)
    if trend:
        items.append((trend, None))
    if empty:
        listed = ", ".join(empty[:MAX_LISTED])
        items.append((f"no {WORKING_SET_METRIC} series for pod(s) {listed}", None))
    return items


def _trend_text(analysis: MemoryAnalysis) -> str | None:
    """Growth rates and time to the limit, per kind of instance."""
    parts: list[str] = []
    leaks = analysis.of_shape(Shape.LEAK)
    if leaks:
        low, high = min(i.growth_per_hour for i in leaks), max(i.growth_per_hour for i in leaks)
        parts.append(
            f"{len(leaks)} instance(s) grew steadily at {bytes_text(low)}-{bytes_text(high)}/h "
            f"and reached {_NEAR} of the limit after "
            f"{format_duration(analysis.seconds_to_limit)} (median)"
        )
    hits = analysis.of_shape(Shape.PLATEAU, Shape.SPIKE)
    if hits and analysis.limit:
        times = [i.seconds_to_near_limit or 0.0 for i in hits]
        shares = sorted(i.near_limit_share or 0.0 for i in hits)
        parts.append(
            f"{len(hits)} instance(s) reached {_NEAR} of the limit {format_duration(min(times))}-"
            f"{format_duration(max(times))} after start and stayed there until the kill "
            f"({shares[len(shares) // 2]:.0%} of their samples, median)"
        )
    elif hits:
        parts.append(
            f"{len(hits)} instance(s) surged from ~{bytes_text(min(i.first for i in hits))} to "
            f"up to {bytes_text(max(i.peak for i in hits))}"
        )
    below = analysis.of_shape(Shape.BELOW_LIMIT)
    if below:
        parts.append(
            f"{len(below)} instance(s) ended below {_NEAR} of the limit "
            f"(peak {bytes_text(max(i.peak for i in below))})"
        )
    for instance in analysis.of_shape(Shape.GROWING)[:MAX_LISTED]:
        eta = instance.seconds_until(analysis.limit) if analysis.limit else None
        reach = f", reaching the limit in ~{format_duration(eta)}" if eta else ""
        state = "ended" if instance.ended else "running"
        rate = bytes_text(instance.growth_per_hour)
        parts.append(f"{state} instance in {instance.series} grows {rate}/h{reach}")
    return "; ".join(parts) if parts else None


def _instance_table(analysis: MemoryAnalysis) -> str:
    """One line per container instance, for the evidence detail."""
    lines = [f"pod | start (UTC) | ran | first -> peak | growth/h | r2 | to {_NEAR} | shape"]
    for i in analysis.instances[:MAX_TABLE_ROWS]:
        start = format_time(datetime.fromtimestamp(i.start, tz=UTC))
        to_limit = (
            "-" if i.seconds_to_near_limit is None else format_duration(i.seconds_to_near_limit)
        )
        lines.append(
            f"{i.series} | {start} | {format_duration(i.duration)} | {bytes_text(i.first)} -> "
            f"{bytes_text(i.peak)} | {bytes_text(i.growth_per_hour)} | {i.r_squared:.2f} | "
            f"{to_limit} | {i.shape.value}"
        )
    if len(analysis.instances) > MAX_TABLE_ROWS:
        lines.append(f"... {len(analysis.instances) - MAX_TABLE_ROWS} more instances")
    return "\n".join(lines)


def _history_outcome(analysis: MemoryAnalysis) -> str:
    """The history step's one-line outcome."""
    text = (
        f"{analysis.pattern.value}: {len(analysis.instances)} instances, peak "
        f"{bytes_text(analysis.peak)} against limit {bytes_text(analysis.limit)}"
    )
    if analysis.leak_rate_per_hour:
        text += f", growth {bytes_text(analysis.leak_rate_per_hour)}/h per instance"
    if analysis.seconds_to_limit is not None:
        text += f", limit reached after {format_duration(analysis.seconds_to_limit)}"
    return text


def _signal_item(signal: NodeSignal, kills: list[Kill]) -> tuple[EvidenceSource, str]:
    """Evidence for one node signal, tied to the kill it happened next to."""
    when = f" at {format_time(signal.last)}" if signal.last else ""
    if signal.count > 1 and signal.first and signal.last and signal.first != signal.last:
        when = f" x{signal.count} ({format_time(signal.first)} to {format_time(signal.last)})"
    near = [k for k in kills if k.node == signal.node and signal.near(k.finished)]
    link = ""
    if near and near[0].finished and signal.last:
        gap = abs((near[0].finished - signal.last).total_seconds())
        link = f"; {format_duration(gap)} from the kill of {near[0].pod}"
    if signal.reason == "MemoryPressure":
        since = f" since {format_time(signal.last)}" if signal.last else ""
        return (
            EvidenceSource.NODE,
            f"node {signal.node}: MemoryPressure=True{since}: {signal.message}",
        )
    source = EvidenceSource.POD_STATUS if signal.origin == "pod" else EvidenceSource.EVENTS
    return source, f"node {signal.node}: {signal.reason}{when}: {signal.message}{link}"
