"""One crash-looping container in one pod: what its status, events and previous log say, and
the root cause they point at on their own (before the workload-wide checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject, as_dict, name_of
from kubetriage.k8s.events import event_count, event_time
from kubetriage.k8s.time import parse_time
from kubetriage.models import Category
from kubetriage.playbooks._crashloop_checks import dicts, int_field
from kubetriage.playbooks._crashloop_signals import (
    Finding,
    ProbeFailure,
    Signal,
    probe_failure,
    probe_kill,
    scan_log,
    start_error,
)

# A kill event belongs to the termination it caused when it falls inside that run (the kubelet
# sends SIGTERM, waits out the grace period, then SIGKILL): allow for clock skew between them.
_SKEW = timedelta(seconds=5)
_CONFIG_DIRS = (
    "/etc/",
    "/config",
    "/conf",
    "/secrets",
    "/run/secrets",
    "/var/run/secrets",
    "/vault/",
)
_CONFIG_EXTENSIONS = (".yaml", ".yml", ".json", ".toml", ".ini", ".conf", ".cfg", ".properties",
                      ".env", ".xml", ".crt", ".pem", ".key", ".cert")  # fmt: skip
_START_REASONS = frozenset({"StartError", "ContainerCannotRun", "RunContainerError"})


@dataclass
class Crash:
    """One container of one affected pod, as the runbook reads it."""

    pod: KubeObject
    container: str
    init: bool
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started: datetime | None = None
    finished: datetime | None = None
    restarts: int | None = None
    log: str | None = None
    kill_probe: str | None = None  # liveness | startup: a Killing event caused this termination
    kill_events: int = 0
    probe_failures: list[tuple[ProbeFailure, int]] = field(default_factory=list)
    start_failure: Finding | None = None
    findings: list[Finding] = field(default_factory=list)
    # the verdict
    category: Category = Category.CRASHLOOP_APPLICATION_ERROR
    confidence: float = 0.5
    subject: str | None = None
    detail: str = ""
    finding: Finding | None = None

    @property
    def pod_name(self) -> str:
        """The pod's name."""
        return name_of(self.pod)

    @property
    def runtime(self) -> float | None:
        """Seconds the last instance ran before it ended."""
        if self.started is None or self.finished is None:
            return None
        return max(0.0, (self.finished - self.started).total_seconds())

    @property
    def signature(self) -> tuple[str, int | None, str | None]:
        """What two pods must share to "fail the same way"."""
        return self.category.value, self.exit_code, self.subject


def read_status(pod: KubeObject, container: str, init: bool) -> Crash:
    """The container's last termination from the pod status (the current one when the kubelet
    has not moved it to `lastState` yet)."""
    crash = Crash(pod=pod, container=container, init=init)
    status = as_dict(pod.get("status"))
    field_name = "initContainerStatuses" if init else "containerStatuses"
    statuses = dicts(status.get(field_name)) or dicts(status.get("containerStatuses"))
    entry = next((s for s in statuses if s.get("name") == container), {})
    terminated = as_dict(as_dict(entry.get("lastState")).get("terminated")) or as_dict(
        as_dict(entry.get("state")).get("terminated")
    )
    code = terminated.get("exitCode")
    crash.exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    crash.reason = str(terminated.get("reason") or "")
    crash.message = str(terminated.get("message") or "")
    crash.started = parse_time(terminated.get("startedAt"))
    crash.finished = parse_time(terminated.get("finishedAt"))
    restarts = entry.get("restartCount")
    crash.restarts = restarts if isinstance(restarts, int) else None
    crash.start_failure = start_error(crash.message) if crash.message else None
    return crash


def read_events(crash: Crash, events: list[KubeObject]) -> list[KubeObject]:
    """Take in the pod's events about this container (newest first); returns those it used."""
    used: list[KubeObject] = []
    path = f"spec.{'initContainers' if crash.init else 'containers'}{{{crash.container}}}"
    for event in events:
        involved = as_dict(event.get("involvedObject"))
        field_path = str(involved.get("fieldPath") or "")
        message = str(event.get("message") or "")
        if field_path and field_path != path:
            continue
        reason = str(event.get("reason") or "")
        if reason == "Killing":
            probe = probe_kill(message)
            if probe and (not field_path and f"Container {crash.container} " not in message):
                continue
            if probe:
                used.append(event)
                crash.kill_events += event_count(event)
                if crash.kill_probe is None and _caused_last_exit(crash, event_time(event)):
                    crash.kill_probe = probe
        elif reason == "Unhealthy":
            failure = probe_failure(message)
            if failure and failure.probe in {"liveness", "startup"}:
                used.append(event)
                crash.probe_failures.append((failure, event_count(event)))
        elif reason == "Failed" and crash.start_failure is None:
            found = start_error(message)
            if found is not None:
                used.append(event)
                crash.start_failure = found
    return used


def _caused_last_exit(crash: Crash, when: datetime | None) -> bool:
    if crash.exit_code in {137, 143}:
        return True
    if when is None or crash.started is None or crash.finished is None:
        return False
    return crash.started - _SKEW <= when <= crash.finished + _SKEW


def read_log(crash: Crash, reader: ClusterReader, namespace: str) -> None:
    """The previous instance's log; a FallbackToLogsOnError termination message stands in."""
    crash.log = reader.container_log(namespace, crash.pod_name, crash.container, previous=True)
    text = crash.log
    if not text and crash.message and crash.start_failure is None:
        text = crash.message  # the log tail, with terminationMessagePolicy FallbackToLogsOnError
    crash.findings = scan_log(text)


