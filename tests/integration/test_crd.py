"""The DiagnosisReport CRD on a real apiserver: established, validated, and readable by people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetriage import models
from localcluster import LocalCluster

GROUP, VERSION, PLURAL = models.API_GROUP, models.API_VERSION, models.PLURAL


def sample_report(
    namespace: str, name: str = "deployment-api-crashloopbackoff"
) -> models.DiagnosisReport:
    """A fully populated report, as the operator would write it."""
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    return models.DiagnosisReport(
        metadata=models.ObjectMeta(
            name=name,
            namespace=namespace,
            labels={
                "kubetriage.io/symptom": "CrashLoopBackOff",
                "kubetriage.io/category": "CrashLoop.DependencyUnavailable",
            },
        ),
        spec=models.Spec(
            target=models.Target(api_version="apps/v1", kind="Deployment", name="api"),
            symptom=models.Symptom.CRASH_LOOP_BACK_OFF,
            container="app",
        ),
        status=models.Status(
            phase=models.Phase.OPEN,
            severity=models.Severity.CRITICAL,
            root_cause=models.RootCause(
                category=models.Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
                summary="api cannot reach postgres:5432; Service postgres has no ready endpoints",
                confidence=0.9,
            ),
            alternatives=[
                models.RootCause(
                    category=models.Category.CRASHLOOP_APPLICATION_ERROR,
                    summary="exit code 1 after a connection error",
                    confidence=0.2,
                )
            ],
            evidence=[
                models.Evidence(
                    source=models.EvidenceSource.LOGS,
                    summary="dial tcp 10.0.0.12:5432: connect: connection refused",
                    detail="last 3 lines of the previous log",
                )
            ],
            steps=[
                models.Step(name="read previous logs", outcome="connection refused to postgres")
            ],
            recommendation=models.Recommendation(
                summary="Restore the postgres Service's endpoints",
                command="kubectl get endpoints postgres -n shop",
                dry_run=models.DryRun(result=models.DryRunResult.SKIPPED, message="no patch"),
                classes=[models.EscalationClass.PRODUCTION],
                escalation_reason="namespace shop is production",
            ),
            escalation=models.Escalation(
                state=models.EscalationState.OPENED, identifier="OPS-123", attempts=1
            ),
            affected_pods=["api-7d9f-abcde"],
            occurrences=3,
            first_seen=now,
            last_seen=now,
            conditions=[
                models.Condition(
                    type="Diagnosed",
                    status="True",
                    reason="RootCauseFound",
                    last_transition_time=now,
                )
            ],
        ),
    )


def create(api: client.ApiClient, report: models.DiagnosisReport) -> dict[str, Any]:
    """Create the report, then write its status through the status subresource."""
    custom = client.CustomObjectsApi(api)
    body = report.to_api()
    status = body.pop("status", None)
    created = cast(
        dict[str, Any],
        custom.create_namespaced_custom_object(
            GROUP, VERSION, report.metadata.namespace, PLURAL, body
        ),
    )
    if status is not None:
        created["status"] = status
        created = cast(
            dict[str, Any],
            custom.replace_namespaced_custom_object_status(
                GROUP, VERSION, report.metadata.namespace, PLURAL, report.metadata.name, created
            ),
        )
    return created


def test_crd_is_established_with_its_names(cluster: LocalCluster, crd: str) -> None:
    out = cluster.kubectl("api-resources", "--api-group=kubetriage.io", "--no-headers").stdout
    assert out.split()[:5] == [
        "diagnosisreports",
        "diag,dr",
        "kubetriage.io/v1alpha1",
        "true",
        "DiagnosisReport",
    ]


def test_a_report_from_the_models_round_trips_through_the_apiserver(
    api: client.ApiClient, crd: str, namespace: str
) -> None:
    report = sample_report(namespace)
    stored = create(api, report)
    # What comes back parses into the same models: the apiserver pruned nothing we wrote.
    assert models.Status.model_validate(stored["status"]) == report.status
    assert models.Spec.model_validate(stored["spec"]) == report.spec
    assert stored["spec"]["acknowledged"] is False  # the CRD's default applied


def test_kubectl_get_diag_shows_the_printer_columns(
    cluster: LocalCluster, api: client.ApiClient, crd: str, namespace: str
) -> None:
    create(api, sample_report(namespace))
    header, row = cluster.kubectl("get", "diag", "-n", namespace).stdout.splitlines()
    assert header.split() == [
        "NAME",
        "TARGET",
        "SYMPTOM",
        "ROOT",
        "CAUSE",
        "SEVERITY",
        "PHASE",
        "ESCALATION",
        "ISSUE",
        "AGE",
    ]
    assert row.split()[:8] == [
        "deployment-api-crashloopbackoff",
        "api",
        "CrashLoopBackOff",
        "CrashLoop.DependencyUnavailable",
        "critical",
        "Open",
        "Opened",
        "OPS-123",
    ]
    wide = cluster.kubectl("get", "dr", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert {"KIND", "CONFIDENCE", "OCCURRENCES"} <= set(wide.split())


def test_a_report_kept_without_linear_says_so_in_kubectl_get_diag(
    cluster: LocalCluster, api: client.ApiClient, crd: str, namespace: str
) -> None:
    """Without Linear configured the escalation is kept in the report: the ESCALATION column
    says NotSent and the ISSUE column is empty (no issue exists), never a Pending that waits
    forever."""
    report = sample_report(namespace, name="deployment-api-notsent")
    assert report.status is not None
    report.status.escalation = models.Escalation(
        state=models.EscalationState.NOT_SENT, reason="Linear is not configured"
    )
    create(api, report)
    _, row = cluster.kubectl(
        "get", "diag", "-n", namespace, "deployment-api-notsent"
    ).stdout.splitlines()
    cells = row.split()
    assert cells[5:7] == ["Open", "NotSent"], row
    assert len(cells) == 8, f"the ISSUE column should be empty: {row}"


@pytest.mark.parametrize(
    ("part", "field", "value"),
    [
        ("spec", "symptom", "Exploded"),
        ("status", "severity", "urgent"),
        ("status", "phase", "Closed"),
        ("status", "rootCause", {"category": "Made.Up", "summary": "x", "confidence": 0.5}),
        (
            "status",
            "rootCause",
            {"category": "CrashLoop.Segfault", "summary": "x", "confidence": 2},
        ),
    ],
    ids=["symptom", "severity", "phase", "category", "confidence"],
)
def test_the_apiserver_rejects_a_malformed_report(
    api: client.ApiClient, crd: str, namespace: str, part: str, field: str, value: object
) -> None:
    custom = client.CustomObjectsApi(api)
    report = sample_report(namespace, name=f"bad-{field.lower()}").to_api()
    if part == "spec":
        report["spec"][field] = value
        with pytest.raises(ApiException) as error:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, report)
    else:
        report["status"][field] = value
        with pytest.raises(ApiException) as error:
            create_raw_status(custom, namespace, report)
    assert error.value.status == 422
    assert field in str(error.value.body)


def create_raw_status(
    custom: client.CustomObjectsApi, namespace: str, report: dict[str, Any]
) -> None:
    status = report.pop("status")
    created = cast(
        dict[str, Any],
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, report),
    )
    created["status"] = status
    custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, created["metadata"]["name"], created
    )


def test_a_reports_target_cannot_be_changed(
    api: client.ApiClient, crd: str, namespace: str
) -> None:
    custom = client.CustomObjectsApi(api)
    create(api, sample_report(namespace))
    patch = {"spec": {"target": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"}}}
    with pytest.raises(ApiException) as error:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, "deployment-api-crashloopbackoff", patch
        )
    assert error.value.status == 422
    assert "cannot change" in str(error.value.body)
