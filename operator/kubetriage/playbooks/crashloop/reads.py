"""What the CrashLoopBackOff runbook reads: each crash-looping container's status, events and
last log (a `Crash`), and the cluster around it: the ConfigMaps and Secrets a container
references (and which of them feed a credential), the Service or pod behind a host or IP its log
could not reach and why it has no ready endpoint, the architecture of the nodes its pods fail
and run on, and the Deployment revision that last worked.

Everything reads through the `ClusterReader` and tolerates malformed objects. Secrets are
checked for existence only, and ConfigMaps for their keys (never values): that is all the reader
gives, and all a report may say.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    as_list,
    containers,
    dicts,
    int_field,
    labels_of,
    meta,
    name_of,
    namespace_of,
    pod_ready,
    pod_template,
)
from kubetriage.k8s.events import about, event_count, event_time
from kubetriage.k8s.history import describe, replica_sets_of, revision_of, template_changes
from kubetriage.k8s.owners import WorkloadRef, controller_of, owning_workload
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
    stall_line,
    start_error,
    unretrievable,
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
    current: bool = False  # the termination is the container's state now, not its lastState
    log: str | None = None  # the last run's log; "" when it wrote nothing
    log_state: str = "absent"  # read | empty | absent | unretrievable
    stall: str | None = None  # a line saying the process stalled while it ran
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
    """The container's last termination from the pod status: its state when it is terminated
    now (the kubelet keeps a crashed container so for most of its back-off, and `lastState` is
    then the run before), else `lastState`."""
    crash = Crash(pod=pod, container=container, init=init)
    status = as_dict(pod.get("status"))
    field_name = "initContainerStatuses" if init else "containerStatuses"
    statuses = dicts(status.get(field_name)) or dicts(status.get("containerStatuses"))
    entry = next((s for s in statuses if s.get("name") == container), {})
    now = as_dict(as_dict(entry.get("state")).get("terminated"))
    crash.current = bool(now)
    terminated = now or as_dict(as_dict(entry.get("lastState")).get("terminated"))
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
    """The log of the run that ended: the current log while the container is terminated now
    (`kubectl logs`), else the previous one (`kubectl logs --previous`). Empty and absent are
    told apart, and so is the kubelet's "unable to retrieve container logs" (the run's log is
    gone), which is not the application's. A FallbackToLogsOnError termination message stands
    in for a log that says nothing."""
    for previous in (False, True) if crash.current else (True,):
        text = reader.container_log(namespace, crash.pod_name, crash.container, previous=previous)
        if text is None:
            continue
        if unretrievable(text):
            crash.log_state = "unretrievable"
            continue
        crash.log, crash.log_state = text, "read" if text.strip() else "empty"
        break
    text = crash.log
    if not (text or "").strip() and crash.message and crash.start_failure is None:
        text = crash.message  # the log tail, with terminationMessagePolicy FallbackToLogsOnError
    crash.clues = scan_log(text)
    crash.stall = stall_line(crash.log)


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
    state: str  # ok | missing-object | missing-key | not-captured | unknown

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
            "not-captured": f"{self.kind} {self.name} is not in this snapshot (not captured: "
            "whether it exists is unknown)",
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
    files: list[ConfigFile] = field(default_factory=list)  # configuration files it is given
    plain_env: set[str] = field(default_factory=set)  # env vars set to a value in the spec

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
            state = "ok"
            if keys is None:
                exists = reader.config_map_exists(namespace, name)
                state = "not-captured" if exists is None else "missing-object"
            elif key and key not in keys:
                state = "missing-key"
        else:
            exists = reader.secret_exists(namespace, name)
            state = "unknown" if exists is None else "ok" if exists else "missing-object"
        view.refs.append(ConfigRef(kind, name, key, used_by, optional, state))

    for var in dicts(container.get("env")):
        if "value" in var and isinstance(var.get("name"), str):
            view.plain_env.add(var["name"])
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
    view.files = config_files(pod_spec, container)
    return view


# --- the configuration files a container is given -------------------------------------------

_SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "/bin/sh", "/bin/bash", "/bin/ash"})
_CONFIG_FLAG = re.compile(r"^--?(?:[\w.-]*config[\w.-]*|[\w.-]*conf|settings|settings-file)$", re.I)


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file a container is told to read (a flag), or a ConfigMap or Secret
    mounted where such files live, and where its content comes from."""

    path: str
    kind: str | None = None  # ConfigMap | Secret, when a volume of one holds the path
    name: str | None = None
    key: str | None = None  # the key that becomes the file, when known
    mount_path: str | None = None
    from_flag: bool = False

    def describe(self) -> str:
        """Where the setting would go: the file and the object behind it."""
        if self.kind is None:
            return self.path
        key = f" key {self.key}" if self.key else ""
        return f"{self.path} ({self.kind} {self.name}{key}, mounted at {self.mount_path})"


