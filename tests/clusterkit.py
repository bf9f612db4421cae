"""Building blocks for tests on the local cluster: workloads, report look-ups, the operator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import wait_until
from localcluster import LocalCluster, free_port, tail
from promkit import Binaries as PrometheusBinaries
from promkit import PrometheusServer
from realnode import NODE_IP, RealNode
from realnode_cases import Failure

OPERATOR_USER = "kubetriage-operator"


def get_json(cluster: LocalCluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    """`kubectl get KIND NAME -o json`, {} when it does not exist."""
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return {}
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def report_of(
    cluster: LocalCluster, namespace: str, deployment_name: str, symptom: str
) -> dict[str, Any]:
    """The report of a Deployment and symptom, {} when there is none yet."""
    name = f"deployment-{deployment_name}-{symptom.lower()}"
    return get_json(cluster, "diagnosisreports.kubetriage.io", name, namespace)


def wait_for_report(
    cluster: LocalCluster,
    namespace: str,
    deployment_name: str,
    symptom: str,
    *,
    operator: OperatorProcess | None = None,
    timeout: float = 90.0,
) -> dict[str, Any]:
    """Wait until the report exists with a status; on time-out, show the operator's log."""

    def written() -> dict[str, Any] | None:
        report = report_of(cluster, namespace, deployment_name, symptom)
        return report if report.get("status", {}).get("rootCause") else None

    try:
        return wait_until(written, timeout=timeout, what=f"a {symptom} report of {deployment_name}")
    except AssertionError as error:
        logs = operator.logs() if operator else ""
        raise AssertionError(f"{error}\noperator log:\n{logs}") from None


class OperatorProcess:
    """`kubetriage run` as a child process against the local cluster, as a user runs it."""

    def __init__(
        self,
        cluster: LocalCluster,
        log_dir: Path,
        env: dict[str, str],
        *,
        kubeconfig: Path | None = None,
        name: str = "operator",
    ) -> None:
        self.cluster = cluster
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.health_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # Its own identity, so the audit log tells its requests from the tests' own; a caller
        # that proves RBAC passes a ServiceAccount's kubeconfig instead.
        self.kubeconfig = kubeconfig or cluster.issue_kubeconfig(
            "operator", user=OPERATOR_USER, group="system:masters"
        )

    def start(self) -> None:
        """Start the operator and wait for its liveness endpoint."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "KUBETRIAGE_HEALTH_PORT": str(self.health_port),
            "KUBETRIAGE_METRICS_PORT": str(self.metrics_port),
            "KUBETRIAGE_LOG_FORMAT": "json",
            **self.env,
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "kubetriage"), "run"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        log.close()

        def healthy() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"operator exited {self.proc.returncode}:\n{self.logs()}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.health_port}/healthz", timeout=2
                ):
                    return True
            except OSError:
                return False

        wait_until(healthy, timeout=60, what="the operator's liveness endpoint")

    def scrape(self) -> dict[str, float]:
        """The operator's /metrics, as {series: value} (series with their labels)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                series, _, value = line.rpartition(" ")
                samples[series] = float(value)
        return samples

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a node dies."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def logs(self, lines: int = 60) -> str:
        """The operator's last log lines."""
        return tail(self.log_path, lines)


# -- the real-node tier (tests/realnode, hack/realnode.py) -------------------------------------

KUBETRIAGE = Path(sys.executable).parent / "kubetriage"
# A directory that holds another `kubetriage` package (e.g. `git archive <commit> operator`
# unpacked): the real-node tier then runs that one, to compare before and after a change.
OPERATOR_SOURCE = "REALNODE_OPERATOR_SOURCE"