def config_like(path: str, mounts: list[str]) -> bool:
    """Whether a missing file is configuration (rather than a file the image lacks)."""
    lowered = path.lower()
    return (
        lowered.startswith(_CONFIG_DIRS)
        or lowered.endswith(_CONFIG_EXTENSIONS)
        or any(
            word in lowered for word in ("config", "conf.", "secret", "cert", "tls", "credential")
        )
        or any(m and path.startswith(m.rstrip("/") + "/") for m in mounts)
        or not path.startswith("/")  # a bare name such as viper's Config File "config"
    )


def classify(crash: Crash, *, must_run: bool, probe: dict[str, Any], mounts: list[str]) -> None:
    """The root cause this pod's own evidence points at, with how sure it makes us."""
    code, start = crash.exit_code, crash.start_failure

    def verdict(
        category: Category, confidence: float, finding: Finding | None = None, detail: str = ""
    ) -> None:
        crash.category, crash.confidence, crash.finding = category, confidence, finding
        crash.subject = finding.subject if finding else None
        crash.detail = detail or (finding.detail if finding else "")

    def last(*signals: Signal) -> Finding | None:
        return next((f for f in reversed(crash.findings) if f.signal in signals), None)

    if start is not None and start.signal in {
        Signal.COMMAND,
        Signal.PERMISSION,
        Signal.EXEC_FORMAT,
    }:
        category = {
            Signal.COMMAND: Category.CRASHLOOP_COMMAND_NOT_FOUND,
            Signal.PERMISSION: Category.CRASHLOOP_PERMISSION_DENIED,
            Signal.EXEC_FORMAT: Category.CRASHLOOP_APPLICATION_ERROR,
        }[start.signal]
        return verdict(
            category, 0.95 if start.signal != Signal.EXEC_FORMAT else 0.85, start, "exec"
        )
    if code == 127:
        found = last(Signal.COMMAND)
        return verdict(Category.CRASHLOOP_COMMAND_NOT_FOUND, 0.95 if found else 0.85, found)
    if code == 126:
        found = last(Signal.PERMISSION)
        return verdict(Category.CRASHLOOP_PERMISSION_DENIED, 0.95 if found else 0.85, found, "exec")
    if crash.kill_probe is not None:
        return verdict(Category.CRASHLOOP_LIVENESS_PROBE_FAILURE, 0.9, detail=_probe_kind(crash))
    if code in {137, 143} and crash.probe_failures:
        return verdict(Category.CRASHLOOP_LIVENESS_PROBE_FAILURE, 0.75, detail=_probe_kind(crash))
    if code == 137 and _within_kill_window(crash, probe):
        # Events expire after an hour: a SIGKILL right when the liveness probe would have given
        # up is the probe's doing even when its events are gone.
        return verdict(Category.CRASHLOOP_LIVENESS_PROBE_FAILURE, 0.6, detail="expired")
    if code == 139:
        return verdict(
            Category.CRASHLOOP_SEGFAULT,
            0.95 if last(Signal.SEGFAULT) else 0.9,
            last(Signal.SEGFAULT),
        )
    if code == 0 or crash.reason == "Completed":
        if must_run:
            return verdict(Category.CRASHLOOP_EXITED_IMMEDIATELY, 0.9)
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.5)
    actionable = [
        f for f in crash.findings
        if f.signal != Signal.CONFIG_FILE or config_like(str(f.subject), mounts)
    ]  # fmt: skip
    if code is not None:
        actionable = [f for f in actionable if f.signal != Signal.SEGFAULT]
    if actionable:
        found = actionable[-1]
        category, confidence, detail = {
            Signal.COMMAND: (Category.CRASHLOOP_COMMAND_NOT_FOUND, 0.85, ""),
            Signal.PERMISSION: (
                Category.CRASHLOOP_PERMISSION_DENIED,
                0.85 if found.detail == "exec" else 0.8,
                "",
            ),
            Signal.EXEC_FORMAT: (Category.CRASHLOOP_APPLICATION_ERROR, 0.85, ""),
            Signal.CONFIG_KEY: (Category.CRASHLOOP_MISSING_CONFIGURATION, 0.8, ""),
            Signal.CONFIG_FILE: (Category.CRASHLOOP_MISSING_CONFIGURATION, 0.75, ""),
            Signal.DEPENDENCY: (Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE, 0.8, ""),
            Signal.SEGFAULT: (Category.CRASHLOOP_SEGFAULT, 0.7, ""),
            Signal.START_OTHER: (Category.CRASHLOOP_APPLICATION_ERROR, 0.7, ""),
        }[found.signal]
        return verdict(category, confidence, found, detail)
    if start is not None:
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.7, start)
    if code == 137:
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.55, detail="sigkill")
    return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.75 if crash.log else 0.5)


def _probe_kind(crash: Crash) -> str:
    kinds = [failure.kind for failure, _ in crash.probe_failures]
    return max(kinds, key=kinds.count) if kinds else ""


def probe_window(probe: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(initialDelaySeconds, timeoutSeconds, periodSeconds, failureThreshold, seconds until the
    kubelet gives up on a container that never passes), with Kubernetes' defaults."""
    delay = int_field(probe, "initialDelaySeconds", 0)
    timeout = int_field(probe, "timeoutSeconds", 1)
    period = int_field(probe, "periodSeconds", 10)
    threshold = int_field(probe, "failureThreshold", 3)
    return delay, timeout, period, threshold, delay + period * threshold


def _within_kill_window(crash: Crash, probe: dict[str, Any]) -> bool:
    runtime = crash.runtime
    if not probe or runtime is None:
        return False
    window = probe_window(probe)[4]
    grace = 30 + 10  # the default termination grace period, and slack
    return window <= runtime <= window + grace
