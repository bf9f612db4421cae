"""The controller between watch events and report writes, over a snapshot and an in-memory store.

Given a crash-looping Deployment whose playbook has a bug (it raises), the diagnosis fails
once and visibly, a report condition and a metric, and is not retried until the workload
changes. Given an apiserver that is briefly away, the diagnosis is retried until it succeeds.
The store and the event recorder are in-memory stand-ins: the live path of the same controller
is tested on the real control plane in tests/integration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from helpers import SCENARIOS_DIR, wait_until_async
from kubetriage.clients.kube import ClusterReader, ClusterReadError
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.config import Settings
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.time import format_time
from kubetriage.models import DiagnosisReport, Symptom
from kubetriage.playbooks import base
from kubetriage.playbooks.crashloop import CrashLoopPlaybook
from kubetriage.reports.store import ReportStore
from kubetriage.runtime import controller as controller_module
from kubetriage.runtime.controller import Controller

SCENARIO = SCENARIOS_DIR / "crashloop-application-error.json"


class MemoryStore:
    """The ReportStore's interface over a dict: what the controller wrote, in order."""

    def __init__(self) -> None:
        self.reports: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[dict[str, Any]] = []

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.reports.get((namespace, name))

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [r for (ns, _), r in self.reports.items() if namespace in (None, ns)]

    def apply(self, report: DiagnosisReport) -> dict[str, Any]:
        body = report.to_api()
        key = (report.metadata.namespace, report.metadata.name)
        stored = {**body, "metadata": {**body["metadata"], "uid": "uid-" + key[1]}}
        self.reports[key] = stored
        self.writes.append(stored)
        return stored

    def apply_object(self, report: DiagnosisReport) -> dict[str, Any]:
        body = report.to_api()
        body.pop("status", None)
        key = (report.metadata.namespace, report.metadata.name)
        prior = self.reports.get(key, {})
        stored = {**prior, **body, "metadata": {**body["metadata"], "uid": "uid-" + key[1]}}
        self.reports[key] = stored
        self.writes.append(stored)
        return stored

    object_differs = staticmethod(ReportStore.object_differs)

    def apply_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        stored = {**self.reports[(namespace, name)], "status": status}
        self.reports[(namespace, name)] = stored
        self.writes.append(stored)
        return stored