@dataclass(frozen=True)
class RealCluster:
    """The control plane and its real node."""

    cluster: LocalCluster
    node: RealNode

    def kubetriage(
        self, *args: str, timeout: float = 120, settings: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`kubetriage ARGS` as a user runs it, against this cluster, with only `settings`
        of the KUBETRIAGE_* environment (none of the test run's own)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETRIAGE_")}
        env.update(settings or {})
        env["KUBECONFIG"] = str(self.cluster.kubeconfig)
        command = [str(KUBETRIAGE)]
        if os.environ.get(OPERATOR_SOURCE):
            env["PYTHONPATH"] = os.environ[OPERATOR_SOURCE]
            command = [sys.executable, "-m", "kubetriage.cli"]
        return subprocess.run(
            [*command, *args], capture_output=True, text=True, env=env, timeout=timeout,
            check=False,
        )  # fmt: skip


def pod_summary(pod: dict[str, Any]) -> str:
    """The first container in a few words: `terminated: Error 1, restarts 3, not ready, last
    Error 1` (or the phase and why, before there is a container status)."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    if not statuses:
        scheduled: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), {}
        )
        return f"{status.get('phase')} ({scheduled.get('reason') or 'no container status'})"
    first = statuses[0]
    kind, detail = next(iter((first.get("state") or {"none": {}}).items()))
    reason = detail.get("reason") or ""
    code = f" {detail['exitCode']}" if "exitCode" in detail else ""
    last = (first.get("lastState") or {}).get("terminated") or {}
    last_text = f", last {last.get('reason')} {last.get('exitCode')}" if last else ""
    ready = "ready" if first.get("ready") else "not ready"
    return (
        f"{kind}{': ' + reason if reason else ''}{code}, restarts {first.get('restartCount')}, "
        f"{ready}{last_text}"
    )


@dataclass
class Sample:
    """One `kubetriage scan` and the pods' states at that moment."""

    seconds: float
    pods: dict[str, str]
    reports: dict[str, list[tuple[str, str]]]
    error: str = ""


@dataclass
class TierRun:
    """What the tier saw: the samples, and capture -> diagnose per failure."""

    failures: list[Failure]
    samples: list[Sample]
    offline: dict[str, list[tuple[str, str]]]
    offline_errors: dict[str, str]
    # What `kubetriage run` (default grace periods) wrote as DiagnosisReports, and its log's end.
    operator: dict[str, list[tuple[str, str]]]
    operator_log: str = ""


# A real Prometheus that scrapes the real kubelet's cAdvisor (/metrics/cadvisor): over HTTPS on
# the kubelet's port, verifying its serving certificate against the cluster CA, with a client
# certificate of its own identity, which RBAC allows `get nodes/metrics` and nothing else.

SCRAPE_INTERVAL = "2s"
SCRAPER_USER = "kubetriage-prometheus"


def scraper_rbac() -> list[dict[str, Any]]:
    """Lets the scraper read kubelet metrics, nothing more."""
    name = "kubetriage:prometheus-kubelet-metrics"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [{"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": SCRAPER_USER}
            ],
        },
    ]


def scrape_config(cluster: LocalCluster, node: RealNode) -> str:
    """prometheus.yml: one job, the kubelet's cAdvisor endpoint."""
    pki = cluster.pki
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1h"},
        "scrape_configs": [
            {
                "job_name": "kubelet-cadvisor",
                "scheme": "https",
                "metrics_path": "/metrics/cadvisor",
                "tls_config": {
                    "ca_file": str(pki.path("ca.crt")),
                    "cert_file": str(pki.path("prometheus.crt")),
                    "key_file": str(pki.path("prometheus.key")),
                },
                "static_configs": [
                    {"targets": [f"{NODE_IP}:{node.kubelet_port}"], "labels": {"node": node.name}}
                ],
            }
        ],
    }
    return json.dumps(config)


@dataclass
class ScrapingPrometheus(PrometheusServer):
    """PrometheusServer with a scrape configuration, and the queries a scraping test needs."""

    retention: str | None = None

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def query_range(self, expression: str, seconds: float, step: float = 2.0) -> list[Any]:
        """A range query over the last `seconds`: its result matrix."""
        end = time.time()
        params = {"query": expression, "start": end - seconds, "end": end, "step": step}
        url = f"{self.url}/api/v1/query_range?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body: dict[str, Any] = json.load(response)
        result: list[Any] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets and their health."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as response:
            body: dict[str, Any] = json.load(response)
        active: list[dict[str, Any]] = body["data"]["activeTargets"]
        return active


def start_scraper(
    cluster: LocalCluster, node: RealNode, directory: Path, binaries: PrometheusBinaries
) -> ScrapingPrometheus:
    """The identity, its RBAC, and the running server."""
    cluster.pki.client("prometheus", user=SCRAPER_USER)
    cluster.apply(scraper_rbac())
    server = ScrapingPrometheus(
        directory / "tsdb", binaries, config_text=scrape_config(cluster, node)
    )
    server.start()
    return server
