"""The CreateContainerConfigError runbook, case by case: given a container the kubelet cannot
create and the objects it names, the report names this cause, with this evidence and this
change; a Secret's data never appears in it.

Messages are the kubelet's (pkg/kubelet/kubelet_pods.go, kuberuntime): `secret "ledger-db" not
found`, `configmap "indexer-settings" not found`, `couldn't find key password in Secret
realnode/db-credentials`, `container has runAsNonRoot and image will run as root (pod: ...,
container: ...)`; in `Failed` events with the `Error: ` prefix.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

import kubeobjects
from kubetriage.detect import detect_pod
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.containerconfig.messages import read_message
from kubetriage.policy import Touch
from recordings import recorded, words

NS = "checkout"
APP = "api"
CAPTURED = "2025-05-28T19:30:00Z"
CREATED = "2025-05-28T19:20:00Z"
SECRET_VALUE = "sk_live_51Hx9TQ2eZvKYlo2C"  # planted: it must never reach a report

NON_ROOT = (
    'container has runAsNonRoot and image will run as root (pod: "api-7f6d5c9b84-x2k9m_checkout'
    '(4c1f0b7e-2f7a-4e86-9a3c-1d2e3f4a5b6c)", container: api)'
)
NON_NUMERIC = (
    "container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is "
    'non-root (pod: "api-7f6d5c9b84-x2k9m_checkout(4c1f0b7e)", container: api)'
)
RESERVED = (
    'failed to reserve container name "api_api-7f6d5c9b84-x2k9m_checkout_4c1f0b7e_0": name '
    '"api_api-7f6d5c9b84-x2k9m_checkout_4c1f0b7e_0" is reserved for "e4f0fa2d87b8"'
)


@pytest.mark.parametrize(
    ("message", "category", "kind", "name", "key"),
    [
        (
            'secret "ledger-db" not found',
            Category.CONFIG_MISSING_SECRET,
            "Secret",
            "ledger-db",
            None,
        ),
        (
            'Error: configmap "indexer-settings" not found',
            Category.CONFIG_MISSING_CONFIG_MAP,
            "ConfigMap",
            "indexer-settings",
            None,
        ),
        (
            "couldn't find key password in Secret realnode/db-credentials",
            Category.CONFIG_MISSING_KEY,
            "Secret",
            "db-credentials",
            "password",
        ),
        (
            "Error: couldn't find key LOG_LEVEL in ConfigMap checkout/api-settings",
            Category.CONFIG_MISSING_KEY,
            "ConfigMap",
            "api-settings",
            "LOG_LEVEL",
        ),
        (NON_ROOT, Category.CONFIG_RUN_AS_NON_ROOT, None, None, None),
        (NON_NUMERIC, Category.CONFIG_RUN_AS_NON_ROOT, None, None, None),
        (RESERVED, Category.CONFIG_INVALID, None, None, None),
    ],
)
def test_the_kubelets_message_names_the_category_and_the_object(
    message: str, category: Category, kind: str | None, name: str | None, key: str | None
) -> None:
    read = read_message(message)
    assert (read.category, read.kind, read.name, read.key) == (category, kind, name, key)
    assert not read.text.startswith("Error: ")


def test_a_non_numeric_image_user_is_named() -> None:
    assert read_message(NON_NUMERIC).user == "nginx"


# --- the cluster ---------------------------------------------------------------------------------


def app_container(**fields: Any) -> dict[str, Any]:
    return kubeobjects.container(APP, "registry.acme.internal/checkout/api:3.4.0", **fields)


def pod(
    name: str,
    container: dict[str, Any],
    *,
    message: str | None,
    reason: str = "CreateContainerConfigError",
    pod_security: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A pod of deployment/api whose container waits to be created."""
    spec: dict[str, Any] = {"containers": [container], "nodeName": "node-1"}
    if pod_security is not None:
        spec["securityContext"] = pod_security
    the_pod = kubeobjects.pod(
        name,
        namespace=NS,
        labels={"app": APP, "pod-template-hash": "7f6d5c9b84"},
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-7f6d5c9b84"),
        spec=spec,
        status={
            "phase": "Pending",
            "containerStatuses": [
                kubeobjects.container_status(APP, kubeobjects.waiting(reason, message))
            ],
        },
    )
    the_pod["metadata"]["creationTimestamp"] = CREATED
    return the_pod


def failed(pod_name: str, message: str, count: int = 40) -> dict[str, Any]:
    return kubeobjects.event(
        "Pod",
        pod_name,
        "Failed",
        f"Error: {message}",
        namespace=NS,
        count=count,
        field_path=f"spec.containers{{{APP}}}",
    )


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return kubeobjects.kube_object("Secret", name, namespace=NS, type="Opaque", data=encoded)


def diagnose_config(*items: dict[str, Any]) -> Finding:
    reader = kubeobjects.snapshot_reader(*items, namespace=NS, captured_at=CAPTURED)
    problems = [
        p for p in find_problems(reader) if p.symptom is Symptom.CREATE_CONTAINER_CONFIG_ERROR
    ]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


def report_text(finding: Finding) -> str:
    recommendation = finding.conclusion.recommendation
    return words(finding) + json.dumps(recommendation.to_api() if recommendation else {})


SECRET_ENV = {
    "env": [
        {
            "name": "STRIPE_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "checkout-secrets", "key": "stripe-api-key"}},
        }
    ]
}
CONFIG_ENV = {
    "env": [
        {
            "name": "LOG_LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": "api-settings", "key": "LOG_LEVEL"}},
        }
    ]
}


# --- detection -----------------------------------------------------------------------------------


