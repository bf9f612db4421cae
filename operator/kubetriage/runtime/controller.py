"""The operator's state machine: watch events in, DiagnosisReports out.

Per workload and symptom one `Tracker` remembers which pods show the symptom and since when.
A symptom that persists past its grace period is diagnosed (at most one diagnosis in flight per
tracker, a bounded number overall, each off the event loop); a tracker whose pods are all
healthy for `resolve_after_seconds` resolves its report. Everything here is in memory and
rebuilt from kopf's initial listing after a restart; the reports themselves are the durable
state, written idempotently under names derived from workload and symptom, so a restart can
neither duplicate nor lose one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
import urllib3
from kubernetes.client.exceptions import ApiException

from kubetriage.clients.kube import ClusterReader, ClusterReadError
from kubetriage.config import Settings
from kubetriage.detect import DetectedSymptom, detect_deployment, detect_job, detect_pod
from kubetriage.diagnosis import (
    Options,
    PlaybookError,
    Problem,
    confirmed,
    diagnose_problem,
    job_target,
)
from kubetriage.escalation.escalator import Escalator
from kubetriage.escalation.outbox import Outbox, RetryPolicy, read_report
from kubetriage.k8s.access import KubeObject, as_dict, meta, name_of, restarts, text
from kubetriage.k8s.history import replica_sets_of
from kubetriage.k8s.owners import WorkloadRef, controller_of, owning_workload, ref_of
from kubetriage.models import (
    DiagnosisReport,
    DryRun,
    Escalation,
    FailingRevision,
    Patch,
    Phase,
    Resolution,
    Symptom,
)
from kubetriage.reports.build import (
    NotDryRun,
    ReportChange,
    build_report,
    failed_report,
    failed_status,
    merge_with_existing,
    report_name,
    resolution_of,
    resolved_status,
)
from kubetriage.reports.events import EventRecorder
from kubetriage.reports.store import ReportStore
from kubetriage.runtime import metrics

log = structlog.get_logger("kubetriage.runtime.controller")
T = TypeVar("T")
TrackerKey = tuple[str, str, str, Symptom]
# A burst of pods of one workload arrives over a moment: wait this long after a change before
# re-diagnosing, so 40 pods make one diagnosis rather than 40.
COALESCE_SECONDS = 1.0
# A diagnosis that failed (apiserver away, throttled) is retried after 2, 4, 8 ... 60 seconds.
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# How often a symptom that its evidence does not bear out yet is looked at again.
UNCONFIRMED_RECHECK_SECONDS = 15.0
# A container that died again since the last diagnosis is new evidence (its restart count, its
# memory history to one more kill, its latest log): the workload is diagnosed again, at most
# this often, so that a cause named at the first kill on little history is revisited.
REFRESH_SECONDS = 30.0
# How long after a symptom's own expiry (DetectedSymptom.until) its pod is detected again: the
# clocks of the node that wrote the time and of this process may differ by a little.
EXPIRY_MARGIN_SECONDS = 5.0
# What retrying can cure: the apiserver unreachable, throttled, restarting or slow.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ClusterReadError,
    ApiException,
    urllib3.exceptions.HTTPError,
    OSError,
    TimeoutError,
)
# Reports found open at start-up are resolved only if nothing shows their symptom by then.
STARTUP_SETTLE_SECONDS = 15.0


@dataclass
class Tracker:
    """One workload with one symptom, as the watch stream shows it now."""

    target: WorkloadRef
    symptom: Symptom
    pods: dict[str, KubeObject] = field(default_factory=dict)
    sightings: dict[str, list[DetectedSymptom]] = field(default_factory=dict)
    first_seen: float | None = None
    healthy_since: float | None = None
    changed: bool = False
    failures: int = 0
    # When the last diagnosis ran (the controller's clock), the pods' restarts it saw, and
    # whether the next one is due only to a restart (then no sooner than REFRESH_SECONDS).
    diagnosed_at: float | None = None
    restarts_diagnosed: int = 0
    refresh_only: bool = False
    # The diagnosis loop, and the timer that resolves the report once all is healthy: a
    # sighting cancels the timer, so a report adopted at start-up never waits on it while its
    # workload still fails.
    task: asyncio.Task[None] | None = None
    resolution: asyncio.Task[None] | None = None

    @property
    def key(self) -> TrackerKey:
        return (self.target.namespace, self.target.kind, self.target.name, self.symptom)

    @property
    def active(self) -> bool:
        """Whether anything shows the symptom right now."""
        return bool(self.sightings)

    @property
    def report_name(self) -> str:
        return report_name(self.target.kind, self.target.name, self.symptom.value)

    @property
    def restarts(self) -> int:
        """The restarts of the pods that show the symptom now."""
        return sum(restarts(pod) for pod in self.pods.values())


def _age(sightings: list[DetectedSymptom]) -> float:
    """How long the object says its symptom has lasted (the earliest `since`), so that a grace
    period measures the symptom, not the state the kubelet shows this instant (a crash loop
    flips between terminated, back-off and running) nor the operator's own uptime."""
    known = [s.since for s in sightings if s.since is not None]
    if not known:
        return 0.0
    return max(0.0, (datetime.now(UTC) - min(known)).total_seconds())


