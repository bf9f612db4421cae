"""Fixtures of the real-node tier (DESIGN.md 9): one control plane with ONE real node (kubelet,
containerd, runc, CNI bridge, local registries: hack/realnode.py) for the whole session, and
every failure of hack/realnode_cases.py created on it at once, so that the tier takes minutes.

On a machine that cannot run a real node (not Linux, not root, packages missing) the tier skips
and says why; under CI=true it fails instead (tests/helpers.py `unavailable`). With
REALNODE_OPERATOR_SOURCE=DIR the tier runs the `kubetriage` package in DIR instead of the
installed one (e.g. `git archive <commit> operator | tar -x -C /tmp/before`, DIR=/tmp/before/
operator), to tell what a change to kubetriage did on the same real failures. The terminal
summary prints the real node's set-up time, the tier's wall time and the table of what
kubetriage named at each sample (also written to `realnode-report.md` in the session's
temporary directory).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clusterkit import (
    OPERATOR_SOURCE,
    OperatorProcess,
    RealCluster,
    Sample,
    ScrapingPrometheus,
    TierRun,
    pod_summary,
    start_scraper,
)
from helpers import CRD_PATH, unavailable, wait_until
from localcluster import REAL_NODE_COMPONENTS, Binaries, ControlPlaneError, LocalCluster
from promkit import INSTALL_HINT
from promkit import Binaries as PrometheusBinaries
from realnode import RealNode, RealNodeError, unavailable_reason
from realnode_cases import NAMESPACE, Failure, failures, manifests, second_revisions

# How the tier samples the crash cycle: after every crash-looping pod has restarted at least
# MIN_RESTARTS times, SAMPLES scans SAMPLE_EVERY seconds apart (the pods go through terminated,
# waiting: CrashLoopBackOff and running meanwhile, with back-offs of 20 to 80 s).
MIN_RESTARTS = 2
SAMPLES = 5
SAMPLE_EVERY = 12.0
# `kubetriage run` keeps its default grace periods (DESIGN.md 3: 60 s for crash loops and image
# pulls, 120 s for Pending); its reports are awaited until this long after the failures began.
OPERATOR_DEADLINE = 240.0


@dataclass
class Timing:
    """When the tier started and how long the node took."""

    began: float = 0.0
    setup_seconds: float = 0.0
    ready_seconds: float = 0.0
    ended: float | None = None


TIMING = Timing()
REPORT_ROWS: list[str] = []
REPORT_PATH: list[Path] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/realnode needs the real node: mark it so."""
    for item in items:
        if "/realnode/" in str(item.path):
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def real_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    """A control plane (no kwok nodes) and one real node, torn down cleanly at the end."""
    TIMING.began = time.monotonic()
    reason = unavailable_reason()
    if reason:
        unavailable(reason)
    binaries = Binaries.find(components=REAL_NODE_COMPONENTS)
    base = tmp_path_factory.mktemp("realnode")
    REPORT_PATH.append(base / "realnode-report.md")
    cluster = LocalCluster(base / "cluster", binaries, nodes=0)
    try:
        cluster.start()
    except ControlPlaneError as error:
        pytest.fail(f"the local control plane did not start: {error}", pytrace=False)
    node = RealNode(cluster, base / "node", binaries)
    try:
        node.start()
    except RealNodeError as error:
        cluster.stop()
        pytest.fail(f"the real node did not start: {error}", pytrace=False)
    TIMING.setup_seconds, TIMING.ready_seconds = node.setup_seconds, node.ready_seconds
    try:
        yield RealCluster(cluster, node)
    finally:
        try:
            node.stop()
        finally:
            cluster.stop()
            TIMING.ended = time.monotonic()


def _reports_by_workload(document: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    for report in document.get("items") or []:
        target = (report.get("spec") or {}).get("target") or {}
        symptom = (report.get("spec") or {}).get("symptom") or ""
        category = ((report.get("status") or {}).get("rootCause") or {}).get("category") or ""
        found.setdefault(str(target.get("name")), []).append((symptom, category))
    return found


def _pods_by_app(cluster: LocalCluster) -> dict[str, str]:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)
    by_app: dict[str, str] = {}
    for pod in sorted(pods["items"], key=lambda p: p["metadata"]["creationTimestamp"]):
        app = (pod["metadata"].get("labels") or {}).get("app", "")
        text = pod_summary(pod)
        by_app[app] = f"{by_app[app]} | {text}" if app in by_app else text
    return by_app