def config_files(pod_spec: dict[str, Any], container: dict[str, Any]) -> list[ConfigFile]:
    """The files a container reads its settings from: a path given to a config flag
    (`--config=/etc/app/app.cfg`, `-config /x`), resolved to the ConfigMap or Secret volume
    mounted there; else each ConfigMap or Secret volume it mounts."""
    argv = [str(a) for a in list(container.get("command") or []) + list(container.get("args") or [])
            if isinstance(a, str | int)]  # fmt: skip
    paths: list[str] = []
    if not (argv and argv[0] in _SHELLS):
        for index, word in enumerate(argv):
            flag, _, value = word.partition("=")
            if not _CONFIG_FLAG.match(flag):
                continue
            value = value or (argv[index + 1] if index + 1 < len(argv) else "")
            if value.startswith("/"):
                paths.append(value)
    volumes = {str(v.get("name")): v for v in dicts(pod_spec.get("volumes"))}
    mounts = sorted(
        ((str(m.get("mountPath") or ""), volumes.get(str(m.get("name")), {}))
         for m in dicts(container.get("volumeMounts"))),
        key=lambda pair: len(pair[0]), reverse=True,
    )  # fmt: skip
    found = [_file_at(path, mounts) for path in paths]
    if found:
        return found
    return [
        ConfigFile(path, kind, name, None, path)
        for path, volume in mounts
        for kind, name in [_object_of(volume)]
        if kind is not None and name and not _service_account_volume(volume)
    ]


def _object_of(volume: dict[str, Any]) -> tuple[str | None, str | None]:
    if volume.get("configMap") is not None:
        return "ConfigMap", str(as_dict(volume.get("configMap")).get("name") or "") or None
    if volume.get("secret") is not None:
        return "Secret", str(as_dict(volume.get("secret")).get("secretName") or "") or None
    return None, None


def _file_at(path: str, mounts: list[tuple[str, dict[str, Any]]]) -> ConfigFile:
    for mount_path, volume in mounts:
        if not mount_path or not path.startswith(mount_path.rstrip("/") + "/"):
            continue
        kind, name = _object_of(volume)
        if kind is None:
            break
        relative = path[len(mount_path.rstrip("/")) + 1 :]
        source = as_dict(volume.get("configMap") if kind == "ConfigMap" else volume.get("secret"))
        items = {str(i.get("path")): str(i.get("key")) for i in dicts(source.get("items"))}
        key = items.get(relative) or (None if items or "/" in relative else relative)
        return ConfigFile(path, kind, name, key, mount_path, from_flag=True)
    return ConfigFile(path, from_flag=True)


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
_LISTED = 3


