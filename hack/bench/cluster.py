"""The operator at scale: thousands of kwok pods, some workloads broken, on the local cluster.

Starts the local control plane tuned for many pods (LocalCluster(scale=True)), N kwok nodes and a
mix of Deployments totalling M pods, then measures `kubetriage run` (grace 0, its own client
certificate, so the audit log tells its requests apart):

1. a healthy cluster: time to the end of the initial listing, then API requests per minute in
   steady state with nothing failing;
2. F% of the workloads broken at one instant, by a rollout of a broken revision, across every
   symptom (crash loop, OOM kill, image pull, unschedulable by node selector and by size, a
   rollout stuck on a ResourceQuota): detection latency, status change to report, per workload,
   and API requests per diagnosis;
3. a new operator started after the breakage (reports deleted): time until every broken
   workload has its report;
4. with that operator running, single one-replica Deployments broken from the start, one every
   few seconds: detection latency of one failure at a time in the full-size cluster, without
   the churn of a mass rollout;
5. peak RSS (VmHWM) and CPU seconds (utime+stime) of each operator process along the way;
6. `kubetriage scan` against `k8sgpt analyze` on the same cluster (hack/bench/versus_k8sgpt.py).

    python hack/bench/cluster.py [--nodes 100] [--pods 10000] [--broken-percent 10]
                                 [--steady-seconds 330] [--singles 12] [--runs 3] [--no-k8sgpt]

Prints Markdown tables on stdout (progress on stderr) and keeps them in <workdir>/results.md.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # clusterkit
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, localcluster
from bench import versus_k8sgpt
from bench.scalekit import (
    BREAKAGES,
    Api,
    Observer,
    ProcessFigures,
    Request,
    Workload,
    apiserver_seconds,
    audited_requests,
    break_workloads,
    by_verb,
    count_requests,
    create_one_by_one,
    describe_counts,
    describe_verbs,
    log,
    machine,
    percentile,
    plan_workloads,
    prepare_cluster,
    process_figures,
    seconds,
    single_workloads,
    table,
)
from clusterkit import OPERATOR_USER, OperatorProcess
from localcluster import Binaries, LocalCluster

STARTUP_USER = "kubetriage-operator-startup"
SETTLE_SECONDS = 10.0
REPORT_TIMEOUT = 900.0


@dataclass
class Phase:
    """A stretch of the run, by the wall clock (the audit log's clock)."""

    start: float
    end: float


def scrape(operator: OperatorProcess, attempts: int = 10) -> dict[str, float]:
    """The operator's /metrics, patient: while it handles the initial listing of 10,000 pods
    its HTTP thread can wait seconds for the interpreter lock."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                text = response.read().decode()
            break
        except OSError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def metric_total(operator: OperatorProcess, name: str, **labels: str) -> float:
    """The sum of a metric's series whose labels include these."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(
        value
        for series, value in scrape(operator).items()
        if series.split("{")[0] == name and all(w in series for w in wanted)
    )


def count_pods(api: Api) -> int:
    """How many pods the cluster holds now (one small LIST)."""
    listed = api.call(api.core.list_pod_for_all_namespaces, limit=1)
    remaining = listed["metadata"].get("remainingItemCount")
    if remaining is None:
        return len(api.call(api.core.list_pod_for_all_namespaces)["items"])
    return int(remaining) + len(listed["items"])


def wait_for_initial_listing(
    operator: OperatorProcess, api: Api, deployments: int, timeout: float = 900.0
) -> None:
    """Until the operator has handled the initial listing of every pod and Deployment."""
    pods = count_pods(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed_pods = metric_total(
            operator, "kubetriage_watch_events_total", kind="Pod", type="LISTED"
        )
        listed_deployments = metric_total(
            operator, "kubetriage_watch_events_total", kind="Deployment", type="LISTED"
        )  # fmt: skip
        if listed_pods >= pods * 0.99 and listed_deployments >= deployments:
            return
        time.sleep(0.25)
    raise TimeoutError(f"the operator did not list {pods} pods within {timeout:.0f} s")


def wait_for_quiet(operator: OperatorProcess, quiet: float = 10.0, limit: float = 180.0) -> None:
    """Until no diagnosis has been written for `quiet` seconds (rollouts add failing pods for a
    while after the breakage, and each new one is diagnosed again)."""
    deadline = time.monotonic() + limit
    last, since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        done = metric_total(operator, "kubetriage_diagnoses_total")
        if done != last:
            last, since = done, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.5)


