"""A scheduled pod that has not started yet is a mount failure only with the kubelet's word for it.

Given the gateway whose ConfigMap volume is missing (FailedMount events), the report is
Pending.VolumeMountFailure. Given the same pods merely young or still pulling their image (no
FailedMount, no FailedAttachVolume), or waiting in PodInitializing behind an init container that
crash-loops, there is no Pending report: DESIGN.md section 2.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose

SCENARIO: dict[str, Any] = json.loads(
    (SCENARIOS_DIR / "pending-volume-mount-failure.json").read_text()
)
PULLING = 'Pulling image "docker.io/envoyproxy/envoy:v1.32.3"'
INIT_BACK_OFF = "back-off 40s restarting failed container=migrate pod={pod}_edge({uid})"


def reports(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    findings = diagnose(SnapshotReader.from_document(document))
    return [
        (f.target.name, f.symptom.value, f.conclusion.root_cause.category.value) for f in findings
    ]


GATEWAY_CONFIG = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "gateway-config", "namespace": "edge"},
    "data": {"envoy.yaml": ""},
}


def without_mount_events(reason: str, message: str) -> dict[str, Any]:
    """The scenario with its ConfigMap in place and each FailedMount event replaced by
    another kubelet event: nothing is wrong with the volumes."""
    document: dict[str, Any] = copy.deepcopy(SCENARIO)
    for item in document["items"]:
        if item.get("kind") == "Event" and item.get("reason") == "FailedMount":
            item["reason"], item["message"], item["type"] = reason, message, "Normal"
    document["items"].append(GATEWAY_CONFIG)
    return document


def behind_a_crash_looping_init_container() -> dict[str, Any]:
    """The gateway's pods with an init container `migrate` that exits 1 again and again: the
    app container waits in PodInitializing, as the kubelet shows it."""
    document = without_mount_events("Pulled", 'Container image "busybox:1.36" already present')
    for item in document["items"]:
        if item.get("kind") != "Pod":
            continue
        name, uid = item["metadata"]["name"], item["metadata"]["uid"]
        item["spec"]["initContainers"] = [{"name": "migrate", "image": "busybox:1.36"}]
        status = item["status"]
        status["initContainerStatuses"] = [
            {
                "name": "migrate",
                "state": {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": INIT_BACK_OFF.format(pod=name, uid=uid),
                    }
                },
                "lastState": {
                    "terminated": {
                        "exitCode": 1,
                        "reason": "Error",
                        "startedAt": "2025-03-13T14:41:40Z",
                        "finishedAt": "2025-03-13T14:41:41Z",
                    }
                },
                "ready": False,
                "restartCount": 5,
                "image": "busybox:1.36",
                "started": False,
            }
        ]
        for container in status["containerStatuses"]:
            container["state"] = {"waiting": {"reason": "PodInitializing"}}
        for condition in status["conditions"]:
            if condition["type"] in {"Initialized", "PodReadyToStartContainers"}:
                condition["status"] = "False" if condition["type"] == "Initialized" else "True"
    return document


def test_a_missing_config_map_volume_is_a_mount_failure() -> None:
    assert reports(SCENARIO) == [("gateway", "Pending", "Pending.VolumeMountFailure")]


def test_a_pod_still_pulling_its_image_is_no_mount_failure() -> None:
    assert reports(without_mount_events("Pulling", PULLING)) == []


def test_a_young_pod_with_no_kubelet_event_yet_is_no_mount_failure() -> None:
    document = without_mount_events("Scheduled", "Successfully assigned edge/gateway to worker-1")
    assert reports(document) == []


def test_a_missing_config_map_counts_once_its_events_expired() -> None:
    document = copy.deepcopy(SCENARIO)
    document["items"] = [i for i in document["items"] if i.get("kind") != "Event"]
    assert reports(document) == [("gateway", "Pending", "Pending.VolumeMountFailure")]


def test_an_init_container_crash_loop_is_reported_once_as_a_crash_loop() -> None:
    found = reports(behind_a_crash_looping_init_container())
    assert [(name, symptom) for name, symptom, _ in found] == [("gateway", "CrashLoopBackOff")]