@dataclass
class DependencyCheck:
    """What the cluster says about a host or IP the container could not reach (or that refused
    its credentials)."""

    host: str | None
    ip: str | None
    port: int | None
    scope: str = "unknown"  # service | pod | external | local | ip | unknown
    service: str | None = None
    namespace: str | None = None
    state: str = "unknown"  # no-service | external-name | no-ready-endpoints | ready | unknown
    ready: int = 0
    not_ready: int = 0
    service_ports: list[int] = field(default_factory=list)
    backing: list[str] = field(default_factory=list)
    scaled_to_zero: tuple[str, str] | None = None  # (kind, name) of a workload at 0 replicas
    selector: dict[str, str] = field(default_factory=dict)
    via_ip: bool = False  # the log gave the Service's ClusterIP, not its name
    why: list[str] = field(default_factory=list)  # why no endpoint is ready
    relabel: tuple[str, str, dict[str, str]] | None = None  # (kind, name, selector values)
    not_ready_pods: list[str] = field(default_factory=list)
    pod: str | None = None  # scope pod: the pod whose IP it is
    pod_owner: str | None = None  # "StatefulSet pg-main"
    pod_ready: bool = False
    pod_state: str = ""
    pod_ports: list[int] = field(default_factory=list)
    selected_by: list[tuple[str, list[int]]] = field(default_factory=list)  # Services, ports

    @property
    def target(self) -> str:
        """host:port as the log named it."""
        host = self.host or self.ip or "an unnamed host"
        return f"{host}:{self.port}" if self.port else host

    def sentence(self, *, pronoun: bool = False) -> str:
        """What was found, as one clause; `pronoun` starts it with "it" instead of the target
        (after a clause that already named it)."""
        lead = "it" if pronoun else self.target
        where = f"Service {self.service} in namespace {self.namespace}"
        if self.scope == "local":
            return f"{self.target} is inside the pod itself (a sidecar, or the app's own port)"
        if self.scope == "ip":
            return (
                f"{'it' if pronoun else self.ip or self.host} is not the ClusterIP of any Service "
                f"in the cluster, nor the IP of a pod in namespace {self.namespace}"
            )
        if self.scope == "pod":
            return self._pod_sentence(lead)
        if self.scope == "external":
            return f"{self.host} is not a cluster Service name (an external host)"
        if self.scope == "unknown":
            return "the log does not name the host"
        if self.state == "no-service":
            return f"no {where} exists"
        if self.state == "external-name":
            return f"{where} is an ExternalName Service"
        head = f"{lead} is the ClusterIP of {where}, which" if self.via_ip else f"{where} exists"
        if self.state == "no-ready-endpoints":
            not_ready = f" ({self.not_ready} not ready)" if self.not_ready else ""
            reasons = [*self.why, *self.backing]
            detail = f": {'; '.join(reasons)}" if reasons else ""
            verb = "has" if self.via_ip else "but has"
            return f"{head} {verb} no ready endpoints{not_ready}{detail}"
        if self.state == "ready":
            ports = ", ".join(map(str, self.service_ports))
            closed = self.port and self.service_ports and self.port not in self.service_ports
            unexposed = f", but does not expose port {self.port} (ports {ports})" if closed else ""
            verb = "has" if self.via_ip else "and has"
            return f"{head} {verb} {self.ready} ready endpoint(s){unexposed}"
        if self.via_ip:
            return f"{lead} is the ClusterIP of {where}, whose endpoints could not be read"
        return f"{where} exists; its endpoints could not be read"

    def _pod_sentence(self, lead: str) -> str:
        owner = f" ({self.pod_owner})" if self.pod_owner else ""
        state = "ready" if self.pod_ready else "not ready"
        if not self.pod_ready and self.pod_state:
            state += f" ({self.pod_state})"
        text = f"{lead} is the IP of pod {self.pod}{owner} in namespace {self.namespace}, which is "
        text += state
        if self.port and self.pod_ports and self.port not in self.pod_ports:
            listens = ", ".join(map(str, self.pod_ports))
            text += f"; its containers listen on port {listens}, not {self.port}"
        for service, ports in self.selected_by[:2]:
            shown = f" (port {', '.join(map(str, ports))})" if ports else ""
            text += f"; Service {service} selects it{shown}"
        return text


def check_dependency(
    reader: ClusterReader, namespace: str, host: str | None, ip: str | None, port: int | None
) -> DependencyCheck:
    """Resolve a host the way cluster DNS would (`svc`, `svc.ns`, `svc.ns.svc[.domain]`,
    `pod.svc.ns.svc[.domain]`), or an IP to the Service whose ClusterIP it is or the pod it
    belongs to; then say whether that Service exists and has ready endpoints, and when it has
    none, why: its selector matches no pod, or the pods it matches are not ready."""
    check = DependencyCheck(host=host, ip=ip, port=port)
    name = (host or "").lower().rstrip(".")
    if name in _LOCAL_HOSTS or (not name and ip in _LOCAL_HOSTS):
        check.scope = "local"
    elif not name or is_ip(name):
        address = ip or name
        if not address:
            return check
        check.ip = address
        check.host = None
        _by_ip(reader, check, namespace, address)
    else:
        found = _service_of(reader, namespace, name.split("."))
        if found is None:
            check.scope = "external"
        else:
            check.scope = "service"
            check.service, check.namespace = found
            _service_state(reader, check, *found)
    return check


