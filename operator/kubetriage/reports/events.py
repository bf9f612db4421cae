"""The operator's Events on the workloads it diagnoses, so `kubectl describe` points at the report.

One Event per workload and reason (`Diagnosed`, `Resolved`): its name is derived from both, and a
repeat bumps `count` instead of creating another (40 diagnoses read as one line).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
import urllib3.exceptions
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.time import format_time

EVENT_SOURCE = "kubetriage"

log = structlog.get_logger("kubetriage.events")


class EventRecorder:
    """Events through the Kubernetes API (synchronous; run off-loop)."""

    def __init__(self, api: ApiClient, *, request_timeout: float = 10.0) -> None:
        self._core = client.CoreV1Api(api)
        self._timeout = request_timeout

    def emit(self, target: WorkloadRef, *, reason: str, message: str, warning: bool = True) -> None:
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
        try:
            self._create_or_bump(name, target.namespace, event, now)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            # A namespace being deleted refuses new Events (403), an apiserver may be away: the
            # report holds what the Event would have said.
            log.warning(
                "event not emitted",
                reason=reason,
                target=f"{target.kind.lower()}/{target.name} -n {target.namespace}",
                error=str(getattr(error, "reason", None) or error),
            )

    def _create_or_bump(self, name: str, namespace: str, event: dict[str, Any], now: str) -> None:
        # The typed client wants model objects; it serializes plain dicts just the same.
        core: Any = self._core
        try:
            core.create_namespaced_event(namespace, event, _request_timeout=self._timeout)
        except ApiException as error:
            if error.status != 409:
                raise
            existing = core.read_namespaced_event(
                name, namespace, _request_timeout=self._timeout
            ).to_dict()
            patch = {
                "message": event["message"],
                "lastTimestamp": now,
                "count": int(existing.get("count") or 1) + 1,
            }
            core.patch_namespaced_event(name, namespace, patch, _request_timeout=self._timeout)