class MemoryEvents:
    """The EventRecorder's interface: the Events the controller emitted."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, str]] = []

    def emit(self, target: WorkloadRef, *, reason: str, message: str, warning: bool = True) -> None:
        self.emitted.append((reason, message))


def crash_looping_pods() -> list[dict[str, Any]]:
    document = json.loads(SCENARIO.read_text())
    return [i for i in document["items"] if i.get("kind") == "Pod"]


def controller(reader: Callable[[], ClusterReader]) -> tuple[Controller, MemoryStore, MemoryEvents]:
    store, events = MemoryStore(), MemoryEvents()
    settings = Settings(grace_seconds=0, resolve_after_seconds=300, dry_run=False)
    return Controller(settings, store, events, reader), store, events  # type: ignore[arg-type]


def counter(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


async def test_a_playbook_bug_fails_the_diagnosis_once_with_a_condition_and_a_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []

    def broken(
        self: base.Playbook, context: base.Context, investigation: base.Investigation
    ) -> Any:
        calls.append(context.target.name)
        raise KeyError("lastState")

    monkeypatch.setattr(CrashLoopPlaybook, "run", broken)
    reader = SnapshotReader.from_file(SCENARIO)
    ctl, store, events = controller(lambda: reader)
    before = counter("kubetriage_diagnosis_errors_total", symptom="CrashLoopBackOff")
    for pod in crash_looping_pods():
        await ctl.on_pod(None, pod)

    report = await wait_until_async(
        lambda: store.get("shop", "deployment-orders-crashloopbackoff"), what="a report"
    )
    await asyncio.sleep(3)  # a retry would have come by now (the first back-off is 2 s)
    await ctl.close()

    assert calls == ["orders"], "a deterministic failure must not be retried"
    status = report["status"]
    assert "rootCause" not in status, "a failed diagnosis names no cause"
    (condition,) = status["conditions"]
    assert condition["type"] == "Diagnosed"
    assert condition["status"] == "False"
    assert condition["reason"] == "DiagnosisFailed"
    assert "CrashLoopBackOff playbook failed: KeyError: 'lastState'" in condition["message"]
    assert counter("kubetriage_diagnosis_errors_total", symptom="CrashLoopBackOff") == before + 1
    assert [reason for reason, _ in events.emitted] == ["DiagnosisFailed"]


async def test_an_apiserver_that_is_briefly_away_is_retried_until_the_report_is_written() -> None:
    reader = SnapshotReader.from_file(SCENARIO)
    failures = [ClusterReadError("apiserver away")] * 2

    class Flaky:
        def __getattr__(self, name: str) -> Any:
            if name == "events" and failures:
                raise failures.pop()
            return getattr(reader, name)

    ctl, store, _ = controller(Flaky)
    for pod in crash_looping_pods():
        await ctl.on_pod(None, pod)
    report = await wait_until_async(
        lambda: store.get("shop", "deployment-orders-crashloopbackoff"),
        what="a report after the apiserver came back",
        timeout=30,
    )
    await ctl.close()
    assert failures == []
    assert report["status"]["rootCause"]["category"] == "CrashLoop.ApplicationError"
    assert report["spec"]["symptom"] == Symptom.CRASH_LOOP_BACK_OFF.value


def looping_pod(state: dict[str, Any], *, last_crash: datetime, restarts: int) -> dict[str, Any]:
    """The `orders` pod of the scenario, its container at one moment of its crash loop."""
    pod = copy.deepcopy(crash_looping_pods()[0])
    (status,) = pod["status"]["containerStatuses"]
    status.update(
        state=state,
        restartCount=restarts,
        lastState={"terminated": {"exitCode": 1, "reason": "Error",
                                  "startedAt": format_time(last_crash - timedelta(seconds=1)),
                                  "finishedAt": format_time(last_crash)}},
    )  # fmt: skip
    return pod


async def test_the_grace_period_counts_from_when_the_loop_began_not_the_last_state() -> None:
    reader = SnapshotReader.from_file(SCENARIO)
    store, events = MemoryStore(), MemoryEvents()
    settings = Settings(grace_seconds_crashloopbackoff=60, resolve_after_seconds=300)
    ctl = Controller(settings, store, events, lambda: reader)  # type: ignore[arg-type]
    crashed = datetime.now(UTC) - timedelta(minutes=5)
    # The kubelet shows the same loop as terminated, then back-off, then briefly running.
    moments: list[dict[str, Any]] = [
        {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": format_time(crashed)}},
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 2m40s restarting"}},
        {"running": {"startedAt": format_time(datetime.now(UTC))}},
    ]
    for state in moments:
        await ctl.on_pod("MODIFIED", looping_pod(state, last_crash=crashed, restarts=6))
    # Crash-looping for five minutes already: past its 60 s grace, diagnosed at once.
    report = await wait_until_async(
        lambda: store.get("shop", "deployment-orders-crashloopbackoff"),
        what="a report well before the 60 s grace would end",
        timeout=20,
    )
    await ctl.close()
    assert report["status"]["rootCause"]["category"].startswith("CrashLoop.")
    assert ctl.diagnoses == 1


async def test_after_a_restart_an_open_report_of_a_failing_workload_is_diagnosed_again() -> None:
    """SIGKILL between the report's write and its escalation: the restarted operator finds an
    Open report without `status.escalation`; the workload still fails, so it is diagnosed
    again (and its escalation planned), not left waiting for a resolution that never comes."""
    reader = SnapshotReader.from_file(SCENARIO)
    ctl, store, _ = controller(lambda: reader)
    for pod in crash_looping_pods():
        await ctl.on_pod(None, pod)
    first = await wait_until_async(
        lambda: store.get("shop", "deployment-orders-crashloopbackoff"), what="a report"
    )
    await ctl.close()
    left = {**first, "status": {k: v for k, v in first["status"].items() if k != "escalation"}}
    store.reports[("shop", "deployment-orders-crashloopbackoff")] = left
    store.writes.clear()

    restarted, _, _ = controller(lambda: reader)
    restarted.store = store  # type: ignore[assignment]
    await restarted.adopt_open_reports()
    for pod in crash_looping_pods():
        await restarted.on_pod(None, pod)  # kopf's initial listing after the start
    report = await wait_until_async(
        lambda: (
            (store.get("shop", "deployment-orders-crashloopbackoff") or {})
            .get("status", {})
            .get("escalation")
        ),
        what="the escalation planned after the restart",
    )
    await restarted.close()
    # The same plan the first run made: a test without Linear records that nothing was sent.
    assert report["state"] == first["status"]["escalation"]["state"] == "NotSent"
    assert restarted.diagnoses == 1


async def test_the_diagnosed_event_follows_the_report_when_its_summary_changes() -> None:
    """The workload's `Diagnosed` Event says what the report says now: a third pod joining
    the crash loop moves both from "2 of 2" to "3 of 3"."""
    reader = SnapshotReader.from_file(SCENARIO)
    ctl, store, events = controller(lambda: reader)
    (looping,) = [p for p in crash_looping_pods() if p["metadata"]["name"].endswith("zpqsc")]
    pods = []
    for suffix in ("a", "b", "c"):
        pod = copy.deepcopy(looping)
        pod["metadata"]["name"] += f"-{suffix}"
        pods.append(pod)
    for pod in pods[:2]:
        await ctl.on_pod(None, pod)
    await wait_until_async(lambda: ctl.diagnoses == 1, what="the first diagnosis")
    for pod in pods[2:]:
        await ctl.on_pod(None, pod)
    await wait_until_async(lambda: ctl.diagnoses == 2, what="the diagnosis with every pod")
    await ctl.close()
    report = store.get("shop", "deployment-orders-crashloopbackoff")
    assert report is not None
    said = [message for reason, message in events.emitted if reason == "Diagnosed"]
    assert len(said) == 2
    assert said[0] != said[1]
    assert report["status"]["rootCause"]["summary"] in said[-1]


async def test_a_container_that_dies_again_is_new_evidence_diagnosed_again_at_most_so_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cause named at the first kill, on little history, is revisited when the container dies
    again (its restart count grows), no sooner than REFRESH_SECONDS after the last diagnosis; a
    pod event that shows no new death diagnoses nothing."""
    monkeypatch.setattr(controller_module, "REFRESH_SECONDS", 0.6)
    reader = SnapshotReader.from_file(SCENARIO)
    ctl, _, _ = controller(lambda: reader)
    (looping,) = [p for p in crash_looping_pods() if p["metadata"]["name"].endswith("zpqsc")]
    await ctl.on_pod(None, looping)
    await wait_until_async(lambda: ctl.diagnoses == 1, what="the first diagnosis")
    first = asyncio.get_running_loop().time()
    await ctl.on_pod("MODIFIED", copy.deepcopy(looping))  # the same status again
    await asyncio.sleep(1.0)
    assert ctl.diagnoses == 1
    died_again = copy.deepcopy(looping)
    died_again["status"]["containerStatuses"][0]["restartCount"] += 1
    await ctl.on_pod("MODIFIED", died_again)
    await wait_until_async(lambda: ctl.diagnoses == 2, what="the diagnosis after one more death")
    await ctl.close()
    assert asyncio.get_running_loop().time() - first >= 0.6