def _restarts(cluster: LocalCluster, apps: set[str]) -> dict[str, int]:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)
    counts: dict[str, int] = dict.fromkeys(apps, 0)
    for pod in pods["items"]:
        app = (pod["metadata"].get("labels") or {}).get("app", "")
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if app in counts:
                counts[app] = max(counts[app], int(status.get("restartCount") or 0))
    return counts


@pytest.fixture(scope="session")
def cadvisor_scraper(
    real_cluster: RealCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ScrapingPrometheus | None]:
    """A real Prometheus scraping the real kubelet's cAdvisor every 2 s from before the failures
    start, so that their whole history is there; None without Prometheus (see `cadvisor`)."""
    binaries = PrometheusBinaries.find()
    if binaries is None:
        yield None
        return
    server = start_scraper(
        real_cluster.cluster, real_cluster.node, tmp_path_factory.mktemp("cadvisor"), binaries
    )
    try:
        wait_until(
            lambda: any(t["health"] == "up" for t in server.targets()),
            timeout=30,
            what="the kubelet's cAdvisor target up",
        )
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cadvisor(cadvisor_scraper: ScrapingPrometheus | None) -> ScrapingPrometheus:
    """The Prometheus that scrapes the real kubelet's cAdvisor (skip, or fail under CI, without
    Prometheus). For kubetriage's memory history on the real node (OOMKilled.MemoryLeak against
    OOMKilled.LimitTooLow): KUBETRIAGE_PROMETHEUS_URL=`cadvisor.url`."""
    if cadvisor_scraper is None:
        unavailable(f"prometheus not found: {INSTALL_HINT}")
        raise AssertionError("unreachable")  # pytest.skip and pytest.fail raise
    return cadvisor_scraper


@pytest.fixture(scope="session")
def tier_run(
    real_cluster: RealCluster,
    cadvisor_scraper: ScrapingPrometheus | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> TierRun:
    """Every failure at once, watched by `kubetriage run` from the start; SAMPLES scans across
    the crash cycle; capture and diagnose each; then the operator's reports."""
    cluster, node = real_cluster.cluster, real_cluster.node
    cases = failures(node.image)
    objects = manifests(node.image)
    # The memory history comes from the real cAdvisor, for the operator and the CLI alike, on
    # the tier's time scale: a scrape every 2 s, and a leak that fills its limit in 45 s (a
    # production leak takes hours; the default minimum climb of 30 minutes would call it a
    # start-up that needs more memory).
    settings = {
        "KUBETRIAGE_PROMETHEUS_URL": cadvisor_scraper.url,
        "KUBETRIAGE_PROMETHEUS_STEP_SECONDS": "2",
        "KUBETRIAGE_PROMETHEUS_WINDOW_SECONDS": "900",
        "KUBETRIAGE_MEMORY_LEAK_MIN_CLIMB_SECONDS": "20",
    } if cadvisor_scraper else {}  # fmt: skip
    operator = _start_operator(cluster, tmp_path_factory.mktemp("operator"), settings)
    cluster.apply(objects[0])
    cluster.wait_for_default_service_account(NAMESPACE)
    created = time.monotonic()
    cluster.apply(objects[1:])
    cluster.kubectl(
        "rollout", "status", "deployment/bad-rollout", "-n", NAMESPACE, "--timeout=120s"
    )
    cluster.apply(second_revisions(node.image))
    crashing = {c.name for c in cases if c.crash_loops and c.revision is None}
    wait_until(
        lambda: all(n >= MIN_RESTARTS for n in _restarts(cluster, crashing).values()),
        timeout=180,
        interval=2,
        what=f"every crash-looping pod restarted {MIN_RESTARTS} times",
    )
    samples: list[Sample] = []
    for index in range(SAMPLES):
        if index:
            time.sleep(SAMPLE_EVERY)
        pods = _pods_by_app(cluster)
        result = real_cluster.kubetriage("scan", "-n", NAMESPACE, "-o", "json", settings=settings)
        sample = Sample(round(time.monotonic() - created, 1), pods, {})
        if result.returncode != 0:
            sample.error = f"exit {result.returncode}: {result.stderr.strip()[-2000:]}"
        else:
            sample.reports = _reports_by_workload(json.loads(result.stdout))
        samples.append(sample)
    offline: dict[str, list[tuple[str, str]]] = {}
    errors: dict[str, str] = {}
    snapshots = tmp_path_factory.mktemp("snapshots")
    for case in cases:
        path = snapshots / f"{case.name}.json"
        captured = real_cluster.kubetriage(
            "capture", f"{case.kind.lower()}/{case.name}", "-n", NAMESPACE, "-o", str(path),
            settings=settings,
        )  # fmt: skip
        if captured.returncode != 0:
            errors[case.name] = f"capture exit {captured.returncode}: {captured.stderr[-1500:]}"
            continue
        replay = real_cluster.kubetriage(
            "diagnose", "--snapshot", str(path), "-o", "json", settings=settings
        )
        if replay.returncode != 0:
            errors[case.name] = f"diagnose exit {replay.returncode}: {replay.stderr[-1500:]}"
            continue
        offline[case.name] = _reports_by_workload(json.loads(replay.stdout)).get(case.name, [])
    try:
        written = _operator_reports(cluster, cases, deadline=created + OPERATOR_DEADLINE)
        operator_log = operator.logs(lines=40)
    finally:
        operator.stop()
    run = TierRun(cases, samples, offline, errors, written, operator_log)
    _write_report(run)
    return run


def _start_operator(
    cluster: LocalCluster, log_dir: Path, settings: dict[str, str]
) -> OperatorProcess:
    """`kubetriage run` with its default grace periods (the one under test, or the one in
    REALNODE_OPERATOR_SOURCE), its CRD installed first."""
    cluster.kubectl("apply", "-f", str(CRD_PATH))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io",
        "--timeout=60s",
    )  # fmt: skip
    env = {"KUBETRIAGE_CLUSTER_NAME": "realnode", **settings}
    if os.environ.get(OPERATOR_SOURCE):
        env["PYTHONPATH"] = os.environ[OPERATOR_SOURCE]
    operator = OperatorProcess(cluster, log_dir, env)
    operator.start()
    return operator


