"""Building blocks for tests on the local cluster: workloads, report look-ups, the operator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from helpers import wait_until
from localcluster import LocalCluster, free_port, tail

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
