"""Building and resolving reports: what a report says it did with its patch, and what fixed it.

Given the OOM-killed scenario (whose recommendation is a patch), the report's `dryRun` says why
the patch was not checked by the apiserver, in the words of the path that built it. Given the
revision the failing pods ran and the workload once healthy, the resolution names the template
change, the revision and who made it, or says that nothing in the workload changed.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.models import DryRunResult, FailingRevision
from kubetriage.reports.build import NotDryRun, build_report, resolution_of


def oom_finding() -> Finding:
    (finding,) = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / "oom-limit-too-low.json"))
    assert finding.conclusion.recommendation is not None
    assert finding.conclusion.recommendation.patch is not None
    return finding


@pytest.mark.parametrize(
    ("why", "message"),
    [
        (NotDryRun.OFFLINE, "not dry-run: offline diagnosis"),
        (
            NotDryRun.TURNED_OFF,
            "not dry-run: dry runs are turned off (KUBETRIAGE_DRY_RUN=false, "
            "chart value dryRun.enabled=false)",
        ),
        (NotDryRun.SCAN, "not dry-run: kubetriage scan only reads"),
    ],
    ids=["offline", "turned-off", "scan"],
)
def test_a_patch_not_dry_run_says_why_in_the_words_of_its_path(
    why: NotDryRun, message: str
) -> None:
    report = build_report(oom_finding(), not_dry_run=why)
    assert report.status is not None
    recommendation = report.status.recommendation
    assert recommendation is not None
    assert recommendation.dry_run is not None
    assert recommendation.dry_run.result is DryRunResult.SKIPPED
    assert recommendation.dry_run.message == message


def test_an_offline_report_says_it_is_offline_by_default() -> None:
    report = build_report(oom_finding())
    assert report.status is not None
    assert report.status.recommendation is not None
    assert report.status.recommendation.dry_run is not None
    assert report.status.recommendation.dry_run.message == "not dry-run: offline diagnosis"


# -- what fixed it ---------------------------------------------------------------------------------


def replica_set(revision: int, image: str, env: list[str]) -> dict[str, Any]:
    template_hash = f"hash{revision}"
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"api-{template_hash}",
            "namespace": "shop",
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Deployment", "name": "api", "controller": True}],
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": "api", "image": image, "env": [{"name": n} for n in env]}
                    ]
                }
            }
        },
    }


def deployment_changed_by(manager: str, generation: int) -> dict[str, Any]:
    """The Deployment as the apiserver shows it, `manager` the last to write its template."""
    template: dict[str, Any] = {"f:spec": {"f:template": {"f:spec": {"f:containers": {}}}}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "api",
            "namespace": "shop",
            "generation": generation,
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update",
                 "subresource": "status", "time": "2025-03-13T14:58:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}},
                {"manager": "helm", "operation": "Update", "time": "2025-03-13T10:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": template},
                {"manager": manager, "operation": "Update", "time": "2025-03-13T14:50:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": template},
            ],
        },
        "spec": {"template": replica_set(5, "x", [])["spec"]["template"]},
    }  # fmt: skip


def test_a_resolution_names_the_template_change_its_revision_and_who_made_it() -> None:
    failing = replica_set(4, "registry.example/shop/api:2.0.0", ["DB_URL", "DEBUG"])
    fixed = replica_set(5, "registry.example/shop/api:2.0.1", ["DB_URL"])
    resolution = resolution_of(
        FailingRevision(revision="4", replica_set="api-hash4", generation=6),
        deployment_changed_by("kubectl-set", generation=7),
        [fixed, failing],
        summary="No pod of Deployment/api has shown CrashLoopBackOff for 300s.",
    )
    assert resolution.revision == "5"
    assert resolution.changed_by == "kubectl-set"
    assert [(c.field, c.before, c.after) for c in resolution.changes] == [
        ("containers[api].image", "registry.example/shop/api:2.0.0",
         "registry.example/shop/api:2.0.1"),
        ("containers[api].env (names)", "DB_URL, DEBUG", "DB_URL"),
    ]  # fmt: skip
    assert resolution.summary == (
        "Fixed by revision 5 (kubectl-set): containers[api].image: api 2.0.0 -> 2.0.1; "
        "containers[api].env (names): -DEBUG. "
        "No pod of Deployment/api has shown CrashLoopBackOff for 300s."
    )


def test_a_resolution_says_when_nothing_in_the_workload_changed() -> None:
    failing = replica_set(4, "registry.example/shop/api:2.0.0", ["DB_URL"])
    resolution = resolution_of(
        FailingRevision(revision="4", replica_set="api-hash4", generation=6),
        deployment_changed_by("helm", generation=6),
        [failing],
        summary="No pod of Deployment/api has shown CrashLoopBackOff for 300s.",
    )
    assert resolution.changes == []
    assert resolution.revision == "4"
    assert resolution.changed_by is None
    assert resolution.summary == (
        "Nothing in the workload changed (still revision 4): the cause was outside it. "
        "No pod of Deployment/api has shown CrashLoopBackOff for 300s."
    )


def test_a_resolution_of_a_workload_without_revisions_compares_generations() -> None:
    statefulset = {
        "kind": "StatefulSet",
        "metadata": {
            "name": "db", "generation": 3,
            "managedFields": [{"manager": "argocd-controller", "operation": "Apply",
                               "time": "2025-03-13T14:55:00Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {"f:template": {}}}}],
        },
    }  # fmt: skip
    resolution = resolution_of(
        FailingRevision(generation=2), statefulset, [], summary="Healthy for 300s."
    )
    assert resolution.changed_by == "argocd-controller"
    assert resolution.summary == (
        "The workload's spec changed (generation 2 -> 3, argocd-controller). Healthy for 300s."
    )
