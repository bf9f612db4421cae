"""Reading a Deployment's revisions: ReplicaSets, their pods, readiness, and what fails.

The ownerReference, revision and event readers here are the shared ones (`workloads`,
`objects`) made safe against malformed objects: a snapshot may hold anything, and one broken
ReplicaSet must not stop the diagnosis of the others. The ImagePull playbook reads revisions
through them too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import DetectedSymptom
from kubetriage.k8s.access import KubeObject, container_status, meta, name_of
from kubetriage.k8s.events import event_time
from kubetriage.k8s.history import revision_of
from kubetriage.k8s.owners import WorkloadRef, controller_of
from kubetriage.models import EvidenceSource, Symptom
from kubetriage.playbooks._rollout_quota import QuotaNeed, fitting_per_pod
from kubetriage.playbooks.base import Context, Investigation
from kubetriage.redact import excerpt

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ERROR_LINE = re.compile(
    r"(?i)\b(error|fatal|panic|exception|failed|not defined|invalid|"
    r"cannot|unable|no such|denied|refused)\b"
)


@dataclass
class Revision:
    """A ReplicaSet of the Deployment and the pods it controls."""

    replica_set: KubeObject
    pods: list[KubeObject]

    @property
    def name(self) -> str:
        return name_of(self.replica_set)

    @property
    def number(self) -> int | None:
        return revision(self.replica_set)

    def ready(self) -> int | None:
        """Ready replicas from the ReplicaSet's status (or its pods); None when unrecorded."""
        status = _dict(self.replica_set.get("status"))
        counts: list[int] = [
            status[f]
            for f in ("readyReplicas", "availableReplicas")
            if isinstance(status.get(f), int)
        ]
        ready_pods = sum(1 for p in self.pods if pod_ready(p))
        if counts or ready_pods:
            return max([*counts, ready_pods])
        return 0 if isinstance(status.get("replicas"), int) else None

    def healthy(self) -> bool | None:
        """True with ready replicas, False when it runs pods and none is ready, else unknown."""
        ready = self.ready()
        replicas = _dict(self.replica_set.get("status")).get("replicas")
        if ready:
            return True
        if ready == 0 and isinstance(replicas, int) and replicas > 0:
            return False
        return None


def symptom_detail(
    context: Context, investigation: Investigation, sighting: DetectedSymptom, pod: KubeObject
) -> str:
    """The facts behind a pod-level symptom: exit code, restarts, the first error line of the
    previous log (recorded as evidence), or the pull/scheduling message."""
    status = container_status(pod, sighting.container)
    parts = [f"container {sighting.container}"] if sighting.container else []
    terminated = _dict(_dict(status.get("lastState")).get("terminated")) or _dict(
        _dict(status.get("state")).get("terminated")
    )
    if sighting.symptom in {Symptom.CRASH_LOOP_BACK_OFF, Symptom.OOM_KILLED} and terminated:
        parts.append(f"exit code {terminated.get('exitCode')}")
    if isinstance(status.get("restartCount"), int):
        parts.append(f"{status['restartCount']} restarts")
    if sighting.symptom in {Symptom.IMAGE_PULL_BACK_OFF, Symptom.PENDING} and sighting.message:
        parts.append(sighting.message[:200])
    log = None
    if sighting.container and sighting.symptom is Symptom.CRASH_LOOP_BACK_OFF:
        log = context.reader.container_log(
            context.namespace, name_of(pod), sighting.container, previous=True
        )
    if log:
        tail = excerpt(log, max_lines=20, max_bytes=4096)
        lines = [line.strip() for line in tail.text.splitlines() if line.strip()]
        line = next((x for x in lines if _ERROR_LINE.search(x)), lines[-1] if lines else "")
        investigation.add_evidence(
            EvidenceSource.LOGS, f"previous log of {name_of(pod)}: {line}", tail.text
        )
        if line:
            parts.append(f"log: {line[:160]}")
    return ", ".join(parts) or sighting.reason


def lower_instead(
    raises: list[QuotaNeed], per: dict[str, Decimal], current: int, desired: int
) -> list[tuple[str, Decimal]] | None:
    """Per-pod values that fit every desired pod under the current quota, when lowering the
    pod's resources can work for every blocking resource (a pod count never can)."""
    lowered = []
    for need in raises:
        fits = fitting_per_pod(need, per.get(need.resource, need.needed), current, desired)
        if fits is None or not need.resource.startswith(("limits.", "requests.")):
            return None
        lowered.append((need.resource, fits))
    return lowered or None


