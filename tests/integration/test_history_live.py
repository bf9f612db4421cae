"""Memory history, live: an OOM-killed Deployment on the real control plane, its memory history
in a real Prometheus, and the operator telling a leak from a limit that is merely too low.

Without history the operator can only go by the limit and the kill timing (the OOMKilled case
of test_operator.py names `LimitTooLow`); with three instances each climbing steadily for an
hour to the limit, it names `MemoryLeak` and says raising the limit only delays the next kill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusterkit import OperatorProcess, report_of, wait_for_report
from helpers import wait_until
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment
from promkit import PrometheusServer, Series, create_blocks, require_binaries

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
LIMIT = 256 * MIB
METRIC = "container_memory_working_set_bytes"


def leak(now: float) -> list[tuple[float, float]]:
    """Three instances of an hour each, growing from 80Mi to the limit, the last killed now."""
    samples: list[tuple[float, float]] = []
    for instance in range(3):
        end = now - 60 - instance * (3600 + 120)
        for step in range(121):
            samples.append((end - 3600 + step * 30, 80 * MIB + (LIMIT - 80 * MIB) * step / 120))
    return sorted(samples)


@pytest.fixture
def history_operator(
    cluster: LocalCluster,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
) -> Iterator[tuple[OperatorProcess, list[dict[str, Any]]]]:
    """The OOM-killed pods, Prometheus loaded with their history, and an operator reading it.

    The session's operator pauses meanwhile, so that one writer owns each report."""
    binaries = require_binaries()
    cluster.apply(deployment("recommender", namespace, replicas=2, simulate="OOMKilled",
                             limits={"memory": "256Mi"}))  # fmt: skip
    operator.stop()

    def oom_killed() -> list[dict[str, Any]] | None:
        out = cluster.kubectl("get", "pods", "-n", namespace, "-l", "app=recommender", "-o", "json")
        pods: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        killed = [p for p in pods if p["status"].get("containerStatuses", [{}])[0].get("lastState")]
        return killed if len(killed) == 2 else None

    pods = wait_until(oom_killed, what="two OOM-killed pods")
    series = [
        Series(METRIC, {"namespace": namespace, "pod": p["metadata"]["name"], "container": "app"},
               leak(time.time()))
        for p in pods
    ]  # fmt: skip
    data = create_blocks(series, tmp_path / "tsdb", binaries)
    with PrometheusServer(data, binaries) as prometheus:
        reader = OperatorProcess(
            cluster,
            tmp_path,
            {
                "KUBETRIAGE_GRACE_SECONDS": "0",
                "KUBETRIAGE_CLUSTER_NAME": "integration",
                "KUBETRIAGE_PROMETHEUS_URL": prometheus.url,
            },
        )
        reader.start()
        try:
            yield reader, pods
        finally:
            reader.stop()
            operator.start()


def test_a_leak_in_prometheus_is_named_a_leak_live(
    cluster: LocalCluster,
    history_operator: tuple[OperatorProcess, list[dict[str, Any]]],
    namespace: str,
) -> None:
    reader, pods = history_operator
    wait_for_report(cluster, namespace, "recommender", "OOMKilled", operator=reader)

    def category() -> str:
        report = report_of(cluster, namespace, "recommender", "OOMKilled")
        return str(report["status"]["rootCause"]["category"])

    # The paused operator may have written its history-less answer first; this one revises it.
    wait_until(lambda: category() == "OOMKilled.MemoryLeak" or None, what="MemoryLeak")
    report = report_of(cluster, namespace, "recommender", "OOMKilled")
    assert "only delays" in json.dumps(report["status"]["recommendation"])
    assert any(e["source"] == "prometheus" for e in report["status"]["evidence"])
    samples = reader.scrape()
    assert samples.get('kubetriage_prometheus_requests_total{outcome="ok"}', 0) >= 1
    assert report_of(cluster, namespace, "recommender", "OOMKilled")["status"][
        "affectedPods"
    ] == sorted(p["metadata"]["name"] for p in pods)