def _by_ip(reader: ClusterReader, check: DependencyCheck, namespace: str, address: str) -> None:
    bare = address.strip("[]")
    check.scope, check.namespace = "ip", namespace
    for scope in (namespace, None):
        for service in reader.services(scope):
            spec = as_dict(service.get("spec"))
            ips = {str(spec.get("clusterIP") or "")}
            ips |= {str(i) for i in as_list(spec.get("clusterIPs"))}
            if bare in ips:
                check.scope, check.via_ip = "service", True
                check.service, check.namespace = name_of(service), namespace_of(service, namespace)
                _service_state(reader, check, check.service, check.namespace)
                return
        if scope is None:
            break
        for pod in reader.pods(namespace):
            status = as_dict(pod.get("status"))
            ips = {str(status.get("podIP") or "")}
            ips |= {str(as_dict(i).get("ip") or "") for i in as_list(status.get("podIPs"))}
            if bare in ips and status.get("phase") not in ("Succeeded", "Failed"):
                _pod_behind(reader, check, pod, namespace)
                return


def _pod_behind(reader: ClusterReader, check: DependencyCheck, pod: KubeObject, ns: str) -> None:
    check.scope, check.pod, check.namespace = "pod", name_of(pod), ns
    owner = owning_workload(pod, reader)
    if owner.kind != "Pod":
        check.pod_owner = f"{owner.kind} {owner.name}"
    check.pod_ready = pod_ready(pod)
    state = _pod_state(reader, pod, ns)
    phase = str(as_dict(pod.get("status")).get("phase") or "phase unknown")
    if not check.pod_ready and state != f"{phase}, not ready":
        check.pod_state = state.removeprefix(f"{phase}, not ready: ")
    check.pod_ports = sorted(
        {
            p["containerPort"]
            for c in containers(as_dict(pod.get("spec")))
            for p in dicts(c.get("ports"))
            if isinstance(p.get("containerPort"), int)
        }
    )
    labels = labels_of(pod)
    for service in reader.services(ns):
        spec = as_dict(service.get("spec"))
        if service_selects(spec.get("selector"), labels):
            ports = [p["port"] for p in dicts(spec.get("ports")) if isinstance(p.get("port"), int)]
            check.selected_by.append((name_of(service), ports))


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
    slices = reader.endpoint_slices(ns, name)
    endpoints = None if slices else reader.endpoints(ns, name)
    if slices:
        check.ready, check.not_ready, check.not_ready_pods = slice_counts(slices)
    elif endpoints is not None:
        subsets = dicts(endpoints.get("subsets"))
        check.ready = sum(len(dicts(s.get("addresses"))) for s in subsets)
        check.not_ready = sum(len(dicts(s.get("notReadyAddresses"))) for s in subsets)
        check.not_ready_pods = [
            str(as_dict(a.get("targetRef")).get("name"))
            for s in subsets
            for a in dicts(s.get("notReadyAddresses"))
            if as_dict(a.get("targetRef")).get("name")
        ]
    elif selector:  # no endpoints read (not captured): the pods behind the selector stand in
        pods = [p for p in reader.pods(ns) if service_selects(selector, labels_of(p))]
        check.ready = sum(1 for p in pods if pod_ready(p))
        check.not_ready = len(pods) - check.ready
    else:
        return
    check.state = "ready" if check.ready else "no-ready-endpoints"
    if selector:
        _backing(reader, check, selector, ns)
    if check.state == "no-ready-endpoints":
        _why_not_ready(reader, check, selector, ns)


def slice_counts(slices: list[KubeObject]) -> tuple[int, int, list[str]]:
    """(ready, not ready, names of the pods not ready) over a Service's EndpointSlices, each
    endpoint once (an IPv4 and an IPv6 slice list the same pods). A ready condition left unset
    means ready, as the API says to read it."""
    ready: dict[str, bool] = {}
    for item in slices:
        for endpoint in dicts(item.get("endpoints")):
            target = as_dict(endpoint.get("targetRef"))
            addresses = [str(a) for a in as_list(endpoint.get("addresses"))]
            key = str(target.get("name") or (addresses[0] if addresses else ""))
            if not key:
                continue
            is_ready = as_dict(endpoint.get("conditions")).get("ready") is not False
            ready[key] = ready.get(key, False) or is_ready
    names = [k for k, r in ready.items() if not r and not is_ip(k)]
    return sum(ready.values()), sum(1 for r in ready.values() if not r), names