def first_diagnoses(operator: OperatorProcess, since: float) -> dict[tuple[str, str, str], float]:
    """From the operator's log: how long the first diagnosis of each (namespace, workload,
    symptom) written after `since` took, from its start to its report written."""
    found: dict[tuple[str, str, str], float] = {}
    with operator.log_path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if '"diagnosed"' not in line:
                continue
            entry = json.loads(line)
            if datetime.fromisoformat(entry["timestamp"]).timestamp() < since:
                continue
            # "target": "deployment/app-00001 -n bench-1"
            kind_name, _, namespace = str(entry.get("target", "")).partition(" -n ")
            key = (namespace, kind_name.partition("/")[2], str(entry.get("symptom")))
            found.setdefault(key, float(entry.get("seconds", 0.0)))
    return found


def write_timeline(
    path: Path,
    broken: list[Workload],
    observer: Observer,
    diagnosed: dict[tuple[str, str, str], float],
) -> None:
    """One line per broken workload: when its symptom showed and its report came (wall clock),
    and how long its first diagnosis took, for a closer look than the tables give."""
    lines = ["namespace,workload,breakage,symptom_at,report_at,latency_s,diagnosis_s"]
    for workload in broken:
        assert workload.breakage is not None
        key = observer.expected_key(workload)
        seen, report = observer.symptoms.get(key), observer.reports.get(key)
        latency = report.monotonic - seen.monotonic if seen and report else float("nan")
        lines.append(
            f"{workload.namespace},{workload.name},{workload.breakage.name},"
            f"{seen.wall if seen else ''},{report.wall if report else ''},{latency:.3f},"
            f"{diagnosed.get(key, float('nan')):.3f}"
        )
    path.write_text("\n".join(lines) + "\n")


def operator_env() -> dict[str, str]:
    """What the operator under test runs with: every symptom diagnosed at once."""
    return {"KUBETRIAGE_GRACE_SECONDS": "0", "KUBETRIAGE_CLUSTER_NAME": "bench"}


def figures_row(label: str, figures: ProcessFigures) -> list[object]:
    return [
        label,
        f"{figures.peak_rss_mib:.0f} MiB",
        f"{figures.rss_mib:.0f} MiB",
        f"{figures.cpu_seconds:.1f} s",
    ]


def latency_table(
    workloads: list[Workload], observer: Observer, diagnosed: dict[tuple[str, str, str], float]
) -> str:
    """p50/p95/p99/max of status change to report per breakage, and the diagnoses' own time."""
    latencies: dict[str, list[float]] = {}
    durations: dict[str, list[float]] = {}
    for workload in workloads:
        assert workload.breakage is not None
        key = observer.expected_key(workload)
        if key in observer.reports and key in observer.symptoms:
            latency = observer.reports[key].monotonic - observer.symptoms[key].monotonic
            for group in (workload.breakage.name, "all"):
                latencies.setdefault(group, []).append(latency)
                if key in diagnosed:
                    durations.setdefault(group, []).append(diagnosed[key])
    rows: list[list[object]] = []
    for group in [*(b.name for b in BREAKAGES), "all"]:
        values, took = latencies.get(group, []), durations.get(group, [])
        if values:
            rows.append([group, len(values), seconds(percentile(values, 0.5)),
                         seconds(percentile(values, 0.95)), seconds(percentile(values, 0.99)),
                         seconds(max(values)),
                         seconds(percentile(took, 0.5)) if took else "?"])  # fmt: skip
    return table(["breakage", "workloads", "p50", "p95", "p99", "max", "diagnosis p50"], rows)


def missing_note(missing: list[Workload]) -> list[str]:
    if not missing:
        return []
    names = ", ".join(f"{w.namespace}/{w.name}" for w in missing)
    return ["", f"Without a report after {REPORT_TIMEOUT:.0f} s: {names}"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--broken-percent", type=float, default=10.0)
    parser.add_argument(
        "--steady-seconds",
        type=float,
        default=330.0,
        help="steady state to measure; over 300 s includes a reconnect of the operator's watches",
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=0.0,
        help="break one workload every STAGGER seconds instead of all at once",
    )
    parser.add_argument("--singles", type=int, default=12, help="single failures, one at a time")
    parser.add_argument("--single-gap", type=float, default=5.0, help="seconds between them")
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of kubetriage scan and k8sgpt --filter Pod"
    )
    parser.add_argument(
        "--other-runs",
        type=int,
        default=1,
        help="runs of k8sgpt with --filter Pod,Deployment and with no filter (0: skip them)",
    )
    parser.add_argument("--no-k8sgpt", action="store_true", help="skip the comparison")
    parser.add_argument("--workdir", type=Path, help="default: a new temp dir")
    return parser.parse_args()


