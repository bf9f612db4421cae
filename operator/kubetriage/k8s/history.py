"""A Deployment's revision history, and what changed between two pod templates.

Used by the rollout playbook (which revision broke it), the image-pull playbook (the tag that
last worked), the OOMKilled playbook (a lowered limit) and resolution notes (what fixed it).

The template diff compares per container (by name): image, command, args, env var NAMES (values
are never read), resources, and the liveness/readiness/startup probes; plus the pod's
ServiceAccount. Every value shown goes through `redact` (args carry `--password=...` often
enough).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubetriage.k8s.access import (
    KubeObject,
    annotations_of,
    as_dict,
    clip,
    containers,
    dicts,
    meta,
    name_of,
    pod_ready,
)
from kubetriage.k8s.owners import WorkloadRef, owned_by
from kubetriage.models import TemplateChange, max_length
from kubetriage.redact import env_names, redact

if TYPE_CHECKING:
    from kubetriage.clients.kube import ClusterReader

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_VALUE_LIMIT = max_length(TemplateChange, "before")


def revision_of(obj: KubeObject | None) -> int | None:
    """The Deployment revision a ReplicaSet (or a Deployment) holds, None when unrecorded."""
    value = annotations_of(obj).get(REVISION_ANNOTATION)
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def replica_sets_of(deployment: WorkloadRef, reader: ClusterReader) -> list[KubeObject]:
    """The Deployment's ReplicaSets, newest revision first."""
    owned = [
        rs
        for rs in reader.workloads("ReplicaSet", deployment.namespace)
        if owned_by(rs, "Deployment", deployment.name)
    ]
    return sorted(owned, key=lambda rs: revision_of(rs) or 0, reverse=True)


@dataclass
class Revision:
    """A ReplicaSet of a Deployment and the pods it controls."""

    replica_set: KubeObject
    pods: list[KubeObject]

    @property
    def name(self) -> str:
        """The ReplicaSet's name."""
        return name_of(self.replica_set)

    @property
    def number(self) -> int | None:
        """The revision number."""
        return revision_of(self.replica_set)

    def ready(self) -> int | None:
        """Ready replicas from the ReplicaSet's status (or its pods); None when unrecorded."""
        status = as_dict(self.replica_set.get("status"))
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
        replicas = as_dict(self.replica_set.get("status")).get("replicas")
        if ready:
            return True
        if ready == 0 and isinstance(replicas, int) and replicas > 0:
            return False
        return None


def template_manager(workload: KubeObject | None) -> str | None:
    """Who last wrote the workload's pod template: the `managedFields` manager (kubectl-set,
    helm, argocd-controller, ...) whose entry owns `spec.template`, the latest one first."""
    owners = [
        entry
        for entry in dicts(meta(workload).get("managedFields"))
        if not entry.get("subresource")
        and "f:template" in as_dict(as_dict(entry.get("fieldsV1")).get("f:spec"))
        and isinstance(entry.get("manager"), str)
    ]
    latest = max(owners, key=lambda e: str(e.get("time") or ""), default=None)
    return str(latest["manager"]) if latest else None


def template_changes(before: dict[str, Any], after: dict[str, Any]) -> list[TemplateChange]:
    """The differences from the `before` pod spec to the `after` one, in a stable order."""
    changes: list[TemplateChange] = []
    for init in (True, False):
        prefix = "initContainers" if init else "containers"
        old = {str(c.get("name")): c for c in containers(before, init=init)}
        new = {str(c.get("name")): c for c in containers(after, init=init)}
        for name in [*old, *(n for n in new if n not in old)]:
            where = f"{prefix}[{name}]"
            if name not in new:
                changes.append(_change(where, "present", None))
            elif name not in old:
                changes.append(_change(where, None, f"added, image {new[name].get('image')}"))
            else:
                changes.extend(_container_changes(where, old[name], new[name]))
    for key in ("serviceAccountName",):
        if before.get(key) != after.get(key):
            changes.append(_change(key, _text(before.get(key)), _text(after.get(key))))
    return changes


def _container_changes(
    where: str, old: dict[str, Any], new: dict[str, Any]
) -> list[TemplateChange]:
    changes: list[TemplateChange] = []
    for key in ("image", "command", "args"):
        if old.get(key) != new.get(key):
            changes.append(_change(f"{where}.{key}", _text(old.get(key)), _text(new.get(key))))
    old_env = env_names(dicts(old.get("env")))
    new_env = env_names(dicts(new.get("env")))
    if old_env != new_env:
        changes.append(
            _change(
                f"{where}.env (names)", ", ".join(old_env) or "none", ", ".join(new_env) or "none"
            )
        )
    old_res, new_res = as_dict(old.get("resources")), as_dict(new.get("resources"))
    for kind in ("requests", "limits"):
        before, after = as_dict(old_res.get(kind)), as_dict(new_res.get(kind))
        for resource in sorted(set(before) | set(after)):
            if str(before.get(resource)) != str(after.get(resource)):
                changes.append(
                    _change(
                        f"{where}.resources.{kind}.{resource}",
                        _text(before.get(resource)),
                        _text(after.get(resource)),
                    )
                )
    for probe in _PROBES:
        if old.get(probe) != new.get(probe):
            changes.append(
                _change(f"{where}.{probe}", _text(old.get(probe)), _text(new.get(probe)))
            )
    return changes


def describe(change: TemplateChange) -> str:
    """One change as a short phrase: lists say what was added and removed."""
    if change.field.endswith(".image") and change.before and change.after:
        old_repo, _, old_tag = change.before.rpartition(":")
        new_repo, _, new_tag = change.after.rpartition(":")
        if old_repo and old_repo == new_repo and "/" not in old_tag + new_tag:
            return f"{change.field}: {old_repo.rsplit('/', 1)[-1]} {old_tag} -> {new_tag}"
    before, after = _as_list(change.before), _as_list(change.after)
    if before is not None and after is not None:
        added = [str(x) for x in after if x not in before]
        removed = [str(x) for x in before if x not in after]
        parts = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
        if parts:
            return f"{change.field}: {' '.join(parts)}"
    if change.field.endswith("(names)"):
        old = set(filter(None, (change.before or "").split(", "))) - {"none"}
        new = set(filter(None, (change.after or "").split(", "))) - {"none"}
        parts = [f"+{x}" for x in sorted(new - old)] + [f"-{x}" for x in sorted(old - new)]
        return f"{change.field}: {' '.join(parts) or 'reordered'}"
    return f"{change.field}: {change.before or '(none)'} -> {change.after or '(none)'}"


def _change(field: str, before: str | None, after: str | None) -> TemplateChange:
    return TemplateChange(field=field, before=_shown(before), after=_shown(after))


def _shown(value: str | None) -> str | None:
    return None if value is None else clip(redact(value), _VALUE_LIMIT)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _as_list(value: str | None) -> list[Any] | None:
    if not value or not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, list) else None
