"""`kubetriage scan` against `k8sgpt analyze`, side by side on the same cluster.

Both are one-shot commands that read the cluster and print what is wrong. On one cluster with a
share of its workloads broken (hack/bench/scalekit.py: a crash loop, an OOM kill, an image pull,
unschedulable by node selector and by size, a rollout stuck on a ResourceQuota), each runs
`--runs` times, alternating; each has its own client certificate so that the audit log counts
its API requests apart. k8sgpt runs without an AI backend (no --explain), with `--output json`,
hermetically (its HOME and XDG directories in the work directory).

Reported: wall time (median, and k8sgpt's over kubetriage's), API requests per run by verb, and
how many broken workloads each names with a specific root cause, by the rule printed with it.

    python hack/bench/versus_k8sgpt.py [--nodes 10] [--pods 1000] [--broken-percent 10] [--runs 3]

hack/bench/cluster.py runs the same comparison at the end of its own run. The k8sgpt binary
comes from hack/bench/build-k8sgpt.sh (built once from its Go module, then cached).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))  # clusterkit
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench, localcluster
from bench.scalekit import (
    BREAKAGES,
    Api,
    Observer,
    Workload,
    audited_requests,
    break_workloads,
    count_requests,
    describe_counts,
    describe_verbs,
    log,
    machine,
    median,
    plan_workloads,
    prepare_cluster,
    table,
)
from localcluster import Binaries, LocalCluster

BUILD_SCRIPT = Path(__file__).resolve().parent / "build-k8sgpt.sh"
KUBETRIAGE = Path(sys.executable).parent / "kubetriage"
RUN_TIMEOUT = 3600
SAMPLE_LENGTH = 220
SPECIFIC_RULE = (
    "A broken workload counts as named with a specific root cause by kubetriage when its "
    "report (the workload, the expected symptom) has the expected category "
    "(CrashLoop.CommandNotFound for exit code 127, OOMKilled.LimitTooLow, ImagePull.NotFound, "
    "Pending.NodeSelectorMismatch, Pending.RequestExceedsNodeCapacity, Rollout.QuotaExceeded). "
    "By k8sgpt when any error text of any result about the workload (a Pod whose parentObject "
    "is the Deployment or whose name starts with the Deployment's, a ReplicaSet of it, the "
    "Deployment itself) names the failure's mechanism, case-insensitively: "
    + "; ".join(f"{b.name}: `{b.k8sgpt_pattern}`" for b in BREAKAGES)
    + '. A generic text ("Deployment x has 10 replicas but 5 are available") does not count.'
)


@dataclass
class Tool:
    """One one-shot command under comparison, with its own identity in the audit log."""

    label: str
    user: str
    argv: list[str]
    env: dict[str, str]
    times: list[float] = field(default_factory=list)
    output: Any = None


def k8sgpt_binary() -> Path:
    """The cached k8sgpt (build-k8sgpt.sh returns at once when it is built)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{BUILD_SCRIPT} failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def tools(cluster: LocalCluster, k8sgpt: Path, workdir: Path) -> list[Tool]:
    """kubetriage scan and three ways to run k8sgpt analyze."""
    home = workdir / "k8sgpt-home"
    (home / "config").mkdir(parents=True, exist_ok=True)
    k8sgpt_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    found: list[Tool] = []

    def identity(slug: str) -> tuple[str, Path]:
        user = f"bench-{slug}"
        return user, cluster.issue_kubeconfig(f"versus-{slug}", user=user, group="system:masters")

    user, kubeconfig = identity("kubetriage-scan")
    scan_env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETRIAGE_")}
    found.append(Tool("kubetriage scan -o json", user, [str(KUBETRIAGE), "scan", "-o", "json"],
                      {**scan_env, "KUBECONFIG": str(kubeconfig)}))  # fmt: skip
    for slug, filters in (("k8sgpt-pod", ["--filter", "Pod"]),
                          ("k8sgpt-pod-deployment", ["--filter", "Pod,Deployment"]),
                          ("k8sgpt-all", [])):  # fmt: skip
        user, kubeconfig = identity(slug)
        argv = [str(k8sgpt), "analyze", *filters, "--output", "json",
                f"--kubeconfig={kubeconfig}", f"--config={home / 'k8sgpt.yaml'}"]  # fmt: skip
        label = shlex.join(["k8sgpt", "analyze", *filters, "--output", "json"])
        found.append(Tool(label, user, argv, k8sgpt_env))
    return found