async def test_a_delivery_woken_by_the_watch_mid_write_reads_the_report_once_written() -> None:
    """The watch can deliver a report's new status before the write that made it returns
    (seen live: kopf's handler ran while the status PATCH was in flight, read no escalation,
    and the report stayed Pending until a restart). A read for delivery waits for the writer."""
    loop = asyncio.get_running_loop()
    reads: list[concurrent.futures.Future[dict[str, Any] | None]] = []

    class WatchedStore(MemoryStore):
        def apply_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
            # The watch event for this write reaches the operator before the write returns.
            reads.append(asyncio.run_coroutine_threadsafe(ctl.fetch(namespace, name), loop))
            time.sleep(0.3)
            return super().apply_status(namespace, name, status)

    reader = SnapshotReader.from_file(SCENARIO)
    settings = Settings(grace_seconds=0, resolve_after_seconds=300, dry_run=False)
    store = WatchedStore()
    ctl = Controller(settings, store, MemoryEvents(), lambda: reader)  # type: ignore[arg-type]
    for pod in crash_looping_pods():
        await ctl.on_pod(None, pod)
    await wait_until_async(lambda: reads, what="a status write")
    read = await asyncio.wrap_future(reads[0])
    await ctl.close()

    assert read is not None, "the delivery read no report"
    stored = store.get(*key_of(read))
    assert stored is not None
    assert read.get("status") == stored["status"], "it read the report half-written"