def _why_not_ready(
    reader: ClusterReader, check: DependencyCheck, selector: dict[str, str], ns: str
) -> None:
    """Why a Service has no ready endpoint: the pods it selects and their state, or that its
    selector matches no pod (and the workload whose pods it nearly matches)."""
    if not selector:
        check.why.append("it has no selector (its endpoints are set by hand), and none is ready")
        return
    pods = [p for p in reader.pods(ns) if service_selects(selector, labels_of(p))]
    if pods:
        check.not_ready_pods = check.not_ready_pods or [name_of(p) for p in pods]
        states = [f"{name_of(p)} ({_pod_state(reader, p, ns)})" for p in pods[:_LISTED]]
        more = f" and {len(pods) - _LISTED} more" if len(pods) > _LISTED else ""
        check.why.insert(
            0, f"{len(pods)} pod(s) match its selector and none is ready: {', '.join(states)}{more}"
        )
        return
    if check.backing:
        return  # the workload behind it says why (scaled to 0, none ready)
    shown = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    text = f"its selector {shown} matches no pod in namespace {ns}"
    near = _near_workload(reader, selector, ns)
    if near is not None:
        kind, name, values = near
        check.relabel = near
        labels = ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
        text += f" ({kind} {name}'s pods have {labels})"
    check.why.append(text)


def _near_workload(
    reader: ClusterReader, selector: dict[str, str], ns: str
) -> tuple[str, str, dict[str, str]] | None:
    """The workload whose pod labels have every key of the selector and differ from it in the
    fewest values (not all): the selector was likely meant for it."""
    best: tuple[int, str, str, dict[str, str]] | None = None
    for kind in ("StatefulSet", "Deployment", "DaemonSet"):
        for workload in reader.workloads(kind, ns):
            labels = labels_of(as_dict(as_dict(workload.get("spec")).get("template")))
            if not all(k in labels for k in selector):
                continue
            differ = {k: str(labels[k]) for k, v in selector.items() if str(labels[k]) != v}
            closer = best is None or len(differ) < best[0]
            if differ and len(differ) < len(selector) and closer:
                best = (len(differ), kind, name_of(workload), differ)
    return (best[1], best[2], best[3]) if best else None


def _pod_state(reader: ClusterReader, pod: KubeObject, ns: str) -> str:
    """A pod's state in a few words: what its containers wait for, or why it is not ready."""
    status = as_dict(pod.get("status"))
    if meta(pod).get("deletionTimestamp"):
        return "terminating"
    for entry in dicts(status.get("containerStatuses")):
        reason = as_dict(as_dict(entry.get("state")).get("waiting")).get("reason")
        if reason:
            return str(reason)
    phase = str(status.get("phase") or "phase unknown")
    if pod_ready(pod):
        return phase
    failing = [
        str(e.get("message") or "")
        for e in about(reader.events(ns), "Pod", name_of(pod))
        if e.get("reason") == "Unhealthy" and "Readiness probe" in str(e.get("message") or "")
    ]
    return f"{phase}, not ready: {failing[0].strip()[:160]}" if failing else f"{phase}, not ready"


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


# --- who feeds a credential ------------------------------------------------------------------
_CREDENTIAL_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.I)
# A connection string carries the password too (postgres://user:pass@host/db).
_CONNECTION_NAME = re.compile(r"DSN|URL|URI|CONNECTION_?STRING|CONN_?STR", re.I)


@dataclass(frozen=True)
class CredentialSource:
    """Where a credential a container sends may come from, by name only."""

    kind: str  # secret-key | secret-env-from | secret-volume | plain-env
    secret: str | None = None
    key: str | None = None
    env: str | None = None
    path: str | None = None

    def describe(self) -> str:
        """The source as a report names it."""
        if self.kind == "secret-key":
            return f"Secret {self.secret} key {self.key} (env {self.env})"
        if self.kind == "secret-env-from":
            return f"Secret {self.secret} (envFrom: its keys are not read)"
        if self.kind == "secret-volume":
            return f"Secret {self.secret} mounted at {self.path}"
        return f"env {self.env}, a plain value in the pod spec (not from a Secret)"