def run(tool: Tool) -> None:
    """Run once; keep the wall time and the parsed JSON of the output."""
    started = time.perf_counter()
    result = subprocess.run(
        tool.argv, env=tool.env, capture_output=True, text=True, check=False, timeout=RUN_TIMEOUT
    )
    tool.times.append(time.perf_counter() - started)
    if result.returncode != 0:
        raise RuntimeError(f"{tool.label} exited {result.returncode}:\n{result.stderr[-2000:]}")
    start = result.stdout.find("{")
    tool.output = json.loads(result.stdout[start:]) if start >= 0 else {}


def kubetriage_named(output: Any, workloads: Sequence[Workload]) -> dict[str, tuple[bool, str]]:
    """Per broken workload: whether scan named the expected category, and its summary."""
    named: dict[str, tuple[bool, str]] = {}
    reports = (output or {}).get("items") or []
    for workload in workloads:
        assert workload.breakage is not None
        for report in reports:
            spec, status = report.get("spec") or {}, report.get("status") or {}
            if (
                report["metadata"].get("namespace") == workload.namespace
                and (spec.get("target") or {}).get("name") == workload.name
                and spec.get("symptom") == workload.breakage.symptom
            ):
                root = status.get("rootCause") or {}
                text = f"{root.get('category')}: {root.get('summary')}"
                named[workload.name] = (root.get("category") == workload.breakage.category, text)
    return named


def _workload_of_result(result: dict[str, Any], names: set[tuple[str, str]]) -> tuple[str, str]:
    namespace, _, name = str(result.get("name") or "").partition("/")
    parent = str(result.get("parentObject") or "")
    if parent.startswith("Deployment/"):
        return namespace, parent.removeprefix("Deployment/")
    if result.get("kind") == "Deployment":
        return namespace, name
    for dashes in (2, 1):  # a pod <deployment>-<hash>-<id>, a ReplicaSet <deployment>-<hash>
        candidate = (namespace, name.rsplit("-", dashes)[0])
        if candidate in names:
            return candidate
    return namespace, name


def k8sgpt_named(output: Any, workloads: Sequence[Workload]) -> dict[str, tuple[bool, str]]:
    """Per broken workload k8sgpt says anything about: whether a text is specific, and one."""
    names = {w.key for w in workloads}
    texts: dict[tuple[str, str], list[str]] = {}
    for result in (output or {}).get("results") or []:
        key = _workload_of_result(result, names)
        for failure in result.get("error") or []:
            texts.setdefault(key, []).append(str(failure.get("Text") or ""))
    named: dict[str, tuple[bool, str]] = {}
    for workload in workloads:
        assert workload.breakage is not None
        found = texts.get(workload.key, [])
        specific = [t for t in found if re.search(workload.breakage.k8sgpt_pattern, t, re.I)]
        if found:
            named[workload.name] = (bool(specific), (specific or found)[0])
    return named


def _runs(count: int) -> str:
    return f"{count} run" + ("" if count == 1 else "s")


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= SAMPLE_LENGTH else text[: SAMPLE_LENGTH - 1] + "…"


