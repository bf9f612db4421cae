"""What the CrashLoopBackOff runbook reads: each crash-looping container's status, events and
previous log (a `Crash`), and the cluster around it: the ConfigMaps and Secrets a container
references, the Service behind a host its log could not reach, and the Deployment revision that
last worked.

Everything reads through the `ClusterReader` and tolerates malformed objects. Secrets are
checked for existence only, and ConfigMaps for their keys (never values): that is all the reader
gives, and all a report may say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    dicts,
    int_field,
    labels_of,
    name_of,
    pod_ready,
    pod_template,
)
from kubetriage.k8s.events import event_count, event_time
from kubetriage.k8s.history import describe, replica_sets_of, revision_of, template_changes
from kubetriage.k8s.owners import WorkloadRef, controller_of
from kubetriage.k8s.selectors import service_selects
from kubetriage.k8s.time import EPOCH, parse_time
from kubetriage.models import Category
from kubetriage.playbooks.crashloop.messages import (
    Clue,
    ProbeFailure,
    is_ip,
    probe_failure,
    probe_kill,
    scan_log,
    start_error,
)
from kubetriage.redact import env_names

# --- one crash-looping container --------------------------------------------------------------

# A kill event belongs to the termination it caused when it falls inside that run (the kubelet
# sends SIGTERM, waits out the grace period, then SIGKILL): allow for clock skew between them.
_SKEW = timedelta(seconds=5)


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
    start_failure: Clue | None = None
    clues: list[Clue] = field(default_factory=list)
    # what decide.classify concludes from the above
    category: Category = Category.CRASHLOOP_APPLICATION_ERROR
    confidence: float = 0.5
    subject: str | None = None
    detail: str = ""
    clue: Clue | None = None

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
    started = parse_time(terminated.get("startedAt"))
    # A StartError's process never started: the runtime writes the epoch as its start.
    crash.started = started if started is not None and started.year > EPOCH.year else None
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
    crash.clues = scan_log(text)


def probe_window(probe: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """(initialDelaySeconds, timeoutSeconds, periodSeconds, failureThreshold, seconds until the
    kubelet gives up on a container that never passes), with Kubernetes' defaults."""
    delay = int_field(probe, "initialDelaySeconds", 0)
    timeout = int_field(probe, "timeoutSeconds", 1)
    period = int_field(probe, "periodSeconds", 10)
    threshold = int_field(probe, "failureThreshold", 3)
    return delay, timeout, period, threshold, delay + period * threshold


# --- configuration references -----------------------------------------------------------------


@dataclass(frozen=True)
class ConfigRef:
    """One ConfigMap or Secret (key) a container depends on, and whether it is there."""

    kind: str  # ConfigMap | Secret
    name: str
    key: str | None
    used_by: str  # "env DATABASE_URL", "envFrom", "volume config"
    optional: bool
    state: str  # ok | missing-object | missing-key | unknown

    @property
    def missing(self) -> bool:
        """Whether the object or key is known to be absent."""
        return self.state in {"missing-object", "missing-key"}

    @property
    def silently_missing(self) -> bool:
        """Missing and optional: the kubelet starts the container without it, so the app runs
        without the setting. A missing required reference stops the kubelet from starting the
        container at all (CreateContainerConfigError) instead of making it crash."""
        return self.missing and self.optional

    def describe(self) -> str:
        """One phrase for a report: what is referenced, by what, and its state."""
        what = f"{self.kind} {self.name}" + (f" key {self.key}" if self.key else "")
        state = {
            "ok": "exists",
            "missing-object": f"{self.kind} {self.name} does not exist",
            "missing-key": f"{self.kind} {self.name} has no key {self.key}",
            "unknown": "existence unknown (Secrets are not read)",
        }[self.state]
        optional = " (optional)" if self.optional else ""
        return f"{what} via {self.used_by}{optional}: {state}"


