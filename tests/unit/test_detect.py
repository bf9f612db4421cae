"""Detection over the crash cycle as a real kubelet shows it, not one snapshot of `state`.

The fixtures in tests/fixtures/realnode/ were recorded from a real node (kubelet 1.36,
containerd, runc; hack/record_realnode.py): every pod status the container went through, about
once a second. A crash-looping container spends most of its time in `state.terminated` or
running again between back-offs, not in `waiting: CrashLoopBackOff`; a missing binary shows
`waiting: RunContainerError`. Given any sample once the loop is established, detection names
the loop; given a recovered or finished container, it names nothing.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubetriage.detect import detect_pod
from kubetriage.k8s.time import parse_time
from kubetriage.models import Symptom

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "realnode"
LOOPING = {
    "CrashLoopBackOff": Symptom.CRASH_LOOP_BACK_OFF,
    "OOMKilled": Symptom.OOM_KILLED,
}


def recordings() -> list[tuple[str, Symptom, dict[str, Any]]]:
    """(failure, symptom it must show, one recorded pod status) for every sample taken once
    the container had restarted twice: by then the kubelet is backing off."""
    found = []
    for path in sorted(FIXTURES.glob("*.json")):
        document = json.loads(path.read_text())
        if (
            not isinstance(document, dict)
            or document.get("expected", {}).get("symptom") not in LOOPING
        ):
            continue
        symptom = LOOPING[document["expected"]["symptom"]]
        for pod in document["pods"]:
            for sample in pod["statuses"]:
                statuses = sample.get("containerStatuses") or []
                if any((s.get("restartCount") or 0) >= 2 for s in statuses):
                    found.append((document["failure"], symptom, {"name": pod["name"], **sample}))
    return found


def as_pod(sample: dict[str, Any], restart_policy: str = "Always") -> dict[str, Any]:
    status = {k: v for k, v in sample.items() if k not in {"name", "t"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": sample["name"], "namespace": "realnode"},
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": "app"}]},
        "status": status,
    }


def sampled_at(sample: dict[str, Any]) -> datetime:
    """When the sample was taken, at the earliest: its newest timestamp."""
    times = [
        parse_time(value)
        for status in sample.get("containerStatuses") or []
        for state in (status.get("state") or {}, status.get("lastState") or {})
        for detail in state.values()
        for key, value in (detail or {}).items()
        if key in {"startedAt", "finishedAt"}
    ]
    known = [t for t in times if t is not None and t.year > 1970]
    assert known, sample
    return max(known)


RECORDED = recordings()


def state_of(status: dict[str, Any]) -> str:
    """`waiting:CrashLoopBackOff`, `terminated:Error`, `running:`."""
    state: dict[str, dict[str, Any]] = status.get("state") or {}
    kind, detail = next(iter(state.items()), ("none", {}))
    return f"{kind}:{(detail or {}).get('reason', '')}"


def test_the_recordings_cover_every_state_of_the_cycle() -> None:
    states = {
        state_of(s) for _, _, sample in RECORDED for s in sample.get("containerStatuses") or []
    }
    assert {"terminated:Error", "waiting:CrashLoopBackOff", "running:"} <= states, states
    assert "waiting:RunContainerError" in states
    assert "terminated:OOMKilled" in states


@pytest.mark.parametrize(
    ("failure", "symptom", "sample"),
    RECORDED,
    ids=[f"{f}-{s['t']:.0f}s" for f, _, s in RECORDED],
)
def test_every_moment_of_a_real_crash_cycle_is_detected(
    failure: str, symptom: Symptom, sample: dict[str, Any]
) -> None:
    found = detect_pod(as_pod(sample), sampled_at(sample))
    assert symptom in {s.symptom for s in found}, (failure, sample["containerStatuses"])


def test_a_start_error_is_dated_by_its_finish_not_its_epoch_start() -> None:
    (failure, _, sample) = next(r for r in RECORDED if r[0] == "missing-binary")
    (sighting,) = [
        s
        for s in detect_pod(as_pod(sample), sampled_at(sample))
        if s.symptom.value == "CrashLoopBackOff"
    ]
    assert sighting.since is not None
    assert sighting.since.year == sampled_at(sample).year, failure


def container(state: dict[str, Any], last: dict[str, Any] | None, restarts: int) -> dict[str, Any]:
    return {
        "name": "app",
        "ready": "running" in state,
        "restartCount": restarts,
        "state": state,
        "lastState": {"terminated": last} if last else {},
    }


NOW = datetime.fromisoformat("2026-12-04T02:00:00+00:00")


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


ERROR = {"exitCode": 1, "reason": "Error", "startedAt": at(3.1), "finishedAt": at(3)}
NOT_LOOPING = [
    # (case, restart policy, container status)
    ("ran fine for hours after two restarts", "Always",
     container({"running": {"startedAt": at(150)}},
               {**ERROR, "startedAt": at(152), "finishedAt": at(151)}, 2)),
    ("restarted once, runs again", "Always",
     container({"running": {"startedAt": at(1)}}, ERROR, 1)),
    ("a Job's pod that failed is not restarted", "Never",
     container({"terminated": ERROR}, None, 0)),
    ("OnFailure and exit 0 is done", "OnFailure",
     container({"terminated": {**ERROR, "exitCode": 0, "reason": "Completed"}}, ERROR, 1)),
    ("first start, not yet crashed", "Always",
     container({"running": {"startedAt": at(0.5)}}, None, 0)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "status"), [c[1:] for c in NOT_LOOPING], ids=[c[0] for c in NOT_LOOPING]
)
def test_a_container_that_is_not_cycling_is_not_a_crash_loop(
    policy: str, status: dict[str, Any]
) -> None:
    sample = {"name": "api-1", "phase": "Running", "containerStatuses": [status]}
    found = detect_pod(as_pod(sample, policy), NOW)
    assert Symptom.CRASH_LOOP_BACK_OFF not in {s.symptom for s in found}


LOOPING_NOW = [
    ("terminated again after restarts", "Always",
     container({"terminated": ERROR}, {**ERROR, "finishedAt": at(5)}, 3)),
    ("running between two crashes, back-off still on", "Always",
     container({"running": {"startedAt": at(0.2)}}, ERROR, 4)),
    ("OnFailure and exit 1 restarts", "OnFailure",
     container({"terminated": ERROR}, ERROR, 2)),
    ("a missing binary", "Always",
     container({"waiting": {"reason": "RunContainerError",
                            "message": 'failed to create containerd task: failed to create shim '
                                       'task: OCI runtime create failed: runc create failed: '
                                       'unable to start container process: exec: "/app/server": '
                                       'stat /app/server: no such file or directory: unknown'}},
               {"exitCode": 128, "reason": "StartError", "startedAt": "1970-01-01T00:00:00Z",
                "finishedAt": at(1)}, 3)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "status"), [c[1:] for c in LOOPING_NOW], ids=[c[0] for c in LOOPING_NOW]
)
def test_a_container_between_restarts_is_a_crash_loop(policy: str, status: dict[str, Any]) -> None:
    sample = {"name": "api-1", "phase": "Running", "containerStatuses": [status]}
    found = detect_pod(as_pod(sample, policy), NOW)
    assert [s.symptom for s in found] == [Symptom.CRASH_LOOP_BACK_OFF]
