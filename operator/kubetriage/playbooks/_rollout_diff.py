"""What changed between two pod templates: the evidence a rollback decision rests on.

Compared per container (by name): image, command, args, env var NAMES (values are never read),
resources, and the liveness/readiness/startup probes; plus the pod's ServiceAccount. Every value
shown goes through `redact` (args carry `--password=...` often enough).
"""

from __future__ import annotations

import json
from typing import Any

from kubetriage.models import TemplateChange
from kubetriage.redact import env_names, redact

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_VALUE_LIMIT = 2048


def template_changes(before: dict[str, Any], after: dict[str, Any]) -> list[TemplateChange]:
    """The differences from the `before` pod spec to the `after` one, in a stable order."""
    changes: list[TemplateChange] = []
    for init in (True, False):
        prefix = "initContainers" if init else "containers"
        old = {str(c.get("name")): c for c in _containers(before, prefix)}
        new = {str(c.get("name")): c for c in _containers(after, prefix)}
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
    old_env = env_names(_list(old.get("env")))
    new_env = env_names(_list(new.get("env")))
    if old_env != new_env:
        changes.append(
            _change(
                f"{where}.env (names)", ", ".join(old_env) or "none", ", ".join(new_env) or "none"
            )
        )
    old_res, new_res = _dict(old.get("resources")), _dict(new.get("resources"))
    for kind in ("requests", "limits"):
        before, after = _dict(old_res.get(kind)), _dict(new_res.get(kind))
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
    return TemplateChange(field=field, before=_clip(before), after=_clip(after))


def _clip(value: str | None) -> str | None:
    if value is None:
        return None
    value = redact(value)
    return value if len(value) <= _VALUE_LIMIT else value[: _VALUE_LIMIT - 1] + "…"


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


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _containers(pod_spec: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = pod_spec.get(field)
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []
