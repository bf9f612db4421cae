"""The real node's recordings (tests/fixtures/realnode/) as a snapshot to diagnose offline.

`hack/record_realnode.py` records, for each failure the real kubelet produced, the pod's
statuses over time, its real events and its logs. `recorded` puts the last status back into a
pod with the recorded container spec, beside its events and logs, and diagnoses it: what the
playbook tests hold against what a real kubelet and containerd wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "realnode"
NAMESPACE = "realnode"


def recorded(
    failure: str,
    probe: dict[str, Any] | None = None,
    extra: tuple[dict[str, Any], ...] = (),
) -> Finding:
    """The diagnosis of the recorded pod at its last sample, with its real events (a
    livenessProbe put in the container when given, and `extra` objects beside it: the ones
    the recording created, a Secret say)."""
    document = json.loads((FIXTURES / f"{failure}.json").read_text())
    (pod,) = document["pods"]
    sample = pod["statuses"][-1]
    container = dict(document["container"], **({"livenessProbe": probe} if probe else {}))
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
    items.extend(extra)
    (finding,) = diagnose(SnapshotReader.from_document({"kind": "List", "items": items}))
    return finding


def words(finding: Finding) -> str:
    inv = finding.investigation
    return "\n".join(
        [finding.conclusion.root_cause.summary]
        + [s.outcome for s in inv.steps]
        + [e.summary for e in inv.evidence]
    )
