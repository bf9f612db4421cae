"""Reads and writes of DiagnosisReports and the operator's Events: the only writes it makes.

Reports are written with server-side apply (field manager `kubetriage`), metadata and spec
first, then status through the status subresource, so a human's `spec.acknowledged` is never
overwritten and a crash between the two leaves a report that the next pass completes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.models import (
    API_GROUP,
    API_VERSION,
    PLURAL,
    DiagnosisReport,
    DryRun,
    DryRunResult,
    Patch,
    PatchType,
)
from kubetriage.timeutil import format_time
from kubetriage.workloads import WorkloadRef

FIELD_MANAGER = "kubetriage"
APPLY = "application/apply-patch+yaml"
EVENT_SOURCE = "kubetriage"


class ReportStore:
    """DiagnosisReports and Events through the Kubernetes API (synchronous; run off-loop)."""

    def __init__(self, api: ApiClient, *, request_timeout: float = 10.0) -> None:
        self._custom = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._timeout = request_timeout

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A report as stored, None when there is none."""
        try:
            found = self._custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, name, _request_timeout=self._timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], found)

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every report (of a namespace, or of all)."""
        if namespace is None:
            found = self._custom.list_cluster_custom_object(
                API_GROUP, API_VERSION, PLURAL, _request_timeout=self._timeout
            )
        else:
            found = self._custom.list_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, PLURAL, _request_timeout=self._timeout
            )
        return list(cast(dict[str, Any], found).get("items") or [])

    def apply(self, report: DiagnosisReport) -> dict[str, Any]:
        """Create or update a report: metadata and spec, then status."""
        body = report.to_api()
        status = body.pop("status", None)
        name, namespace = report.metadata.name, report.metadata.namespace
        stored = self._apply(self._custom.patch_namespaced_custom_object, namespace, name, body)
        if status is not None:
            stored = self.apply_status(namespace, name, status)
        return cast(dict[str, Any], stored)

    def _apply(self, patch: Any, namespace: str, name: str, body: dict[str, Any]) -> Any:
        """Server-side apply as field manager `kubetriage`, taking over conflicting fields: the
        operator is the only writer of what it applies."""
        return patch(
            API_GROUP, API_VERSION, namespace, PLURAL, name, body,
            field_manager=FIELD_MANAGER, force=True, _content_type=APPLY,
            _request_timeout=self._timeout,
        )  # fmt: skip

    def apply_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Write a report's status (server-side apply on the status subresource)."""
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": "DiagnosisReport",
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        stored = self._apply(
            self._custom.patch_namespaced_custom_object_status, namespace, name, body
        )
        return cast(dict[str, Any], stored)

    def emit_event(
        self, target: WorkloadRef, *, reason: str, message: str, warning: bool = True
    ) -> None:
        """A core/v1 Event on the workload, so `kubectl describe` points at the report.

        The name is derived from the target and reason so that a burst updates one Event
        instead of creating many; a failure to emit is not a failure of the diagnosis.
        """
        now = format_time(datetime.now(UTC))
        name = f"{target.name}.kubetriage-{reason.lower()}"[:253]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": target.namespace},
            "involvedObject": {
                "apiVersion": target.api_version,
                "kind": target.kind,
                "name": target.name,
                "namespace": target.namespace,
                **({"uid": target.uid} if target.uid else {}),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": EVENT_SOURCE},
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": EVENT_SOURCE,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        # The typed client wants model objects; it serializes plain dicts just the same.
        core: Any = self._core
        try:
            core.create_namespaced_event(target.namespace, event, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status != 409:
                raise
            existing = core.read_namespaced_event(
                name, target.namespace, _request_timeout=self._timeout
            ).to_dict()
            patch = {
                "message": event["message"],
                "lastTimestamp": now,
                "count": int(existing.get("count") or 1) + 1,
            }
            core.patch_namespaced_event(
                name, target.namespace, patch, _request_timeout=self._timeout
            )


_PATCH_CONTENT_TYPES = {
    PatchType.STRATEGIC: "application/strategic-merge-patch+json",
    PatchType.MERGE: "application/merge-patch+json",
    PatchType.JSON: "application/json-patch+json",
}


def dry_run_patch(api: ApiClient, patch: Patch, *, timeout: float = 10.0) -> DryRun:
    """Send a recommended patch with `dryRun=All`: the apiserver runs admission and validation
    and persists nothing. The answer says whether the change would apply as written."""
    apps, core, batch = client.AppsV1Api(api), client.CoreV1Api(api), client.BatchV1Api(api)
    methods: dict[str, Any] = {
        "Deployment": apps.patch_namespaced_deployment,
        "StatefulSet": apps.patch_namespaced_stateful_set,
        "DaemonSet": apps.patch_namespaced_daemon_set,
        "ReplicaSet": apps.patch_namespaced_replica_set,
        "Job": batch.patch_namespaced_job,
        "CronJob": batch.patch_namespaced_cron_job,
        "Pod": core.patch_namespaced_pod,
    }
    method = methods.get(patch.target.kind)
    if method is None or not patch.target.namespace:
        return DryRun(result=DryRunResult.SKIPPED, message=f"no dry run for {patch.target.kind}")
    try:
        body = json.loads(patch.content)
        response = method(
            patch.target.name, patch.target.namespace, body, dry_run="All",
            field_manager=FIELD_MANAGER, _content_type=_PATCH_CONTENT_TYPES[patch.type],
            _preload_content=False, _request_timeout=timeout,
        )  # fmt: skip
        response.release_conn()
    except ApiException as error:
        if error.status == 403:
            # Not a verdict on the patch: the operator was not granted `patch` (the chart's
            # default), so say how to turn dry runs on instead of calling the change unsafe.
            return DryRun(
                result=DryRunResult.SKIPPED,
                message=f"dry run not permitted ({_api_reason(error)}); grant patch on "
                f"{patch.target.kind} (chart value dryRun.enabled) or turn dry runs off "
                "(KUBETRIAGE_DRY_RUN=false)",
            )
        return DryRun(result=DryRunResult.FAILED, message=_api_reason(error))
    except (ValueError, OSError) as error:
        return DryRun(result=DryRunResult.SKIPPED, message=f"dry run not possible: {error}"[:2048])
    return DryRun(result=DryRunResult.PASSED, message="accepted by the apiserver (dryRun=All)")


def _api_reason(error: ApiException) -> str:
    try:
        message = str(json.loads(error.body or "{}").get("message") or "")
    except ValueError:
        message = ""
    return f"HTTP {error.status}: {message or error.reason}"[:2048]
