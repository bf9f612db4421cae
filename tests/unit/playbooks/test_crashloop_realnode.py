"""The CrashLoopBackOff runbook over what a real node recorded (tests/fixtures/realnode/).

Given the last recorded status and the kubelet's real events of a missing binary
(RunContainerError, StartError with an epoch `startedAt`) and of an exec liveness probe that
prints nothing ("Liveness probe failed: "), the report names the right cause and states only
what the objects show: no run time computed from 1970, no empty "()" for a probe's output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.playbooks.crashloop.messages import is_ip

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "realnode"
NAMESPACE = "realnode"


def recorded(failure: str, probe: dict[str, Any] | None = None) -> Finding:
    """The diagnosis of the recorded pod at its last sample, with its real events."""
    document = json.loads((FIXTURES / f"{failure}.json").read_text())
    (pod,) = document["pods"]
    sample = pod["statuses"][-1]
    container = dict(document["container"], **({"livenessProbe": probe} if probe else {}))
    deployment = pod["name"].rsplit("-", 2)[0]
    replica_set = pod["name"].rsplit("-", 1)[0]
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod["name"],
                "namespace": NAMESPACE,
                "labels": {"pod-template-hash": replica_set.rsplit("-", 1)[1]},
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": replica_set, "controller": True}
                ],
            },
            "spec": {"nodeName": pod["node"], "containers": [container]},
            "status": {k: v for k, v in sample.items() if k != "t"},
        }
    ]
    for index, event in enumerate(pod["events"]):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": f"{pod['name']}.{index}", "namespace": NAMESPACE},
                "involvedObject": {
                    "kind": "Pod",
                    "name": pod["name"],
                    "namespace": NAMESPACE,
                    **({"fieldPath": event["fieldPath"]} if event.get("fieldPath") else {}),
                },
                "reason": event["reason"],
                "message": event["message"],
                "type": event["type"],
                "count": event.get("count"),
                "firstTimestamp": event.get("firstTimestamp"),
                "lastTimestamp": event.get("lastTimestamp"),
                "source": {"component": event.get("source") or ""},
            }
        )
    for previous, text in (("previous", True), ("current", False)):
        items.append(
            {
                "apiVersion": "kubetriage.io/v1alpha1",
                "kind": "ContainerLog",
                "metadata": {"namespace": NAMESPACE, "name": pod["name"]},
                "container": container["name"],
                "previous": text,
                "text": pod["logs"][previous],
            }
        )
    assert deployment
    (finding,) = diagnose(SnapshotReader.from_document({"kind": "List", "items": items}))
    return finding


def words(finding: Finding) -> str:
    inv = finding.investigation
    return "\n".join(
        [finding.conclusion.root_cause.summary]
        + [s.outcome for s in inv.steps]
        + [e.summary for e in inv.evidence]
    )


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
