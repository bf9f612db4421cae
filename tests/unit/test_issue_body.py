"""The Linear issue body is Markdown on-call can act on (DESIGN.md section 6)."""

from __future__ import annotations

import pytest

from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.models import DiagnosisReport, Severity
from kubetriage.reports.build import build_report
from kubetriage.reports.render.issue import PRIORITY_BY_SEVERITY, issue_markdown, issue_title

SECTIONS = ["## Summary", "## Environment and impact", "## Timeline", "## Symptoms",
            "## Root cause", "## Evidence", "## Recommended change", "## The report"]  # fmt: skip


def report_of(scenario: str) -> DiagnosisReport:
    reader = SnapshotReader.from_file(SCENARIOS_DIR / f"{scenario}.json")
    findings = diagnose(reader)
    assert findings, scenario
    return build_report(findings[0])


@pytest.mark.parametrize(
    "scenario",
    ["crashloop-dependency-unavailable", "oom-limit-too-low", "pending-untolerated-taint",
     "rollout-bad-revision", "imagepull-unauthorized"],
)  # fmt: skip
def test_the_body_has_every_section_and_names_the_cause_and_the_change(scenario: str) -> None:
    report = report_of(scenario)
    body = issue_markdown(report, cluster_name="shop-prod", production=True)
    positions = [body.index(section) for section in SECTIONS]
    assert positions == sorted(positions), "sections in the order on-call reads them"
    assert report.status is not None
    assert report.status.root_cause is not None
    assert report.status.root_cause.category.value in body
    assert report.status.recommendation is not None
    assert report.status.recommendation.summary[:60] in body
    assert f"kubectl get diag -n {report.metadata.namespace} {report.metadata.name}" in body
    assert "(production)" in body


def test_the_body_carries_no_secret_from_the_workload() -> None:
    body = issue_markdown(
        report_of("crashloop-dependency-unavailable"), cluster_name="c", production=True
    )
    assert "Xk9pL2vQ7mZt" not in body


def test_the_patch_reads_as_a_kubectl_command() -> None:
    body = issue_markdown(report_of("oom-limit-too-low"), cluster_name="c", production=False)
    assert "kubectl patch deployment image-resizer -n " in body
    assert "--type strategic -p '" in body
    assert "Cost impact:" in body


def test_title_names_cluster_workload_and_category() -> None:
    title = issue_title(report_of("imagepull-not-found"), "shop-prod")
    assert title.startswith("[shop-prod] ")
    assert "/Deployment/storefront-web: ImagePull.NotFound" in title


def test_priority_follows_severity() -> None:
    assert [
        PRIORITY_BY_SEVERITY[s] for s in (Severity.CRITICAL, Severity.WARNING, Severity.INFO)
    ] == [1, 2, 3]


def test_a_failed_jobs_body_names_the_cause_beneath_the_backoff_limit() -> None:
    reader = SnapshotReader.from_file(
        SCENARIOS_DIR.parent / "scenarios-beyond" / "job-backoff-limit-exceeded.json"
    )
    (finding,) = diagnose(reader)
    body = issue_markdown(build_report(finding), cluster_name="c", production=False)
    assert "**Job.BackoffLimitExceeded**" in body
    assert "Underlying cause: **CrashLoop.DependencyUnavailable**" in body