@dataclass
class ConfigView:
    """What configuration a container gets from its pod spec, by name only."""

    refs: list[ConfigRef] = field(default_factory=list)
    env: set[str] = field(default_factory=set)  # variables it gets (env + known envFrom keys)
    opaque_sources: list[str] = field(default_factory=list)  # envFrom Secrets: keys unknowable
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (mountPath, what is mounted)
    config_map_keys: dict[str, set[str]] = field(default_factory=dict)

    @property
    def missing(self) -> list[ConfigRef]:
        """The references whose object or key is known to be absent."""
        return [ref for ref in self.refs if ref.missing]


_Check = Callable[[str, str, str | None, str, bool], None]


def config_view(
    reader: ClusterReader, namespace: str, pod_spec: dict[str, Any], container: dict[str, Any]
) -> ConfigView:
    """The ConfigMap/Secret references of a container (env, envFrom, mounted volumes) with
    their state, the env var names it will have, and what is mounted where."""
    view = ConfigView(env=set(env_names(dicts(container.get("env")))))

    def keys_of(name: str) -> set[str] | None:
        if name not in view.config_map_keys:
            keys = reader.config_map_keys(namespace, name)
            if keys is None:
                return None
            view.config_map_keys[name] = set(keys)
        return view.config_map_keys[name]

    def check(kind: str, name: str, key: str | None, used_by: str, optional: bool) -> None:
        if kind == "ConfigMap":
            keys = keys_of(name)
            state = "missing-object" if keys is None else "ok"
            if keys is not None and key and key not in keys:
                state = "missing-key"
        else:
            exists = reader.secret_exists(namespace, name)
            state = "unknown" if exists is None else "ok" if exists else "missing-object"
        view.refs.append(ConfigRef(kind, name, key, used_by, optional, state))

    for var in dicts(container.get("env")):
        value_from = as_dict(var.get("valueFrom"))
        for field_name, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
            ref = as_dict(value_from.get(field_name))
            if ref.get("name"):
                key = str(ref.get("key") or "") or None
                check(
                    kind, str(ref["name"]), key, f"env {var.get('name')}", bool(ref.get("optional"))
                )
    for source in dicts(container.get("envFrom")):
        _env_from(source, view, check, keys_of)
    volumes = {str(v.get("name")): v for v in dicts(pod_spec.get("volumes"))}
    for mount in dicts(container.get("volumeMounts")):
        volume = volumes.get(str(mount.get("name")), {})
        if _service_account_volume(volume):
            continue  # kube-api-access-*: Kubernetes injects and maintains it
        view.mounts.append((str(mount.get("mountPath") or ""), _check_volume(volume, check)))
    return view


def _env_from(
    source: dict[str, Any],
    view: ConfigView,
    check: _Check,
    keys_of: Callable[[str], set[str] | None],
) -> None:
    prefix = str(source.get("prefix") or "")
    config_map, secret = as_dict(source.get("configMapRef")), as_dict(source.get("secretRef"))
    if config_map.get("name"):
        name = str(config_map["name"])
        check("ConfigMap", name, None, "envFrom", bool(config_map.get("optional")))
        view.env.update(prefix + key for key in keys_of(name) or ())
    if secret.get("name"):
        check("Secret", str(secret["name"]), None, "envFrom", bool(secret.get("optional")))
        view.opaque_sources.append(f"Secret {secret['name']}")


def _service_account_volume(volume: dict[str, Any]) -> bool:
    sources = dicts(as_dict(volume.get("projected")).get("sources"))
    return any(source.get("serviceAccountToken") is not None for source in sources)


def _check_volume(volume: dict[str, Any], check: _Check) -> str:
    name = str(volume.get("name") or "?")
    sources: list[tuple[str, dict[str, Any]]] = []
    for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
        if volume.get(key) is not None:
            sources.append((kind, as_dict(volume.get(key))))
    for projected in dicts(as_dict(volume.get("projected")).get("sources")):
        for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
            if projected.get(key) is not None:
                sources.append((kind, as_dict(projected.get(key))))
    described: list[str] = []
    for kind, source in sources:
        ref_name = str(source.get("name") or source.get("secretName") or "")
        if not ref_name:
            continue
        items: list[str | None] = [
            str(i["key"]) for i in dicts(source.get("items")) if i.get("key")
        ]
        for item in items or [None]:
            check(kind, ref_name, item, f"volume {name}", bool(source.get("optional")))
        described.append(f"{kind} {ref_name}")
    kinds = [k for k in ("emptyDir", "persistentVolumeClaim", "hostPath", "csi") if k in volume]
    return f"volume {name} ({', '.join(described or kinds or ['unknown source'])})"


