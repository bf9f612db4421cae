"""kwok plays the kubelet: a label on a pod puts it in a failure state, with the status a real
kubelet writes (hack/kwok/stages.yaml). Pending is left to the real scheduler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import wait_until
from localcluster import LocalCluster

SIMULATE = "kwok.kubetriage.io/simulate"


def make_pod(
    name: str, namespace: str, simulate: str | None, annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {SIMULATE: simulate} if simulate else {},
            "annotations": annotations or {},
        },
        "spec": {"containers": [{"name": "app", "image": "registry.example/shop/app:1.2.3"}]},
    }


def get_pod(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    pod: dict[str, Any] = json.loads(
        cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout
    )
    return pod


def app_status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    statuses = get_pod(cluster, namespace, name).get("status", {}).get("containerStatuses") or []
    return next((s for s in statuses if s["name"] == "app" and s["state"].get("waiting")), None)


@pytest.mark.parametrize(
    ("simulate", "annotations", "waiting_reason", "terminated_reason", "exit_code"),
    [
        (
            "CrashLoopBackOff",
            {"kwok.kubetriage.io/exit-code": "127"},
            "CrashLoopBackOff",
            "Error",
            127,
        ),
        (
            "CrashLoopBackOff",
            {"kwok.kubetriage.io/exit-code": "0"},
            "CrashLoopBackOff",
            "Completed",
            0,
        ),
        ("OOMKilled", {}, "CrashLoopBackOff", "OOMKilled", 137),
    ],
    ids=["crashloop-exit-127", "crashloop-exit-0", "oomkilled"],
)
def test_a_crashing_pod_shows_what_the_kubelet_writes(
    cluster: LocalCluster,
    namespace: str,
    simulate: str,
    annotations: dict[str, str],
    waiting_reason: str,
    terminated_reason: str,
    exit_code: int,
) -> None:
    cluster.apply(make_pod("crasher", namespace, simulate, annotations))
    status = wait_until(lambda: app_status(cluster, namespace, "crasher"), what="a waiting app")
    assert status["state"]["waiting"]["reason"] == waiting_reason
    assert status["state"]["waiting"]["message"].startswith("back-off ")
    assert "restarting failed container=app pod=crasher_" in status["state"]["waiting"]["message"]
    assert status["restartCount"] > 0
    assert status["ready"] is False
    terminated = status["lastState"]["terminated"]
    assert terminated["reason"] == terminated_reason
    assert terminated["exitCode"] == exit_code
    pod = get_pod(cluster, namespace, "crasher")
    assert pod["status"]["phase"] == "Running"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")


@pytest.mark.parametrize(
    ("simulate", "message_start"),
    [
        ("ErrImagePull", "rpc error: code = NotFound desc = failed to pull and unpack image"),
        ("ImagePullBackOff", 'Back-off pulling image "registry.example/shop/app:1.2.3"'),
    ],
    ids=["errimagepull", "imagepullbackoff"],
)
def test_an_image_pull_failure_shows_the_reason_and_message(
    cluster: LocalCluster, namespace: str, simulate: str, message_start: str
) -> None:
    cluster.apply(make_pod("puller", namespace, simulate))
    status = wait_until(lambda: app_status(cluster, namespace, "puller"), what="a waiting app")
    assert status["state"]["waiting"]["reason"] == simulate
    assert status["state"]["waiting"]["message"].startswith(message_start)
    assert "startedAt" not in status["state"]["waiting"]
    assert get_pod(cluster, namespace, "puller")["status"]["phase"] == "Pending"

    def failed_event() -> list[dict[str, Any]] | None:
        events = json.loads(
            cluster.kubectl(
                "get", "events", "-n", namespace,
                "--field-selector=involvedObject.name=puller,reason=Failed", "-o", "json",
            ).stdout
        )["items"]  # fmt: skip
        return events or None

    events = wait_until(failed_event, what="the kubelet's Failed event")
    assert any(e["message"].startswith('Failed to pull image "registry.example') for e in events)


def test_an_unlabelled_pod_runs_and_is_ready(cluster: LocalCluster, namespace: str) -> None:
    cluster.apply(make_pod("healthy", namespace, None))

    def ready() -> dict[str, Any] | None:
        pod = get_pod(cluster, namespace, "healthy")
        conditions = pod.get("status", {}).get("conditions") or []
        is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        return pod if is_ready else None

    pod = wait_until(ready, what="a ready pod")
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]


def test_previous_logs_are_served_through_the_apiserver(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.apply(make_pod("crasher", namespace, "CrashLoopBackOff"))
    wait_until(lambda: app_status(cluster, namespace, "crasher"), what="a crash-looping pod")
    current = cluster.kubectl("logs", "crasher", "-n", namespace, "-c", "app").stdout
    previous = cluster.kubectl("logs", "crasher", "-n", namespace, "-c", "app", "--previous").stdout
    assert "connection refused" in previous
    assert previous != current
