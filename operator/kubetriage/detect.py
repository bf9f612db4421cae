"""Detection: a pod or a Deployment in, the symptoms it shows out (DESIGN.md section 2).

Pure functions, no I/O. Grace periods are applied by the caller (the operator knows when it
first saw a symptom; a snapshot has no history), from `DetectedSymptom.since` where the object
itself says when the trouble began.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    as_list,
    condition,
    container_spec,
    container_statuses,
    int_field,
    text,
)
from kubetriage.k8s.time import EPOCH, parse_time
from kubetriage.models import Symptom

IMAGE_PULL_REASONS = frozenset(
    {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
)
# The kubelet could not build the container's configuration (a missing ConfigMap, Secret or key;
# runAsNonRoot against a root image), or the runtime refused to create it.
CONTAINER_CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})
# A container that was OOM-killed and runs again keeps the kill in lastState until its next
# restart. It is still a live problem while not ready, for an hour after the kill, or for a day
# when the kills recur (a leak restarts every few hours and looks healthy in between); after
# that the pod has recovered and produces nothing.
RECENT_OOM_WINDOW = timedelta(hours=1)
RECURRING_OOM_WINDOW = timedelta(hours=24)
RECURRING_OOM_RESTARTS = 3
# A container running again after this many restarts is still in its crash loop while the
# kubelet keeps its back-off: until it has run BACKOFF_RESET (twice the 5-minute maximum
# back-off) without crashing, as the kubelet's own back-off does.
LOOP_RESTARTS = 2
BACKOFF_RESET = timedelta(minutes=10)
# A pod the kubelet evicted stays Failed until it is deleted or garbage-collected; an hour after
# the eviction the workload has replaced it and it is history, not an incident.
EVICTION_WINDOW = timedelta(hours=1)
# The DisruptionTarget reasons of the node controller, which deletes the pods of a node that
# stopped reporting. A drain's `EvictionByEvictionAPI` and the scheduler's preemption are
# planned disruptions, not failures.
NODE_EVICTION_REASONS = frozenset({"DeletionByTaintManager"})


@dataclass(frozen=True)
class DetectedSymptom:
    """One symptom seen on one object (a pod's container, a pod, or a Deployment)."""

    symptom: Symptom
    namespace: str
    object_kind: str
    object_name: str
    container: str | None = None
    init_container: bool = False
    reason: str = ""
    message: str = ""
    since: datetime | None = None
    # When the object stops showing this symptom by the passing of time alone (an eviction
    # becomes history): whoever watches it must look again then, as no change will come.
    until: datetime | None = None


# Builds a sighting on the pod being examined: the symptom, then DetectedSymptom's other fields.
Sighting = Callable[..., DetectedSymptom]


def detect_pod(pod: KubeObject, now: datetime) -> list[DetectedSymptom]:
    """The symptoms a pod shows now. Succeeded pods and healthy pods show none."""
    metadata = as_dict(pod.get("metadata"))
    status = as_dict(pod.get("status"))
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "")
    phase = status.get("phase")
    if not name or phase == "Succeeded":
        return []

    def sighting(symptom: Symptom, **fields: Any) -> DetectedSymptom:
        return DetectedSymptom(symptom, namespace, "Pod", name, **fields)

    eviction = _eviction(pod, status, now, sighting)
    if eviction is not None or (phase == "Failed" and status.get("reason") == "Evicted"):
        # An evicted pod's containers were stopped by the kubelet, not crashed: the eviction
        # is the one thing it shows (none once it is over an hour old).
        return [eviction] if eviction is not None else []
    if metadata.get("deletionTimestamp"):
        return []

    found: list[DetectedSymptom] = []
    for container_status, is_init in container_statuses(pod):
        container = str(container_status.get("name") or "")
        state = as_dict(container_status.get("state"))
        waiting = as_dict(state.get("waiting"))
        terminated_now = as_dict(state.get("terminated"))
        last_terminated = as_dict(as_dict(container_status.get("lastState")).get("terminated"))
        waiting_reason = str(waiting.get("reason") or "")
        common = {"container": container, "init_container": is_init}

        oom = _oom_termination(container_status, terminated_now, last_terminated, now)
        if oom is not None:
            found.append(
                sighting(
                    Symptom.OOM_KILLED,
                    reason="OOMKilled",
                    message=f"exit code {oom.get('exitCode', 137)}",
                    since=parse_time(oom.get("finishedAt")),
                    **common,
                )
            )
        elif _cycling(pod, container_status, is_init=is_init, now=now):
            found.append(
                sighting(
                    Symptom.CRASH_LOOP_BACK_OFF,
                    reason=waiting_reason
                    or text(terminated_now.get("reason"))
                    or "CrashLoopBackOff",
                    message=text(waiting.get("message")),
                    since=_loop_since(last_terminated, terminated_now),
                    **common,
                )
            )
        if waiting_reason in IMAGE_PULL_REASONS:
            found.append(
                sighting(
                    Symptom.IMAGE_PULL_BACK_OFF,
                    reason=waiting_reason,
                    message=str(waiting.get("message") or ""),
                    **common,
                )
            )
        if waiting_reason in CONTAINER_CONFIG_REASONS:
            found.append(
                sighting(
                    Symptom.CREATE_CONTAINER_CONFIG_ERROR,
                    reason=waiting_reason,
                    message=text(waiting.get("message")),
                    since=_never_created_since(pod, container_status),
                    **common,
                )
            )
    if phase == "Pending":
        found.extend(_pending(pod, status, sighting))
    if phase == "Running":
        failing = {s.container for s in found}
        found.extend(_not_ready(pod, now, sighting, failing))
    return found