# --- a dependency named by the log ------------------------------------------------------------
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})


@dataclass
class DependencyCheck:
    """What the cluster says about a host the container could not reach."""

    host: str | None
    ip: str | None
    port: int | None
    scope: str = "unknown"  # service | external | local | ip | unknown
    service: str | None = None
    namespace: str | None = None
    state: str = "unknown"  # no-service | external-name | no-ready-endpoints | ready | unknown
    ready: int = 0
    not_ready: int = 0
    service_ports: list[int] = field(default_factory=list)
    backing: list[str] = field(default_factory=list)
    scaled_to_zero: tuple[str, str] | None = None  # (kind, name) of a workload at 0 replicas
    selector: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """host:port as the log named it."""
        host = self.host or self.ip or "an unnamed host"
        return f"{host}:{self.port}" if self.port else host

    def sentence(self) -> str:
        """What was found, as one clause for a summary."""
        where = f"Service {self.service} in namespace {self.namespace}"
        if self.scope == "local":
            return f"{self.target} is inside the pod itself (a sidecar, or the app's own port)"
        if self.scope == "ip":
            return f"{self.target} is an IP address, and the log gives no Service name for it"
        if self.scope == "external":
            return f"{self.host} is not a cluster Service name (an external host)"
        if self.scope == "unknown":
            return "the log does not name the host"
        if self.state == "no-service":
            return f"no {where} exists"
        if self.state == "external-name":
            return f"{where} is an ExternalName Service"
        backing = f": {'; '.join(self.backing)}" if self.backing else ""
        if self.state == "no-ready-endpoints":
            not_ready = f" ({self.not_ready} not ready)" if self.not_ready else ""
            return f"{where} exists but has no ready endpoints{not_ready}{backing}"
        if self.state == "ready":
            ports = ", ".join(map(str, self.service_ports))
            closed = self.port and self.service_ports and self.port not in self.service_ports
            unexposed = f", but does not expose port {self.port} (ports {ports})" if closed else ""
            return f"{where} exists and has {self.ready} ready endpoint(s){unexposed}"
        return f"{where} exists; its endpoints could not be read"


def check_dependency(
    reader: ClusterReader, namespace: str, host: str | None, ip: str | None, port: int | None
) -> DependencyCheck:
    """Resolve a host the way cluster DNS would (`svc`, `svc.ns`, `svc.ns.svc[.domain]`,
    `pod.svc.ns.svc[.domain]`) and say whether that Service exists and has ready endpoints."""
    check = DependencyCheck(host=host, ip=ip, port=port)
    name = (host or "").lower().rstrip(".")
    if name in _LOCAL_HOSTS or (not name and ip in _LOCAL_HOSTS):
        check.scope = "local"
    elif not name or is_ip(name):
        check.scope = "ip" if (ip or name) else "unknown"
    else:
        found = _service_of(reader, namespace, name.split("."))
        if found is None:
            check.scope = "external"
        else:
            check.scope = "service"
            check.service, check.namespace = found
            _service_state(reader, check, *found)
    return check


def _service_of(reader: ClusterReader, namespace: str, parts: list[str]) -> tuple[str, str] | None:
    if len(parts) == 1:
        return parts[0], namespace
    if len(parts) >= 4 and parts[3] == "svc":  # postgres-0.postgres.shop.svc.cluster.local
        return parts[1], parts[2]
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[0], parts[1]
    if len(parts) == 2 and (
        reader.namespace(parts[1]) is not None or reader.service(parts[1], parts[0]) is not None
    ):
        return parts[0], parts[1]
    return None


