"""Reads and writes of DiagnosisReports: with the operator's Events, the only writes it makes.

Reports are written with server-side apply (field manager `kubetriage`), metadata and spec
first, then status through the status subresource, so a human's `spec.acknowledged` is never
overwritten and a crash between the two leaves a report that the next pass completes.
"""

from __future__ import annotations

import json
from typing import Any, cast

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.k8s.access import as_dict, as_list
from kubetriage.models import API_GROUP, API_VERSION, PLURAL, DiagnosisReport

# The operator's field manager for its reports (and for the dry runs of its patches).
FIELD_MANAGER = "kubetriage"
APPLY = "application/apply-patch+yaml"


class ReportStore:
    """DiagnosisReports through the Kubernetes API (synchronous; run off-loop)."""

    def __init__(self, api: ApiClient, *, request_timeout: float = 10.0) -> None:
        self._custom = client.CustomObjectsApi(api)
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
        stored = self.apply_object(report)
        if report.status is not None:
            stored = self.apply_status(
                report.metadata.namespace, report.metadata.name, report.status.to_api()
            )
        return stored

    def apply_object(self, report: DiagnosisReport) -> dict[str, Any]:
        """Create or update a report's metadata and spec (the status subresource is separate)."""
        body = report.to_api()
        body.pop("status", None)
        name, namespace = report.metadata.name, report.metadata.namespace
        stored = self._apply(self._custom.patch_namespaced_custom_object, namespace, name, body)
        return cast(dict[str, Any], stored)

    @staticmethod
    def object_differs(report: DiagnosisReport, stored: dict[str, Any]) -> bool:
        """Whether writing the report's metadata and spec would change what the cluster holds:
        when not, a diagnosis writes its status alone (one request instead of two)."""
        body = report.to_api()
        metadata, spec = as_dict(stored.get("metadata")), as_dict(stored.get("spec"))
        ours = {k: v for k, v in body["spec"].items() if k != "acknowledged"}
        theirs = {k: v for k, v in spec.items() if k in ours}
        labels = as_dict(metadata.get("labels"))
        wanted = body["metadata"]
        return (
            ours != theirs
            or any(labels.get(k) != v for k, v in (wanted.get("labels") or {}).items())
            or as_list(metadata.get("ownerReferences")) != wanted.get("ownerReferences", [])
        )

    def _apply(self, patch: Any, namespace: str, name: str, body: dict[str, Any]) -> Any:
        """Server-side apply as field manager `kubetriage`, taking over conflicting fields: the
        operator is the only writer of what it applies. The answer is read raw: the typed
        client deserializes an apply of the main resource to None, and the stored object is
        what the caller keeps (its uid, for one)."""
        response = patch(
            API_GROUP, API_VERSION, namespace, PLURAL, name, body,
            field_manager=FIELD_MANAGER, force=True, _content_type=APPLY,
            _request_timeout=self._timeout, _preload_content=False,
        )  # fmt: skip
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

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
