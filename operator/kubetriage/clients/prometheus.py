"""Memory history from Prometheus, over prometheus-api-client (DESIGN.md section 7).

`PrometheusHistory` is the `MetricHistory` that `LiveClusterReader(history=...)` delegates
`metric_series` to. For one container of one pod it asks for

    max_over_time(container_memory_working_set_bytes{namespace=.., pod=.., container=..}[step])

over a window (6h by default) ending at `end` (the reader's now, else the clock), with a step of
`window / max_points` but at least `min_step`. The `max_over_time` over one step makes every
point the peak of the raw samples since the previous point, so a short spike between two points
is never lost and a silence (a container not running) stays a gap instead of being filled by
Prometheus' 5-minute lookback. Each container instance is a series of its own (cAdvisor's `id`
and `name` labels change on a restart): the series are merged into one list of (unix seconds,
bytes) in time order; two series at one timestamp keep the higher value, NaN and infinities are
dropped. The playbook cuts the merged list back into instances where usage drops or pauses.

How an answer reaches the OOMKilled playbook (`playbooks/oom/reads.py`, `read_memory_history`):

- samples -> `[(ts, value), ...]`: the history is analysed;
- Prometheus answered, no such series (or only NaN) -> `[]`: "no <metric> series for container
  <c> in pod(s) <p>", lower confidence;
- Prometheus failed (timeout, refused connection, HTTP error, an answer that is not a query
  result) -> `PrometheusUnavailable` is raised; the playbook catches it and says "the metrics
  source failed (PrometheusUnavailable: <message>)", lower confidence. The message names the
  host, never credentials or headers.

Requests are bounded: one request per call, `timeout` seconds for the connection and for the
answer (the query itself gets the same `timeout` on the server), no retries unless asked. After a
failure the source is not asked again for `cooldown` seconds (the same error is raised at once),
so a diagnosis of 20 pods against a dead Prometheus costs one timeout, not twenty.

Every request reports its outcome to `on_request`: "ok", "empty" (no series), "timeout" or
"error" (a counter can be wired to it; calls skipped during a cooldown make no request and report
nothing).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast
from urllib.parse import urlsplit

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from kubetriage.clients.kube import Sample

WORKING_SET = "container_memory_working_set_bytes"
THROTTLED_PERIODS = "container_cpu_cfs_throttled_periods_total"
CFS_PERIODS = "container_cpu_cfs_periods_total"
DEFAULT_WINDOW = timedelta(hours=6)
DEFAULT_MIN_STEP = timedelta(seconds=15)
DEFAULT_MAX_POINTS = 1000  # Prometheus refuses more than 11,000 points per series
MAX_ERROR_TEXT = 200

Outcome = Literal["ok", "empty", "timeout", "error"]
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


class PrometheusUnavailable(RuntimeError):
    """Prometheus could not answer: a timeout, a refused connection, an HTTP error, or an answer
    that is not a query result. `outcome` is "timeout" or "error"."""

    def __init__(self, message: str, outcome: Outcome = "error") -> None:
        super().__init__(message)
        self.outcome: Outcome = outcome


class QueryClient(Protocol):
    """The part of `PrometheusConnect` this module uses (tests may pass a stand-in)."""

    def custom_query_range(
        self,
        query: str,
        start_time: datetime,
        end_time: datetime,
        step: str,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """`/api/v1/query_range`: the `data.result` list of the answer."""
        ...

    def custom_query(self, query: str, params: dict[str, Any] | None = None) -> Any:
        """`/api/v1/query`: the `data.result` list of the answer."""
        ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class PrometheusHistory:
    """A container's metric history from one Prometheus server. Thread-safe; share one."""

    def __init__(
        self,
        url: str,
        *,
        window: timedelta = DEFAULT_WINDOW,
        timeout: float = 5.0,
        disable_ssl: bool = False,
        headers: Mapping[str, str] | None = None,
        retries: int = 0,
        cooldown: float = 30.0,
        min_step: timedelta = DEFAULT_MIN_STEP,
        max_points: int = DEFAULT_MAX_POINTS,
        clock: Callable[[], datetime] = _utcnow,
        on_request: Callable[[str], None] | None = None,
        client: QueryClient | None = None,
    ) -> None:
        if window <= timedelta(0) or timeout <= 0 or max_points < 1 or min_step <= timedelta(0):
            raise ValueError("window, timeout, min_step and max_points must be positive")
        parts = urlsplit(url)
        self.source = f"{parts.hostname or url}" + (f":{parts.port}" if parts.port else "")
        self.window = window
        self.timeout = timeout
        self.cooldown = cooldown
        self.step_seconds = max(
            math.ceil(min_step.total_seconds()), math.ceil(window.total_seconds() / max_points)
        )
        self._clock = clock
        self._on_request = on_request
        self._client: QueryClient = client or cast(
            QueryClient,
            PrometheusConnect(
                url=url.rstrip("/"),
                headers=dict(headers) if headers else None,
                disable_ssl=disable_ssl,
                # Connection errors only: a read timeout is not retried (the budget is spent).
                retry=Retry(total=retries, connect=retries, read=False, status=0, redirect=0),
                timeout=timeout,  # typed int upstream, handed to requests as is
            ),
        )
        self._lock = threading.Lock()
        self._failed_until = 0.0
        self._failure: PrometheusUnavailable | None = None

    def series(
        self, namespace: str, pod: str, container: str, metric: str, *, end: datetime | None = None
    ) -> list[Sample]:
        """Samples [(unix seconds, value)] of a gauge of one container over the window ending at
        `end` (default: now), merged across the container's instances and in time order; [] when
        Prometheus has no such series. Raises `PrometheusUnavailable` when Prometheus fails."""
        if not _METRIC_NAME.fullmatch(metric):
            raise ValueError(f"not a metric name: {metric!r}")
        until = end or self._clock()
        step = self.step_seconds
        # [step - 1ms]: one raw sample lands in one point only (a range's ends are inclusive).
        query = (
            f"max_over_time({metric}{_selector(namespace, pod, container)}[{step * 1000 - 1}ms])"
        )
        result = self._ask(
            lambda: self._client.custom_query_range(
                query, until - self.window, until, f"{step}s", params=self._params()
            )
        )
        samples = merge_series(result)
        self._report("ok" if samples else "empty")
        return samples

    def memory(
        self, namespace: str, pod: str, container: str, *, end: datetime | None = None
    ) -> list[Sample]:
        """`container_memory_working_set_bytes` of one container (see `series`)."""
        return self.series(namespace, pod, container, WORKING_SET, end=end)

    def cpu_throttling(
        self, namespace: str, pod: str, container: str, *, end: datetime | None = None
    ) -> float | None:
        """The share (0..1) of CFS periods in which the container was throttled over the window
        (across its restarts); None without data. Raises `PrometheusUnavailable` on failure."""
        selector = _selector(namespace, pod, container)
        seconds = math.ceil(self.window.total_seconds())
        query = (
            f"sum(increase({THROTTLED_PERIODS}{selector}[{seconds}s])) / "
            f"sum(increase({CFS_PERIODS}{selector}[{seconds}s]))"
        )
        at = (end or self._clock()).timestamp()
        result = self._ask(
            lambda: self._client.custom_query(query, params={"time": at, **self._params()})
        )
        values = [v for _, v in merge_series(result, key="value")]
        ratio = values[-1] if values else None
        self._report("ok" if ratio is not None else "empty")
        return None if ratio is None else min(max(ratio, 0.0), 1.0)

    def close(self) -> None:
        """Release the HTTP connections."""
        close = getattr(self._client, "close", None)
        if callable(close):
            close()

    def _params(self) -> dict[str, Any]:
        return {"timeout": f"{self.timeout:g}s"}  # the server gives up too

    def _ask(self, request: Callable[[], Any]) -> Any:
        """Run one request; any failure becomes PrometheusUnavailable and starts a cooldown."""
        with self._lock:
            failed = self._failure if time.monotonic() < self._failed_until else None
        if failed is not None:
            raise PrometheusUnavailable(str(failed), failed.outcome)
        try:
            result = request()
            if not isinstance(result, list):
                raise ValueError("the answer has no result list")
        except Exception as error:  # everything a server, a proxy or the network can do
            failure = self._describe(error)
            with self._lock:
                self._failure, self._failed_until = failure, time.monotonic() + self.cooldown
            self._report(failure.outcome)
            raise failure from error
        with self._lock:
            self._failure = None
        return result

    def _describe(self, error: Exception) -> PrometheusUnavailable:
        where = f"Prometheus at {self.source}"
        if isinstance(error, requests.Timeout):
            return PrometheusUnavailable(
                f"{where} did not answer within {self.timeout:g}s", "timeout"
            )
        if isinstance(error, requests.ConnectionError):
            found = _ERRNO.search(str(error))
            reason = found.group(1).strip() if found else "connection failed"
            return PrometheusUnavailable(f"{where} is unreachable: {reason}")
        if isinstance(error, PrometheusApiClientException):
            return PrometheusUnavailable(f"{where} answered {str(error)[:MAX_ERROR_TEXT]}")
        if isinstance(error, ValueError | KeyError | TypeError):  # not JSON, not a result
            return PrometheusUnavailable(f"{where} sent an answer that is not a query result")
        return PrometheusUnavailable(f"{where} failed: {type(error).__name__}")

    def _report(self, outcome: Outcome) -> None:
        if self._on_request is None:
            return
        with contextlib.suppress(Exception):  # a broken metrics hook must not fail a diagnosis
            self._on_request(outcome)


def merge_series(result: Iterable[Any], *, key: str = "values") -> list[Sample]:
    """Merge the series of a Prometheus result (`[{"metric": .., "values": [[ts, "v"], ..]}]`,
    or `"value": [ts, "v"]` with key="value") into one list of (ts, value) in time order: one
    value per timestamp (the highest), NaN, infinities and malformed points dropped."""
    best: dict[float, float] = {}
    for series in result if isinstance(result, list) else ():
        raw = series.get(key) if isinstance(series, dict) else None
        points = [raw] if key == "value" else raw
        for point in points if isinstance(points, list) else ():
            try:
                ts, value = float(point[0]), float(point[1])
            except (TypeError, ValueError, IndexError):
                continue
            if math.isfinite(ts) and math.isfinite(value):
                best[ts] = max(value, best.get(ts, value))
    return sorted(best.items())


def _selector(namespace: str, pod: str, container: str) -> str:
    labels = {"namespace": namespace, "pod": pod, "container": container}
    return "{" + ",".join(f'{k}="{_quote(v)}"' for k, v in labels.items()) + "}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