def credential_sources(
    pod_spec: dict[str, Any], container: dict[str, Any], hints: set[str]
) -> list[CredentialSource]:
    """The env vars, envFrom Secrets and Secret volumes of a container that may hold the
    credential it sent, most likely first: a name that says credential (PASSWORD, TOKEN, KEY,
    DSN, URL) and names the dependency (`hints`: DB, POSTGRES, REDIS, the API's name)."""
    scored: list[tuple[int, int, CredentialSource]] = []
    for order, var in enumerate(dicts(container.get("env"))):
        name = str(var.get("name") or "")
        strong = bool(_CREDENTIAL_NAME.search(name))
        if not name or not (strong or _CONNECTION_NAME.search(name)):
            continue
        words = {w for w in re.split(r"[^a-z0-9]+", name.lower()) if w}
        score = (2 if strong else 1) + (2 if words & hints else 0)
        ref = as_dict(as_dict(var.get("valueFrom")).get("secretKeyRef"))
        if ref.get("name"):
            source = CredentialSource("secret-key", str(ref["name"]), str(ref.get("key")), name)
            scored.append((score + 1, order, source))
        elif "value" in var and strong:
            scored.append((score, order, CredentialSource("plain-env", env=name)))
    for order, env_from in enumerate(dicts(container.get("envFrom")), start=100):
        secret = as_dict(env_from.get("secretRef")).get("name")
        if secret:
            words = {w for w in re.split(r"[^a-z0-9]+", str(secret).lower()) if w}
            score = 3 + (2 if words & hints else 0)
            scored.append((score, order, CredentialSource("secret-env-from", str(secret))))
    volumes = {str(v.get("name")): v for v in dicts(pod_spec.get("volumes"))}
    for order, mount in enumerate(dicts(container.get("volumeMounts")), start=200):
        secret = as_dict(volumes.get(str(mount.get("name")), {}).get("secret")).get("secretName")
        if secret:
            path = str(mount.get("mountPath") or "")
            scored.append((1, order, CredentialSource("secret-volume", str(secret), path=path)))
    return [source for _, _, source in sorted(scored, key=lambda t: (-t[0], t[1]))]


# --- the nodes' architectures ----------------------------------------------------------------


@dataclass
class Architectures:
    """The architecture of the nodes a workload's pods fail and run on."""

    failing: dict[str, list[str]] = field(default_factory=dict)  # arch -> nodes
    running: dict[str, list[str]] = field(default_factory=dict)  # arch -> nodes
    failing_pods: dict[str, list[str]] = field(default_factory=dict)  # node -> pods
    running_pods: dict[str, list[str]] = field(default_factory=dict)  # node -> pods


def node_arch(node: KubeObject | None) -> str | None:
    """A node's CPU architecture: its `kubernetes.io/arch` label, else what the kubelet
    reports."""
    labels = labels_of(node)
    arch = labels.get("kubernetes.io/arch") or labels.get("beta.kubernetes.io/arch")
    arch = arch or as_dict(as_dict(as_dict(node).get("status")).get("nodeInfo")).get("architecture")
    return str(arch) if arch else None


def architectures(
    reader: ClusterReader, failing: list[KubeObject], others: list[KubeObject]
) -> Architectures:
    """Where the failing pods run and where the workload's ready pods run, by architecture."""
    nodes = {name_of(n): n for n in reader.nodes()}
    found = Architectures()
    failing_names = {name_of(p) for p in failing}
    for pods, arches, by_node in (
        (failing, found.failing, found.failing_pods),
        ([p for p in others if name_of(p) not in failing_names and pod_ready(p)],
         found.running, found.running_pods),
    ):  # fmt: skip
        for pod in pods:
            node = str(as_dict(pod.get("spec")).get("nodeName") or "")
            if not node:
                continue
            arch = node_arch(nodes.get(node)) or "unknown"
            if node not in arches.setdefault(arch, []):
                arches[arch].append(node)
            by_node.setdefault(node, []).append(name_of(pod))
    return found


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
