"""The OOMKilled playbook with its memory history from a real Prometheus server.

The cluster is a scenario snapshot (pods, nodes, events, workloads) without its MetricSeries
items; those samples are loaded into Prometheus instead (promtool blocks, see tests/promkit.py),
one series per container instance with cAdvisor-like `id`/`name` labels, so that the client has
to merge a pod's restarts back together. The diagnosis must match the offline one, and degrade
(never fail) when the series is missing or Prometheus is gone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from helpers import SCENARIOS_DIR
from kubetriage.clients.kube import Sample
from kubetriage.clients.prometheus import WORKING_SET, PrometheusHistory, PrometheusUnavailable
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.models import Category, EvidenceSource
from promkit import Binaries, PrometheusServer, Series, create_blocks, require_binaries

pytestmark = pytest.mark.integration

LEAK = SCENARIOS_DIR / "oom-memory-leak.json"
TOO_LOW = SCENARIOS_DIR / "oom-limit-too-low.json"
LEAK_WINDOW = timedelta(hours=24)  # the leak scenario holds a day of history


def _items(path: Path) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(path.read_text())["items"]
    return items


def cluster_items(path: Path) -> list[dict[str, Any]]:
    """A scenario's objects without its MetricSeries: the history comes from Prometheus."""
    return [i for i in _items(path) if i["kind"] != "MetricSeries"]


def recorded(path: Path) -> dict[tuple[str, str, str], list[Sample]]:
    """A scenario's own samples, by (namespace, pod, container)."""
    return {
        (i["namespace"], i["pod"], i["container"]): [(float(t), float(v)) for t, v in i["samples"]]
        for i in _items(path)
        if i["kind"] == "MetricSeries" and i["metric"] == WORKING_SET
    }


def instances(samples: list[Sample]) -> list[list[Sample]]:
    """Cut a pod's samples where a container restarted (usage drops, or the samples pause)."""
    runs: list[list[Sample]] = [[samples[0]]]
    for previous, current in pairwise(samples):
        if current[1] < 0.7 * previous[1] or current[0] - previous[0] > 120:
            runs.append([])
        runs[-1].append(current)
    return runs


def scenario_series(path: Path) -> list[Series]:
    """The scenario's samples as cAdvisor exports them: a series per container instance."""
    found: list[Series] = []
    for (namespace, pod, container), samples in recorded(path).items():
        for number, run in enumerate(instances(samples)):
            cid = f"cri-containerd-{pod}-{number:04d}"
            labels = {
                "namespace": namespace,
                "pod": pod,
                "container": container,
                "id": f"/kubepods/burstable/pod-{pod}/{cid}",
                "name": cid,
                "image": f"registry.example/{container}:1",
            }
            found.append(Series(WORKING_SET, labels, run))
    return found


