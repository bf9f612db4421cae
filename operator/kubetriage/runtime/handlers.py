"""kopf wiring, and nothing else: every decision is in `controller.Controller` and the outbox.

Pods, Deployments and Jobs are watched with event handlers only, which kopf never persists anything
for: no annotations, no finalizers, no status on the watched objects. Kopf's posting of log
messages as Events is off, so the operator's only writes are its reports and its own Events.

The operator's own DiagnosisReports are where kopf's persistence acts (DESIGN.md section 2):
the escalation each one owes Linear is delivered by a change handler on `status.escalation`
(and a resume handler at start-up), which raises `kopf.TemporaryError` with the delay Linear
asked for or the next back-off step. kopf keeps each handler's retries and delays in the
report's annotations (prefix `kubetriage.io`), so delivery continues after a restart or on a
new leader exactly where it stopped, and never gives up.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from typing import Any

import kopf
from kubernetes.client import ApiClient

from kubetriage.clients.kube import LiveClusterReader, SharedCache
from kubetriage.clients.kubeconfig import cluster_client
from kubetriage.clients.prometheus import PrometheusHistory
from kubetriage.clients.scheduled import ScheduledPods
from kubetriage.config import Settings
from kubetriage.escalation.escalator import Escalator, LinearSettings
from kubetriage.escalation.linear import LinearClient
from kubetriage.escalation.outbox import DeliveryDeferred, RetryPolicy, settings_fingerprint
from kubetriage.models import API_GROUP, API_VERSION, PLURAL
from kubetriage.reports.dry_run import dry_run_patch
from kubetriage.reports.events import EventRecorder
from kubetriage.reports.store import ReportStore
from kubetriage.runtime import metrics
from kubetriage.runtime.controller import Controller

# kopf's annotations on the operator's own reports.
PREFIX = "kubetriage.io"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf and build the controller."""
    settings.posting.enabled = False
    settings.peering.standalone = True
    settings.watching.server_timeout = 300
    # The initial listing in pages: at 10,000 pods one unpaged LIST is ~40 MB of JSON held and
    # parsed at once, and the peak it leaves in the heap stays for the process's life.
    settings.watching.chunk_size = 500
    settings.networking.request_timeout = 30
    # Handler progress and the last-handled state on the operator's own reports only.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    options = Settings()
    api = api_client()
    shared = SharedCache()
    history = memory_history(options)
    memo.scheduled = ScheduledPods()
    # A shard watches only its namespaces, but a node's room counts every namespace's pods:
    # there the index is incomplete, and the reader lists pods instead.
    scheduled = memo.scheduled.copy if not options.namespaces else None
    memo.controller = Controller(
        options,
        ReportStore(api),
        EventRecorder(api),
        lambda: LiveClusterReader(
            api,
            cluster_name=options.cluster_name,
            shared=shared,
            history=history,
            scheduled=scheduled,
        ),
        escalator=_escalator(options),
        retry=RetryPolicy(
            base=options.linear_retry_base_seconds,
            max=options.linear_retry_max_seconds,
            failed=options.linear_failed_retry_seconds,
        ),
        fingerprint=_fingerprint(options),
        dry_run=functools.partial(dry_run_patch, api) if options.dry_run else None,
    )
    # Import the API client's modules and open a connection now, not in the first diagnosis.
    await asyncio.to_thread(memo.controller.reader_factory().namespace, "default")
    await memo.controller.adopt_open_reports()


def _fingerprint(options: Settings) -> str | None:
    if options.linear_api_key is None or not options.linear_team_id:
        return None
    return settings_fingerprint(
        options.linear_api_key.get_secret_value(), options.linear_team_id, options.linear_api_url
    )


def _escalator(options: Settings) -> Escalator | None:
    """Linear, when both a key and a team are configured; else escalations stay in reports."""
    if options.linear_api_key is None or not options.linear_team_id:
        return None
    client = LinearClient(
        options.linear_api_key.get_secret_value(),
        url=options.linear_api_url,
        timeout=options.linear_timeout_seconds,
        # One layer of retries: the report's own, driven by kopf; none inside a request.
        max_attempts=1,
        on_outcome=lambda outcome: metrics.LINEAR_REQUESTS.labels(outcome).inc(),
    )
    settings = LinearSettings(
        options.linear_team_id,
        tuple(options.linear_label_ids),
        reopen_within=timedelta(seconds=options.linear_reopen_within_seconds),
        resolved_state=options.linear_resolved_state,
    )
    return Escalator(client, settings, options.cluster_name)


def memory_history(options: Settings) -> PrometheusHistory | None:
    """Memory history from Prometheus, when a URL is configured; one client for all readers."""
    if not options.prometheus_url:
        return None
    return PrometheusHistory(
        options.prometheus_url,
        window=timedelta(seconds=options.prometheus_window_seconds),
        min_step=timedelta(seconds=options.prometheus_step_seconds),
        timeout=options.prometheus_timeout_seconds,
        on_request=lambda outcome: metrics.PROMETHEUS_REQUESTS.labels(outcome).inc(),
    )


def api_client() -> ApiClient:
    """In a pod, the ServiceAccount; elsewhere $KUBECONFIG or ~/.kube/config (as kopf does).
    Raises NoClusterError, saying why in one line, when there is neither."""
    return cluster_client()


@kopf.on.event("", "v1", "pods")
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every pod event, including the initial listing (type None)."""
    metrics.WATCH_EVENTS.labels("Pod", event.get("type") or "LISTED").inc()
    memo.scheduled.observe(event.get("type"), event["object"])
    await memo.controller.on_pod(event.get("type"), event["object"])


@kopf.on.event("apps", "v1", "deployments")
async def deployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every Deployment event, including the initial listing."""
    metrics.WATCH_EVENTS.labels("Deployment", event.get("type") or "LISTED").inc()
    await memo.controller.on_deployment(event.get("type"), event["object"])


@kopf.on.event("batch", "v1", "jobs")
async def job_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Every Job event, including the initial listing (JobFailed)."""
    metrics.WATCH_EVENTS.labels("Job", event.get("type") or "LISTED").inc()
    await memo.controller.on_job(event.get("type"), event["object"])


def _owes_linear(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    controller: Controller | None = getattr(memo, "controller", None)
    return controller is not None and controller.outbox.due(dict(body))


async def _deliver(body: kopf.Body, memo: kopf.Memo, retry: int) -> None:
    controller: Controller = memo.controller
    try:
        await controller.outbox.deliver(body.metadata.namespace or "", body.metadata.name or "",
                                        retry=retry)  # fmt: skip
    except DeliveryDeferred as deferred:
        raise kopf.TemporaryError(str(deferred), delay=deferred.delay) from None


@kopf.on.resume(API_GROUP, API_VERSION, PLURAL, when=_owes_linear)
async def resume_delivery(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """At start-up (and on a new leader): every report that still owes Linear something."""
    await _deliver(body, memo, retry)


@kopf.on.field(API_GROUP, API_VERSION, PLURAL, field="status.escalation", when=_owes_linear)
async def deliver_escalation(body: kopf.Body, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """A report's escalation changed and owes Linear something: deliver it."""
    await _deliver(body, memo, retry)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Cancel pending diagnoses on shutdown."""
    if hasattr(memo, "controller"):
        await memo.controller.close()
    logging.getLogger("kubetriage").info("stopped")
