"""Fixtures shared by every tier.

`cluster` starts one real control plane per test session (see hack/localcluster.py). Outside CI a
missing binary skips the integration tests with the command that builds them; under `CI=true` it
fails the run instead, so a CI run can never pass by testing nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from helpers import unavailable
from localcluster import Binaries, ControlPlaneError, LocalCluster

_clusters: list[LocalCluster] = []


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real control plane: etcd, kube-apiserver, controller-manager, scheduler, kwok."""
    try:
        binaries = Binaries.find()
    except ControlPlaneError as error:
        unavailable(str(error))
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), binaries)
    try:
        local.start()
    except ControlPlaneError as error:
        pytest.fail(f"the local control plane did not start: {error}", pytrace=False)
    _clusters.append(local)
    try:
        yield local
    finally:
        _clusters.remove(local)
        local.stop()


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """A fresh namespace, deleted after the test (without waiting for it to go)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.wait_for_default_service_account(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the control plane's logs to the report of a failing integration test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and _clusters and "cluster" in getattr(item, "fixturenames", ()):
        report.sections.append(("control plane logs", _clusters[0].logs()))
