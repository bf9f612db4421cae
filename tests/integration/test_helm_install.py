"""`helm install` into the real control plane, then the operator with exactly the chart's rights.

Given the chart installed as a platform team installs it (the Linear key in a Secret they
created), the operator runs with a token of the chart's ServiceAccount from the TokenRequest API
and the environment the chart's Deployment gives its container. A crash-looping production
Deployment then gets its DiagnosisReport and one Linear issue, and the apiserver refused none
of the operator's requests. An RBAC matrix proves what that ServiceAccount may not do. Upgrading
with a changed CRD updates it; uninstalling leaves nothing cluster-scoped behind but the CRD,
and only when the user asked to keep it.

The chart installs into its own control plane: the session cluster's CRD is applied from crds/
by kubectl, and Helm must own this one.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterkit import OperatorProcess, get_json, report_of, wait_for_report
from helpers import REPO_ROOT, unavailable, wait_until
from linear_standin import DEFAULT_TEAM_ID, LinearStandin
from localcluster import Binaries, ControlPlaneError, LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration

CHART = REPO_ROOT / "deploy" / "helm" / "kubetriage"
RELEASE = "kubetriage"
SYSTEM_NAMESPACE = "kubetriage-system"
PRODUCTION = "payments"
SERVICE_ACCOUNT = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{RELEASE}"
CRD_NAME = "diagnosisreports.kubetriage.io"
LINEAR_SECRET = "linear-credentials"


@pytest.fixture(scope="module")
def install_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A control plane of its own, with no CRD: the chart installs it."""
    try:
        binaries = Binaries.find()
    except ControlPlaneError as error:
        unavailable(str(error))
    with LocalCluster(tmp_path_factory.mktemp("helm-cluster"), binaries, nodes=1) as local:
        yield local


