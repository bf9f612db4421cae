"""The cluster look-ups the CrashLoopBackOff runbook makes beyond the pod itself: the ConfigMaps
and Secrets a container references, the Service behind a host its log could not reach, and the
Deployment revision that last worked.

Everything reads through the `ClusterReader`. Secrets are checked for existence only, and
ConfigMaps for their keys (never values): that is all the reader gives, and all a report may say.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject, as_dict, containers, name_of, pod_template
from kubetriage.k8s.history import replica_sets_of, revision_of
from kubetriage.k8s.owners import WorkloadRef, controller_of
from kubetriage.playbooks._crashloop_signals import is_ip
from kubetriage.redact import env_names

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"})


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of `value` when it is a list, else [] (objects may be malformed)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def int_field(obj: dict[str, Any], key: str, default: int) -> int:
    """An integer field, `default` when absent or not an integer."""
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


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


def near_name(wanted: str, candidates: set[str]) -> str | None:
    """The candidate most likely meant by `wanted`: the same words abbreviated (DB_URL for
    DATABASE_URL), or a close spelling."""
    words = _words(wanted)
    for candidate in sorted(candidates - {wanted}):
        theirs = _words(candidate)
        if len(theirs) == len(words) and all(
            _abbreviates(a, b) or _abbreviates(b, a) for a, b in zip(theirs, words, strict=True)
        ):
            return candidate
    close = difflib.get_close_matches(wanted, sorted(candidates - {wanted}), n=1, cutoff=0.75)
    return close[0] if close else None


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name.lower()) if w]


def _abbreviates(short: str, long: str) -> bool:
    if not short or short[0] != long[0] or len(short) > len(long):
        return False
    rest = iter(long[1:])
    return all(char in rest for char in short[1:])


# --- a dependency named by the log ------------------------------------------------------------


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
        pods = [p for p in reader.pods(ns) if _matches(selector, _labels(p))]
        check.ready = sum(1 for p in pods if _pod_ready(p))
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
            template_meta = as_dict(as_dict(spec.get("template")).get("metadata"))
            if not _matches(selector, as_dict(template_meta.get("labels"))):
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


def _labels(obj: KubeObject) -> dict[str, Any]:
    return as_dict(as_dict(obj.get("metadata")).get("labels"))


def _matches(selector: dict[str, str], labels: dict[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_ready(pod: KubeObject) -> bool:
    conditions = dicts(as_dict(pod.get("status")).get("conditions"))
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


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
    to go back to (the newest one with ready pods, else the one before) and the difference in
    images, commands, args and env var names."""
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
        changes=tuple(template_changes(pod_template(good), pod_template(newest))),
    )


def _ready(replica_set: KubeObject) -> int:
    return int_field(as_dict(replica_set.get("status")), "readyReplicas", 0)


def template_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Differences between two pod specs that make a container start differently: image,
    command, args, and env var names (never values)."""
    old = {str(c.get("name")): c for c in containers(before)}
    changes: list[str] = []
    for new in containers(after):
        name = str(new.get("name"))
        prior = old.get(name)
        if prior is None:
            changes.append(f"container {name} added")
            continue
        for key in ("image", "command", "args"):
            if prior.get(key) != new.get(key):
                changes.append(f"{name} {key}: {_show(prior.get(key))} -> {_show(new.get(key))}")
        was = set(env_names(dicts(prior.get("env"))))
        now = set(env_names(dicts(new.get("env"))))
        parts = [f"added {', '.join(sorted(now - was))}"] if now - was else []
        parts += [f"removed {', '.join(sorted(was - now))}"] if was - now else []
        if parts:
            changes.append(f"{name} env: {'; '.join(parts)}")
    return changes


def _show(value: Any) -> str:
    if value is None:
        return "(image default)"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)