def compare(
    cluster: LocalCluster,
    workloads: Sequence[Workload],
    k8sgpt: Path,
    workdir: Path,
    *,
    runs: int,
    other_runs: int,
) -> str:
    """Run kubetriage scan and k8sgpt --filter Pod `runs` times, the other k8sgpt filters
    `other_runs` times, alternating, and return the Markdown tables."""
    broken = [w for w in workloads if w.breakage is not None]
    # kubetriage scan and k8sgpt --filter Pod first; the other filters only when asked to run.
    candidates = tools(cluster, k8sgpt, workdir)[: None if other_runs > 0 else 2]
    for round_number in range(max(runs, other_runs)):
        for index, tool in enumerate(candidates):
            if round_number < (runs if index < 2 else other_runs):
                run(tool)
                log(f"run {round_number + 1}: {tool.label}: {tool.times[-1]:.2f} s")
    requests = audited_requests(cluster, [t.user for t in candidates])
    scan = candidates[0]
    base = median(scan.times)
    verdicts = [kubetriage_named(scan.output, broken)] + [
        k8sgpt_named(t.output, broken) for t in candidates[1:]
    ]
    rows: list[list[object]] = []
    for tool, named in zip(candidates, verdicts, strict=True):
        counts = count_requests(requests, tool.user, 0.0, math.inf)
        wall = median(tool.times)
        rows.append([
            f"`{tool.label}`",
            f"{wall:.2f} s ({min(tool.times):.2f}-{max(tool.times):.2f}, {_runs(len(tool.times))})",
            f"{wall / base:.2f}x",
            f"{sum(counts.values()) / len(tool.times):.0f}: "
            + describe_verbs(counts, len(tool.times)),
            f"{sum(1 for ok, _ in named.values() if ok)} of {len(broken)}",
            f"{len(named)} of {len(broken)}",
        ])  # fmt: skip
    out = [
        f"`kubetriage scan` against `k8sgpt analyze` (k8sgpt {k8sgpt_version(k8sgpt)}, no AI "
        f"backend), alternating, operator stopped; {len(broken)} broken workloads:",
        "",
        table(
            [
                "command",
                "wall time median (min-max)",
                "time / kubetriage scan",
                "API requests per run: total, by verb",
                "broken workloads named specifically",
                "broken workloads mentioned at all",
            ],
            rows,
        ),
        "",
        "Per breakage (named specifically / broken):",
        "",
    ]
    per_breakage: list[list[object]] = []
    for breakage in BREAKAGES:
        mine = [w for w in broken if w.breakage is breakage]
        if not mine:
            continue
        cells: list[object] = [f"{breakage.name} ({breakage.category})"]
        for named in verdicts:
            cells.append(f"{sum(1 for w in mine if named.get(w.name, (False, ''))[0])}/{len(mine)}")
        per_breakage.append(cells)
    out.append(table(["breakage (expected category)", *[f"`{t.label}`" for t in candidates]],
                     per_breakage))  # fmt: skip
    out += ["", f"Rule: {SPECIFIC_RULE}", "", "Samples, the same workload in each:", ""]
    samples: list[list[object]] = []
    for breakage in BREAKAGES:
        mine = [w for w in broken if w.breakage is breakage]
        if not mine:
            continue
        workload = mine[0]
        ours = verdicts[0].get(workload.name, (False, "(no report)"))[1]
        theirs = verdicts[-1].get(workload.name, (False, "(nothing)"))[1]
        samples.append([f"{breakage.name}: {workload.namespace}/{workload.name}",
                        _cell(theirs), _cell(ours)])  # fmt: skip
    out.append(table(["workload", f"`{candidates[-1].label}`", "`kubetriage scan`"], samples))
    (workdir / "versus-requests.txt").write_text(
        "\n".join(
            f"{t.user}: {describe_counts(count_requests(requests, t.user, 0.0, math.inf), 20)}"
            for t in candidates
        )
        + "\n"
    )
    return "\n".join(out)


def k8sgpt_version(k8sgpt: Path) -> str:
    """`v0.4.17`, as the binary says."""
    result = subprocess.run([str(k8sgpt), "version"], capture_output=True, text=True, check=False)
    words = result.stdout.split()
    return words[1].rstrip(",") if len(words) > 1 else "?"


def main() -> int:
    """A cluster of its own, broken, then the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--broken-percent", type=float, default=10.0)
    parser.add_argument(
        "--runs", type=int, default=3, help="runs of kubetriage scan and k8sgpt --filter Pod"
    )
    parser.add_argument(
        "--other-runs",
        type=int,
        default=1,
        help="runs of k8sgpt with --filter Pod,Deployment and with no filter (0: skip them)",
    )
    parser.add_argument("--workdir", type=Path, help="default: a new temp dir")
    args = parser.parse_args()
    command = shlex.join([".venv/bin/python", "hack/bench/versus_k8sgpt.py", *sys.argv[1:]])
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kubetriage-versus-"))
    k8sgpt = k8sgpt_binary()
    workloads = plan_workloads(args.pods, args.namespaces, args.broken_percent)
    broken = [w for w in workloads if w.breakage is not None]
    node_pods = max(110, math.ceil(2 * args.pods / args.nodes))
    with LocalCluster(
        workdir, Binaries.find(), nodes=args.nodes, node_cpu="32", node_memory="256Gi",
        node_pods=str(node_pods), scale=True, startup_timeout=300,
    ) as cluster:  # fmt: skip
        api = Api(cluster.kubeconfig)
        bring_up = prepare_cluster(cluster, api, workloads)
        log(f"{args.pods} pods running after {bring_up:.0f} s; breaking {len(broken)} workloads")
        observer = Observer(api)
        observer.start()
        break_workloads(api, workloads)
        wait_for_symptoms(observer, broken)
        observer.stop()
        document = "\n".join(
            [
                f"Machine: {machine()}.",
                f"Command: `{command}`",
                "",
                compare(
                    cluster, workloads, k8sgpt, workdir, runs=args.runs, other_runs=args.other_runs
                ),
            ]
        )
    (workdir / "results.md").write_text(document + "\n")
    print(document)
    return 0


def wait_for_symptoms(observer: Observer, broken: Sequence[Workload], timeout: float = 300) -> None:
    """Until every broken workload shows its symptom, and then until its rollout stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(observer.expected_key(w) in observer.symptoms for w in broken):
            break
        time.sleep(0.5)
    else:
        log("not every broken workload shows its symptom; comparing anyway")
    time.sleep(20)  # the rollouts' next waves of failing pods


if __name__ == "__main__":
    sys.exit(main())
