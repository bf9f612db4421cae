"""The diagnosis path: detect -> coalesce per workload -> playbook -> finding.

The same functions serve the operator (live reader) and `kubetriage diagnose` (snapshot reader).
Grace periods are not applied here: the operator applies them before it asks for a diagnosis,
and offline diagnosis has no history to apply them to (DESIGN.md section 10).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import DetectedSymptom, detect_deployment, detect_pod
from kubetriage.k8s.access import KubeObject, as_dict, as_list, meta, name_of
from kubetriage.k8s.owners import WorkloadRef, owning_workload, ref_of
from kubetriage.models import Symptom
from kubetriage.namespaces import NamespaceSelection
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.base import Conclusion, Context, Investigation
from kubetriage.policy import Classification, classify, severity

MAX_AFFECTED_PODS = 50
DEFAULT_PRODUCTION_SELECTOR = {"kubetriage.io/environment": "production"}


@dataclass(frozen=True)
class Options:
    """What a diagnosis run needs to know beyond the cluster."""

    production_selector: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_PRODUCTION_SELECTOR)
    )


@dataclass
class Problem:
    """One workload with one symptom: the unit a report is about."""

    target: WorkloadRef
    symptom: Symptom
    sightings: list[DetectedSymptom] = field(default_factory=list)
    pods: list[KubeObject] = field(default_factory=list)


@dataclass(frozen=True)
class Finding:
    """A finished diagnosis of one Problem: everything a report is written from."""

    diagnosis_id: str
    target: WorkloadRef
    symptom: Symptom
    container: str | None
    conclusion: Conclusion
    investigation: Investigation
    classification: Classification | None
    affected_pods: tuple[str, ...]
    production: bool
    severity_level: str
    first_seen: datetime | None
    observed_at: datetime
    cluster_name: str


def find_problems(reader: ClusterReader, namespaces: Iterable[str] | None = None) -> list[Problem]:
    """Every (workload, symptom) with at least one sighting, in a stable order; `namespaces`
    are names or globs as `KUBETRIAGE_NAMESPACES` takes them (see `kubetriage.namespaces`)."""
    now = reader.now()
    selection = NamespaceSelection.of(namespaces)
    exact = selection.exact()
    scopes: list[str | None] = list(exact) if exact else [None]
    problems: dict[tuple[WorkloadRef, Symptom], Problem] = {}

    def add(target: WorkloadRef, sighting: DetectedSymptom, pod: KubeObject | None) -> None:
        key = (target.identity, sighting.symptom)
        problem = problems.setdefault(key, Problem(target, sighting.symptom))
        problem.sightings.append(sighting)
        if pod is not None and all(name_of(p) != name_of(pod) for p in problem.pods):
            problem.pods.append(pod)

    def selected(obj: KubeObject) -> bool:
        # Listed per namespace, or cluster-wide and then filtered by the globs.
        return exact is not None or selection.matches(str(meta(obj).get("namespace") or ""))

    for scope in scopes:
        for pod in filter(selected, reader.pods(scope)):
            sightings = detect_pod(pod, now)
            if not sightings:
                continue
            target = owning_workload(pod, reader)
            for sighting in sightings:
                add(target, sighting, pod)
        for deployment in filter(selected, reader.workloads("Deployment", scope)):
            for sighting in detect_deployment(deployment):
                add(ref_of(deployment, "Deployment"), sighting, None)
    return [
        problem
        for _, problem in sorted(problems.items(), key=lambda kv: (kv[0][0], kv[0][1].value))
        if not _finished_job(reader, problem.target)
    ]


def _finished_job(reader: ClusterReader, target: WorkloadRef) -> bool:
    if target.kind != "Job":
        return False
    job = reader.workload("Job", target.namespace, target.name)
    conditions = as_list(as_dict(as_dict(job).get("status")).get("conditions"))
    return any(
        isinstance(c, dict)
        and c.get("type") in {"Complete", "SuccessCriteriaMet"}
        and c.get("status") == "True"
        for c in conditions
    )


def diagnose_problem(
    reader: ClusterReader, problem: Problem, options: Options, diagnosis_id: str | None = None
) -> Finding:
    """Run the symptom's playbook over one problem and classify its recommendation."""
    target = problem.target
    workload = (
        reader.workload(target.kind, target.namespace, target.name)
        if target.kind != "Pod"
        else (problem.pods[0] if problem.pods else None)
    )
    target = target.with_uid(meta(workload).get("uid"))
    context = Context(
        reader=reader,
        target=target,
        symptom=problem.symptom,
        sightings=problem.sightings,
        pods=problem.pods,
        workload=workload,
        now=reader.now(),
    )
    investigation = Investigation()
    conclusion = playbook_for(problem.symptom).run(context, investigation)
    production = _is_production(reader, target.namespace, options.production_selector)
    classification = None
    if conclusion.recommendation is not None:
        classification = classify(
            conclusion.scope, production=production, namespace=target.namespace
        )
    since = [s.since for s in problem.sightings if s.since is not None]
    return Finding(
        diagnosis_id=diagnosis_id or uuid.uuid4().hex[:12],
        target=target,
        symptom=problem.symptom,
        container=context.container,
        conclusion=conclusion,
        investigation=investigation,
        classification=classification,
        affected_pods=tuple(sorted(name_of(p) for p in problem.pods))[:MAX_AFFECTED_PODS],
        production=production,
        severity_level=severity(workload, production=production).value,
        first_seen=min(since) if since else None,
        observed_at=context.now,
        cluster_name=reader.cluster_name(),
    )


def _is_production(reader: ClusterReader, namespace: str, selector: dict[str, str]) -> bool:
    labels = meta(reader.namespace(namespace) or {}).get("labels")
    if not isinstance(labels, dict) or not selector:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def diagnose(
    reader: ClusterReader,
    options: Options | None = None,
    *,
    namespaces: Iterable[str] | None = None,
    target: tuple[str, str] | None = None,
) -> list[Finding]:
    """Diagnose every problem the reader shows (optionally one `(kind, name)` target)."""
    chosen = options or Options()
    problems = find_problems(reader, namespaces)
    if target is not None:
        kind, name = target
        problems = [
            p for p in problems if p.target.kind.lower() == kind.lower() and p.target.name == name
        ]
    return [diagnose_problem(reader, problem, chosen) for problem in problems]