def helm(cluster: LocalCluster, *args: str) -> str:
    """Run helm against the cluster as its admin; a failure shows helm's own message."""
    result = subprocess.run(
        [str(cluster.binaries["helm"]), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def can_i(cluster: LocalCluster, verb: str, resource: str, namespace: str | None) -> bool:
    """`kubectl auth can-i --as` the chart's ServiceAccount (a SubjectAccessReview)."""
    scope = ["-n", namespace] if namespace else ["--all-namespaces"]
    result = cluster.kubectl(
        "auth", "can-i", verb, resource, *scope, f"--as={SERVICE_ACCOUNT}", check=False
    )
    answer = result.stdout.strip()
    assert answer in {"yes", "no"}, f"can-i {verb} {resource}: {answer!r} {result.stderr}"
    return answer == "yes"


@pytest.fixture(scope="module")
def standin() -> Iterator[LinearStandin]:
    with LinearStandin() as server:
        yield server


@pytest.fixture(scope="module")
def release(install_cluster: LocalCluster, standin: LinearStandin) -> str:
    """The chart installed with Linear on, its key in a Secret the user made beforehand."""
    cluster = install_cluster
    cluster.kubectl("create", "namespace", SYSTEM_NAMESPACE)
    cluster.kubectl(
        "create", "secret", "generic", LINEAR_SECRET, "-n", SYSTEM_NAMESPACE,
        f"--from-literal=api-key={standin.api_key}",
    )  # fmt: skip
    helm(
        cluster, "install", RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE, "--wait",
        "--timeout", "3m",
        "--set", "clusterName=helm-e2e",
        # No grace period, to keep the test short; it changes no API call the operator makes.
        "--set", "graceSeconds=0",
        "--set", "linear.enabled=true",
        "--set", f"linear.existingSecret={LINEAR_SECRET}",
        "--set", f"linear.teamId={DEFAULT_TEAM_ID}",
        "--set", f"linear.apiUrl={standin.url}",
    )  # fmt: skip
    return RELEASE


def service_account_token(cluster: LocalCluster) -> str:
    """A token of the chart's ServiceAccount, minted by the TokenRequest API."""
    token = cluster.kubectl(
        "create", "token", RELEASE, "-n", SYSTEM_NAMESPACE, "--duration=2h"
    ).stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == SERVICE_ACCOUNT
    return token


def container_environment(cluster: LocalCluster) -> dict[str, str]:
    """The environment the chart's Deployment gives the operator, resolved as a kubelet would."""
    workload = get_json(cluster, "deployment", RELEASE, SYSTEM_NAMESPACE)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for variable in container.get("env", []):
        source = variable.get("valueFrom") or {}
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = get_json(cluster, "secret", ref["name"], SYSTEM_NAMESPACE)
            env[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "fieldRef" in source:
            field = source["fieldRef"]["fieldPath"]
            env[variable["name"]] = {
                "metadata.name": f"{RELEASE}-e2e",
                "metadata.namespace": SYSTEM_NAMESPACE,
            }[field]
    return env


@pytest.fixture(scope="module")
def chart_operator(
    install_cluster: LocalCluster, release: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """`kubetriage run` with the chart's environment and the chart's ServiceAccount's token."""
    cluster = install_cluster
    kubeconfig = cluster.write_kubeconfig(
        tmp_path_factory.mktemp("sa") / "kubetriage-sa.kubeconfig",
        user="kubetriage-sa",
        credentials={"token": service_account_token(cluster)},
    )
    env = container_environment(cluster)
    # Ports are picked free on this machine (the pod would have its own network namespace).
    for local in ("KUBETRIAGE_HEALTH_PORT", "KUBETRIAGE_METRICS_PORT"):
        env.pop(local, None)
    process = OperatorProcess(
        cluster, tmp_path_factory.mktemp("chart-operator"), env, kubeconfig=kubeconfig
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_the_operator_with_the_charts_rights_diagnoses_and_escalates(
    install_cluster: LocalCluster, chart_operator: OperatorProcess, standin: LinearStandin
) -> None:
    cluster = install_cluster
    cluster.kubectl("create", "namespace", PRODUCTION)
    cluster.kubectl("label", "namespace", PRODUCTION, "kubetriage.io/environment=production")
    cluster.wait_for_default_service_account(PRODUCTION)
    cluster.apply(deployment("checkout", PRODUCTION, replicas=2, simulate="CrashLoopBackOff"))
    cluster.apply(deployment("cart", PRODUCTION, simulate="OOMKilled", limits={"memory": "256Mi"}))
    before = get_json(cluster, "deployment", "checkout", PRODUCTION)

    report = wait_for_report(cluster, PRODUCTION, "checkout", "CrashLoopBackOff", timeout=120)
    # The chart turns dry runs off: a live report says so, not that it was diagnosed offline.
    oom = wait_for_report(cluster, PRODUCTION, "cart", "OOMKilled", timeout=120)
    oom_recommendation = oom["status"]["recommendation"]
    assert oom_recommendation.get("patch"), oom_recommendation
    assert oom_recommendation["dryRun"] == {
        "result": "Skipped",
        "message": "not dry-run: dry runs are turned off (KUBETRIAGE_DRY_RUN=false, "
        "chart value dryRun.enabled=false)",
    }

    def opened() -> dict[str, Any] | None:
        current = report_of(cluster, PRODUCTION, "checkout", "CrashLoopBackOff")
        escalation: dict[str, Any] = current.get("status", {}).get("escalation") or {}
        return escalation if escalation.get("state") == "Opened" else None

    escalation = wait_until(opened, timeout=90, what="the Linear issue of checkout")
    issues = [i for i in standin.issues_created() if "/Deployment/checkout:" in i.title]
    assert len(issues) == 1, [i.title for i in issues]
    assert escalation["identifier"] == issues[0].identifier
    assert report["status"]["rootCause"]["category"].startswith("CrashLoop.")
    after = get_json(cluster, "deployment", "checkout", PRODUCTION)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]

    requests = [e for e in cluster.audit_events() if e["user"]["username"] == SERVICE_ACCOUNT]
    assert len(requests) > 10, "the operator should have talked to the apiserver as the SA"
    refused = [
        f"{e['verb']} {e['objectRef'].get('resource')} {e['requestURI']}"
        for e in requests
        if e.get("responseStatus", {}).get("code") == 403
    ]
    assert refused == [], "the chart's RBAC refused requests the flow needed"
    writes = {
        e["objectRef"]["resource"]
        for e in requests
        if e["verb"] in {"create", "update", "patch", "delete"}
    }
    assert writes <= {"diagnosisreports", "events", "leases"}, writes


# What the flow needs, and what a diagnosis operator must never be able to do.
RBAC_MATRIX = [
    # (verb, resource, namespace or None for all namespaces, allowed)
    ("list", "pods", None, True),
    ("watch", "pods", None, True),
    ("get", "pods/log", PRODUCTION, True),
    ("list", "events", None, True),
    ("create", "events", PRODUCTION, True),
    ("list", "nodes", None, True),
    ("list", "namespaces", None, True),
    ("watch", "deployments.apps", None, True),
    ("list", "replicasets.apps", None, True),
    ("list", "statefulsets.apps", None, True),
    ("list", "persistentvolumeclaims", None, True),
    ("list", "storageclasses.storage.k8s.io", None, True),
    ("list", "services", None, True),
    ("list", "endpoints", None, True),
    ("list", "endpointslices.discovery.k8s.io", None, True),
    ("get", "persistentvolumes", None, True),
    ("list", "resourcequotas", None, True),
    ("create", "diagnosisreports.kubetriage.io", PRODUCTION, True),
    ("patch", "diagnosisreports.kubetriage.io", PRODUCTION, True),
    ("patch", "diagnosisreports.kubetriage.io/status", PRODUCTION, True),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", None, True),
    ("create", "leases.coordination.k8s.io", SYSTEM_NAMESPACE, True),
    ("create", "pods", PRODUCTION, False),
    ("patch", "pods", PRODUCTION, False),
    ("delete", "pods", PRODUCTION, False),
    ("create", "pods/exec", PRODUCTION, False),
    ("create", "deployments.apps", PRODUCTION, False),
    ("patch", "deployments.apps", PRODUCTION, False),
    ("update", "deployments.apps", PRODUCTION, False),
    ("delete", "deployments.apps", PRODUCTION, False),
    ("create", "replicasets.apps", PRODUCTION, False),
    ("patch", "replicasets.apps", PRODUCTION, False),
    ("delete", "replicasets.apps", PRODUCTION, False),
    ("get", "secrets", PRODUCTION, False),
    ("list", "secrets", None, False),
    ("get", "secrets", SYSTEM_NAMESPACE, False),
    ("watch", "secrets", None, False),
    ("patch", "nodes", None, False),
    ("delete", "namespaces", None, False),
    ("create", "serviceaccounts/token", SYSTEM_NAMESPACE, False),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", None, False),
    ("bind", "clusterroles.rbac.authorization.k8s.io", None, False),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", None, False),
    ("impersonate", "users", None, False),
    ("create", "leases.coordination.k8s.io", PRODUCTION, False),
    ("*", "*", None, False),
]


@pytest.mark.parametrize(
    ("verb", "resource", "namespace", "allowed"),
    RBAC_MATRIX,
    ids=[f"{'may' if a else 'may-not'}-{v}-{r}-{n or 'all'}" for v, r, n, a in RBAC_MATRIX],
)
def test_the_service_account_may_do_what_the_flow_needs_and_nothing_dangerous(
    install_cluster: LocalCluster, release: str, verb: str, resource: str, namespace: str | None,
    allowed: bool,
) -> None:  # fmt: skip
    assert can_i(install_cluster, verb, resource, namespace) is allowed


def chart_with_changed_crd(destination: Path) -> Path:
    """A copy of the chart whose CRD has one more printer column, as a new release would."""
    copy = destination / "kubetriage"
    shutil.copytree(CHART, copy)
    changed = 0
    for path in copy.rglob("*.yaml"):
        text = path.read_text()
        if f"name: {CRD_NAME}" not in text or "additionalPrinterColumns:" not in text:
            continue
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if "additionalPrinterColumns:" in line)
        indent = " " * (len(lines[index]) - len(lines[index].lstrip()))
        lines[index + 1 : index + 1] = [
            f"{indent}  - name: Upgraded",
            f"{indent}    type: string",
            f"{indent}    jsonPath: .spec.target.name",
            f"{indent}    priority: 1",
        ]
        path.write_text("\n".join(lines) + "\n")
        changed += 1
    assert changed == 1, f"expected one CRD file in the chart, changed {changed}"
    return copy


def test_helm_upgrade_with_a_changed_crd_updates_it(
    install_cluster: LocalCluster, release: str, tmp_path: Path
) -> None:
    upgraded = chart_with_changed_crd(tmp_path)
    helm(
        install_cluster, "upgrade", RELEASE, str(upgraded), "--namespace", SYSTEM_NAMESPACE,
        "--reuse-values", "--wait", "--timeout", "3m",
    )  # fmt: skip
    crd = get_json(install_cluster, "crd", CRD_NAME, "")
    (version,) = crd["spec"]["versions"]
    assert "Upgraded" in [column["name"] for column in version["additionalPrinterColumns"]]


def cluster_scoped_objects_of_the_release(cluster: LocalCluster) -> set[str]:
    """Every cluster-scoped object that Helm labelled as this release's, of any kind."""
    kinds = cluster.kubectl(
        "api-resources", "--namespaced=false", "--verbs=list", "-o", "name"
    ).stdout.split()
    found: set[str] = set()
    for kind in kinds:
        listed = cluster.kubectl(
            "get", kind, "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "name", check=False
        )
        found.update(line for line in listed.stdout.split() if line)
    return found


def test_helm_uninstall_leaves_only_the_crd_and_only_when_asked_to_keep_it(
    install_cluster: LocalCluster, release: str, chart_operator: OperatorProcess
) -> None:
    cluster = install_cluster
    chart_operator.stop()
    assert cluster_scoped_objects_of_the_release(cluster) >= {
        f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME}",
        f"clusterrole.rbac.authorization.k8s.io/{RELEASE}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{RELEASE}",
    }

    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--wait")
    assert cluster_scoped_objects_of_the_release(cluster) == {
        f"customresourcedefinition.apiextensions.k8s.io/{CRD_NAME}"
    }, "crds.keep (the default) keeps the CRD, and with it every report; nothing else stays"

    helm(
        cluster, "install", RELEASE, str(CHART), "--namespace", SYSTEM_NAMESPACE,
        "--set", "crds.keep=false", "--wait", "--timeout", "3m",
    )  # fmt: skip
    helm(cluster, "uninstall", RELEASE, "--namespace", SYSTEM_NAMESPACE, "--wait")

    def gone() -> bool:
        return cluster_scoped_objects_of_the_release(cluster) == set()

    wait_until(gone, timeout=60, what="the CRD to be deleted with crds.keep=false")
