"""The OOMKilled playbook: why the kernel killed a container for memory, and what to change.

An on-call engineer reads the kill from the pod status, the limit from the spec, the working set
history from Prometheus, and the node's memory state from its condition and events; then tells a
limit that is too low (plateau at the limit) from a leak (a steady climb for hours, every
instance) from a node that ran out of memory (no limit, or a kill below the limit). The decision
rules are in `_oom_decide`, the history analysis in `_oom_memory`, the sizing rule in `_oom_advice`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from kubetriage.clients.kube import Sample
from kubetriage.k8s.access import KubeObject, name_of, pod_template
from kubetriage.models import Category, EvidenceSource, Recommendation, Symptom
from kubetriage.playbooks._oom_advice import Plan
from kubetriage.playbooks._oom_decide import Findings, decide, duration
from kubetriage.playbooks._oom_evidence import (
    METRIC,
    history_items,
    history_outcome,
    kill_text,
    revision_text,
    signal_item,
)
from kubetriage.playbooks._oom_facts import (
    Kill,
    Memory,
    NodeSignal,
    Revision,
    container_of,
    controller_ref,
    largest_allocatable_memory,
    lowered_limit,
    node_of,
    node_signals,
    pod_memory,
    read_kill,
    revisions,
    spec_containers,
    status_of,
)
from kubetriage.playbooks._oom_memory import MemoryAnalysis, Pattern, analyze_memory
from kubetriage.playbooks._oom_recommend import recommendation_for
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc
from kubetriage.policy import ChangeScope, ready_and_desired

MAX_PODS_READ = 20  # enough replicas to see a pattern; a 40-pod workload repeats itself
MAX_LISTED = 5

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
            f"`{METRIC}` of the container in every affected pod (Prometheus, or a snapshot's "
            "MetricSeries), cut into one run per container instance",
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
        name = container_of(pod, None).get("name")
        if isinstance(name, str) and name:
            return name
    return "unknown"


def _read_kills(
    pods: list[KubeObject], container: str, context: Context, investigation: Investigation
) -> list[Kill]:
    kills = [kill for pod in pods if (kill := read_kill(pod, container)) is not None]
    for kill in kills[:MAX_LISTED]:
        investigation.add_evidence(
            EvidenceSource.POD_STATUS, kill_text(kill, container, context.now)
        )
    if not kills:
        outcome = f"no OOMKilled termination of {container} is left in the pod statuses"
        investigation.step(STEP_KILLS, outcome)
        return kills
    lives = [k.lifetime for k in kills if k.lifetime is not None]
    restarts = sum(k.restarts or 0 for k in kills)
    outcome = f"{len(kills)} pod(s) with {container} OOMKilled, {restarts} restarts in total"
    if lives:
        shortest, longest = duration(min(lives)), duration(max(lives))
        span = shortest if shortest == longest else f"{shortest} to {longest}"
        outcome += f"; the killed instance(s) lived {span}"
    investigation.step(STEP_KILLS, outcome)
    return kills


def _read_spec(
    context: Context, pods: list[KubeObject], container: str, investigation: Investigation
) -> tuple[Memory, Plan, tuple[Revision, Revision] | None]:
    memory = pod_memory(pods, container)
    init = any(s.init_container for s in context.sightings if s.container == container)
    template = pod_template(context.workload) or (pods[0].get("spec") if pods else None)
    replicas = _desired_replicas(context.workload, len(pods))
    plan = Plan(
        target=context.target,
        container=container,
        init_container=init,
        replicas=replicas,
        template_containers=spec_containers(template, init=init),
        selector=_selector(context.workload),
        cron_job=_cron_job(context),
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
        investigation.add_evidence(EvidenceSource.REPLICASET, revision_text(*lowered))
        text += "; " + revision_text(*lowered)
    investigation.step(STEP_SPEC, text)
    return memory, plan, lowered


def _read_history(
    context: Context,
    pods: list[KubeObject],
    container: str,
    memory: Memory,
    investigation: Investigation,
) -> tuple[MemoryAnalysis | None, str | None]:
    series: dict[str, list[Sample]] = {}
    no_source, empty, failed, unread = 0, [], "", []
    for pod in pods:
        name = name_of(pod)
        try:
            samples = context.reader.metric_series(context.namespace, name, container, METRIC)
        except Exception as error:  # a broken metrics source must not fail the diagnosis
            failed = f"{type(error).__name__}: {error}"
            unread.append(name)
            continue
        if samples is None:
            no_source += 1
        elif samples:
            series[name] = samples
        else:
            empty.append(name)
    if not series:
        gap = _history_gap(container, no_source, empty, failed)
        investigation.add_evidence(
            EvidenceSource.PROMETHEUS,
            f"{gap}: peak, p95/p50, growth rate and time-to-limit are unknown; the diagnosis "
            "rests on the limit, the restart count and the kill timing",
        )
        investigation.step(STEP_HISTORY, gap)
        return None, gap
    limit = float(memory.limit) if memory.limit is not None else None
    # A container that is not running now ended its last instance too (killed, backing off).
    stopped = {name_of(p) for p in pods if "running" not in _state(p, container)}
    analysis = analyze_memory(series, limit, finished=stopped)
    for summary, detail in history_items(analysis, container, empty):
        investigation.add_evidence(EvidenceSource.PROMETHEUS, summary, detail)
    if unread:
        investigation.add_evidence(
            EvidenceSource.PROMETHEUS,
            f"the metrics source failed for pod(s) {', '.join(unread[:MAX_LISTED])} ({failed}): "
            f"the history covers {len(series)} of {len(pods)} pod(s)",
        )
    investigation.step(STEP_HISTORY, history_outcome(analysis))
    if analysis.pattern in {Pattern.NO_DATA, Pattern.TOO_FEW_SAMPLES, Pattern.INCONCLUSIVE}:
        gap = f"the memory history was {analysis.pattern.value} ({analysis.samples} usable samples)"
        return analysis, gap
    return analysis, None


def _past_kills(analysis: MemoryAnalysis | None, pods: list[KubeObject]) -> list[Kill]:
    """Every ended instance in the history, as a kill at its last sample on its pod's node."""
    if analysis is None:
        return []
    nodes = {name_of(p): node_of(p) for p in pods}
    return [
        Kill(i.series, nodes.get(i.series), None, datetime.fromtimestamp(i.end, tz=UTC),
             None, None, None)
        for i in analysis.instances
        if i.ended
    ]  # fmt: skip


