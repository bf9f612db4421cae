"""`clients/prometheus.py` without a Prometheus server: merging, the query it sends, and how
each failure is told to the caller. The PromQL client is a stub here (one function's contract);
tests/integration/test_prometheus_history.py runs the same code against a real server."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from prometheus_api_client.exceptions import PrometheusApiClientException

from helpers import SCENARIOS_DIR
from kubetriage.clients.kube import Sample
from kubetriage.clients.prometheus import (
    WORKING_SET,
    PrometheusHistory,
    PrometheusUnavailable,
    merge_series,
)
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.models import Category, EvidenceSource

END = datetime(2025, 3, 12, 15, 48, 26, tzinfo=UTC)


class StubClient:
    """Answers like PrometheusConnect: `data.result`, or raises what it was given."""

    def __init__(self, answer: Any = None, error: Exception | None = None) -> None:
        self.answer = [] if answer is None else answer
        self.error = error
        self.calls: list[dict[str, Any]] = []

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        self.calls.append(
            {"query": query, "start": start_time, "end": end_time, "step": step, "params": params}
        )
        if self.error is not None:
            raise self.error
        return self.answer

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        self.calls.append({"query": query, "params": params})
        if self.error is not None:
            raise self.error
        return self.answer


def matrix(*series: tuple[str, list[tuple[float, str]]]) -> list[dict[str, Any]]:
    return [
        {"metric": {"__name__": WORKING_SET, "id": cid}, "values": [[t, v] for t, v in values]}
        for cid, values in series
    ]


def history(client: StubClient, **kwargs: Any) -> tuple[PrometheusHistory, list[str]]:
    outcomes: list[str] = []
    made = PrometheusHistory(
        "http://prometheus.monitoring:9090", client=client, on_request=outcomes.append, **kwargs
    )
    return made, outcomes


# -- merging ------------------------------------------------------------------------------------


def test_restarts_are_merged_into_one_series_in_time_order() -> None:
    before = ("/pod/old", [(100.0, "500"), (130.0, "900")])
    after = ("/pod/new", [(160.0, "200"), (190.0, "300")])
    assert merge_series(matrix(after, before)) == [
        (100.0, 500.0),
        (130.0, 900.0),
        (160.0, 200.0),
        (190.0, 300.0),
    ]


def test_two_series_at_one_timestamp_keep_the_higher_value() -> None:
    dying = ("/pod/old", [(100.0, "900"), (130.0, "950")])
    starting = ("/pod/new", [(130.0, "120"), (160.0, "180")])
    assert merge_series(matrix(starting, dying)) == [(100.0, 900.0), (130.0, 950.0), (160.0, 180.0)]


def test_nan_infinities_and_malformed_points_are_dropped() -> None:
    result: list[Any] = [
        *matrix(("/a", [(100.0, "NaN"), (130.0, "+Inf"), (160.0, "-Inf"), (190.0, "42")])),
        {"metric": {}, "values": [[220.0], ["x", "1"], [250.0, "not a number"], None, [280, "7"]]},
        {"metric": {}, "values": "not a list"},
        "not a series",
    ]
    assert merge_series(result) == [(190.0, 42.0), (280.0, 7.0)]


def test_an_answer_that_is_not_a_list_merges_to_nothing() -> None:
    assert merge_series(None) == []  # type: ignore[arg-type]
    assert merge_series({"resultType": "matrix"}) == []


def test_instant_vectors_merge_by_their_value_field() -> None:
    result = [{"metric": {}, "value": [1000.0, "0.25"]}, {"metric": {}, "value": [1000.0, "NaN"]}]
    assert merge_series(result, key="value") == [(1000.0, 0.25)]


# -- the query ----------------------------------------------------------------------------------


def test_the_query_reads_one_container_over_the_window_ending_at_end() -> None:
    client = StubClient(matrix(("/a", [(1.0, "10"), (2.0, "20")])))
    made, outcomes = history(client)

    samples = made.series("media", "image-resizer-7js98", "image-resizer", WORKING_SET, end=END)

    assert samples == [(1.0, 10.0), (2.0, 20.0)]
    assert outcomes == ["ok"]
    (call,) = client.calls
    assert call["query"] == (
        'max_over_time(container_memory_working_set_bytes{namespace="media",'
        'pod="image-resizer-7js98",container="image-resizer"}[21999ms])'
    )
    assert (call["start"], call["end"], call["step"]) == (END - timedelta(hours=6), END, "22s")
    assert call["params"] == {"timeout": "5s"}


def test_without_end_the_window_ends_at_the_clock() -> None:
    client = StubClient()
    made, _ = history(client, clock=lambda: END, window=timedelta(hours=1))
    made.series("ns", "pod", "c", WORKING_SET)
    assert (client.calls[0]["start"], client.calls[0]["end"]) == (END - timedelta(hours=1), END)


@pytest.mark.parametrize(
    ("window", "step"),
    [(timedelta(minutes=30), 15), (timedelta(hours=6), 22), (timedelta(hours=24), 87)],
)
def test_the_step_keeps_a_series_under_max_points(window: timedelta, step: int) -> None:
    made, _ = history(StubClient(), window=window)
    assert made.step_seconds == step
    assert window.total_seconds() / made.step_seconds <= 1000


def test_label_values_are_quoted_and_metric_names_checked() -> None:
    client = StubClient()
    made, _ = history(client)
    made.series('a"b', "p\\q", "c\nd", WORKING_SET, end=END)
    assert '{namespace="a\\"b",pod="p\\\\q",container="c\\nd"}' in client.calls[0]["query"]
    with pytest.raises(ValueError, match="not a metric name"):
        made.series("ns", "pod", "c", "up} or vector(1) #", end=END)


def test_no_series_is_an_empty_list_not_a_failure() -> None:
    made, outcomes = history(StubClient([]))
    assert made.series("ns", "pod", "c", WORKING_SET, end=END) == []
    made, outcomes_nan = history(StubClient(matrix(("/a", [(1.0, "NaN")]))))
    assert made.series("ns", "pod", "c", WORKING_SET, end=END) == []
    assert outcomes == outcomes_nan == ["empty"]


def test_cpu_throttling_is_a_ratio_or_none() -> None:
    client = StubClient([{"metric": {}, "value": [END.timestamp(), "0.3"]}])
    made, outcomes = history(client)
    assert made.cpu_throttling("ns", "pod", "c", end=END) == pytest.approx(0.3)
    assert "container_cpu_cfs_throttled_periods_total" in client.calls[0]["query"]
    assert client.calls[0]["params"] == {"time": END.timestamp(), "timeout": "5s"}
    made, outcomes_none = history(StubClient([{"metric": {}, "value": [1.0, "NaN"]}]))
    assert made.cpu_throttling("ns", "pod", "c", end=END) is None
    assert (outcomes, outcomes_none) == (["ok"], ["empty"])


# -- failures -----------------------------------------------------------------------------------


REFUSED = requests.ConnectionError(
    "HTTPConnectionPool(host='prometheus.monitoring', port=9090): Max retries exceeded "
    "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: "
    "Failed to establish a new connection: [Errno 111] Connection refused'))"
)


@pytest.mark.parametrize(
    ("error", "outcome", "message"),
    [
        (requests.ReadTimeout("read timed out"), "timeout", "did not answer within 5s"),
        (requests.ConnectTimeout("connect timed out"), "timeout", "did not answer within 5s"),
        (REFUSED, "error", "is unreachable: Connection refused"),
        (requests.ConnectionError("reset"), "error", "is unreachable: connection failed"),
        (
            PrometheusApiClientException("HTTP Status Code 503 (b'Service Unavailable')"),
            "error",
            "answered HTTP Status Code 503 (b'Service Unavailable')",
        ),
        (
            json.JSONDecodeError("Expecting value", "<html>", 0),
            "error",
            "sent an answer that is not a query result",
        ),
        (KeyError("data"), "error", "sent an answer that is not a query result"),
        (RuntimeError("boom"), "error", "failed: RuntimeError"),
    ],
)
def test_each_failure_raises_prometheus_unavailable(
    error: Exception, outcome: str, message: str
) -> None:
    made, outcomes = history(StubClient(error=error))
    with pytest.raises(PrometheusUnavailable) as raised:
        made.series("ns", "pod", "c", WORKING_SET, end=END)
    assert str(raised.value) == f"Prometheus at prometheus.monitoring:9090 {message}"
    assert raised.value.outcome == outcome
    assert outcomes == [outcome]


def test_an_answer_that_is_not_a_result_list_is_a_failure() -> None:
    made, outcomes = history(StubClient({"status": "success"}))
    with pytest.raises(PrometheusUnavailable, match="not a query result"):
        made.series("ns", "pod", "c", WORKING_SET, end=END)
    assert outcomes == ["error"]


def test_after_a_failure_the_source_is_not_asked_again_during_the_cooldown() -> None:
    client = StubClient(error=requests.ReadTimeout("read timed out"))
    made, outcomes = history(client, cooldown=60.0)
    for _ in range(3):
        with pytest.raises(PrometheusUnavailable, match="did not answer within 5s"):
            made.series("ns", "pod", "c", WORKING_SET, end=END)
    assert len(client.calls) == 1
    assert outcomes == ["timeout"]


def test_after_the_cooldown_the_source_is_asked_again() -> None:
    client = StubClient(error=REFUSED)
    made, _ = history(client, cooldown=0.0)
    with pytest.raises(PrometheusUnavailable):
        made.series("ns", "pod", "c", WORKING_SET, end=END)
    client.error = None
    assert made.series("ns", "pod", "c", WORKING_SET, end=END) == []
    assert len(client.calls) == 2


def test_a_broken_outcome_hook_does_not_fail_the_query() -> None:
    def broken(outcome: str) -> None:
        raise RuntimeError(outcome)

    made = PrometheusHistory("http://p:9090", client=StubClient(), on_request=broken)
    assert made.series("ns", "pod", "c", WORKING_SET, end=END) == []


def test_credentials_in_the_url_never_reach_a_message() -> None:
    made = PrometheusHistory(
        "https://admin:s3cret@prometheus.example:443/", client=StubClient(error=REFUSED)
    )
    with pytest.raises(PrometheusUnavailable) as raised:
        made.series("ns", "pod", "c", WORKING_SET, end=END)
    assert "s3cret" not in str(raised.value)
    assert "admin" not in str(raised.value)
    assert str(raised.value).startswith("Prometheus at prometheus.example:443 ")


# -- the real HTTP client, against sockets that misbehave -----------------------------------------


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"status":"error","errorType":"internal","error":"overloaded"}'
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def failing_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_never_answers_times_out_within_the_timeout(silent_port: int) -> None:
    made = PrometheusHistory(f"http://127.0.0.1:{silent_port}", timeout=0.3)
    started = time.monotonic()
    with pytest.raises(PrometheusUnavailable, match=r"did not answer within 0\.3s") as raised:
        made.series("ns", "pod", "c", WORKING_SET, end=END)
    assert raised.value.outcome == "timeout"
    assert time.monotonic() - started < 2.0


def test_a_refused_connection_is_unreachable(closed_port: int) -> None:
    made = PrometheusHistory(f"http://127.0.0.1:{closed_port}", timeout=1.0)
    with pytest.raises(PrometheusUnavailable, match="is unreachable: Connection refused"):
        made.series("ns", "pod", "c", WORKING_SET, end=END)


def test_an_http_error_names_the_status(failing_url: str) -> None:
    made = PrometheusHistory(failing_url, timeout=2.0)
    with pytest.raises(PrometheusUnavailable, match="answered HTTP Status Code 500"):
        made.series("ns", "pod", "c", WORKING_SET, end=END)


# -- the playbook's side of the contract ----------------------------------------------------------


class HistoryReader(SnapshotReader):
    """A snapshot whose memory history comes from a PrometheusHistory."""

    def __init__(self, items: list[Any], source: PrometheusHistory) -> None:
        super().__init__(items)
        self.history = source

    def metric_series(
        self, namespace: str, pod: str, container: str, metric: str
    ) -> list[Sample] | None:
        return self.history.series(namespace, pod, container, metric, end=self.now())


def test_a_failed_source_is_evidence_in_the_diagnosis_not_an_exception() -> None:
    document = json.loads((SCENARIOS_DIR / "oom-limit-too-low.json").read_text())
    items = [i for i in document["items"] if i["kind"] != "MetricSeries"]
    made, _ = history(StubClient(error=requests.ReadTimeout("read timed out")))

    (finding,) = diagnose(HistoryReader(items, made))

    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    evidence = [
        e.summary for e in finding.investigation.evidence if e.source is EvidenceSource.PROMETHEUS
    ]
    assert any(
        "the metrics source failed (PrometheusUnavailable: Prometheus at "
        "prometheus.monitoring:9090 did not answer within 5s)" in text
        for text in evidence
    ), evidence


def test_a_source_that_fails_for_some_pods_is_said() -> None:
    document = json.loads((SCENARIOS_DIR / "oom-limit-too-low.json").read_text())
    items = [i for i in document["items"] if i["kind"] != "MetricSeries"]
    first = next(i for i in document["items"] if i["kind"] == "MetricSeries")
    client = StubClient(matrix(("/a", [(float(t), str(v)) for t, v in first["samples"]])))
    made, _ = history(client, cooldown=0.0)

    class FailsSecond(HistoryReader):
        def metric_series(
            self, namespace: str, pod: str, container: str, metric: str
        ) -> list[Sample] | None:
            if client.calls:
                client.error = requests.ReadTimeout("read timed out")
            return super().metric_series(namespace, pod, container, metric)

    (finding,) = diagnose(FailsSecond(items, made))

    assert len(client.calls) == 2
    assert any("did not answer within 5s" in e.summary for e in finding.investigation.evidence), [
        e.summary for e in finding.investigation.evidence
    ]
