"""`make demo` as a newcomer runs it: its own control plane on kwok, the operator, one broken
workload per symptom, each report printed as it lands, then the table and what to run next;
Ctrl-C stops everything and leaves no work folder behind (it holds the CA's keys).

Each demo workload is a faithful picture of one cause: the crash-looping `api` exits 1 while its
log says it cannot reach its database (no Service `db` exists), and is reported as such.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO_ROOT, unavailable
from localcluster import Binaries, ControlPlaneError

DEMO = REPO_ROOT / "hack" / "demo.py"
# One report per workload, as DESIGN.md section 3 names each cause.
EXPECTED = {
    "shop/deployment-api-crashloopbackoff": "CrashLoop.DependencyUnavailable",
    "shop/deployment-image-resizer-oomkilled": "OOMKilled.LimitTooLow",
    "shop/deployment-storefront-imagepullbackoff": "ImagePull.NotFound",
    "shop/deployment-ml-inference-pending": "Pending.RequestExceedsNodeCapacity",
    "shop/deployment-embedding-api-pending": "Pending.UntoleratedTaint",
    "shop/deployment-checkout-rolloutstuck": "Rollout.QuotaExceeded",
}
STAGE = re.compile(r"^\[\s*\d+\.\ds\] ")
LAST_SUGGESTION = "  kubetriage plans --dir plans/"


@pytest.fixture(scope="module")
def demo_output() -> tuple[list[str], int, float]:
    """The demo's stdout lines up to Ctrl-C and after, its exit code, and how long it took to
    print its last suggestion."""
    try:
        Binaries.find()
    except ControlPlaneError as error:
        unavailable(str(error))
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(DEMO)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if lines[-1] == LAST_SUGGESTION:
                break
        ready = time.monotonic() - began
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines.extend(rest.splitlines())
    return lines, process.returncode, ready


def test_each_report_is_printed_as_it_lands_with_its_cause(
    demo_output: tuple[list[str], int, float],
) -> None:
    lines, code, ready = demo_output
    text = "\n".join(lines)
    assert code == 0, text
    reported = dict(re.findall(r"\] report (\S+): (\S+) - ", text))
    assert reported == EXPECTED, text
    table = lines.index("$ kubectl get diag -A")
    report_lines = [i for i, line in enumerate(lines) if "] report " in line]
    assert max(report_lines) < table, "the reports come before the table, as they land"
    print(f"the demo printed its last suggestion after {ready:.1f}s")


def test_the_cluster_start_and_each_stage_has_its_own_line(
    demo_output: tuple[list[str], int, float],
) -> None:
    lines, _, _ = demo_output
    first_report = next(i for i, line in enumerate(lines) if "] report " in line)
    stages = [line for line in lines[:first_report] if STAGE.match(line)]
    for component in ("etcd", "kube-apiserver", "kube-scheduler", "kwok", "operator"):
        assert any(component in line for line in stages), "\n".join(lines[:first_report])


def test_what_to_run_next_is_a_suggestion_that_starts_with_the_kubeconfig(
    demo_output: tuple[list[str], int, float],
) -> None:
    lines, _, _ = demo_output
    start = next(i for i, line in enumerate(lines) if line.startswith("Try it yourself"))
    suggestions = lines[start + 1 : lines.index(LAST_SUGGESTION) + 1]
    assert re.fullmatch(r"  export KUBECONFIG=\S+/admin\.kubeconfig", suggestions[0])
    assert "  kubectl describe diag -n shop deployment-api-crashloopbackoff" in suggestions


def test_ctrl_c_removes_the_work_folder(demo_output: tuple[list[str], int, float]) -> None:
    lines, code, _ = demo_output
    removed = [re.fullmatch(r"removed the work folder (\S+)", line) for line in lines]
    (folder,) = [m[1] for m in removed if m]
    assert code == 0
    assert not Path(folder).exists()