def _state(pod: KubeObject, container: str) -> dict[str, Any]:
    state = status_of(pod, container).get("state")
    return state if isinstance(state, dict) else {}


def _history_gap(container: str, no_source: int, empty: list[str], failed: str) -> str:
    if failed:
        return f"no memory history: the metrics source failed ({failed})"
    if no_source and not empty:
        return "no memory history: no metrics source (Prometheus) is configured"
    listed = ", ".join(empty[:MAX_LISTED])
    return f"no memory history: no {METRIC} series for container {container} in pod(s) {listed}"


def _check_nodes(
    context: Context, pods: list[KubeObject], kills: list[Kill], investigation: Investigation
) -> list[NodeSignal]:
    nodes = {k.node for k in kills if k.node} | {n for p in pods if (n := node_of(p))}
    if not nodes:
        investigation.step(STEP_NODES, "the pods name no node: node memory could not be checked")
        return []
    signals, found = node_signals(context.reader, context.namespace, nodes)
    for signal in signals[: MAX_LISTED * 2]:
        investigation.add_evidence(*signal_item(signal, kills))
    names = ", ".join(sorted(nodes)[:MAX_LISTED])
    pressure = sorted({f"{s.reason} on {s.node}" for s in signals if s.scope == "node"})
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
    cgroup = [s for s in signals if s.scope == "cgroup"]
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


def _selector(workload: KubeObject | None) -> str | None:
    if not workload or workload.get("kind") == "Pod" or not isinstance(workload.get("spec"), dict):
        return None
    selector = workload["spec"].get("selector")
    labels = selector.get("matchLabels") if isinstance(selector, dict) else None
    if not isinstance(labels, dict) or not labels:
        return None
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def _desired_replicas(workload: KubeObject | None, pods: int) -> int:
    if not workload:
        return max(pods, 1)
    try:
        return max(ready_and_desired(workload)[1], 1)
    except (TypeError, ValueError):  # a replica count that is not a number
        return max(pods, 1)


def _cron_job(context: Context) -> str | None:
    if context.target.kind != "Job" or not context.workload:
        return None
    owner = controller_ref(context.workload)
    if owner.get("kind") == "CronJob" and owner.get("name"):
        return str(owner["name"])
    return None