class Controller:
    """Turns pod and Deployment watch events into report writes."""

    def __init__(
        self,
        settings: Settings,
        store: ReportStore,
        events: EventRecorder,
        reader_factory: Callable[[], ClusterReader],
        *,
        escalator: Escalator | None = None,
        retry: RetryPolicy | None = None,
        fingerprint: str | None = None,
        dry_run: Callable[[Patch], DryRun] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.store = store
        self.events = events
        self.reader_factory = reader_factory
        self.clock = clock
        self.options = Options.of(settings)
        self.dry_run = dry_run
        self.trackers: dict[TrackerKey, Tracker] = {}
        self._pod_keys: dict[tuple[str, str], set[TrackerKey]] = {}
        # The Jobs of each CronJob seen, by name: only the most recent run's failure counts.
        self._cron_runs: dict[tuple[str, str], dict[str, KubeObject]] = {}
        # The pods whose symptom ends by itself at a known time, and the task that looks again.
        self._expiries: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._deployment_uids: dict[tuple[str, str], str] = {}
        self._slots = asyncio.Semaphore(settings.max_concurrent_diagnoses)
        # Diagnoses wait on the API, not the CPU: a pool of their own, sized to the concurrency,
        # rather than asyncio's default of (cores + 4) threads shared with kopf.
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_concurrent_diagnoses + 2, thread_name_prefix="diagnosis"
        )
        # Every report as this process last listed or wrote it, so that a diagnosis need not
        # read its report back; complete once the start-up listing is done (one writer: this
        # operator, or the leader of its replicas).
        self._written: dict[tuple[str, str], dict[str, Any]] = {}
        self._all_reports_listed = False
        # The message of each report's last `Diagnosed` Event, so that one is emitted again
        # only when what it says changed.
        self._said: dict[tuple[str, str], str] = {}
        # One writer per report at a time: a diagnosis, a resolution and a delivery step each
        # read the latest report and write it whole, so they must not interleave.
        self._locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.outbox = Outbox(
            escalator,
            self,
            cluster_name=settings.cluster_name,
            retry=retry,
            fingerprint=fingerprint,
        )
        self.diagnoses = 0

    async def _off_loop(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking API work on the diagnosis pool, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(function, *args, **kwargs))

    def _count_open_reports(self) -> None:
        open_reports = sum(
            1
            for report in self._written.values()
            if (report.get("status") or {}).get("phase") == "Open"
        )
        metrics.OPEN_REPORTS.set(open_reports)

    async def _write_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        stored = await self._off_loop(self.store.apply_status, namespace, name, status)
        self._written[(namespace, name)] = stored
        self._count_open_reports()
        return stored

    async def _stored_report(self, namespace: str, name: str) -> dict[str, Any] | None:
        written = self._written.get((namespace, name))
        if written is not None or self._all_reports_listed:
            return written
        return await self._off_loop(self.store.get, namespace, name)

    # -- the outbox's access to reports (escalation.outbox.ReportAccess) -------------------------

    def current(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The report as this process last listed or wrote it."""
        return self._written.get((namespace, name))

    async def fetch(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The report from the cache, else from the API, once no one is writing it: the watch
        can bring a report's new status before the write that made it has returned."""
        async with self._locks[(namespace, name)]:
            return await self._stored_report(namespace, name)

    async def update_escalation(
        self, namespace: str, name: str, change: Callable[[Escalation], Escalation]
    ) -> dict[str, Any] | None:
        """Apply `change` to the report's latest escalation and write its status."""
        async with self._locks[(namespace, name)]:
            report = read_report(await self._stored_report(namespace, name))
            if report is None or report.status is None or report.status.escalation is None:
                return None
            escalation = change(report.status.escalation)
            if escalation == report.status.escalation:
                return self._written.get((namespace, name))
            status = report.status.model_copy(update={"escalation": escalation})
            return await self._write_status(namespace, name, status.to_api())

    # -- watch events ---------------------------------------------------------------------------

    async def on_pod(self, event_type: str | None, pod: KubeObject) -> None:
        """A pod was listed, added, modified or deleted."""
        namespace, name = str(meta(pod).get("namespace") or ""), name_of(pod)
        sightings = [] if event_type == "DELETED" else detect_pod(pod, datetime.now(UTC))
        target = self._workload_of(pod) if sightings else None
        current: dict[TrackerKey, list[DetectedSymptom]] = {}
        for sighting in sightings:
            assert target is not None
            key = (target.namespace, target.kind, target.name, sighting.symptom)
            current.setdefault(key, []).append(sighting)
            self._tracker(key, target).pods[name] = pod
        self._update((namespace, f"pod/{name}"), current)
        self._look_again_when_expired((namespace, name), pod, sightings)
        for key in current:
            tracker = self.trackers[key]
            if tracker.diagnosed_at is not None and tracker.restarts > tracker.restarts_diagnosed:
                if not tracker.changed:
                    tracker.refresh_only = True
                self._schedule_diagnosis(tracker, refresh=True)

    def _look_again_when_expired(
        self, source: tuple[str, str], pod: KubeObject, sightings: list[DetectedSymptom]
    ) -> None:
        """A symptom that ends by the passing of time (an eviction an hour old) ends with no
        change to the pod, so no watch event says so: detect the pod again when it expires."""
        pending = self._expiries.pop(source, None)
        if pending is not None:
            pending.cancel()
        ends = [s.until for s in sightings if s.until is not None]
        if not ends:
            return
        delay = max(0.0, (min(ends) - datetime.now(UTC)).total_seconds()) + EXPIRY_MARGIN_SECONDS

        async def again() -> None:
            await asyncio.sleep(delay)
            self._expiries.pop(source, None)
            await self.on_pod("MODIFIED", pod)

        self._expiries[source] = asyncio.create_task(again())

    async def on_job(self, event_type: str | None, job: KubeObject) -> None:
        """A Job was listed, added, modified or deleted. A CronJob's failure is its most recent
        run's: every event about one of its Jobs settles which of them counts."""
        namespace, name = str(meta(job).get("namespace") or "default"), name_of(job)
        owner = controller_of(job)
        cron_job = text(owner.get("name")) if owner and owner.get("kind") == "CronJob" else ""
        if not cron_job:
            sightings = [] if event_type == "DELETED" else detect_job(job)
            self._update_job(namespace, name, ref_of(job, "Job"), sightings)
            return
        runs = self._cron_runs.setdefault((namespace, cron_job), {})
        if event_type == "DELETED":
            runs.pop(name, None)
            self._update_job(namespace, name, None, [])
        else:
            runs[name] = job
        for run in list(runs.values()):
            target = job_target(run, runs.values())
            sightings = detect_job(run) if target is not None else []
            self._update_job(namespace, name_of(run), target, sightings)
        if not runs:
            self._cron_runs.pop((namespace, cron_job), None)

    def _update_job(
        self,
        namespace: str,
        name: str,
        target: WorkloadRef | None,
        sightings: list[DetectedSymptom],
    ) -> None:
        current: dict[TrackerKey, list[DetectedSymptom]] = {}
        for sighting in sightings:
            assert target is not None
            key = (target.namespace, target.kind, target.name, sighting.symptom)
            current.setdefault(key, []).append(sighting)
            self._tracker(key, target)
        self._update((namespace, f"job/{name}"), current)

    async def on_deployment(self, event_type: str | None, deployment: KubeObject) -> None:
        """A Deployment was listed, added, modified or deleted."""
        target = ref_of(deployment, "Deployment")
        if target.uid:
            self._deployment_uids[(target.namespace, target.name)] = target.uid
        sightings = [] if event_type == "DELETED" else detect_deployment(deployment)
        current: dict[TrackerKey, list[DetectedSymptom]] = {}
        for sighting in sightings:
            key = (target.namespace, target.kind, target.name, sighting.symptom)
            current.setdefault(key, []).append(sighting)
            self._tracker(key, target)
        self._update((target.namespace, f"deployment/{target.name}"), current)

    def _update(
        self, source: tuple[str, str], current: dict[TrackerKey, list[DetectedSymptom]]
    ) -> None:
        """Record what one object shows now, and schedule what follows from the change."""
        previous = self._pod_keys.get(source, set())
        member = source[1]
        for key, sightings in current.items():
            tracker = self.trackers[key]
            was_active = tracker.active
            is_new_member = member not in tracker.sightings
            tracker.sightings[member] = sightings
            tracker.healthy_since = None
            if not was_active:
                tracker.first_seen = self.clock() - _age(sightings)
            if is_new_member or not was_active:
                self._schedule_diagnosis(tracker)
        for key in previous - set(current):
            gone = self.trackers.get(key)
            if gone is None:
                continue
            gone.sightings.pop(member, None)
            gone.pods.pop(member.removeprefix("pod/"), None)
            if not gone.active:
                gone.healthy_since = self.clock()
                self._schedule_resolution(gone, self.settings.resolve_after_seconds)
        if current:
            self._pod_keys[source] = set(current)
        else:
            self._pod_keys.pop(source, None)

    def _tracker(self, key: TrackerKey, target: WorkloadRef) -> Tracker:
        tracker = self.trackers.get(key)
        if tracker is None:
            tracker = self.trackers[key] = Tracker(target, key[3])
        return tracker

    def _workload_of(self, pod: KubeObject) -> WorkloadRef:
        """The pod's top-level workload from its own metadata: no API call is needed."""
        return owning_workload(pod, known_uids=self._deployment_uids)

    # -- diagnosis ------------------------------------------------------------------------------

    def _schedule_diagnosis(self, tracker: Tracker, *, refresh: bool = False) -> None:
        if not refresh:
            tracker.refresh_only = False
        tracker.changed = True
        if tracker.resolution is not None and not tracker.resolution.done():
            tracker.resolution.cancel()
        if tracker.task is not None and not tracker.task.done():
            return
        tracker.task = asyncio.create_task(self._diagnose_when_due(tracker))

    async def _diagnose_when_due(self, tracker: Tracker) -> None:
        grace = self.settings.grace_for(tracker.symptom)
        while tracker.changed:
            first = tracker.first_seen if tracker.first_seen is not None else self.clock()
            due = first + grace
            if tracker.refresh_only and tracker.diagnosed_at is not None:
                due = max(due, tracker.diagnosed_at + REFRESH_SECONDS)
            await asyncio.sleep(max(0.0, due - self.clock()))
            if not tracker.active:
                return  # recovered within the grace period: nothing to report
            tracker.changed = False
            try:
                async with self._slots:
                    reported = await self._diagnose(tracker)
                tracker.failures = 0
                if not reported:
                    # Nothing bears the symptom out yet (no FailedMount for a pod still in
                    # ContainerCreating); what would is an Event, which changes no pod: look
                    # again later for as long as the symptom lasts.
                    tracker.changed = True
                    await asyncio.sleep(UNCONFIRMED_RECHECK_SECONDS)
                    continue
            except PlaybookError as failure:
                # A bug retrying cannot fix: said once, then tried again only on a change.
                tracker.failures = 0
                await self._record_failure(failure)
            except Exception as error:
                if not isinstance(error, TRANSIENT_ERRORS):
                    # Not the apiserver: a bug on the report's path; failing once says so.
                    metrics.DIAGNOSIS_ERRORS.labels(tracker.symptom.value).inc()
                    log.exception("diagnosis failed: not retried", target=str(tracker.target))
                    tracker.failures = 0
                    continue
                # The apiserver was briefly away or throttled: retry, never give up.
                metrics.DIAGNOSIS_FAILURES.inc()
                tracker.failures += 1
                tracker.changed = True
                log.exception(
                    "diagnosis failed; will retry",
                    target=str(tracker.target),
                    symptom=tracker.symptom.value,
                    attempt=tracker.failures,
                )
                await asyncio.sleep(
                    min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**tracker.failures)
                )
                continue
            if tracker.changed:
                await asyncio.sleep(COALESCE_SECONDS)

    async def _diagnose(self, tracker: Tracker) -> bool:
        """Diagnose the tracker's problem and write its report; False when the evidence does
        not bear the symptom out (yet), and nothing was written."""
        seen = Problem(
            target=tracker.target,
            symptom=tracker.symptom,
            sightings=[s for group in tracker.sightings.values() for s in group],
            pods=list(tracker.pods.values()),
        )
        reader = self.reader_factory()
        restarts_now = tracker.restarts
        problem = await self._off_loop(confirmed, reader, seen)
        if problem is None:
            return False
        started = time.perf_counter()
        diagnosis_id = uuid.uuid4().hex[:12]
        # Every log line of this diagnosis, here and in the outbox, carries its id.
        structlog.contextvars.bind_contextvars(
            diagnosis_id=diagnosis_id, target=str(tracker.target), symptom=tracker.symptom.value
        )
        finding = await self._off_loop(
            diagnose_problem, reader, problem, self.options, diagnosis_id
        )
        not_dry_run = NotDryRun.OFFLINE if self.dry_run is not None else NotDryRun.TURNED_OFF
        fresh = await self._with_dry_run(build_report(finding, not_dry_run=not_dry_run))
        key = (fresh.metadata.namespace, fresh.metadata.name)
        async with self._locks[key]:
            existing = await self._stored_report(*key)
            report, change = merge_with_existing(fresh, existing, datetime.now(UTC))
            if existing is None or self.store.object_differs(report, existing):
                # A new report has no uid yet, and its escalation's issue id derives from it.
                existing = await self._off_loop(self.store.apply_object, report)
                self._written[key] = existing
            assert report.status is not None
            escalation = self.outbox.after_diagnosis(
                report,
                finding.classification,
                uid=meta(existing).get("uid"),
                production=finding.production,
                change=change,
                siblings=self._siblings(finding.target, key),
            )
            status = report.status.model_copy(update={"escalation": escalation})
            await self._write_status(*key, status.to_api())
        self.diagnoses += 1
        tracker.diagnosed_at, tracker.restarts_diagnosed = self.clock(), restarts_now
        tracker.refresh_only = False
        cause = finding.conclusion.root_cause
        metrics.DIAGNOSES.labels(tracker.symptom.value, cause.category.value).inc()
        metrics.DIAGNOSIS_SECONDS.observe(time.perf_counter() - started)
        self._count_open_reports()
        log.info(
            "diagnosed",
            diagnosis_id=finding.diagnosis_id,
            report=f"{report.metadata.namespace}/{report.metadata.name}",
            category=cause.category.value,
            change=change.value,
            pods=len(problem.pods),
            seconds=round(time.perf_counter() - started, 3),
        )
        message = (
            f"DiagnosisReport {report.metadata.name}: {cause.category.value} — {cause.summary}"
        )
        if change is not ReportChange.UPDATED or self._said.get(key) != message:
            # The workload's Event says what its report says now ("3 of 3 pods", not the
            # "2 of 2" of the first diagnosis); an unchanged re-diagnosis writes none.
            await self._off_loop(
                self.events.emit, finding.target, reason="Diagnosed", message=message
            )
            self._said[key] = message
        return True

    def _siblings(self, target: WorkloadRef, key: tuple[str, str]) -> list[DiagnosisReport]:
        """The other reports of the same workload, as last written: a stuck rollout shares the
        issue of its pods' failure."""
        found = []
        for (namespace, name), stored in list(self._written.items()):
            spec_target = as_dict(as_dict(stored.get("spec")).get("target"))
            if namespace != key[0] or name == key[1] or spec_target.get("name") != target.name:
                continue
            report = read_report(stored)
            if report is not None and report.spec.target.kind == target.kind:
                found.append(report)
        return found

    async def _record_failure(self, failure: PlaybookError) -> None:
        """The report's condition DiagnosisFailed, a metric and an Event: a playbook bug is
        visible where on-call looks, and the last good diagnosis (if any) stays."""
        subject = failure.subject
        metrics.DIAGNOSIS_ERRORS.labels(subject.symptom.value).inc()
        log.error(
            "diagnosis failed: playbook error",
            error=str(failure),
            exc_info=failure.error,
        )
        name = report_name(subject.target.kind, subject.target.name, subject.symptom.value)
        key = (subject.target.namespace, name)
        try:
            async with self._locks[key]:
                existing = await self._stored_report(*key)
                status = failed_status(failure, existing, datetime.now(UTC))
                if status is not None:
                    await self._write_status(*key, status)
                else:
                    failed = failed_report(failure)
                    self._written[key] = await self._off_loop(self.store.apply, failed)
            await self._off_loop(
                self.events.emit,
                subject.target,
                reason="DiagnosisFailed",
                message=f"DiagnosisReport {name}: {failure}",
            )
        except TRANSIENT_ERRORS:
            log.warning("the failed diagnosis could not be recorded", exc_info=True)

    async def _with_dry_run(self, report: DiagnosisReport) -> DiagnosisReport:
        """The report with its patch checked by the apiserver under `dryRun=All`."""
        status = report.status
        recommendation = status.recommendation if status else None
        if status is None or recommendation is None or recommendation.patch is None:
            return report
        if self.dry_run is None:
            return report
        result = await self._off_loop(self.dry_run, recommendation.patch)
        checked = recommendation.model_copy(update={"dry_run": result})
        return report.model_copy(
            update={"status": status.model_copy(update={"recommendation": checked})}
        )

    # -- resolution -----------------------------------------------------------------------------

    def _schedule_resolution(self, tracker: Tracker, delay: float) -> None:
        if tracker.resolution is not None and not tracker.resolution.done():
            tracker.resolution.cancel()
        tracker.resolution = asyncio.create_task(self._resolve_when_due(tracker, delay))

    async def _resolve_when_due(self, tracker: Tracker, delay: float) -> None:
        await asyncio.sleep(delay)
        if tracker.active:
            return
        key = (tracker.target.namespace, tracker.report_name)
        existing = await self._stored_report(*key)
        summary = (
            f"No pod of {tracker.target.kind}/{tracker.target.name} has shown "
            f"{tracker.symptom.value} for {delay:.0f}s."
        )
        status = None
        if existing and as_dict(existing.get("status")).get("phase") == Phase.OPEN.value:
            resolution = await self._off_loop(self._resolution, tracker.target, existing, summary)
            async with self._locks[key]:
                latest = await self._stored_report(*key) or existing
                status = resolved_status(latest, datetime.now(UTC), resolution)
                resolved = read_report({**latest, "status": status}) if status else None
                owed = self.outbox.after_resolution(resolved) if resolved else None
                if status is not None and owed is not None:
                    status = {**status, "escalation": owed.to_api()}
                if status is not None:
                    await self._write_status(*key, status)
        if status is not None:
            log.info("resolved", report=f"{tracker.target.namespace}/{tracker.report_name}")
            await self._off_loop(
                self.events.emit,
                tracker.target,
                reason="Resolved",
                message=f"DiagnosisReport {tracker.report_name}: "
                + str(as_dict(status.get("resolution")).get("summary") or summary),
                warning=False,
            )
        self.trackers.pop(tracker.key, None)

    def _resolution(
        self, target: WorkloadRef, existing: dict[str, Any], summary: str
    ) -> Resolution:
        """What fixed it, from the workload as it is now (run off the event loop)."""
        reader = self.reader_factory()
        workload = reader.workload(target.kind, target.namespace, target.name)
        replica_sets = replica_sets_of(target, reader) if target.kind == "Deployment" else []
        failing = as_dict(existing.get("status")).get("failingRevision")
        known = FailingRevision.model_validate(failing, extra="ignore") if failing else None
        return resolution_of(known, workload, replica_sets, summary=summary)

    async def adopt_open_reports(self) -> None:
        """After a restart: an open report whose workload healed while the operator was down
        is resolved once the initial listing has had time to show it is still failing."""
        selection = self.settings.namespace_selection()
        exact = selection.exact()
        namespaces: list[str | None] = list(exact) if exact else [None]
        for namespace in namespaces:
            for report in await self._off_loop(self.store.list, namespace):
                if not selection.matches(str(meta(report).get("namespace"))):
                    continue  # another instance's shard: not ours to resolve or escalate
                key = (str(meta(report).get("namespace")), name_of(report))
                self._written[key] = report
                await self._retry_refused(key, report)
                status, spec = report.get("status") or {}, report.get("spec") or {}
                target = spec.get("target") or {}
                if status.get("phase") != "Open" or not target.get("name"):
                    continue
                try:
                    symptom = Symptom(str(spec.get("symptom")))
                except ValueError:
                    continue
                ref = WorkloadRef(
                    str(meta(report).get("namespace")),
                    str(target.get("kind")),
                    str(target["name"]),
                    str(target.get("apiVersion") or "apps/v1"),
                    target.get("uid"),
                )
                tracker = self._tracker((ref.namespace, ref.kind, ref.name, symptom), ref)
                if not tracker.active and tracker.resolution is None:
                    tracker.healthy_since = self.clock()
                    delay = max(STARTUP_SETTLE_SECONDS, self.settings.resolve_after_seconds)
                    self._schedule_resolution(tracker, delay)
        self._all_reports_listed = True

    async def _retry_refused(self, key: tuple[str, str], report: dict[str, Any]) -> None:
        """A Failed escalation that Linear refused with other settings than this process has
        is tried again at once (a person fixed the key or the team, and restarted)."""
        model = read_report(report)
        escalation = model.status.escalation if model and model.status else None
        if escalation is not None and self.outbox.after_settings_change(escalation) is not None:
            await self.update_escalation(
                *key, lambda current: self.outbox.after_settings_change(current) or current
            )

    async def close(self) -> None:
        """Cancel every pending timer and wait for running diagnoses to stop."""
        tasks = [
            task
            for tracker in self.trackers.values()
            for task in (tracker.task, tracker.resolution)
            if task is not None and not task.done()
        ] + [task for task in self._expiries.values() if not task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._pool.shutdown(wait=False, cancel_futures=True)
