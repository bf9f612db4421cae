"""The NotReady runbook: why does a running container never pass its readiness probe?

A container that runs and fails its readinessProbe is kept out of every Service that selects
its pod: nothing restarts it, nothing crashes, and the workload quietly serves less than it
should (DESIGN.md section 12). The kubelet says how the probe fails in `Unhealthy` events
(`messages.py`); the probe and the container's ports say whether the probe asks the right
place; the app's own log says whether it waits for a dependency, which the cluster's Services
and endpoints then confirm (the crash-loop runbook's check). The impact, always in the
evidence, is what on-call asks first: how many endpoints of the Services are ready.
`decide.py` holds the rules and their confidences, `advise.py` the changes.
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
from kubetriage.playbooks.crashloop.reads import check_dependency
from kubetriage.playbooks.notready.advise import recommend
from kubetriage.playbooks.notready.decide import decide, declared_ports, impact_text
from kubetriage.playbooks.notready.reads import (
    NotReadyFacts,
    container_ports,
    dependency_clue,
    probe_of,
    readiness_failures,
    service_impact,
    unready_containers,
    workload_pods,
)

S_UNREADY = "Read the unready containers"
S_EVENTS = "Read the kubelet's Unhealthy events"
S_PROBE = "Read the readiness probe and the container's ports"
S_LOGS = "Read the app's log"
S_DEPENDENCY = "Check the dependency the log names"
S_IMPACT = "Count the Services' ready endpoints"
S_FIX = "Choose the fix"


class NotReadyPlaybook(Playbook):
    """Names why a running container fails its readiness probe, and what it costs."""

    symptom: ClassVar[Symptom] = Symptom.NOT_READY
    title: ClassVar[str] = "NotReady"
    description: ClassVar[str] = (
        "A container runs, past its probe's initial delay, and keeps failing its readiness "
        "probe, so its pods are kept out of the Services that select them. The kubelet's "
        "Unhealthy events say how the probe fails: connection refused on a port the container "
        "does not declare, or a 404, is a probe that asks the wrong place; a 503 with failed "
        "connections in the app's log is a dependency that is down (its Service and endpoints "
        "checked as for a crash loop); a timeout or another answer is the app failing its "
        "check. The impact, the ready endpoints of the Services, is always in the evidence."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_UNREADY,
            "status.containerStatuses[] (running, ready: false) of the workload's pods",
            "How many pods run without being ready, and since when.",
        ),
        StepDoc(
            S_EVENTS,
            "the pods' Unhealthy events for the container, with their counts",
            "How the probe fails, in the kubelet's words (\"HTTP probe failed with statuscode: "
            '503", "connect: connection refused", "context deadline exceeded").',
        ),
        StepDoc(
            S_PROBE,
            "the container's readinessProbe and its ports",
            "Whether the probe asks a port the container declares, with what patience.",
        ),
        StepDoc(
            S_LOGS,
            "the current log of the first unready pods",
            "An app that answers 503 usually logs the dependency it cannot reach.",
        ),
        StepDoc(
            S_DEPENDENCY,
            "the Service and EndpointSlices of the host the log names",
            "Confirms the dependency is down (no Service, no ready endpoints) rather than "
            "only slow.",
        ),
        StepDoc(
            S_IMPACT,
            "the Services that select the pods, and their EndpointSlices",
            "How much of the workload's traffic still has somewhere to go.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "Point the probe at the port the container declares, bring the dependency back, "
            "or give a slow app's probe more time; with a rollback and a validation.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.NOTREADY_READINESS_PROBE_FAILURE,
        Category.NOTREADY_PROBE_MISCONFIGURED,
        Category.NOTREADY_DEPENDENCY_UNAVAILABLE,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods."""
        facts = _read_unready(context, investigation)
        _read_events(context, investigation, facts)
        _read_probe(context, investigation, facts)
        _read_logs(context, investigation, facts)
        _check_dependency(context, investigation, facts)
        _count_endpoints(context, investigation, facts)
        verdict = decide(facts)
        return conclude(investigation, S_FIX, verdict, recommend(facts, verdict.root.category))


# -- steps -------------------------------------------------------------------------------------


