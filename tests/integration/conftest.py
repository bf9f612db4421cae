"""Fixtures for tests on the real control plane."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config

from clusterkit import OperatorProcess
from helpers import CRD_PATH
from localcluster import LocalCluster

pytestmark = pytest.mark.integration


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/integration needs the control plane: mark it so."""
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    """An admin API client of the local cluster."""
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(cluster.kubeconfig)
    )
    try:
        yield api_client
    finally:
        api_client.close()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="session")
def crd(cluster: LocalCluster) -> str:
    """The DiagnosisReport CRD, installed from crds/ and Established."""
    cluster.kubectl("apply", "-f", str(CRD_PATH))
    name = "diagnosisreports.kubetriage.io"
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return name


OPERATOR_ENV = {
    "KUBETRIAGE_GRACE_SECONDS": "0",
    "KUBETRIAGE_RESOLVE_AFTER_SECONDS": "3",
    "KUBETRIAGE_CLUSTER_NAME": "integration",
}


@pytest.fixture(scope="session")
def operator(
    cluster: LocalCluster,
    crd: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[OperatorProcess]:
    """The operator, running for the whole session (one instance, like a real install)."""
    process = OperatorProcess(cluster, tmp_path_factory.mktemp("operator"), OPERATOR_ENV)
    process.start()
    # Modules that must run without it (test_ha.py) find it here without starting it.
    request.session._kubetriage_operator = process  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.stop()