def _operator_reports(
    cluster: LocalCluster, cases: list[Failure], deadline: float
) -> dict[str, list[tuple[str, str]]]:
    """The operator's DiagnosisReports by workload, once each case has its expected one or at
    `deadline` (what is there then: the test says which are missing)."""
    expected = {case.name: (case.symptom, case.category) for case in cases}

    def written() -> dict[str, list[tuple[str, str]]]:
        listed = cluster.kubectl("get", "diagnosisreports", "-n", NAMESPACE, "-o", "json").stdout
        return _reports_by_workload(json.loads(listed))

    reports = written()
    while time.monotonic() < deadline and any(
        want not in reports.get(name, []) for name, want in expected.items()
    ):
        time.sleep(3)
        reports = written()
    return reports


def _named(reports: list[tuple[str, str]]) -> str:
    return ", ".join(f"{symptom}/{category}" for symptom, category in reports) or "(nothing)"


def _write_report(run: TierRun) -> None:
    rows = [
        "| failure | expected | sample (s after creation): pod state -> what `scan` named | "
        "capture -> diagnose | `run` wrote |",
        "|---|---|---|---|---|",
    ]
    for case in run.failures:
        cells = []
        for sample in run.samples:
            named = sample.error or _named(sample.reports.get(case.name, []))
            cells.append(f"{sample.seconds:.0f}s: {sample.pods.get(case.name, '?')} -> {named}")
        offline = run.offline_errors.get(case.name) or _named(run.offline.get(case.name, []))
        written = _named(run.operator.get(case.name, []))
        rows.append(
            f"| {case.name} | {case.symptom}/{case.category} | {'<br>'.join(cells)} | {offline} "
            f"| {written} |"
        )
    REPORT_ROWS[:] = rows
    if REPORT_PATH:
        REPORT_PATH[0].write_text("\n".join(rows) + "\n")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the set-up time, the wall time and the table."""
    if not TIMING.setup_seconds:
        return
    ended = TIMING.ended or time.monotonic()
    terminalreporter.write_sep("=", "real node")
    terminalreporter.write_line(
        f"real node set-up {TIMING.setup_seconds:.1f}s (kubelet start to Ready "
        f"{TIMING.ready_seconds:.1f}s); real-node tier wall time {ended - TIMING.began:.0f}s"
    )
    for row in REPORT_ROWS:
        terminalreporter.write_line(row)
    if REPORT_PATH:
        terminalreporter.write_line(f"(table written to {REPORT_PATH[0]})")