def probe_failure(context: Context, revision: Revision) -> str:
    """The newest `Unhealthy` (probe failed) event of the revision's pods, as a suffix."""
    names = {name_of(p) for p in revision.pods}
    for event in events_about(context.reader, context.namespace, "Pod", names):
        if event.get("reason") == "Unhealthy":
            return f" ({str(event.get('message') or '')[:200]})"
    return ""


def ready_text(revision: Revision) -> str:
    """`3/3 ready`."""
    ready = revision.ready()
    replicas = _dict(revision.replica_set.get("status")).get("replicas")
    wanted = _dict(revision.replica_set.get("spec")).get("replicas")
    total = replicas if isinstance(replicas, int) else wanted
    return f"{'?' if ready is None else ready}/{total if isinstance(total, int) else '?'} ready"


def missing_pods(replica_set: KubeObject, deployment: KubeObject | None) -> tuple[int, int, int]:
    """(missing, current, desired) pods of the refused ReplicaSet."""
    for obj in (replica_set, deployment or {}):
        wanted = _dict(obj.get("spec")).get("replicas")
        have = _dict(obj.get("status")).get("replicas")
        if isinstance(wanted, int) and isinstance(have, int | None):
            current = have or 0
            return max(1, wanted - current), current, wanted
    return 1, 0, 1


def selector(deployment: KubeObject | None) -> str | None:
    """The Deployment's matchLabels as a `-l` selector."""
    labels = _dict(_dict(_dict((deployment or {}).get("spec")).get("selector")).get("matchLabels"))
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def pod_ready(pod: KubeObject) -> bool:
    """Whether the pod's Ready condition is True."""
    conditions = _list(_dict(pod.get("status")).get("conditions"))
    return any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def events_about(
    reader: ClusterReader, namespace: str, kind: str, names: set[str]
) -> list[KubeObject]:
    """`objects.events_about` that skips events whose involvedObject name is not a string
    (the shared helper raises on an unhashable one; a snapshot may hold anything)."""
    found = [
        e
        for e in reader.events(namespace)
        if isinstance(e.get("involvedObject"), dict)
        and e["involvedObject"].get("kind") == kind
        and isinstance(e["involvedObject"].get("name"), str)
        and e["involvedObject"]["name"] in names
    ]
    return sorted(found, key=lambda e: event_time(e) or _EPOCH, reverse=True)


def owner_of(obj: KubeObject) -> dict[str, Any] | None:
    """`workloads.controller_of`, None when ownerReferences is not a list."""
    refs = meta(obj).get("ownerReferences")
    return (
        controller_of({"metadata": {"ownerReferences": refs}}) if isinstance(refs, list) else None
    )


def revision(obj: KubeObject | None) -> int | None:
    """`workloads.revision_of` (of a ReplicaSet or a Deployment), None when malformed."""
    annotations = meta(obj or {}).get("annotations")
    if not isinstance(annotations, dict):
        return None
    return revision_of({"metadata": {"annotations": annotations}})


def history(target: WorkloadRef, reader: ClusterReader) -> list[KubeObject]:
    """`workloads.replica_sets_of`: the Deployment's ReplicaSets, newest revision first."""
    owned = []
    for replica_set in reader.workloads("ReplicaSet", target.namespace):
        owner = owner_of(replica_set) or {}
        if owner.get("kind") == "Deployment" and owner.get("name") == target.name:
            owned.append(replica_set)
    return sorted(owned, key=lambda rs: revision(rs) or 0, reverse=True)


_POD_LISTS = {
    "spec": ("containers", "initContainers"),
    "status": ("containerStatuses", "initContainerStatuses", "conditions"),
}


def well_formed(pod: KubeObject) -> KubeObject:
    """The pod with every list the shared readers iterate made a list (a malformed one reads
    as empty), so that `objects.container_status` and friends cannot raise on it."""
    clean = dict(pod)
    for section, fields in _POD_LISTS.items():
        body = dict(_dict(pod.get(section)))
        for name in fields:
            body[name] = _list(body.get(name))
        clean[section] = body
    return clean


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
