"""Escalation against the Linear stand-in: one issue per report, whatever Linear does meanwhile.

Given a production report whose recommendation needs a human, delivery opens exactly one issue
(found again, never duplicated, after lost answers, crashes and replays), and the report's
escalation says where it stands.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

import planted_secrets
from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.escalation.escalator import (
    NOT_CONFIGURED,
    Escalator,
    LinearSettings,
    attachment_url,
    planned_escalation,
)
from kubetriage.escalation.linear import LinearClient
from kubetriage.escalation.outbox import Outbox
from kubetriage.models import DiagnosisReport, Escalation, EscalationState
from kubetriage.policy import ChangeScope, Classification, classify
from kubetriage.reports.build import build_report
from linear_standin import DEFAULT_TEAM_ID, LinearStandin

UID = "9f1c2e4a-0000-4000-8000-000000000001"


@pytest.fixture
def standin() -> Iterator[LinearStandin]:
    with LinearStandin() as server:
        yield server


def escalated_report() -> tuple[DiagnosisReport, Classification]:
    reader = SnapshotReader.from_file(SCENARIOS_DIR / "crashloop-dependency-unavailable.json")
    (finding,) = diagnose(reader)
    assert finding.classification is not None
    return build_report(finding), finding.classification


def pending(report: DiagnosisReport, classification: Classification) -> Escalation:
    return planned_escalation(
        report,
        classification,
        uid=UID,
        cluster_name="shop-prod",
        production=True,
        linear_configured=True,
        prior=None,
    )


async def no_sleep(_seconds: float) -> None:
    return None


def escalator(standin: LinearStandin, *, timeout: float = 2.0) -> Escalator:
    client = LinearClient(
        standin.api_key, url=standin.url, timeout=timeout, sleep=no_sleep, max_attempts=6
    )
    return Escalator(client, LinearSettings(DEFAULT_TEAM_ID), "shop-prod")


async def test_a_production_report_opens_one_issue_linked_to_the_report(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    escalation = pending(report, classification)
    assert escalation.state is EscalationState.PENDING
    assert escalation.issue_id is not None
    opened = await escalator(standin).deliver(report, escalation)
    assert opened.state is EscalationState.OPENED
    assert opened.identifier == "OPS-1"
    assert opened.url is not None
    (issue,) = standin.issues_created()
    assert issue.id == escalation.issue_id
    assert "CrashLoop.DependencyUnavailable" in issue.title
    assert "## Root cause" in (issue.description or "")
    url = attachment_url("shop-prod", report.metadata.namespace, report.metadata.name)
    assert [a.url for a in standin.attachments_on(issue.id)] == [url]
    assert standin.invalid_documents == []


async def test_a_replay_finds_the_issue_instead_of_opening_another(standin: LinearStandin) -> None:
    report, classification = escalated_report()
    escalation = pending(report, classification)
    first = await escalator(standin).deliver(report, escalation)
    # A restart that lost the Opened status replays the Pending escalation.
    second = await escalator(standin).deliver(report, escalation)
    assert (first.identifier, second.identifier) == ("OPS-1", "OPS-1")
    assert len(standin.issues_created()) == 1


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        ("http429", {"retry_after": 0}),
        ("ratelimited", {}),
        ("http500", {}),
        ("slow", {"seconds": 3.0}),
        ("drop_after_processing", {}),
    ],
    ids=["http-429", "graphql-ratelimited", "http-500", "timeout", "answer-lost-after-create"],
)
async def test_every_fault_ends_opened_with_exactly_one_issue(
    standin: LinearStandin, fault: str, options: dict[str, float]
) -> None:
    report, classification = escalated_report()
    standin.fail_next(fault, times=2, **options)  # type: ignore[arg-type]
    opened = await escalator(standin, timeout=1.0).deliver(report, pending(report, classification))
    assert opened.state is EscalationState.OPENED, opened.last_error
    assert len(standin.issues_created()) == 1
    assert opened.attempts >= 3


async def test_a_refused_key_fails_readably_and_sends_nothing_more(standin: LinearStandin) -> None:
    report, classification = escalated_report()
    standin.set_api_key_valid(False)
    failed = await escalator(standin).deliver(report, pending(report, classification))
    assert failed.state is EscalationState.FAILED
    assert failed.reason is not None
    assert "API key" in failed.reason
    assert standin.issues_created() == []
    assert standin.api_key not in (failed.last_error or "")


async def test_comments_land_once_per_key(standin: LinearStandin) -> None:
    report, classification = escalated_report()
    sender = escalator(standin)
    opened = await sender.deliver(report, pending(report, classification))
    assert await sender.comment(opened, "Relapsed", key="relapse-2")
    assert await sender.comment(opened, "Relapsed", key="relapse-2")
    assert await sender.comment(opened, "Resolved", key="resolved-2")
    assert opened.issue_id is not None
    assert [c.body for c in standin.comments_on(opened.issue_id)] == ["Relapsed", "Resolved"]


def test_no_secret_of_the_workload_reaches_linear(standin: LinearStandin) -> None:
    import asyncio  # noqa: PLC0415

    report, classification = escalated_report()
    asyncio.run(escalator(standin).deliver(report, pending(report, classification)))
    assert standin.requests, "the stand-in should have recorded the requests"
    assert standin.requests_containing("Xk9pL2vQ7mZt") == []


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
    assert escalation.state is EscalationState.PENDING
    assert escalation.reason == NOT_CONFIGURED
    assert escalation.markdown is not None
    assert "## Recommended change" in escalation.markdown


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


async def test_no_secret_planted_in_env_logs_or_events_reaches_linear(
    standin: LinearStandin,
) -> None:
    (finding,) = diagnose(SnapshotReader.from_document(planted_secrets.snapshot()))
    report = build_report(finding)
    production = classify(ChangeScope(), production=True, namespace=report.metadata.namespace)
    escalation = planned_escalation(
        report,
        production,
        uid=UID,
        cluster_name="c",
        production=True,
        linear_configured=True,
        prior=None,
    )
    opened = await escalator(standin).deliver(report, escalation)
    assert opened.state is EscalationState.OPENED
    sent = "\n".join(request.body for request in standin.requests)
    assert "visible-marker-" in sent, "the log excerpt should have reached the issue body"
    leaked = [kind for kind, _, secret in planted_secrets.SECRETS if secret in sent]
    assert leaked == []
    assert not any(value in sent for value in planted_secrets.ENV_SECRETS.values())
    assert "PrivateKeyMaterial" not in sent


async def test_an_acknowledged_report_gets_no_more_updates(standin: LinearStandin) -> None:
    report, classification = escalated_report()
    sender = escalator(standin)
    opened = await sender.deliver(report, pending(report, classification))
    assert opened.state is EscalationState.OPENED
    written: list[dict[str, object]] = []

    async def write_status(
        namespace: str, name: str, status: dict[str, object]
    ) -> dict[str, object]:
        written.append(status)
        return {}

    outbox = Outbox(sender, write_status, cluster_name="shop-prod")
    assert report.status is not None
    acknowledged = report.model_copy(
        update={
            "spec": report.spec.model_copy(update={"acknowledged": True}),
            "status": report.status.model_copy(update={"escalation": opened}),
        }
    )
    await outbox.after_resolution(acknowledged.to_api())
    assert opened.issue_id is not None
    assert standin.comments_on(opened.issue_id) == []
    # A Pending escalation of an acknowledged report is not sent either.
    still_pending = acknowledged.model_copy(
        update={
            "status": report.status.model_copy(
                update={"escalation": pending(report, classification)}
            )
        }
    )
    outbox.kick(still_pending.to_api())
    await outbox.close()
    assert written == []
    assert len(standin.issues_created()) == 1


def written_by_a_newer_replica(stored: dict[str, Any]) -> dict[str, Any]:
    """The report as a newer replica writes it during a rolling upgrade: fields this version
    does not know, at every level it reads."""
    newer = copy.deepcopy(stored)
    newer["spec"]["priorityHint"] = "page"
    newer["status"]["remediation"] = {"state": "Refused", "reason": "not opted in"}
    newer["status"]["rootCause"]["underlying"] = "CrashLoop.ApplicationError"
    newer["status"]["escalation"]["comments"] = [{"key": "relapse-2", "state": "Pending"}]
    return newer


async def test_a_report_with_fields_from_a_newer_replica_is_still_delivered(
    standin: LinearStandin,
) -> None:
    report, classification = escalated_report()
    assert report.status is not None
    stored = report.model_copy(
        update={"status": report.status.model_copy(
            update={"escalation": pending(report, classification)}
        )}
    ).to_api()  # fmt: skip
    stored["metadata"]["uid"] = UID
    written: list[dict[str, Any]] = []

    async def write_status(namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        written.append(status)
        return {**stored, "status": status}

    outbox = Outbox(escalator(standin), write_status, cluster_name="shop-prod")
    outbox.kick(written_by_a_newer_replica(stored))
    for _ in range(200):
        if any((s.get("escalation") or {}).get("state") == "Opened" for s in written):
            break
        await asyncio.sleep(0.05)
    await outbox.close()
    assert [s["escalation"]["state"] for s in written][-1:] == ["Opened"], written
    assert len(standin.issues_created()) == 1
