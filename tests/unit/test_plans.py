"""The incident plans on-call keeps without Linear (DESIGN.md section 6, `kubetriage plans`).

A plan is written from a report: objective, status and one timestamped entry; a later run
appends one entry per change of the report and nothing when it did not change; secrets never
reach the file; file names stay valid for any report name.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from helpers import SCENARIOS_DIR
from kubetriage import cli
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.models import (
    DiagnosisReport,
    Escalation,
    EscalationState,
    Phase,
    Resolution,
    Severity,
    TemplateChange,
)
from kubetriage.reports.build import build_report
from kubetriage.reports.render.plan import (
    MAX_FILE_NAME,
    PlanConflictError,
    plan_file_name,
    plan_path,
    updated_plan,
)
from planted_secrets import ENV_SECRETS, PRIVATE_KEY, SECRETS, snapshot

T0 = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
NOT_CONFIGURED = "not sent: Linear is not configured (KUBETRIAGE_LINEAR_API_KEY and ...)"
ENTRY = re.compile(r"<!-- kubetriage:entry ")
HEADING = re.compile(r"^### (\S+) · (.+)$", flags=re.MULTILINE)


def scenario_report(scenario: str = "crashloop-command-not-found") -> DiagnosisReport:
    """A report as the operator writes it: diagnosed, first seen at T0, not sent to Linear."""
    findings = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / f"{scenario}.json"))
    report = build_report(findings[0])
    return changed(
        report,
        first_seen=T0,
        last_seen=T0,
        severity=Severity.CRITICAL,
        escalation=Escalation(state=EscalationState.NOT_SENT, reason=NOT_CONFIGURED),
    )


def changed(report: DiagnosisReport, **status: Any) -> DiagnosisReport:
    """The report with some status fields replaced (as the operator's next write would)."""
    assert report.status is not None
    return report.model_copy(update={"status": report.status.model_copy(update=status)})


def escalated(report: DiagnosisReport, **fields: Any) -> DiagnosisReport:
    assert report.status is not None
    assert report.status.escalation is not None
    return changed(report, escalation=report.status.escalation.model_copy(update=fields))


def resolved(report: DiagnosisReport, at: datetime) -> DiagnosisReport:
    return changed(
        report,
        phase=Phase.RESOLVED,
        resolved_at=at,
        resolution=Resolution(
            summary="the pod template changed in revision 4",
            changes=[TemplateChange(field="containers[app].command", before="srv", after="server")],
            revision="4",
            changed_by="kubectl-edit",
        ),
    )


def relapsed(report: DiagnosisReport, at: datetime) -> DiagnosisReport:
    assert report.status is not None
    return changed(
        report,
        phase=Phase.OPEN,
        resolved_at=None,
        resolution=None,
        last_seen=at,
        occurrences=report.status.occurrences + 1,
    )


def run(report: DiagnosisReport, text: str | None) -> str:
    """One run that must write: the new text, with exactly one entry more than before."""
    new = updated_plan(report, text)
    assert new is not None, "the report changed: the plan should get an entry"
    assert len(ENTRY.findall(new)) == len(ENTRY.findall(text or "")) + 1
    assert updated_plan(report, new) is None, "a re-run with nothing changed writes nothing"
    return new


def headings(text: str) -> list[tuple[str, str]]:
    return HEADING.findall(text)


# --- the first run -----------------------------------------------------------------------------


def test_the_first_run_writes_objective_status_and_one_entry() -> None:
    report = scenario_report()
    text = run(report, None)
    sections = ["# NOW: incident ", "## Objective", "## Status", "## Updates", "### "]
    positions = [text.index(section) for section in sections]
    assert positions == sorted(positions), "objective, status, then the updates"
    assert report.status is not None
    assert report.status.root_cause is not None
    assert report.status.recommendation is not None
    assert report.status.root_cause.category.value in text
    assert headings(text) == [("2026-03-01T09:00:00Z", "Reported")]
    entry = text[text.index("## Updates") :]
    for part in ("**What changed**", "**Recommended change:**", "- Validation:", "- Rollback:",
                 "**Monitor**"):  # fmt: skip
        assert part in entry, part
    assert report.status.recommendation.summary[:60] in entry
    assert f"kubectl get diag -n {report.metadata.namespace} {report.metadata.name} -w" in entry, (
        "what to monitor names the report"
    )


def test_a_plan_ends_in_one_newline_and_has_one_status_section() -> None:
    text = run(resolved(scenario_report(), T0 + timedelta(minutes=5)), None)
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    assert text.count("## Status") == 1
    assert "\n\n\n" not in text


# --- later runs --------------------------------------------------------------------------------


def test_a_second_run_with_the_same_report_writes_nothing() -> None:
    report = scenario_report()
    text = run(report, None)
    assert updated_plan(report, text) is None


def test_what_a_rediagnosis_rewrites_every_time_is_no_new_entry() -> None:
    """lastSeen, pod names and summaries quoting a log line change on every re-diagnosis:
    they are shown, not tracked, or each pass of the operator would add an entry."""
    report = scenario_report()
    text = run(report, None)
    assert report.status is not None
    assert report.status.root_cause is not None
    rediagnosed = changed(
        report,
        last_seen=T0 + timedelta(minutes=3),
        affected_pods=["api-7c9d-other"],
        root_cause=report.status.root_cause.model_copy(update={"summary": "exits after 6s"}),
    )
    assert updated_plan(rediagnosed, text) is None


def test_resolution_then_relapse_each_append_exactly_one_entry() -> None:
    report = scenario_report()
    text = run(report, None)
    resolved_at = T0 + timedelta(minutes=12)
    report = resolved(report, resolved_at)
    text = run(report, text)
    relapse_at = T0 + timedelta(hours=2)
    report = relapsed(report, relapse_at)
    text = run(report, text)
    assert headings(text) == [
        ("2026-03-01T09:00:00Z", "Reported"),
        ("2026-03-01T09:12:00Z", "Resolved"),
        ("2026-03-01T11:00:00Z", "Relapsed"),
    ], "in the order of the report's history, each at the report's own time"
    resolved_entry = text[text.index("· Resolved") : text.index("· Relapsed")]
    assert "Open → **Resolved**: the pod template changed in revision 4" in resolved_entry
    assert "`containers[app].command`: `srv` → `server`" in resolved_entry
    assert "changed by `kubectl-edit`" in resolved_entry
    relapse_entry = text[text.index("· Relapsed") :]
    assert "Occurrences: 1 → 2" in relapse_entry
    assert "Resolved → **Open**" in relapse_entry


def test_the_status_section_follows_the_last_entry() -> None:
    report = scenario_report()
    text = run(report, None)
    assert "- Phase: **Open** since 2026-03-01T09:00:00Z" in text
    text = run(resolved(report, T0 + timedelta(minutes=12)), text)
    status = text[text.index("## Status") : text.index("## Updates")]
    assert "- Phase: **Resolved** at 2026-03-01T09:12:00Z" in status
    assert "## Status (as of 2026-03-01T09:12:00Z)" in status
    assert text.count("## Status") == 1


def test_escalation_failed_then_opened_each_append_one_entry() -> None:
    report = scenario_report()
    text = run(report, None)
    failed_at = T0 + timedelta(minutes=1)
    report = escalated(
        report,
        state=EscalationState.FAILED,
        reason="Linear refused the API key",
        last_error="issueCreate: authentication failed (401): check KUBETRIAGE_LINEAR_API_KEY",
        attempts=1,
        last_attempt=failed_at,
    )
    text = run(report, text)
    failed = text[text.rindex("### ") :]
    assert headings(text)[-1] == ("2026-03-01T09:01:00Z", "Escalation failed: not sent to Linear")
    assert "**not sent: Linear refused it (`Failed`)**" in failed
    assert "authentication failed (401)" in failed, "the plan says why it was not sent"
    assert "Escalation: NotSent → Failed" in failed

    opened_at = T0 + timedelta(hours=1)
    report = escalated(
        report,
        state=EscalationState.OPENED,
        identifier="OPS-42",
        url="https://linear.app/acme/issue/OPS-42",
        issue_id="6f0c1a3e-0000-4000-8000-000000000000",
        last_error=None,
        attempts=3,
        last_attempt=opened_at,
    )
    text = run(report, text)
    assert headings(text)[-1] == ("2026-03-01T10:00:00Z", "Escalated to Linear as OPS-42")
    opened = text[text.rindex("### ") :]
    assert "[OPS-42](https://linear.app/acme/issue/OPS-42)" in opened
    status = text[text.index("## Status") : text.index("## Updates")]
    assert "opened in Linear as [OPS-42]" in status
    assert len(headings(text)) == 3


def test_a_report_opened_in_linear_is_still_planned_with_its_issue() -> None:
    report = escalated(
        scenario_report(),
        state=EscalationState.OPENED,
        identifier="OPS-7",
        url="https://linear.app/acme/issue/OPS-7",
        last_attempt=T0 + timedelta(seconds=30),
    )
    text = run(report, None)
    assert "opened in Linear as [OPS-7](https://linear.app/acme/issue/OPS-7)" in text
    assert headings(text) == [("2026-03-01T09:00:30Z", "Reported")]


def test_without_linear_the_plan_says_the_escalation_was_not_sent_and_why() -> None:
    text = run(scenario_report(), None)
    assert (
        "**kept in the report, not sent to Linear (`NotSent`)**: Linear is not configured (" in text
    )


def test_two_runs_over_the_same_history_write_identical_files() -> None:
    def history() -> str:
        report = scenario_report()
        text = run(report, None)
        report = resolved(report, T0 + timedelta(minutes=12))
        return run(report, text)

    assert history() == history()


def test_what_a_person_wrote_in_the_plan_is_kept() -> None:
    report = scenario_report()
    text = run(report, None) + "\nNote from on-call: paged the payments team at 09:05.\n"
    text = run(resolved(report, T0 + timedelta(minutes=12)), text)
    assert "Note from on-call: paged the payments team at 09:05." in text
    assert text.index("Note from on-call") < text.index("· Resolved")


def test_an_entry_is_never_dated_before_the_one_above_it() -> None:
    report = scenario_report()
    text = run(changed(report, last_seen=T0 + timedelta(minutes=30)), None)
    # The escalation's own time is earlier than the last entry's: the entry keeps the order.
    report = escalated(
        changed(report, last_seen=T0 + timedelta(minutes=30)),
        state=EscalationState.OPENED,
        identifier="OPS-9",
        last_attempt=T0 + timedelta(minutes=10),
    )
    text = run(report, text)
    times = [at for at, _ in headings(text)]
    assert times == sorted(times)


# --- what is not a plan of this report is left alone --------------------------------------------


def test_another_reports_plan_or_a_foreign_file_is_not_touched() -> None:
    report = scenario_report()
    other = report.model_copy(
        update={"metadata": report.metadata.model_copy(update={"name": "deployment-other"})}
    )
    with pytest.raises(PlanConflictError, match="deployment-other"):
        updated_plan(report, run(other, None))
    with pytest.raises(PlanConflictError, match="not a kubetriage plan"):
        updated_plan(report, "# my own notes\n")


def test_an_empty_file_is_a_new_plan() -> None:
    assert updated_plan(scenario_report(), "") == updated_plan(scenario_report(), None)


# --- secrets -----------------------------------------------------------------------------------


def planted_report() -> DiagnosisReport:
    """The crash loop full of secrets, diagnosed (and so redacted once), then with raw secrets
    put straight into every text a plan copies, as a report written by a buggy or older
    replica could hold them."""
    report = build_report(diagnose(SnapshotReader.from_document(snapshot()))[0])
    assert report.status is not None
    assert report.status.root_cause is not None
    assert report.status.recommendation is not None
    raw = " ".join(text for _, text, _ in SECRETS) + " " + PRIVATE_KEY
    cause = report.status.root_cause.model_copy(update={"summary": raw[:1024]})
    recommendation = report.status.recommendation.model_copy(
        update={"summary": raw[:1024], "command": raw[:2048], "validation": raw[:2048],
                "rollback": raw[:2048]}
    )  # fmt: skip
    return changed(
        report,
        first_seen=T0,
        last_seen=T0,
        root_cause=cause,
        recommendation=recommendation,
        affected_pods=[text for _, text, _ in SECRETS[:5]],
        escalation=Escalation(
            state=EscalationState.FAILED, reason=raw[:1024], last_error=raw[:2048],
            identifier="OPS-1 " + SECRETS[0][1], last_attempt=T0,
        ),
    )  # fmt: skip


@pytest.fixture(scope="module")
def planted_plan() -> str:
    report = planted_report()
    text = run(report, None)
    report = resolved(report, T0 + timedelta(minutes=5))
    assert report.status is not None
    assert report.status.resolution is not None
    resolution = report.status.resolution.model_copy(
        update={"summary": " ".join(t for _, t, _ in SECRETS)[:1024]}
    )
    return run(changed(report, resolution=resolution), text)


def test_the_planted_log_was_planned(planted_plan: str) -> None:
    """The texts around the secrets are there: they were copied, and redacted."""
    assert "password=[REDACTED]" in planted_plan
    assert "postgres://app:[REDACTED]@db:5432/shop" in planted_plan


@pytest.mark.parametrize(
    ("kind", "secret"), [(k, s) for k, _, s in SECRETS], ids=[k for k, _, _ in SECRETS]
)
def test_no_planted_secret_reaches_the_plan(planted_plan: str, kind: str, secret: str) -> None:
    assert secret not in planted_plan, f"{kind} leaked into the plan"


def test_no_private_key_or_env_value_reaches_the_plan(planted_plan: str) -> None:
    assert "PrivateKeyMaterial" not in planted_plan
    for value in ENV_SECRETS.values():
        assert value not in planted_plan


# --- file names --------------------------------------------------------------------------------


def test_the_file_name_is_namespace_and_report() -> None:
    report = scenario_report()
    name = f"NOW-incident-{report.metadata.namespace}-{report.metadata.name}.md"
    assert plan_path("plans", report) == Path("plans") / name


def test_file_names_for_long_report_names_stay_valid_and_distinct() -> None:
    namespace = "n" * 63
    first, second = "a" * 252 + "1", "a" * 252 + "2"
    names = {plan_file_name(namespace, first), plan_file_name(namespace, second)}
    assert len(names) == 2, "two long names never share a file"
    for name in names:
        assert len(name.encode()) <= MAX_FILE_NAME <= 255
        assert name.startswith(f"NOW-incident-{namespace}-aaaa")
        assert name.endswith(".md")
        assert re.fullmatch(r"[A-Za-z0-9._-]+", name)


def test_a_name_that_is_no_file_name_is_made_one() -> None:
    name = plan_file_name("shop", "../../etc/passwd x")
    assert "/" not in name
    assert " " not in name
    assert name.startswith("NOW-incident-shop-")


# --- the command -------------------------------------------------------------------------------


def test_the_command_writes_then_updates_then_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = [scenario_report()]
    monkeypatch.setattr(cli, "_stored_reports", lambda namespace: (reports, []))
    plans = tmp_path / "plans"
    assert cli.main(["plans", "--dir", str(plans)]) == 0
    path = plan_path(plans, reports[0])
    assert capsys.readouterr().out == f"wrote {path}: Reported\n"
    first = path.read_text()
    assert cli.main(["plans", "--dir", str(plans)]) == 0
    assert capsys.readouterr().out == ""
    assert path.read_text() == first
    reports[0] = resolved(reports[0], T0 + timedelta(minutes=12))
    assert cli.main(["plans", "--dir", str(plans)]) == 0
    assert capsys.readouterr().out == f"updated {path}: Resolved\n"
    assert [p.name for p in plans.iterdir()] == [path.name], "no temporary file left behind"


def test_the_command_reports_an_unreadable_report_and_plans_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = [scenario_report()]
    problems = ["shop/broken: unreadable, not planned: status.phase: Input should be 'Open'"]
    monkeypatch.setattr(cli, "_stored_reports", lambda namespace: (reports, problems))
    assert cli.main(["plans", "--dir", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"kubetriage plans: {problems[0]}\n"
    assert captured.out.startswith("wrote ")


def test_the_command_leaves_a_foreign_file_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = scenario_report()
    monkeypatch.setattr(cli, "_stored_reports", lambda namespace: ([report], []))
    path = plan_path(tmp_path, report)
    path.write_text("# my own notes\n")
    assert cli.main(["plans", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "left alone" in err
    assert path.read_text() == "# my own notes\n"


def test_a_dir_that_is_a_file_is_bad_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "_stored_reports", lambda namespace: ([], []))
    (tmp_path / "file").write_text("")
    assert cli.main(["plans", "--dir", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("server", ["missing", "https://127.0.0.1:1"])
def test_no_kubeconfig_or_no_cluster_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], server: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    if server != "missing":
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
            f"clusters: [{{name: c, cluster: {{server: '{server}'}}}}]\n"
            "users: [{name: u, user: {token: t}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
        )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plans", "--dir", str(tmp_path / "plans")])
    assert exit_info.value.code not in (0, None, 2)
    message = str(exit_info.value.code)
    assert message.startswith("kubetriage")
    assert "\n" not in message
    assert not (tmp_path / "plans").exists(), "nothing is written without the cluster's reports"