def _read_unready(context: Context, investigation: Investigation) -> NotReadyFacts:
    container = context.container or ""
    pods = workload_pods(context.reader, context.target, context.pods)
    facts = NotReadyFacts(context.target, container, unready_containers(context.pods, container))
    facts.pods = pods
    if not facts.unready:
        investigation.step(S_UNREADY, f"Container {container} is ready again in every pod.")
        return facts
    earliest = min(facts.unready, key=lambda u: u.started_at)
    summary = (
        f"container {container} runs but is not ready in {len(facts.unready_pods)} of "
        f"{len(facts.pods)} pod(s); the earliest, {earliest.pod}, has run since "
        f"{earliest.started_at}"
    )
    restarted = sum(1 for u in facts.unready if u.restarts)
    if restarted:
        summary += f" ({restarted} of them restarted before)"
    investigation.add_evidence(EvidenceSource.POD_STATUS, summary)
    investigation.step(S_UNREADY, summary[0].upper() + summary[1:] + ".")
    return facts


def _read_events(context: Context, investigation: Investigation, facts: NotReadyFacts) -> None:
    if facts.unready_pods:
        facts.failures = readiness_failures(
            context.reader, context.namespace, facts.unready_pods, facts.container
        )
    if not facts.failures:
        investigation.step(
            S_EVENTS,
            "No readiness Unhealthy events about the container remain (they expire an hour "
            "after their last update).",
        )
        return
    for reported in facts.failures[:2]:
        investigation.add_evidence(
            EvidenceSource.EVENTS, f"kubelet Unhealthy (x{reported.count}): {reported.failure.text}"
        )
    total = sum(r.count for r in facts.failures)
    investigation.step(
        S_EVENTS,
        f"{total} readiness failure(s) reported; the most frequent reads: "
        f"{facts.failures[0].failure.text}",
    )


def _read_probe(context: Context, investigation: Investigation, facts: NotReadyFacts) -> None:
    unready = [p for p in context.pods if name_of(p) in facts.unready_pods]
    spec, facts.probe = probe_of(unready or context.pods, facts.container)
    facts.ports = container_ports(spec)
    if facts.probe is None:
        investigation.step(S_PROBE, f"Container {facts.container} has no readinessProbe any more.")
        return
    summary = f"{facts.probe.describe()}; container ports: {declared_ports(facts)}"
    investigation.add_evidence(EvidenceSource.POD_SPEC, summary)
    investigation.step(S_PROBE, summary[0].upper() + summary[1:] + ".")


def _read_logs(context: Context, investigation: Investigation, facts: NotReadyFacts) -> None:
    failure = facts.most_common()
    if failure is None or failure.status != 503:
        investigation.step(S_LOGS, 'Not needed: the probe gets no 503 ("unavailable") answer.')
        return
    facts.dependency_clue = dependency_clue(
        context.reader, context.namespace, facts.unready_pods, facts.container
    )
    if facts.dependency_clue is None:
        investigation.step(S_LOGS, "The app's log reports no failed connection.")
        return
    line = facts.dependency_clue.line
    investigation.add_evidence(EvidenceSource.LOGS, f"log: {line}")
    investigation.step(S_LOGS, f"The app's log reports {facts.dependency_clue.detail}: {line}")


def _check_dependency(context: Context, investigation: Investigation, facts: NotReadyFacts) -> None:
    clue = facts.dependency_clue
    if clue is None:
        investigation.step(S_DEPENDENCY, "Not needed: no log names a dependency.")
        return
    check = check_dependency(
        context.reader, context.namespace, clue.subject, clue.host_ip, clue.port
    )
    facts.dependency = check
    reachable = check.state in {"ready", "no-ready-endpoints"} or check.scope == "pod"
    source = EvidenceSource.ENDPOINTS if reachable else EvidenceSource.SERVICE
    sentence = f"{check.target} ({clue.detail}): {check.sentence()}"
    investigation.add_evidence(source, sentence)
    investigation.step(S_DEPENDENCY, sentence[0].upper() + sentence[1:] + ".")


def _count_endpoints(context: Context, investigation: Investigation, facts: NotReadyFacts) -> None:
    facts.services = service_impact(context.reader, context.namespace, facts.pods)
    summary = impact_text(facts)
    investigation.add_evidence(EvidenceSource.SERVICE, summary[0].upper() + summary[1:])
    investigation.step(S_IMPACT, summary[0].upper() + summary[1:] + ".")