def _service_state(reader: ClusterReader, check: DependencyCheck, name: str, ns: str) -> None:
    service = reader.service(ns, name)
    if service is None:
        check.state = "no-service"
        return
    spec = as_dict(service.get("spec"))
    ports = dicts(spec.get("ports"))
    check.service_ports = [p["port"] for p in ports if isinstance(p.get("port"), int)]
    if spec.get("type") == "ExternalName":
        check.state = "external-name"
        return
    selector = {str(k): str(v) for k, v in as_dict(spec.get("selector")).items()}
    check.selector = selector
    endpoints = reader.endpoints(ns, name)
    if endpoints is not None:
        subsets = dicts(endpoints.get("subsets"))
        check.ready = sum(len(dicts(s.get("addresses"))) for s in subsets)
        check.not_ready = sum(len(dicts(s.get("notReadyAddresses"))) for s in subsets)
    elif selector:  # no Endpoints read (not captured): the pods behind the selector stand in
        pods = [p for p in reader.pods(ns) if service_selects(selector, labels_of(p))]
        check.ready = sum(1 for p in pods if pod_ready(p))
        check.not_ready = len(pods) - check.ready
    else:
        return
    check.state = "ready" if check.ready else "no-ready-endpoints"
    if selector:
        _backing(reader, check, selector, ns)


def _backing(
    reader: ClusterReader, check: DependencyCheck, selector: dict[str, str], ns: str
) -> None:
    for kind in ("StatefulSet", "Deployment", "DaemonSet"):
        for workload in reader.workloads(kind, ns):
            spec, status = as_dict(workload.get("spec")), as_dict(workload.get("status"))
            if not service_selects(selector, labels_of(as_dict(spec.get("template")))):
                continue
            ready = int_field(status, "readyReplicas", int_field(status, "numberReady", 0))
            if kind == "DaemonSet":
                check.backing.append(f"DaemonSet {name_of(workload)}: {ready} ready")
                continue
            replicas = int_field(spec, "replicas", 1)
            if replicas == 0:
                check.scaled_to_zero = check.scaled_to_zero or (kind, name_of(workload))
                check.backing.append(f"{kind} {name_of(workload)} is scaled to 0 replicas")
            else:
                check.backing.append(f"{kind} {name_of(workload)}: {ready}/{replicas} ready")
    if not check.backing:
        check.backing.append(
            f"no Deployment, StatefulSet or DaemonSet in {ns} matches its selector"
        )


# --- the revision that last worked -------------------------------------------------------------


@dataclass(frozen=True)
class RevisionChange:
    """The failing (newest) revision of a Deployment against an older one, and what changed."""

    failing_revision: int | None
    good_revision: int | None
    good_replica_set: str
    good_ready: int
    changes: tuple[str, ...]


def previous_revision(
    reader: ClusterReader, target: WorkloadRef, failing_pods: list[KubeObject]
) -> RevisionChange | None:
    """When every failing pod belongs to the Deployment's newest ReplicaSet, the older revision
    to go back to (the newest one with ready pods, else the one before) and what changed
    between their pod templates (`k8s.history.template_changes`, described)."""
    if target.kind != "Deployment" or not failing_pods:
        return None
    replica_sets = replica_sets_of(target, reader)
    if len(replica_sets) < 2:
        return None
    newest = replica_sets[0]
    owners = {str((controller_of(p) or {}).get("name") or "") for p in failing_pods}
    if owners != {name_of(newest)}:
        return None
    older = replica_sets[1:]
    good = next((rs for rs in older if _ready(rs) > 0), older[0])
    return RevisionChange(
        failing_revision=revision_of(newest),
        good_revision=revision_of(good),
        good_replica_set=name_of(good),
        good_ready=_ready(good),
        changes=tuple(
            describe(c) for c in template_changes(pod_template(good), pod_template(newest))
        ),
    )


def _ready(replica_set: KubeObject) -> int:
    return int_field(as_dict(replica_set.get("status")), "readyReplicas", 0)
