"""The CrashLoopBackOff runbook over what a real node recorded (tests/fixtures/realnode/).

Given the last recorded status and the kubelet's real events of a missing binary
(RunContainerError, StartError with an epoch `startedAt`) and of an exec liveness probe that
prints nothing ("Liveness probe failed: "), the report names the right cause and states only
what the objects show: no run time computed from 1970, no empty "()" for a probe's output.
"""

from __future__ import annotations

import json

import pytest

from kubetriage.diagnosis import Finding
from kubetriage.playbooks.crashloop.messages import is_ip
from recordings import recorded, words


def test_a_missing_binary_is_command_not_found_without_a_run_time_from_1970() -> None:
    finding = recorded("missing-binary")
    assert finding.conclusion.root_cause.category.value == "CrashLoop.CommandNotFound"
    text = words(finding)
    assert "/app/server" in text
    assert "1796" not in text, text
    assert "after 0s" not in text


EXEC_PROBE = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 3}


def test_an_exec_probe_that_prints_nothing_is_said_so_not_as_empty_brackets() -> None:
    finding = recorded("liveness-exec", probe=EXEC_PROBE)
    assert finding.conclusion.root_cause.category.value == "CrashLoop.LivenessProbeFailure"
    text = words(finding)
    assert "()" not in text, text
    assert "printed nothing" in text, text


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("10.100.45.12", True),
        ("fd00::1", True),
        ("[2001:db8::7]", True),
        ("::1", True),
        ("db", False),
        ("cafe", False),
        ("feed", False),
        ("deadbeef", False),
        ("redis", False),
        ("999.1.1.1", False),
    ],
)
def test_a_host_made_of_hex_letters_is_a_name_not_an_ipv6_address(host: str, ip: bool) -> None:
    assert is_ip(host) is ip


def recommendation_text(finding: Finding) -> str:
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    return json.dumps(recommendation.to_api()).replace('\\"', '"')


def test_a_startup_probe_kill_is_a_startup_probe_failure_quoting_the_startup_budget() -> None:
    finding = recorded("startup-probe")
    root = finding.conclusion.root_cause
    assert root.category.value == "CrashLoop.StartupProbeFailure"
    assert "the startupProbe allows 6s" in root.summary, root.summary
    assert "failureThreshold 3 \u00d7 periodSeconds 2" in root.summary
    assert "liveness probe allows" not in root.summary
    # The recorded previous log is "" (the process wrote nothing): empty, not absent.
    assert "its previous log is empty" in root.summary
    assert "no previous log was available" not in words(finding)
    text = recommendation_text(finding)
    assert "startupProbe" in text
    assert "failureThreshold" in text
    assert "livenessProbe" not in text


def test_a_liveness_probe_answered_404_is_a_wrong_path_not_a_slow_start() -> None:
    finding = recorded("liveness-http")
    assert finding.conclusion.root_cause.category.value == "CrashLoop.LivenessProbeFailure"
    text = recommendation_text(finding)
    assert "404" in text, text
    assert "/healthz" in text, text
    assert "startupProbe" not in text


@pytest.mark.parametrize(
    ("failure", "category", "said"),
    [
        ("dependency", "CrashLoop.DependencyUnavailable", "db"),
        ("segfault", "CrashLoop.Segfault", "Segmentation fault"),
        ("command-not-found", "CrashLoop.CommandNotFound", "/app/server"),
        ("exits-zero", "CrashLoop.ExitedImmediately", "exits with code 0"),
    ],
)
def test_a_container_terminated_now_is_read_from_its_current_log(
    failure: str, category: str, said: str
) -> None:
    """The kubelet keeps a crashed container `terminated` for most of its back-off: that run's
    log is the current one; the previous run's log is often gone ("unable to retrieve container
    logs for containerd://..."), which is the kubelet's word, not the application's."""
    finding = recorded(failure)
    root = finding.conclusion.root_cause
    assert root.category.value == category, root.summary
    assert said in root.summary, root.summary
    assert "unable to retrieve container logs" not in words(finding)
