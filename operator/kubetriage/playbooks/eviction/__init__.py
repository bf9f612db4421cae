"""The Evicted runbook: why were the workload's pods put off their node?

The kubelet evicts pods when its node runs low on memory, disk or process IDs, or when a pod
writes more to local disk than its own limit allows, and says which in the pod's
`status.message` (`messages.py`); the node lifecycle controller deletes the pods of a node that
stopped reporting (DESIGN.md section 12). The node's conditions (only the types Kubernetes
defines), the container's request against what the kubelet says it used, and how many pods run
now make the evidence. `decide.py` holds the rules and their confidences, `advise.py` the
changes.
"""

from __future__ import annotations

from typing import ClassVar

from kubetriage.k8s.access import name_of
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import (
    Conclusion,
    Context,
    Investigation,
    Playbook,
    StepDoc,
    conclude,
)
from kubetriage.playbooks.eviction.advise import recommend
from kubetriage.playbooks.eviction.decide import amount, decide, replaced_text, use_text
from kubetriage.playbooks.eviction.reads import (
    EvictionFacts,
    evicted_pods,
    nodes_of,
    resources,
    running_now,
)

S_EVICTED = "Read the evicted pods"
S_NODES = "Read the nodes they ran on"
S_USE = "Compare the use with the request"
S_NOW = "Count the pods that run now"
S_FIX = "Choose the fix"


class EvictedPlaybook(Playbook):
    """Names why pods were evicted, and the change that keeps it from happening again."""

    symptom: ClassVar[Symptom] = Symptom.EVICTED
    title: ClassVar[str] = "Evicted"
    description: ClassVar[str] = (
        "Pods of a workload were evicted by the kubelet (status.reason Evicted) or are being "
        "taken off a node that stopped reporting. The kubelet's message names what the node "
        "ran low on (memory, ephemeral-storage, inodes, pids) and the container that used "
        "most against its request, or the pod's own ephemeral-storage limit it went over; the "
        "node's conditions (Ready, MemoryPressure, DiskPressure, PIDPressure, "
        "NetworkUnavailable only: node-problem-detector's are never read as failures) and "
        "their last heartbeats say whether the node itself is lost."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_EVICTED,
            "status.reason, status.message and the DisruptionTarget condition of each pod",
            "The kubelet's message says what the node ran low on and which container used most; "
            "the taint manager's DisruptionTarget says the node stopped reporting.",
        ),
        StepDoc(
            S_NODES,
            "the nodes' Ready, MemoryPressure, DiskPressure, PIDPressure and NetworkUnavailable "
            "conditions with their last heartbeats, and their node.kubernetes.io taints",
            "A pressure that is still True will evict again; a Ready that is Unknown with an old "
            "heartbeat is a node that is gone.",
        ),
        StepDoc(
            S_USE,
            "the container's requests and limits in the evicted pods' spec",
            "The kubelet evicts first the pods that use most above their request.",
        ),
        StepDoc(
            S_NOW,
            "the workload's pods that run now and are ready",
            "Whether the controller has replaced the evicted pods, or the workload runs short.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "A memory request at the container's real use, what to look at on the node, or the "
            "pod's own storage limit; with a rollback and a validation.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.EVICTION_MEMORY_PRESSURE,
        Category.EVICTION_PID_PRESSURE,
        Category.EVICTION_DISK_PRESSURE,
        Category.EVICTION_EPHEMERAL_STORAGE_LIMIT,
        Category.EVICTION_NODE_NOT_READY,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods."""
        facts = EvictionFacts(context.target, evicted_pods(context.pods, context.sightings))
        _read_evicted(investigation, facts)
        _read_nodes(context, investigation, facts)
        _compare_use(context, investigation, facts)
        _count_now(context, investigation, facts)
        verdict = decide(facts)
        return conclude(investigation, S_FIX, verdict, recommend(facts, verdict.root.category))


# -- steps -------------------------------------------------------------------------------------


def _read_evicted(investigation: Investigation, facts: EvictionFacts) -> None:
    if not facts.evicted:
        investigation.step(S_EVICTED, "No affected pod is evicted any more.")
        return
    for pod in facts.evicted[-3:]:  # the newest
        said = pod.message.text or pod.reason
        investigation.add_evidence(
            EvidenceSource.POD_STATUS,
            f"pod {pod.pod} on {pod.node or 'an unknown node'} ({pod.reason} at "
            f"{pod.since or 'an unrecorded time'}): {said}",
        )
    newest = facts.evicted[-1]
    investigation.step(
        S_EVICTED,
        f"{len(facts.evicted)} pod(s) evicted or being deleted; the newest, {newest.pod}: "
        f"{newest.message.text or newest.reason}",
    )


def _read_nodes(context: Context, investigation: Investigation, facts: EvictionFacts) -> None:
    facts.nodes = nodes_of(context.reader, facts.evicted)
    if not facts.nodes:
        investigation.step(S_NODES, "None of the nodes the pods ran on is readable.")
        return
    outcomes = []
    for state in facts.nodes.values():
        troubles = state.troubles()
        taints = f"; taints {', '.join(state.taints)}" if state.taints else ""
        found = f"node {state.name}: " + ("; ".join(troubles) or "all conditions healthy") + taints
        investigation.add_evidence(EvidenceSource.NODE, found)
        outcomes.append(found)
    investigation.step(S_NODES, "; ".join(outcomes)[0].upper() + "; ".join(outcomes)[1:] + ".")


def _compare_use(context: Context, investigation: Investigation, facts: EvictionFacts) -> None:
    message = facts.message()
    if message is None or not message.users:
        investigation.step(S_USE, "The kubelet's message names no container's use.")
        return
    pods = {name_of(p): p for p in context.pods}
    newest = next((pods[p.pod] for p in reversed(facts.evicted) if p.pod in pods), None)
    parts = []
    for use in message.users[:2]:
        if newest is not None:
            requests, limits = resources(newest, use.container)
            for key, value in requests.items():
                facts.requests[(use.container, key)] = value
            for key, value in limits.items():
                facts.limits[(use.container, key)] = value
        limit = facts.limits.get((use.container, use.resource))
        limited = f", limit {amount(use.resource, limit)}" if limit else ", no limit"
        parts.append(use_text(use) + limited)
    summary = "; ".join(parts)
    investigation.add_evidence(EvidenceSource.POD_SPEC, summary[0].upper() + summary[1:])
    investigation.step(S_USE, summary[0].upper() + summary[1:] + ".")


def _count_now(context: Context, investigation: Investigation, facts: EvictionFacts) -> None:
    facts.running, facts.ready = running_now(context.reader, facts.target)
    summary = f"{facts.target.kind} {facts.target.name}: {replaced_text(facts)}"
    investigation.add_evidence(EvidenceSource.WORKLOAD, summary)
    investigation.step(S_NOW, summary + ".")