def key_of(report: dict[str, Any]) -> tuple[str, str]:
    return report["metadata"]["namespace"], report["metadata"]["name"]


async def test_an_eviction_that_becomes_history_resolves_its_report_with_no_watch_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An evicted pod stays Failed and never changes: when the eviction is an hour old the
    controller looks at the pod again by itself, and the report turns Resolved."""
    monkeypatch.setattr(controller_module, "EXPIRY_MARGIN_SECONDS", 0.0)
    evicted_at = datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=2)
    message = (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 91416Ki. "
        "Container app was using 1843476Ki, request is 512Mi, has larger consumption of memory. "
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "worker-1", "namespace": "shop", "uid": "pod-uid"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "worker:1"}]},
        "status": {
            "phase": "Failed",
            "reason": "Evicted",
            "message": message,
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "TerminationByKubelet",
                    "lastTransitionTime": format_time(evicted_at),
                }
            ],
        },
    }
    reader = SnapshotReader.from_document({"apiVersion": "v1", "kind": "List", "items": [pod]})
    store, events = MemoryStore(), MemoryEvents()
    settings = Settings(grace_seconds=0, resolve_after_seconds=0.5, dry_run=False)
    ctl = Controller(settings, store, events, lambda: reader)  # type: ignore[arg-type]
    await ctl.on_pod("ADDED", pod)
    name = "pod-worker-1-evicted"
    report = await wait_until_async(
        lambda: store.get("shop", name), what="the eviction's report", timeout=20
    )
    assert report["status"]["rootCause"]["category"] == "Eviction.MemoryPressure"
    assert report["status"]["phase"] == "Open"
    resolved = await wait_until_async(
        lambda: (
            (store.get("shop", name) or {}).get("status", {}).get("phase") == "Resolved"
            and store.get("shop", name)
        ),
        what="the report Resolved once the eviction is an hour old",
        timeout=20,
    )
    await ctl.close()
    assert resolved["status"]["phase"] == "Resolved"


def cron_run(name: str, created: str, *, failed: bool) -> dict[str, Any]:
    """A Job of CronJob nightly-backup, failed on its backoff limit or still running."""
    conditions = (
        [
            {
                "type": "Failed",
                "status": "True",
                "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit",
                "lastTransitionTime": created,
            }
        ]
        if failed
        else []
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ops",
            "creationTimestamp": created,
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly-backup",
                 "controller": True}
            ],
        },
        "spec": {"backoffLimit": 2},
        "status": {"conditions": conditions, "failed": 3 if failed else 0},
    }  # fmt: skip


async def test_a_cronjobs_failed_run_is_reported_until_a_newer_run_starts() -> None:
    """The CronJob's report follows its most recent run: a failed run is reported on the
    CronJob; when the next run starts, the failed one is history and the report resolves."""
    failed = cron_run("nightly-backup-100", "2025-03-17T01:30:00Z", failed=True)
    reader = SnapshotReader.from_document({"apiVersion": "v1", "kind": "List", "items": [failed]})
    store, events = MemoryStore(), MemoryEvents()
    settings = Settings(grace_seconds=0, resolve_after_seconds=0.5, dry_run=False)
    ctl = Controller(settings, store, events, lambda: reader)  # type: ignore[arg-type]
    await ctl.on_job("ADDED", failed)
    name = "cronjob-nightly-backup-jobfailed"
    report = await wait_until_async(lambda: store.get("ops", name), what="the report", timeout=20)
    assert report["spec"]["target"]["kind"] == "CronJob"
    assert report["status"]["rootCause"]["category"] == "Job.BackoffLimitExceeded"
    await ctl.on_job("ADDED", cron_run("nightly-backup-200", "2025-03-18T01:30:00Z", failed=False))
    resolved = await wait_until_async(
        lambda: (
            (store.get("ops", name) or {}).get("status", {}).get("phase") == "Resolved"
            and store.get("ops", name)
        ),
        what="the report Resolved once a newer run started",
        timeout=20,
    )
    await ctl.close()
    assert resolved["status"]["phase"] == "Resolved"
