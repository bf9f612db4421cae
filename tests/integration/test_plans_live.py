"""`kubetriage plans` on the real control plane: the fallback on-call keeps without Linear
(DESIGN.md section 6).

The session's operator runs without Linear, so a crash-looping production Deployment's report
waits with its escalation not sent. `kubetriage plans --dir`, run as a user runs it, writes the
report's plan; a second run leaves it as it is; once the Deployment is fixed and the report is
Resolved, a third run adds exactly one entry.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clusterkit import OperatorProcess, report_of, wait_for_report
from helpers import wait_until
from localcluster import LocalCluster
from localcluster import kwok_deployment as deployment

pytestmark = pytest.mark.integration

KUBETRIAGE = Path(sys.executable).parent / "kubetriage"
ENTRY = re.compile(r"<!-- kubetriage:entry ")
HEADING = re.compile(r"^### (\S+) · (.+)$", flags=re.MULTILINE)


def plans(
    cluster: LocalCluster, directory: Path, namespace: str
) -> subprocess.CompletedProcess[str]:
    """`kubetriage plans --dir DIR -n NS` as a subprocess with the cluster's KUBECONFIG."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBETRIAGE_")}
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    result = subprocess.run(
        [str(KUBETRIAGE), "plans", "--dir", str(directory), "-n", namespace],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result


def test_a_crash_looping_deployment_gets_a_plan_updated_once_per_change(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("label", "namespace", namespace, "kubetriage.io/environment=production")
    cluster.apply(deployment("ledger", namespace, simulate="CrashLoopBackOff", exit_code=127))
    wait_for_report(cluster, namespace, "ledger", "CrashLoopBackOff", operator=operator)

    def escalation_planned() -> dict[str, Any] | None:
        report = report_of(cluster, namespace, "ledger", "CrashLoopBackOff")
        return report if report.get("status", {}).get("escalation") else None

    report = wait_until(escalation_planned, what="the report's escalation planned", timeout=60)
    name = report["metadata"]["name"]
    directory = tmp_path / "plans"
    path = directory / f"NOW-incident-{namespace}-{name}.md"

    first = plans(cluster, directory, namespace)
    assert first.stdout == f"wrote {path}: Reported\n"
    written = path.read_text()
    assert [p.name for p in directory.iterdir()] == [path.name]
    assert "## Objective" in written
    assert "`Deployment/ledger`" in written
    assert "CrashLoop.CommandNotFound" in written
    assert report["status"]["escalation"]["state"] in written
    assert "**kept in the report, not sent to Linear (`NotSent`)**" in written, (
        "without Linear, it says so"
    )
    assert "Linear is not configured" in written
    assert len(ENTRY.findall(written)) == 1

    again = plans(cluster, directory, namespace)
    assert again.stdout == "", "nothing changed: nothing written"
    assert path.read_text() == written

    cluster.apply(deployment("ledger", namespace, image="registry.example/ledger:1.0.1"))

    def resolved() -> dict[str, Any] | None:
        found = report_of(cluster, namespace, "ledger", "CrashLoopBackOff")
        return found if found.get("status", {}).get("phase") == "Resolved" else None

    report = wait_until(resolved, what="the report Resolved", timeout=90)
    third = plans(cluster, directory, namespace)
    assert third.stdout == f"updated {path}: Resolved\n"
    updated = path.read_text()
    assert updated.startswith(written[: written.index("<!-- kubetriage:status -->")])
    assert len(ENTRY.findall(updated)) == 2, "exactly one new entry"
    entries = HEADING.findall(updated)
    assert [headline for _, headline in entries] == ["Reported", "Resolved"]
    # Dated by the report (to the second), not by the clock of the run.
    assert entries[1][0] == report["status"]["resolvedAt"][:19] + "Z"
    assert entries[0][0] <= entries[1][0]
    assert "Open → **Resolved**" in updated
    assert report["status"]["resolution"]["summary"][:40] in updated

    last = plans(cluster, directory, namespace)
    assert last.stdout == ""
    assert path.read_text() == updated