def _not_ready(
    pod: KubeObject, now: datetime, sighting: Sighting, failing: set[str | None]
) -> list[DetectedSymptom]:
    """Containers that run, have started, and fail their readiness probe past its initial
    delay (DESIGN.md section 12). A container that crash-loops or was OOM-killed is not ready
    for that reason (its own sighting); one whose startup probe has not passed is still
    starting (`started: false`); one without a readiness probe is ready as soon as it runs. A
    pod on a node that stopped reporting keeps `ready: true` in its container statuses: it is
    an eviction matter, never this."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "False":
        return []
    if text(ready.get("reason")) not in {"", "ContainersNotReady"}:
        return []
    found: list[DetectedSymptom] = []
    for container_status, is_init in container_statuses(pod):
        name = text(container_status.get("name"))
        running = as_dict(as_dict(container_status.get("state")).get("running"))
        if is_init or name in failing or not running or container_status.get("ready"):
            continue
        if container_status.get("started") is False:
            continue
        probe = as_dict(container_spec(pod, name).get("readinessProbe"))
        started_at = parse_time(running.get("startedAt"))
        if not probe or started_at is None:
            continue
        probing_since = started_at + timedelta(seconds=int_field(probe, "initialDelaySeconds", 0))
        if now < probing_since:
            continue
        turned = parse_time(ready.get("lastTransitionTime"))
        found.append(
            sighting(
                Symptom.NOT_READY,
                container=name,
                reason="ContainersNotReady",
                message=text(ready.get("message")),
                since=max(probing_since, turned) if turned is not None else probing_since,
            )
        )
    return found


def _eviction(
    pod: KubeObject, status: dict[str, Any], now: datetime, sighting: Sighting
) -> DetectedSymptom | None:
    """An eviction the pod shows (DESIGN.md section 12): the kubelet's (`status.reason:
    Evicted`, within EVICTION_WINDOW of when it happened), or the node controller's on a node
    that stopped reporting (the taint manager's DisruptionTarget, or a Ready condition it
    turned False while every container still says ready)."""
    target = condition(pod, "DisruptionTarget")
    target_reason = (
        text((target or {}).get("reason")) if (target or {}).get("status") == "True" else ""
    )
    if status.get("phase") == "Failed" and status.get("reason") == "Evicted":
        when = _evicted_at(pod, target)
        if when is not None and now - when > EVICTION_WINDOW:
            return None
        return sighting(
            Symptom.EVICTED,
            reason="Evicted",
            message=text(status.get("message")),
            since=when,
            until=when + EVICTION_WINDOW if when is not None else None,
        )
    if target_reason in NODE_EVICTION_REASONS:
        return sighting(
            Symptom.EVICTED,
            reason=target_reason,
            message=text((target or {}).get("message")),
            since=parse_time((target or {}).get("lastTransitionTime")),
        )
    ready = condition(pod, "Ready")
    statuses = [cs for cs, is_init in container_statuses(pod) if not is_init]
    if (
        text(status.get("phase")) in {"Running", "Unknown"}
        and not as_dict(pod.get("metadata")).get("deletionTimestamp")
        and ready is not None
        and ready.get("status") == "False"
        and not text(ready.get("reason"))
        and statuses
        and all(cs.get("ready") is True for cs in statuses)
    ):
        return sighting(
            Symptom.EVICTED,
            reason="NodeNotReady",
            message="the pod's Ready condition was turned False while its containers are ready",
            since=parse_time(ready.get("lastTransitionTime")),
        )
    return None


def _evicted_at(pod: KubeObject, target: dict[str, Any] | None) -> datetime | None:
    """When the kubelet evicted the pod: its DisruptionTarget condition's transition, else the
    last of its containers' terminations, else its Ready condition's transition."""
    when = parse_time((target or {}).get("lastTransitionTime"))
    if when is not None:
        return when
    finished = [
        parse_time(as_dict(as_dict(cs.get("state")).get("terminated")).get("finishedAt"))
        for cs, _ in container_statuses(pod)
    ]
    known = [t for t in finished if t is not None]
    if known:
        return max(known)
    return parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))


def _cycling(
    pod: KubeObject, container_status: dict[str, Any], *, is_init: bool, now: datetime
) -> bool:
    """Whether the kubelet keeps restarting this container: its crash loop as the real cycle
    shows it, whatever the moment. Between two restarts a container is `terminated` (most of
    the time, with the kubelet's default sync), `waiting: CrashLoopBackOff`, briefly running
    again, or `waiting: RunContainerError` when its command cannot start; the restart count
    and the last termination say it is the same loop."""
    state = as_dict(container_status.get("state"))
    waiting_reason = text(as_dict(state.get("waiting")).get("reason"))
    if waiting_reason == "CrashLoopBackOff":
        return True
    restarts = container_status.get("restartCount")
    restarts = restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else 0
    last = as_dict(as_dict(container_status.get("lastState")).get("terminated"))
    if waiting_reason == "RunContainerError":
        return restarts >= 1 or bool(last)
    terminated = as_dict(state.get("terminated"))
    if terminated:
        return restarts >= 1 and _restarts(pod, container_status, terminated, is_init=is_init)
    if state.get("running") is not None and restarts >= LOOP_RESTARTS and last:
        # Running again, but the kubelet still backs off: it forgets the back-off only after
        # the container ran this long without a crash.
        finished = parse_time(last.get("finishedAt"))
        return finished is not None and now - finished <= BACKOFF_RESET
    return False


def _restarts(
    pod: KubeObject,
    container_status: dict[str, Any],
    terminated: dict[str, Any],
    *,
    is_init: bool,
) -> bool:
    """Whether the kubelet restarts a container that terminated so (the pod's restartPolicy;
    a sidecar's own `restartPolicy: Always`)."""
    spec = as_dict(pod.get("spec"))
    policy = text(spec.get("restartPolicy")) or "Always"
    if is_init:
        name = container_status.get("name")
        sidecar = any(
            isinstance(c, dict) and c.get("name") == name and c.get("restartPolicy") == "Always"
            for c in as_list(spec.get("initContainers"))
        )
        if sidecar:
            return True
    if policy == "Never":
        return False
    return policy == "Always" or terminated.get("exitCode") != 0


def _never_created_since(pod: KubeObject, container_status: dict[str, Any]) -> datetime | None:
    """When a container that was never created began to wait: its pod's creation, when it has
    neither run nor restarted (the waiting state itself carries no time). A container that ran
    before waits since a moment the status does not record: the caller's first sighting."""
    restarts = container_status.get("restartCount")
    if restarts or as_dict(container_status.get("lastState")):
        return None
    return parse_time(as_dict(pod.get("metadata")).get("creationTimestamp"))


def _loop_since(*terminations: dict[str, Any]) -> datetime | None:
    """When the loop is known to have been going on: the earliest recorded crash. A start
    error's `startedAt` is the epoch (the process never started): its finish is the time."""
    times = [parse_time(t.get("finishedAt")) for t in terminations if t]
    known = [t for t in times if t is not None and t.year > EPOCH.year]
    return min(known) if known else None


def _oom_termination(
    container_status: dict[str, Any],
    terminated_now: dict[str, Any],
    last_terminated: dict[str, Any],
    now: datetime,
) -> dict[str, Any] | None:
    if terminated_now.get("reason") == "OOMKilled":
        return terminated_now
    if last_terminated.get("reason") != "OOMKilled":
        return None
    if not container_status.get("ready"):
        return last_terminated
    finished = parse_time(last_terminated.get("finishedAt"))
    if finished is None:
        return None
    restarts = container_status.get("restartCount")
    recurring = isinstance(restarts, int) and restarts >= RECURRING_OOM_RESTARTS
    window = RECURRING_OOM_WINDOW if recurring else RECENT_OOM_WINDOW
    return last_terminated if now - finished <= window else None


def _pending(pod: KubeObject, status: dict[str, Any], sighting: Any) -> list[DetectedSymptom]:
    conditions = [c for c in as_list(status.get("conditions")) if isinstance(c, dict)]
    scheduled = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    if scheduled is not None and scheduled.get("status") == "False":
        if text(scheduled.get("reason")) in {"Unschedulable", "SchedulerError"}:
            return [
                sighting(
                    Symptom.PENDING,
                    reason=str(scheduled.get("reason")),
                    message=str(scheduled.get("message") or ""),
                    since=parse_time(scheduled.get("lastTransitionTime")),
                )
            ]
        return []
    if scheduled is None and not as_dict(pod.get("spec")).get("nodeName"):
        return []
    if _past_volume_setup(pod):
        return []
    creating = [
        cs
        for cs, _ in container_statuses(pod)
        if text(as_dict(as_dict(cs.get("state")).get("waiting")).get("reason"))
        in {"ContainerCreating", "PodInitializing"}
    ]
    if not creating:
        return []
    since = parse_time((scheduled or {}).get("lastTransitionTime")) or parse_time(
        as_dict(pod.get("metadata")).get("creationTimestamp")
    )
    return [
        sighting(
            Symptom.PENDING,
            reason="ContainerCreating",
            message="scheduled but containers are still being created",
            container=str(creating[0].get("name") or "") or None,
            since=since,
        )
    ]


def _past_volume_setup(pod: KubeObject) -> bool:
    """Whether the kubelet has mounted the pod's volumes: its sandbox is ready, or an init
    container has run. Such a pod waits for something else (an image pull, an init container
    that crash-loops), never for a mount. Before that point only the kubelet's FailedMount /
    FailedAttachVolume events tell a mount failure from a pod that is merely young: the
    diagnosis checks them (`diagnosis.confirmed`)."""
    ready_to_start = condition(pod, "PodReadyToStartContainers")
    if ready_to_start is not None and ready_to_start.get("status") == "True":
        return True
    for container_status, is_init in container_statuses(pod):
        state = as_dict(container_status.get("state"))
        last = as_dict(container_status.get("lastState"))
        if is_init and (state.get("running") or state.get("terminated") or last.get("terminated")):
            return True
    return False


def detect_deployment(deployment: KubeObject) -> list[DetectedSymptom]:
    """RolloutStuck when the rollout passed its deadline or a ReplicaSet cannot create pods."""
    metadata = as_dict(deployment.get("metadata"))
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "")
    if not name or metadata.get("deletionTimestamp"):
        return []
    conditions = {
        text(c.get("type")): c
        for c in as_list(as_dict(deployment.get("status")).get("conditions"))
        if isinstance(c, dict)
    }
    progressing = as_dict(conditions.get("Progressing"))
    replica_failure = as_dict(conditions.get("ReplicaFailure"))
    if (
        progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        stuck = progressing
    elif replica_failure.get("status") == "True":
        stuck = replica_failure
    else:
        return []
    return [
        DetectedSymptom(
            Symptom.ROLLOUT_STUCK,
            namespace,
            "Deployment",
            name,
            reason=str(stuck.get("reason") or ""),
            message=str(stuck.get("message") or ""),
            since=parse_time(stuck.get("lastTransitionTime")),
        )
    ]


# The Job controller's failure reasons (pkg/controller/job): its backoff limit, its
# activeDeadlineSeconds, a podFailurePolicy FailJob rule, and the per-index limits.
JOB_FAILURE_CONDITIONS = ("FailureTarget", "Failed")


def detect_job(job: KubeObject) -> list[DetectedSymptom]:
    """JobFailed when the Job controller has failed the Job: `FailureTarget=True`, which it
    sets first since Kubernetes 1.31 (while it still terminates the pods), or `Failed=True`."""
    metadata = as_dict(job.get("metadata"))
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or "")
    if not name or metadata.get("deletionTimestamp"):
        return []
    for kind in JOB_FAILURE_CONDITIONS:
        failed = condition(job, kind)
        if failed is not None and failed.get("status") == "True":
            return [
                DetectedSymptom(
                    Symptom.JOB_FAILED,
                    namespace,
                    "Job",
                    name,
                    reason=text(failed.get("reason")),
                    message=text(failed.get("message")),
                    since=parse_time(failed.get("lastTransitionTime")),
                )
            ]
    return []
