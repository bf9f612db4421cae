"""The server-side dry run of a recommended patch (`dryRun=All`): the apiserver runs admission
and validation and persists nothing, so the report can say whether the change would apply as
written (DESIGN.md section 4)."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.models import DryRun, DryRunResult, Patch, PatchType
from kubetriage.reports.store import FIELD_MANAGER

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
        "ResourceQuota": core.patch_namespaced_resource_quota,
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
        # Read the answer to its end before the connection goes back to the pool: a connection
        # put back with an answer unread is reused, and the next request on it reads that
        # answer's tail as its own status line (ProtocolError, BadStatusLine).
        response.drain_conn()
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
