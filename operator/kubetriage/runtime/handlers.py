"""kopf wiring, and nothing else: every decision is in `controller.Controller`.

Pods and Deployments are watched with event handlers only, which kopf never persists anything
for: no annotations, no finalizers, no status on the watched objects. Kopf's posting of log
messages as Events is off, so the operator's only writes are its reports and its own Events.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import timedelta
from typing import Any

import kopf
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from kubetriage.clients.kube import LiveClusterReader, SharedCache
from kubetriage.clients.prometheus import PrometheusHistory
from kubetriage.clients.scheduled import ScheduledPods
from kubetriage.config import Settings
from kubetriage.escalation.escalator import Escalator, LinearSettings
from kubetriage.escalation.linear import LinearClient
from kubetriage.reports.dry_run import dry_run_patch
from kubetriage.reports.events import EventRecorder
from kubetriage.reports.store import ReportStore
from kubetriage.runtime import metrics
from kubetriage.runtime.controller import Controller


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
        dry_run=functools.partial(dry_run_patch, api) if options.dry_run else None,
    )
    # Import the API client's modules and open a connection now, not in the first diagnosis.
    await asyncio.to_thread(memo.controller.reader_factory().namespace, "default")
    await memo.controller.adopt_open_reports()


def _escalator(options: Settings) -> Escalator | None:
    """Linear, when both a key and a team are configured; else escalations stay in reports."""
    if options.linear_api_key is None or not options.linear_team_id:
        return None
    client = LinearClient(
        options.linear_api_key.get_secret_value(),
        url=options.linear_api_url,
        timeout=options.linear_timeout_seconds,
        on_outcome=lambda outcome: metrics.LINEAR_REQUESTS.labels(outcome).inc(),
    )
    settings = LinearSettings(options.linear_team_id, tuple(options.linear_label_ids))
    return Escalator(client, settings, options.cluster_name)


def memory_history(options: Settings) -> PrometheusHistory | None:
    """Memory history from Prometheus, when a URL is configured; one client for all readers."""
    if not options.prometheus_url:
        return None
    return PrometheusHistory(
        options.prometheus_url,
        window=timedelta(seconds=options.prometheus_window_seconds),
        timeout=options.prometheus_timeout_seconds,
        on_request=lambda outcome: metrics.PROMETHEUS_REQUESTS.labels(outcome).inc(),
    )


def api_client() -> ApiClient:
    """In a pod, the ServiceAccount; elsewhere $KUBECONFIG or ~/.kube/config (as kopf does)."""
    try:
        kube_config.load_incluster_config()  # type: ignore[no-untyped-call]
    except kube_config.ConfigException:
        api: ApiClient = kube_config.new_client_from_config()  # type: ignore[no-untyped-call]
        return api
    return ApiClient()


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


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Cancel pending diagnoses on shutdown."""
    if hasattr(memo, "controller"):
        await memo.controller.close()
    logging.getLogger("kubetriage").info("stopped")