def test_a_container_never_created_waits_since_its_pod_was_created() -> None:
    the_pod = pod("api-a", app_container(), message='secret "ledger-db" not found')
    (sighting,) = detect_pod(the_pod, datetime(2025, 5, 28, 19, 30, tzinfo=UTC))
    assert sighting.symptom is Symptom.CREATE_CONTAINER_CONFIG_ERROR
    assert sighting.since == datetime(2025, 5, 28, 19, 20, tzinfo=UTC)


# --- the runbook ---------------------------------------------------------------------------------


def test_a_missing_secret_key_is_named_and_the_secrets_data_never_appears() -> None:
    message = f"couldn't find key stripe-api-key in Secret {NS}/checkout-secrets"
    finding = diagnose_config(
        pod("api-a", app_container(**SECRET_ENV), message=message),
        failed("api-a", message),
        secret("checkout-secrets", **{"stripe-key": SECRET_VALUE}),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.CONFIG_MISSING_KEY
    assert root.confidence == 0.95
    assert "Secret checkout-secrets has no key stripe-api-key, which env STRIPE_API_KEY uses" in (
        root.summary
    )
    assert [
        e.summary for e in finding.investigation.evidence if e.source is EvidenceSource.SECRET
    ] == ["Secret checkout-secrets exists in namespace checkout (its data is not read)"]
    text = report_text(finding)
    assert SECRET_VALUE not in text
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in text
    assert "stripe-key" not in text  # not even the Secret's key names


def test_a_configmap_key_spelt_differently_is_a_reference_to_point_at_the_existing_key() -> None:
    message = f"couldn't find key LOG_LEVEL in ConfigMap {NS}/api-settings"
    finding = diagnose_config(
        pod("api-a", app_container(**CONFIG_ENV), message=message),
        kubeobjects.config_map("api-settings", namespace=NS, data={"log-level": "info"}),
    )
    assert finding.conclusion.root_cause.category is Category.CONFIG_MISSING_KEY
    assert "its keys are log-level" in finding.conclusion.root_cause.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    (container,) = json.loads(recommendation.patch.content)["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["env"] == [
        {
            "name": "LOG_LEVEL",
            "valueFrom": {"configMapKeyRef": {"name": "api-settings", "key": "log-level"}},
        }
    ]
    assert finding.conclusion.scope.touches == frozenset({Touch.ENV})


def test_a_missing_secret_is_created_with_the_keys_the_container_reads() -> None:
    env = {
        "env": [
            {
                "name": "DB_USER",
                "valueFrom": {"secretKeyRef": {"name": "ledger-db", "key": "username"}},
            },
            {
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "ledger-db", "key": "password"}},
            },
        ]
    }
    message = 'secret "ledger-db" not found'
    finding = diagnose_config(
        pod("api-a", app_container(**env), message=message),
        failed("api-a", message, count=34),
        kubeobjects.kube_object("Secret", "other", namespace=NS, data={}),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.CONFIG_MISSING_SECRET
    assert "Secret ledger-db, which env DB_PASSWORD and env DB_USER use, does not exist" in (
        root.summary
    )
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.command == (
        f"kubectl create secret generic ledger-db -n {NS} --from-literal=password=<value> "
        "--from-literal=username=<value>"
    )
    assert finding.conclusion.scope.touches == frozenset({Touch.SECRET})


@pytest.mark.parametrize(
    ("pod_security", "container_security", "said"),
    [
        ({"runAsNonRoot": True}, None, "runAsNonRoot is set in the pod's securityContext"),
        (
            {"runAsNonRoot": False},
            {"runAsNonRoot": True, "runAsUser": 0},
            "runAsUser is 0 (root) in the container's securityContext",
        ),
    ],
)
def test_run_as_non_root_says_which_setting_requires_it_and_keeps_the_guard(
    pod_security: dict[str, Any], container_security: dict[str, Any] | None, said: str
) -> None:
    fields = {"securityContext": container_security} if container_security else {}
    finding = diagnose_config(
        pod("api-a", app_container(**fields), message=NON_ROOT, pod_security=pod_security)
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.CONFIG_RUN_AS_NON_ROOT
    assert said in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "Keep runAsNonRoot" in recommendation.summary
    assert finding.conclusion.scope.touches == frozenset({Touch.SECURITY_CONTEXT})


def test_a_name_the_runtime_still_reserves_is_quoted_and_points_at_the_node() -> None:
    finding = diagnose_config(
        pod("api-a", app_container(), message=RESERVED, reason="CreateContainerError")
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.CONFIG_INVALID
    assert "the runtime says 'failed to reserve container name" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "node-1" in recommendation.summary
    assert recommendation.command == f"kubectl delete pod api-a -n {NS}"


# --- what the real node wrote --------------------------------------------------------------------


def test_the_real_kubelets_missing_secret_key_is_named_without_the_secrets_data() -> None:
    """The real node's recording: env DB_PASSWORD from key `password` of Secret db-credentials,
    which holds only `username`."""
    planted = kubeobjects.kube_object(
        "Secret",
        "db-credentials",
        namespace="realnode",
        type="Opaque",
        data={"username": base64.b64encode(SECRET_VALUE.encode()).decode()},
    )
    finding = recorded("missing-secret-key", extra=(planted,))
    root = finding.conclusion.root_cause
    assert (finding.symptom, root.category) == (
        Symptom.CREATE_CONTAINER_CONFIG_ERROR,
        Category.CONFIG_MISSING_KEY,
    )
    text = report_text(finding)
    assert (
        "kubelet Failed (x47): Error: couldn't find key password in Secret realnode/db-credentials"
        in text
    )
    assert "Secret db-credentials exists in namespace realnode (its data is not read)" in text
    assert SECRET_VALUE not in text
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in text
