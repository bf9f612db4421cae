"""A real Prometheus server for tests, loaded with series the test writes (DESIGN.md section 7).

The series go through the same path as a backfill in production: OpenMetrics text ->
`promtool tsdb create-blocks-from openmetrics` -> TSDB blocks -> a `prometheus` process that
serves them on a free local port, with no scrape targets. Samples may be years old: retention is
100 years, so the server never deletes them. `--query.lookback-delta` keeps its default (5m), as
in production: the history client reads ranges (`max_over_time`), which the lookback does not
touch, so a test does not depend on it.

Binaries come from Debian's `prometheus` package (`/usr/bin/prometheus`, `/usr/bin/promtool`;
`make test` installs it). Outside CI a missing binary skips the test; under `CI=true` it fails
the run, as everywhere else in the suite (tests/conftest.py `unavailable`).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from helpers import unavailable
from localcluster import free_port

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
# No scrape targets: the server only answers queries over the blocks it was given.
MINIMAL_CONFIG = "global:\n  scrape_interval: 1h\n  evaluation_interval: 1h\nscrape_configs: []\n"


class PromkitError(RuntimeError):
    """promtool or prometheus failed; the message carries their output."""


@dataclass(frozen=True)
class Binaries:
    """Where `prometheus` and `promtool` are."""

    prometheus: Path
    promtool: Path

    @classmethod
    def find(cls) -> Binaries | None:
        """The binaries from $PROMETHEUS_BIN / $PROMTOOL_BIN, /usr/bin or $PATH; None if absent."""
        found: list[Path] = []
        for name in ("prometheus", "promtool"):
            candidates = [os.environ.get(f"{name.upper()}_BIN"), f"/usr/bin/{name}"]
            candidates.append(shutil.which(name))
            path = next(
                (Path(c) for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)),
                None,
            )
            if path is None:
                return None
            found.append(path)
        return cls(*found)


def require_binaries() -> Binaries:
    """The binaries, or skip (fail under CI) with the command that installs them."""
    binaries = Binaries.find()
    if binaries is None:
        unavailable(f"prometheus/promtool not found: {INSTALL_HINT}")
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    return binaries


@dataclass(frozen=True)
class Series:
    """One time series to load: a metric name, its labels, samples [(unix seconds, value)].

    `kind` is its OpenMetrics type; a `counter`'s metric name must end in `_total`.
    """

    metric: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]]
    kind: str = "gauge"

    @property
    def family(self) -> str:
        """The OpenMetrics family name (a counter's name without `_total`)."""
        return self.metric.removesuffix("_total") if self.kind == "counter" else self.metric


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def openmetrics(series: Iterable[Series]) -> str:
    """OpenMetrics text for these series: grouped by family, each series' samples in time order,
    timestamps in seconds, ending with `# EOF` (promtool refuses a file without it)."""
    families: dict[str, list[Series]] = {}
    for one in series:
        families.setdefault(one.family, []).append(one)
    lines: list[str] = []
    for family, members in families.items():
        lines.append(f"# TYPE {family} {members[0].kind}")
        for one in members:
            labels = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(one.labels.items()))
            name = f"{one.metric}{{{labels}}}" if labels else one.metric
            for ts, value in sorted(one.samples):
                lines.append(f"{name} {_number(value)} {ts:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def create_blocks(series: Iterable[Series], data_dir: Path, binaries: Binaries) -> Path:
    """Write the series as TSDB blocks into `data_dir` with promtool; returns `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = data_dir.parent / f"{data_dir.name}.om"
    source.write_text(openmetrics(series))
    result = subprocess.run(
        [str(binaries.promtool), "tsdb", "create-blocks-from", "openmetrics", str(source),
         str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise PromkitError(
            f"promtool create-blocks-from openmetrics failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return data_dir


@dataclass
class PrometheusServer:
    """A `prometheus` process over one TSDB directory; a context manager that starts it, waits
    for /-/ready, and stops it. `log()` is its output (put in the failure message on failure)."""

    data_dir: Path
    binaries: Binaries
    port: int = field(default_factory=free_port)
    # What it scrapes: nothing by default (the tests load their samples as blocks).
    config_text: str = MINIMAL_CONFIG
    # Loaded samples are old: keep them. A scraping server keeps Prometheus's default.
    retention: str | None = "100y"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the process writes its output."""
        return self.data_dir.parent / f"{self.data_dir.name}-prometheus.log"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """The server's output so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> None:
        """Start the server and wait until it is ready; PromkitError (with its log) if not."""
        config = self.data_dir.parent / f"{self.data_dir.name}-prometheus.yml"
        config.write_text(self.config_text)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(self.binaries.prometheus),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            *([f"--storage.tsdb.retention.time={self.retention}"] if self.retention else []),
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=info",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise PromkitError(f"prometheus exited at start:\n{self.log()}")
            if self._ready():
                return
            time.sleep(0.1)
        self.stop()
        raise PromkitError(f"prometheus not ready after {START_TIMEOUT:.0f}s:\n{self.log()}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the port refuses connections afterwards."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