class PrometheusSnapshotReader(SnapshotReader):
    """A snapshot's cluster whose memory history comes from Prometheus, queried at the
    snapshot's capture time (its `now`). `before_query(n)` runs before the n-th query."""

    def __init__(
        self,
        items: list[Any],
        history: PrometheusHistory,
        before_query: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(items)
        self.history = history
        self.queries = 0
        self._before_query = before_query

    def metric_series(
        self, namespace: str, pod: str, container: str, metric: str
    ) -> list[Sample] | None:
        """The series from Prometheus over its window ending at the capture time."""
        self.queries += 1
        if self._before_query is not None:
            self._before_query(self.queries)
        return self.history.series(namespace, pod, container, metric, end=self.now())


def only_finding(reader: SnapshotReader) -> Finding:
    findings = diagnose(reader)
    assert len(findings) == 1, [f.target for f in findings]
    return findings[0]


def prometheus_evidence(finding: Finding) -> list[str]:
    return [
        e.summary for e in finding.investigation.evidence if e.source is EvidenceSource.PROMETHEUS
    ]


def patch_of(finding: Finding) -> str:
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    return recommendation.patch.content


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    return require_binaries()


def _serve(
    tmp: Path, binaries: Binaries, series: list[Series], request: pytest.FixtureRequest
) -> Iterator[PrometheusServer]:
    data = create_blocks(series, tmp / "data", binaries) if series else tmp / "data"
    failed_before = request.session.testsfailed
    with PrometheusServer(data, binaries) as server:
        yield server
    if request.session.testsfailed > failed_before:
        print(f"--- prometheus log ({server.url}) ---\n{server.log()}")


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory, binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[PrometheusServer]:
    """One server holding both scenarios' memory history."""
    series = scenario_series(LEAK) + scenario_series(TOO_LOW)
    yield from _serve(tmp_path_factory.mktemp("loaded"), binaries, series, request)


@pytest.fixture(scope="module")
def empty(
    tmp_path_factory: pytest.TempPathFactory, binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[PrometheusServer]:
    """A server that is up and answers, with no series at all."""
    yield from _serve(tmp_path_factory.mktemp("empty"), binaries, [], request)


@pytest.fixture
def doomed(
    tmp_path: Path, binaries: Binaries, request: pytest.FixtureRequest
) -> Iterator[PrometheusServer]:
    """A server of its own with the limit-too-low history, for a test to stop."""
    yield from _serve(tmp_path, binaries, scenario_series(TOO_LOW), request)


def test_the_series_come_back_merged_across_restarts(loaded: PrometheusServer) -> None:
    history = PrometheusHistory(loaded.url, window=LEAK_WINDOW)
    reader = SnapshotReader(_items(LEAK))
    for (namespace, pod, container), expected in recorded(LEAK).items():
        assert len(instances(expected)) > 1  # several instances: several series to merge
        got = history.series(namespace, pod, container, WORKING_SET, end=reader.now())
        # Every recorded sample once, at or up to a step after its own time, in order.
        assert [v for _, v in got] == [v for _, v in expected]
        assert all(
            0 <= t - s < history.step_seconds for (t, _), (s, _) in zip(got, expected, strict=True)
        )


def test_a_leak_shape_gives_memory_leak(loaded: PrometheusServer) -> None:
    outcomes: list[str] = []
    history = PrometheusHistory(loaded.url, window=LEAK_WINDOW, on_request=outcomes.append)
    offline = only_finding(SnapshotReader(_items(LEAK)))

    finding = only_finding(PrometheusSnapshotReader(cluster_items(LEAK), history))

    assert finding.conclusion.root_cause.category is Category.OOM_MEMORY_LEAK
    assert finding.conclusion.root_cause.confidence == offline.conclusion.root_cause.confidence
    assert outcomes == ["ok", "ok", "ok"]
    assert any("grew steadily" in text for text in prometheus_evidence(finding))
    assert patch_of(finding) == patch_of(offline)


def test_the_default_window_still_sees_the_leak(loaded: PrometheusServer) -> None:
    history = PrometheusHistory(loaded.url)  # 6h: fewer instances, the same shape
    finding = only_finding(PrometheusSnapshotReader(cluster_items(LEAK), history))
    assert finding.conclusion.root_cause.category is Category.OOM_MEMORY_LEAK


def test_a_plateau_at_the_limit_gives_limit_too_low_with_the_offline_limit(
    loaded: PrometheusServer,
) -> None:
    history = PrometheusHistory(loaded.url)
    offline = only_finding(SnapshotReader(_items(TOO_LOW)))

    finding = only_finding(PrometheusSnapshotReader(cluster_items(TOO_LOW), history))

    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    assert finding.conclusion.root_cause.confidence == offline.conclusion.root_cause.confidence
    assert '"memory":"640Mi"' in patch_of(finding)
    assert patch_of(finding) == patch_of(offline)
    assert any("peak 503.5Mi" in text for text in prometheus_evidence(finding))


def test_no_series_answers_at_lower_confidence_and_says_so(
    loaded: PrometheusServer, empty: PrometheusServer
) -> None:
    outcomes: list[str] = []
    with_history = only_finding(
        PrometheusSnapshotReader(cluster_items(TOO_LOW), PrometheusHistory(loaded.url))
    )
    history = PrometheusHistory(empty.url, on_request=outcomes.append)

    finding = only_finding(PrometheusSnapshotReader(cluster_items(TOO_LOW), history))

    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW
    assert root.confidence < with_history.conclusion.root_cause.confidence
    assert outcomes == ["empty", "empty"]
    missing = f"no {WORKING_SET} series for container image-resizer in pod(s)"
    assert any(missing in text for text in prometheus_evidence(finding)), prometheus_evidence(
        finding
    )
    assert '"memory":"640Mi"' in patch_of(finding)  # the current limit + 25%, said as such


def test_prometheus_stopped_before_the_query_still_lands_and_says_the_source_failed(
    doomed: PrometheusServer, loaded: PrometheusServer
) -> None:
    outcomes: list[str] = []
    with_history = only_finding(
        PrometheusSnapshotReader(cluster_items(TOO_LOW), PrometheusHistory(loaded.url))
    )
    history = PrometheusHistory(doomed.url, timeout=2.0, on_request=outcomes.append)
    reader = PrometheusSnapshotReader(cluster_items(TOO_LOW), history)
    doomed.stop()

    finding = only_finding(reader)

    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW
    assert root.confidence < with_history.conclusion.root_cause.confidence
    assert outcomes == ["error"]  # the second pod is not asked: the source is cooling down
    failed = (
        f"the metrics source failed (PrometheusUnavailable: Prometheus at 127.0.0.1:{doomed.port}"
    )
    assert any(failed in text for text in prometheus_evidence(finding)), prometheus_evidence(
        finding
    )


def test_prometheus_stopped_mid_run_the_diagnosis_still_lands(doomed: PrometheusServer) -> None:
    outcomes: list[str] = []
    history = PrometheusHistory(doomed.url, timeout=2.0, on_request=outcomes.append)

    def stop_before_second(query: int) -> None:
        if query == 2:
            doomed.stop()

    reader = PrometheusSnapshotReader(cluster_items(TOO_LOW), history, stop_before_second)
    finding = only_finding(reader)

    assert reader.queries == 2
    assert outcomes == ["ok", "error"]
    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    assert '"memory":"640Mi"' in patch_of(finding)
    with pytest.raises(PrometheusUnavailable, match="unreachable"):
        history.series("media", "image-resizer-6wcscf4zz-7js98", "image-resizer", WORKING_SET)


def test_cpu_throttling_is_the_throttled_share_of_periods_across_restarts(
    tmp_path: Path, binaries: Binaries
) -> None:
    end = 1_741_794_000.0
    labels = {"namespace": "media", "pod": "api-1", "container": "api"}

    def counter(metric: str, per_minute: float, cid: str, minutes: range) -> Series:
        samples = [(end - 3600 + 60 * m, per_minute * (m - minutes.start + 1)) for m in minutes]
        return Series(metric, {**labels, "id": cid}, samples, kind="counter")

    series = [
        counter(f"container_cpu_cfs_{name}_total", rate, cid, minutes)
        for name, rate in (("periods", 600.0), ("throttled_periods", 150.0))
        for cid, minutes in (("/a", range(30)), ("/b", range(31, 61)))  # restarted at minute 30
    ]
    at = datetime.fromtimestamp(end, tz=UTC)
    with PrometheusServer(create_blocks(series, tmp_path / "data", binaries), binaries) as server:
        history = PrometheusHistory(server.url, window=timedelta(hours=1))
        assert history.cpu_throttling("media", "api-1", "api", end=at) == pytest.approx(0.25)
        assert history.cpu_throttling("media", "api-2", "api", end=at) is None
