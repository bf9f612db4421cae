"""The diagnosis path: detect -> coalesce per workload -> playbook -> finding.

The same functions serve the operator (live reader) and `kubetriage diagnose` (snapshot reader).
Grace periods are not applied here: the operator applies them before it asks for a diagnosis,
and offline diagnosis has no history to apply them to (DESIGN.md section 10).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from kubetriage.clients.kube import ClusterReader, ClusterReadError
from kubetriage.config import Settings
from kubetriage.detect import DetectedSymptom, detect_deployment, detect_job, detect_pod
from kubetriage.k8s.access import KubeObject, as_dict, as_list, labels_of, meta, name_of, text
from kubetriage.k8s.events import events_about, involved_name
from kubetriage.k8s.owners import WorkloadRef, controller_of, owned_by, owning_workload, ref_of
from kubetriage.k8s.selectors import Selector, parse_selector
from kubetriage.k8s.volumes import claims_of, object_sources
from kubetriage.models import FailingRevision, Symptom
from kubetriage.namespaces import NamespaceSelection
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.base import Conclusion, Context, Investigation
from kubetriage.policy import Classification, classify, severity

MAX_AFFECTED_PODS = 50
DEFAULT_PRODUCTION_SELECTOR = "kubetriage.io/environment=production"


@dataclass(frozen=True)
class Options:
    """What a diagnosis run needs to know beyond the cluster."""

    production_selector: Selector = field(
        default_factory=lambda: parse_selector(DEFAULT_PRODUCTION_SELECTOR)
    )
    # None: the memory analysis' own default (playbooks/oom/memory.py).
    memory_leak_min_climb_seconds: float | None = None

    @classmethod
    def of(cls, settings: Settings) -> Options:
        """The options the settings give: every command and the operator read them alike."""
        return cls(
            production_selector=settings.production(),
            memory_leak_min_climb_seconds=settings.memory_leak_min_climb_seconds,
        )


@dataclass
class Problem:
    """One workload with one symptom: the unit a report is about."""

    target: WorkloadRef
    symptom: Symptom
    sightings: list[DetectedSymptom] = field(default_factory=list)
    pods: list[KubeObject] = field(default_factory=list)


@dataclass(frozen=True)
class Subject:
    """What a diagnosis is about, known before its playbook runs."""

    diagnosis_id: str
    target: WorkloadRef
    symptom: Symptom
    container: str | None
    affected_pods: tuple[str, ...]
    production: bool
    severity_level: str
    first_seen: datetime | None
    observed_at: datetime
    cluster_name: str
    failing_revision: FailingRevision | None


@dataclass(frozen=True)
class Finding(Subject):
    """A finished diagnosis of one Problem: everything a report is written from."""

    conclusion: Conclusion
    investigation: Investigation
    classification: Classification | None


class PlaybookError(Exception):
    """A playbook raised: a bug of kubetriage, not of the cluster, so retrying cannot help.
    The diagnosis fails once and says so (DiagnosisReport condition, metric, Event)."""

    def __init__(self, subject: Subject, error: BaseException) -> None:
        self.subject = subject
        self.error = error
        super().__init__(
            f"the {subject.symptom.value} playbook failed: {type(error).__name__}: {error}"
        )


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
        jobs = list(filter(selected, reader.workloads("Job", scope)))
        for job in jobs:
            reported_on = job_target(job, jobs)
            if reported_on is None:
                continue
            for sighting in detect_job(job):
                add(reported_on, sighting, None)
    found = [
        confirmed(reader, problem)
        for _, problem in sorted(problems.items(), key=lambda kv: (kv[0][0], kv[0][1].value))
        if not _finished_job(reader, problem.target)
    ]
    return [problem for problem in found if problem is not None]


def job_target(job: KubeObject, jobs: Iterable[KubeObject]) -> WorkloadRef | None:
    """The workload a Job's failure is reported on: its CronJob when one owns it, and then
    only for the CronJob's most recent Job (an older run that failed, with a newer one since,
    is history: DESIGN.md section 12); else the Job itself."""
    owner = controller_of(job)
    if owner is None or owner.get("kind") != "CronJob" or not text(owner.get("name")):
        return ref_of(job, "Job")
    namespace = str(meta(job).get("namespace") or "default")
    siblings = [
        other
        for other in jobs
        if str(meta(other).get("namespace") or "default") == namespace
        and owned_by(other, "CronJob", text(owner.get("name")))
    ]
    newest = max(siblings, key=lambda j: text(meta(j).get("creationTimestamp")), default=job)
    if name_of(newest) != name_of(job):
        return None
    uid = owner.get("uid") if isinstance(owner.get("uid"), str) else None
    return WorkloadRef(namespace, "CronJob", text(owner.get("name")), "batch/v1", uid)


# The kubelet's and the attach/detach controller's words for a volume it cannot set up.
MOUNT_FAILURE_REASONS = frozenset({"FailedMount", "FailedAttachVolume"})


def confirmed(reader: ClusterReader, problem: Problem) -> Problem | None:
    """The problem with only the sightings its evidence bears out; None when none is left.

    A scheduled pod still in ContainerCreating is a mount failure only with evidence of one:
    the kubelet said so (FailedMount, FailedAttachVolume), or a volume needs a ConfigMap or a
    PersistentVolumeClaim that does not exist (what is left once the events expired). A young
    pod, or one pulling a large image, looks the same in its status (DESIGN.md section 2).
    Every other sighting stands on the pod alone.
    """
    waiting = {
        s.object_name
        for s in problem.sightings
        if s.symptom is Symptom.PENDING and s.reason == "ContainerCreating"
    }
    if not waiting:
        return problem
    namespace = problem.target.namespace
    failing = {
        str(involved_name(event))
        for event in events_about(reader, namespace, "Pod", waiting)
        if text(event.get("reason")) in MOUNT_FAILURE_REASONS
    }
    failing |= {
        name_of(pod)
        for pod in problem.pods
        if name_of(pod) in waiting - failing and _needs_missing_volume(reader, namespace, pod)
    }
    unconfirmed = waiting - failing
    sightings = [s for s in problem.sightings if s.object_name not in unconfirmed]
    if not sightings:
        return None
    pods = [p for p in problem.pods if name_of(p) not in unconfirmed]
    return Problem(problem.target, problem.symptom, sightings, pods)


def _needs_missing_volume(reader: ClusterReader, namespace: str, pod: KubeObject) -> bool:
    """Whether a volume of the pod needs a ConfigMap or a claim the reader says is not there
    (Secrets are never read, so a missing one shows only in the kubelet's events)."""
    if any(
        source.kind == "configmap"
        and not source.optional
        and reader.config_map_keys(namespace, source.name) is None
        for source in object_sources(as_dict(pod.get("spec")))
    ):
        return True
    return any(
        reader.persistent_volume_claim(namespace, claim) is None for _, claim in claims_of(pod)
    )


def _finished_job(reader: ClusterReader, target: WorkloadRef) -> bool:
    if target.kind != "Job":
        return False
    job = reader.workload("Job", target.namespace, target.name)
    conditions = as_list(as_dict(as_dict(job).get("status")).get("conditions"))
    return any(
        isinstance(c, dict)
        and text(c.get("type")) in {"Complete", "SuccessCriteriaMet"}
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
        leak_min_climb_seconds=options.memory_leak_min_climb_seconds,
    )
    production = _is_production(reader, target.namespace, options.production_selector)
    since = [s.since for s in problem.sightings if s.since is not None]
    subject = Subject(
        diagnosis_id=diagnosis_id or uuid.uuid4().hex[:12],
        target=target,
        symptom=problem.symptom,
        container=context.container,
        affected_pods=tuple(sorted(name_of(p) for p in problem.pods))[:MAX_AFFECTED_PODS],
        production=production,
        severity_level=severity(workload, production=production).value,
        first_seen=min(since) if since else None,
        observed_at=context.now,
        cluster_name=reader.cluster_name(),
        failing_revision=_failing_revision(target, workload, problem.pods),
    )
    investigation = Investigation()
    try:
        conclusion = playbook_for(problem.symptom).run(context, investigation)
    except ClusterReadError:
        raise  # the apiserver, not the playbook: the caller retries
    except Exception as error:
        raise PlaybookError(subject, error) from error
    classification = None
    if conclusion.recommendation is not None:
        classification = classify(
            conclusion.scope, production=production, namespace=target.namespace
        )
    return Finding(
        **vars(subject),
        conclusion=conclusion,
        investigation=investigation,
        classification=classification,
    )


def _failing_revision(
    target: WorkloadRef, workload: KubeObject | None, pods: list[KubeObject]
) -> FailingRevision | None:
    """The pod template the failing pods run, from what is already read: the ReplicaSet most
    of them belong to (a Deployment's), and the workload's generation."""
    generation = meta(workload).get("generation")
    generation = generation if isinstance(generation, int) and generation >= 0 else None
    replica_set = None
    if target.kind == "Deployment":
        owners = Counter(
            str(owner["name"])
            for owner in map(controller_of, pods)
            if owner is not None and owner.get("kind") == "ReplicaSet" and owner.get("name")
        )
        replica_set = owners.most_common(1)[0][0] if owners else None
    if generation is None and replica_set is None:
        return None
    return FailingRevision(replica_set=replica_set, generation=generation)


def _is_production(reader: ClusterReader, namespace: str, selector: Selector) -> bool:
    # An empty selector marks no namespace as production (kubectl's empty selector would
    # select every one): the setting left blank means "we have no production label".
    if selector.empty:
        return False
    return selector.matches(labels_of(reader.namespace(namespace)))


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