def main() -> int:  # noqa: PLR0915 (one benchmark, phase after phase)
    """Run every phase and print the tables."""
    args = parse_args()
    command = shlex.join([".venv/bin/python", "hack/bench/cluster.py", *sys.argv[1:]])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubetriage-scale-"))
    k8sgpt = None if args.no_k8sgpt else versus_k8sgpt.k8sgpt_binary()
    workloads = plan_workloads(args.pods, args.namespaces, args.broken_percent)
    broken = [w for w in workloads if w.breakage is not None]
    singles = single_workloads(args.singles)
    log(f"work directory {workdir}: {len(workloads)} Deployments, {len(broken)} to break")
    out: list[str] = [f"Machine: {machine()}.", f"Command: `{command}`"]
    node_pods = max(110, math.ceil(2 * args.pods / args.nodes))
    with LocalCluster(
        workdir, Binaries.find(), nodes=args.nodes, node_cpu="32", node_memory="256Gi",
        node_pods=str(node_pods), scale=True, startup_timeout=300,
    ) as cluster, ExitStack() as cleanup:  # fmt: skip
        api = Api(cluster.kubeconfig)
        bring_up = prepare_cluster(cluster, api, workloads)
        log(f"{args.pods} pods running after {bring_up:.0f} s")
        out += ["", table(
            ["nodes", "pods", "Deployments", "namespaces", "broken workloads", "pods up in"],
            [[args.nodes, args.pods, len(workloads), len({w.namespace for w in workloads}),
              len(broken), f"{bring_up:.0f} s"]],
        )]  # fmt: skip
        observer = Observer(api)
        observer.start()
        cleanup.callback(observer.stop)

        # 1. Initial listing and steady state, nothing failing.
        operator = OperatorProcess(cluster, cluster.logs_dir, operator_env(), name="operator")
        started, launched = time.monotonic(), time.time()
        cleanup.callback(operator.stop)  # also when anything fails: it is not the cluster's child
        operator.start()
        assert operator.proc is not None
        live = time.monotonic() - started
        wait_for_initial_listing(operator, api, len(workloads))
        synced = time.monotonic() - started
        after_sync = process_figures(operator.proc.pid)
        log(f"operator listed everything {synced:.1f} s after its start; steady state now")
        time.sleep(SETTLE_SECONDS)
        steady = Phase(time.time(), 0.0)
        time.sleep(args.steady_seconds)
        steady.end = time.time()
        after_steady = process_figures(operator.proc.pid)

        # 2. Breakage with the operator running: detection latency.
        before = metric_total(operator, "kubetriage_diagnoses_total")
        breakage = Phase(break_workloads(api, workloads, args.stagger), 0.0)
        missing = observer.wait_for_reports(broken, REPORT_TIMEOUT)
        wait_for_quiet(operator)
        breakage.end = time.time()
        diagnoses = metric_total(operator, "kubetriage_diagnoses_total") - before
        after_breakage = process_figures(operator.proc.pid)
        diagnosed = first_diagnoses(operator, breakage.start)
        burst_latency = latency_table(broken, observer, diagnosed)
        write_timeline(workdir / "detection.csv", broken, observer, diagnosed)
        operator.stop()

        # 3. A new operator, started after the breakage, with no report left.
        cluster.kubectl("delete", "diagnosisreports.kubetriage.io", "--all", "-A", "--wait=true")
        observer.forget_reports()
        restarted = OperatorProcess(
            cluster, cluster.logs_dir, operator_env(), name="operator-startup",
            kubeconfig=cluster.issue_kubeconfig(
                "operator-startup", user=STARTUP_USER, group="system:masters"
            ),
        )  # fmt: skip
        started = time.monotonic()
        startup = Phase(time.time(), 0.0)
        cleanup.callback(restarted.stop)
        restarted.start()
        assert restarted.proc is not None
        live_2 = time.monotonic() - started
        wait_for_initial_listing(restarted, api, len(workloads))
        synced_2 = time.monotonic() - started
        missing_2 = observer.wait_for_reports(broken, REPORT_TIMEOUT)
        reported = [observer.reports[observer.expected_key(w)].monotonic for w in broken
                    if observer.expected_key(w) in observer.reports]  # fmt: skip
        all_reported = max(reported) - started if reported else float("nan")
        wait_for_quiet(restarted)
        startup.end = time.time()
        after_startup = process_figures(restarted.proc.pid)
        startup_diagnoses = metric_total(restarted, "kubetriage_diagnoses_total")
        pods_now = count_pods(api)

        # 4. Single failures in the full cluster, one at a time, the same operator.
        singles_phase = Phase(time.time(), 0.0)
        create_one_by_one(api, singles, args.single_gap)
        missing_3 = observer.wait_for_reports(singles, REPORT_TIMEOUT)
        wait_for_quiet(restarted, quiet=5.0)
        singles_phase.end = time.time()
        single_diagnoses = metric_total(restarted, "kubetriage_diagnoses_total") - startup_diagnoses
        after_singles = process_figures(restarted.proc.pid)
        single_latency = latency_table(
            singles, observer, first_diagnoses(restarted, singles_phase.start)
        )
        restarted.stop()
        observer.stop()

        requests = audited_requests(cluster, [OPERATOR_USER, STARTUP_USER])
        in_sync = count_requests(requests, OPERATOR_USER, launched, launched + synced)
        in_steady = count_requests(requests, OPERATOR_USER, steady.start, steady.end)
        minutes = (steady.end - steady.start) / 60
        how = f"one every {args.stagger:.1f} s" if args.stagger else "all at once"
        out += [
            "",
            f"Detection latency, status change to report, grace 0, {len(broken)} workloads broken "
            f"{how} by a rollout (per broken workload; the last column: how long its first "
            "diagnosis took from its start to its last write, the Event after the report, from "
            "the operator's log):",
            "",
            burst_latency,
            *missing_note(missing),
            "",
            f"Detection latency of single failures in the same cluster: {len(singles)} one-replica "
            f"Deployments broken from the start, one every {args.single_gap:.0f} s, the "
            "operator started in phase 3:",
            "",
            single_latency,
            *missing_note(missing_3),
            "",
            "Start-up with everything already failing (reports deleted, new process):",
            "",
            table(
                ["pods", "broken workloads", "liveness", "initial listing done",
                 "every broken workload reported", "diagnoses"],
                [[pods_now, len(broken) - len(missing_2), seconds(live_2), seconds(synced_2),
                  seconds(all_reported), f"{startup_diagnoses:.0f}"]],
            ),
            *missing_note(missing_2),
            "",
            "The operator processes (VmHWM, VmRSS, utime+stime since the process started):",
            "",
            table(
                ["moment", "peak RSS", "RSS", "CPU"],
                [figures_row(f"healthy, initial listing done ({synced:.1f} s; live after "
                             f"{live:.1f} s)", after_sync),
                 figures_row(f"after {minutes:.1f} min of steady state", after_steady),
                 figures_row(f"breakage diagnosed ({diagnoses:.0f} diagnoses)", after_breakage),
                 figures_row(f"second process: every broken workload reported "
                             f"({startup_diagnoses:.0f} diagnoses)", after_startup),
                 figures_row(f"second process: single failures diagnosed "
                             f"({single_diagnoses:.0f} diagnoses)", after_singles)],
            ),
            "",
            "API requests of the operator (audit log, its own user):",
            "",
            table(
                ["phase", "requests by verb", "which"],
                [["initial listing", describe_verbs(in_sync), describe_counts(in_sync)],
                 [f"steady state, {minutes:.1f} min, nothing failing",
                  describe_verbs(in_steady, minutes, "/min"), describe_counts(in_steady)],
                 per_diagnosis_row(f"breakage: {diagnoses:.0f} diagnoses of {len(broken)} "
                                   "workloads", requests, OPERATOR_USER, breakage, diagnoses),
                 per_diagnosis_row(f"start-up after breakage: {startup_diagnoses:.0f} diagnoses",
                                   requests, STARTUP_USER, startup, startup_diagnoses),
                 per_diagnosis_row(f"single failures: {single_diagnoses:.0f} diagnoses",
                                   requests, STARTUP_USER, singles_phase, single_diagnoses)],
            ),
        ]  # fmt: skip

        if k8sgpt is not None:
            out += ["", versus_k8sgpt.compare(
                cluster, [*workloads, *singles], k8sgpt, workdir,
                runs=args.runs, other_runs=args.other_runs,
            )]  # fmt: skip
    document = "\n".join(out) + "\n"
    (workdir / "results.md").write_text(document)
    sys.stdout.write(document)
    log(f"tables kept in {workdir / 'results.md'}")
    return 0


def per_diagnosis_row(
    label: str, requests: list[Request], user: str, phase: Phase, diagnoses: float
) -> list[object]:
    """A requests-table row with the requests and apiserver time per diagnosis."""
    counts = count_requests(requests, user, phase.start, phase.end)
    non_watch = sum(n for verb, n in by_verb(counts).items() if verb != "watch")
    server_time = apiserver_seconds(requests, user, phase.start, phase.end)
    per = max(diagnoses, 1)
    return [
        label,
        f"{describe_verbs(counts)}; per diagnosis (watches excluded): {non_watch / per:.1f} "
        f"requests, {server_time / per:.2f} s of apiserver time",
        describe_counts(counts),
    ]


if __name__ == "__main__":
    sys.exit(main())
