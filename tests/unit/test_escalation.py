"""Escalation against the Linear stand-in: what each report owes Linear, delivered exactly once.

Given a production report whose recommendation needs a human, its escalation is planned
Pending, and delivery (one step at a time, as the kopf handler drives it) opens exactly one
issue, found again and never duplicated after lost answers, outages and replays; a refused key
is Failed with the fix and tried again with new settings. The issue is a two-way feed: a
relapse reopens an issue a person completed (or opens a new one after the window), a canceled
issue is never touched again, and the attachment shows the report's live status. The reports
live in memory here (`MemoryReports`, the outbox's ReportAccess); the live path is tested on the
real control plane in tests/integration/test_escalation_e2e.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import planted_secrets
from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.escalation.escalator import (
    NOT_CONFIGURED,
    Escalator,
    LinearSettings,
    attachment_url,
    issue_id_of,
    planned_escalation,
)
from kubetriage.escalation.linear import LinearClient
from kubetriage.escalation.outbox import DeliveryDeferred, Outbox, RetryPolicy, settings_fingerprint
from kubetriage.models import (
    CommentState,
    DiagnosisReport,
    Escalation,
    EscalationState,
    Phase,
    Resolution,
)
from kubetriage.policy import ChangeScope, Classification, classify
from kubetriage.reports.build import ReportChange, build_report
from linear_standin import DEFAULT_TEAM_ID, LinearStandin

UID = "9f1c2e4a-0000-4000-8000-000000000001"
NAMESPACE, NAME = "shop", "deployment-api-crashloopbackoff"


@pytest.fixture
def standin() -> Iterator[LinearStandin]:
    with LinearStandin() as server:
        yield server


def escalated_finding() -> Finding:
    reader = SnapshotReader.from_file(SCENARIOS_DIR / "crashloop-dependency-unavailable.json")
    (finding,) = diagnose(reader)
    assert finding.classification is not None
    return finding


def escalated_report() -> tuple[DiagnosisReport, Classification]:
    finding = escalated_finding()
    assert finding.classification is not None
    return build_report(finding), finding.classification


class MemoryReports:
    """The outbox's ReportAccess over a dict: the reports as the cluster would hold them."""

    def __init__(self) -> None:
        self.reports: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes = 0

    def put(self, report: DiagnosisReport, escalation: Escalation) -> dict[str, Any]:
        assert report.status is not None
        body = report.model_copy(
            update={"status": report.status.model_copy(update={"escalation": escalation})}
        ).to_api()
        body["metadata"]["uid"] = UID
        self.reports[(report.metadata.namespace, report.metadata.name)] = body
        return body

    def current(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.reports.get((namespace, name))

    async def fetch(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.reports.get((namespace, name))

    async def update_escalation(
        self, namespace: str, name: str, change: Callable[[Escalation], Escalation]
    ) -> dict[str, Any] | None:
        stored = self.reports[(namespace, name)]
        before = Escalation.model_validate(stored["status"]["escalation"], extra="ignore")
        stored["status"]["escalation"] = change(before).to_api()
        self.writes += 1
        return stored

    def escalation(self, name: str = NAME) -> Escalation:
        return Escalation.model_validate(self.reports[(NAMESPACE, name)]["status"]["escalation"])

    def report(self, name: str = NAME) -> DiagnosisReport:
        return DiagnosisReport.read(self.reports[(NAMESPACE, name)])


def escalator(standin: LinearStandin, **settings: Any) -> Escalator:
    client = LinearClient(standin.api_key, url=standin.url, timeout=1.0, max_attempts=1)
    return Escalator(client, LinearSettings(DEFAULT_TEAM_ID, **settings), "shop-prod")


def outbox(standin: LinearStandin, reports: MemoryReports, **settings: Any) -> Outbox:
    fingerprint = settings_fingerprint(standin.api_key, DEFAULT_TEAM_ID, standin.url)
    return Outbox(
        escalator(standin, **settings),
        reports,
        cluster_name="shop-prod",
        retry=RetryPolicy(base=1.0, max=4.0, failed=3600.0, jitter=lambda: 1.0),
        fingerprint=fingerprint,
    )


def planned(report: DiagnosisReport, classification: Classification) -> Escalation:
    return planned_escalation(
        report,
        classification,
        uid=UID,
        cluster_name="shop-prod",
        production=True,
        linear_configured=True,
        prior=None,
    )


async def deliver_until_done(box: Outbox, *, tries: int = 10) -> list[float]:
    """Drive delivery as the kopf handler does, with no waiting: the delays it asked for."""
    delays = []
    for retry in range(tries):
        try:
            await box.deliver(NAMESPACE, NAME, retry=retry)
        except DeliveryDeferred as deferred:
            delays.append(deferred.delay)
            continue
        return delays
    raise AssertionError(f"still deferred after {tries} tries: {delays}")


async def opened_report(standin: LinearStandin) -> tuple[MemoryReports, Outbox]:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    box = outbox(standin, reports)
    await deliver_until_done(box)
    assert reports.escalation().state is EscalationState.OPENED
    return reports, box


def relapse(reports: MemoryReports, box: Outbox) -> None:
    """The report re-opened by a new episode: planned as the controller plans it."""
    report = reports.report()
    assert report.status is not None
    again = report.model_copy(
        update={"status": report.status.model_copy(update={"occurrences": 2})}
    )
    escalation = box.after_diagnosis(
        again,
        escalated_finding().classification,
        uid=UID,
        production=True,
        change=ReportChange.REOPENED,
        siblings=[],
    )
    reports.put(again, escalation)


# -- planning -----------------------------------------------------------------------------------


def test_a_production_report_is_planned_pending_with_the_issue_id_of_its_uid() -> None:
    report, classification = escalated_report()
    escalation = planned(report, classification)
    assert escalation.state is EscalationState.PENDING
    assert escalation.issue_id == issue_id_of(UID, 1)
    assert escalation.markdown is not None
    assert "## Recommended change" in escalation.markdown


def test_without_linear_the_markdown_stays_in_the_report_and_says_why() -> None:
    report, classification = escalated_report()
    escalation = planned_escalation(
        report,
        classification,
        uid=UID,
        cluster_name="c",
        production=True,
        linear_configured=False,
        prior=None,
    )
    assert escalation.state is EscalationState.NOT_SENT, "kept in the report, not sent"
    assert escalation.reason == NOT_CONFIGURED
    assert escalation.markdown is not None
    # Configured later: the same issue id is sent.
    configured = planned_escalation(
        report,
        classification,
        uid=UID,
        cluster_name="c",
        production=True,
        linear_configured=True,
        prior=escalation,
    )
    assert configured.state is EscalationState.PENDING
    assert configured.issue_id == escalation.issue_id


def test_an_autonomous_change_is_not_escalated() -> None:
    report, _ = escalated_report()
    autonomous = classify(ChangeScope(), production=False, namespace="dev")
    escalation = planned_escalation(
        report,
        autonomous,
        uid=UID,
        cluster_name="c",
        production=False,
        linear_configured=True,
        prior=None,
    )
    assert escalation.state is EscalationState.NOT_REQUIRED
    assert escalation.markdown is None


# -- opening the issue --------------------------------------------------------------------------


async def test_a_production_report_opens_one_issue_linked_to_the_report(
    standin: LinearStandin,
) -> None:
    reports, _ = await opened_report(standin)
    escalation = reports.escalation()
    assert escalation.identifier == "OPS-1"
    (issue,) = standin.issues_created()
    assert issue.id == issue_id_of(UID, 1)
    assert "CrashLoop.DependencyUnavailable" in issue.title
    assert "## Root cause" in (issue.description or "")
    url = attachment_url("shop-prod", NAMESPACE, NAME)
    assert [a.url for a in standin.attachments_on(issue.id)] == [url]
    # The report counts its own requests: find by id (not found), create, attach.
    assert escalation.attempts == len(standin.requests) == 3
    assert standin.invalid_documents == []


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("http429", {"retry_after": 3}),
        ("ratelimited", {}),
        ("http500", {}),
        ("slow", {"seconds": 2.0}),
        ("drop_after_processing", {}),
    ],
    ids=["http-429", "graphql-ratelimited", "http-500", "timeout", "answer-lost-after-create"],
)
async def test_every_fault_ends_opened_with_exactly_one_issue(
    standin: LinearStandin, fault: str, options: dict[str, float]
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    standin.fail_next(fault, times=2, only="IssueCreate", **options)  # type: ignore[arg-type]
    delays = await deliver_until_done(outbox(standin, reports))
    escalation = reports.escalation()
    assert escalation.state is EscalationState.OPENED, escalation.last_error
    assert len(standin.issues_created()) == 1
    (issue,) = standin.issues_created()
    assert standin.attachments_on(issue.id), "the found-again issue gets its attachment"
    # A create whose answer was lost made the issue: the next try finds it by its id.
    assert len(delays) == (1 if fault == "drop_after_processing" else 2)
    if fault == "http429":
        assert min(delays) >= 3, "never sooner than Linear's retry-after"
    assert escalation.attempts == len(standin.requests)


async def test_a_lost_answer_is_found_by_the_id_the_operator_chose_not_by_its_words(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    standin.fail_next("slow", seconds=2.0, process_first=True, only="IssueCreate")
    delays = await deliver_until_done(outbox(standin, reports))
    assert len(delays) == 1
    (issue,) = standin.issues_created()
    assert reports.escalation().issue_id == issue.id
    assert standin.attachments_on(issue.id)


async def test_an_outage_longer_than_any_retry_schedule_still_ends_opened(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    standin.fail_next("http500", times=40)
    delays = await deliver_until_done(outbox(standin, reports), tries=60)
    assert len(delays) == 40
    assert max(delays) == 4.0, "back-off grows to its cap and stays there"
    assert reports.escalation().state is EscalationState.OPENED
    assert reports.escalation().last_error is None
    assert len(standin.issues_created()) == 1


async def test_a_refused_key_is_failed_with_the_fix_and_retried_with_new_settings(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    standin.set_api_key_valid(False)
    box = outbox(standin, reports)
    with pytest.raises(DeliveryDeferred) as deferred:
        await box.deliver(NAMESPACE, NAME)
    assert deferred.value.delay == 3600.0, "a Failed escalation is tried again every hour"
    failed = reports.escalation()
    assert failed.state is EscalationState.FAILED
    assert failed.reason is not None
    assert "KUBETRIAGE_LINEAR_API_KEY" in failed.reason
    assert failed.last_error is not None
    assert failed.last_error.startswith("issue")
    assert standin.api_key not in failed.last_error
    assert standin.issues_created() == []
    # The same settings after a restart: still Failed, nothing sent.
    assert box.after_settings_change(failed) is None
    # A person fixed the key and restarted: another fingerprint, Pending at once, delivered.
    standin.set_api_key_valid(True)
    fixed = Outbox(box.escalator, reports, cluster_name="shop-prod", fingerprint="new-settings")
    retried = fixed.after_settings_change(failed)
    assert retried is not None
    assert retried.state is EscalationState.PENDING
    await reports.update_escalation(NAMESPACE, NAME, lambda _: retried)
    await deliver_until_done(fixed)
    assert reports.escalation().state is EscalationState.OPENED
    assert len(standin.issues_created()) == 1


# -- comments and the two-way feed ----------------------------------------------------------------


async def test_a_relapse_comment_lands_once_however_often_delivery_runs(
    standin: LinearStandin,
) -> None:
    reports, box = await opened_report(standin)
    relapse(reports, box)
    relapse(reports, box)  # planned twice: owed once
    await deliver_until_done(box)
    await deliver_until_done(box)
    issue_id = reports.escalation().issue_id
    assert issue_id is not None
    (comment,) = standin.comments_on(issue_id)
    assert comment.body.startswith("Relapsed at ")
    assert [c.state for c in reports.escalation().comments] == [CommentState.SENT]


async def test_a_500_on_the_resolution_comment_is_sent_later_exactly_once(
    standin: LinearStandin,
) -> None:
    reports, box = await opened_report(standin)
    report = reports.report()
    assert report.status is not None
    resolved = report.model_copy(
        update={
            "status": report.status.model_copy(
                update={
                    "phase": Phase.RESOLVED,
                    "resolved_at": datetime.now(UTC),
                    "resolution": Resolution(
                        summary="Fixed by revision 5 (kubectl-set): containers[api].image: "
                        "api 2.0.0 -> 2.0.1."
                    ),
                }
            )
        }
    )
    owed = box.after_resolution(resolved)
    assert owed is not None
    reports.put(resolved, owed)
    standin.fail_next("http500", only="CommentCreate")
    delays = await deliver_until_done(box)
    assert len(delays) == 1
    issue_id = reports.escalation().issue_id
    assert issue_id is not None
    (comment,) = standin.comments_on(issue_id)
    for section in ("## Resolved", "### Timeline", "### Root cause", "### What fixed it",
                    "### Prevention (suggested, not applied)"):  # fmt: skip
        assert section in comment.body
    assert "api 2.0.0 -> 2.0.1" in comment.body


async def test_a_completed_issue_is_reopened_on_a_relapse_within_the_window(
    standin: LinearStandin,
) -> None:
    reports, box = await opened_report(standin)
    issue_id = reports.escalation().issue_id
    assert issue_id is not None
    standin.complete_issue(issue_id)
    relapse(reports, box)
    await deliver_until_done(box)
    assert standin.issue(issue_id).state.type == "unstarted"
    changes = standin.state_changes(issue_id)
    assert [c.by_person for c in changes] == [True, False], (
        "a person completed, kubetriage reopened"
    )
    assert standin.comments_on(issue_id)[0].body.startswith("Relapsed at ")
    assert len(standin.issues_created()) == 1


async def test_a_relapse_after_the_window_opens_a_new_issue_related_to_the_old(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    reports.put(report, planned(report, classification))
    box = outbox(standin, reports, reopen_within=timedelta(seconds=0))
    await deliver_until_done(box)
    old = reports.escalation().issue_id
    assert old is not None
    standin.complete_issue(old)
    relapse(reports, box)
    await deliver_until_done(box)
    escalation = reports.escalation()
    assert escalation.state is EscalationState.OPENED
    assert escalation.episode == 2
    assert escalation.previous_issue_id == old
    assert escalation.issue_id == issue_id_of(UID, 2)
    assert len(standin.issues_created()) == 2
    (relation,) = standin.relations_of(escalation.issue_id)
    assert {relation.issue.id, relation.related_issue.id} == {old, escalation.issue_id}
    assert standin.issue(old).state.type == "completed", "the old issue is left as it was"


async def test_a_canceled_issue_is_declined_and_never_written_again(
    standin: LinearStandin,
) -> None:
    reports, box = await opened_report(standin)
    issue_id = reports.escalation().issue_id
    assert issue_id is not None
    standin.cancel_issue(issue_id)
    relapse(reports, box)
    await deliver_until_done(box)
    escalation = reports.escalation()
    assert escalation.state is EscalationState.DECLINED
    assert escalation.reason is not None
    assert "canceled" in escalation.reason
    writes_before = [r for r in standin.requests if "Create" in r.operation]
    relapse(reports, box)
    await deliver_until_done(box)
    assert [r for r in standin.requests if "Create" in r.operation] == writes_before
    assert standin.comments_on(issue_id) == []


async def test_the_attachment_shows_the_reports_live_status_after_each_change(
    standin: LinearStandin,
) -> None:
    reports, box = await opened_report(standin)
    issue_id = reports.escalation().issue_id
    assert issue_id is not None
    relapse(reports, box)
    await deliver_until_done(box)
    subtitles = [change.subtitle or "" for change in standin.attachment_history(issue_id)]
    assert subtitles[0].startswith("Open · 1 occurrence")
    assert subtitles[-1].startswith("Open · 2 occurrences · last seen")
    (attachment,) = standin.attachments_on(issue_id)
    assert attachment.metadata["occurrences"] == 2
    assert attachment.metadata["category"] == "CrashLoop.DependencyUnavailable"


# -- what is never sent ---------------------------------------------------------------------------


async def test_no_secret_planted_in_env_logs_or_events_reaches_linear(
    standin: LinearStandin,
) -> None:
    (finding,) = diagnose(SnapshotReader.from_document(planted_secrets.snapshot()))
    report = build_report(finding)
    production = classify(ChangeScope(), production=True, namespace=report.metadata.namespace)
    reports = MemoryReports()
    reports.put(report, planned(report, production))
    await deliver_until_done(outbox(standin, reports))
    sent = "\n".join(request.body for request in standin.requests)
    assert "visible-marker-" in sent, "the log excerpt should have reached the issue body"
    leaked = [kind for kind, _, secret in planted_secrets.SECRETS if secret in sent]
    assert leaked == []
    assert not any(value in sent for value in planted_secrets.ENV_SECRETS.values())
    assert "PrivateKeyMaterial" not in sent


async def test_an_acknowledged_report_gets_no_more_updates(standin: LinearStandin) -> None:
    reports, box = await opened_report(standin)
    relapse(reports, box)
    stored = reports.reports[(NAMESPACE, NAME)]
    stored["spec"]["acknowledged"] = True
    sent_before = len(standin.requests)
    assert not box.due(stored)
    await box.deliver(NAMESPACE, NAME)
    assert len(standin.requests) == sent_before


def written_by_a_newer_replica(stored: dict[str, Any]) -> dict[str, Any]:
    """The report as a newer replica writes it during a rolling upgrade: fields this version
    does not know, at every level it reads."""
    newer = copy.deepcopy(stored)
    newer["spec"]["priorityHint"] = "page"
    newer["status"]["remediation"] = {"state": "Refused", "reason": "not opted in"}
    newer["status"]["rootCause"]["underlying"] = "CrashLoop.ApplicationError"
    newer["status"]["escalation"]["delivery"] = {"lane": "fast"}
    return newer


async def test_a_report_with_fields_from_a_newer_replica_is_still_delivered(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    reports = MemoryReports()
    stored = reports.put(report, planned(report, classification))
    reports.reports[(NAMESPACE, NAME)] = written_by_a_newer_replica(stored)
    box = outbox(standin, reports)
    assert box.due(reports.reports[(NAMESPACE, NAME)])
    await deliver_until_done(box)
    assert reports.escalation().state is EscalationState.OPENED
    assert len(standin.issues_created()) == 1
