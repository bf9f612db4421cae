"""ReplicaSet pod-creation failures against a namespace's ResourceQuota or LimitRange.

The quota admission plugin rejects a pod with (kubernetes/pkg/quota, resource_access.go):
  pods "web-7d9f-x2k4z" is forbidden: exceeded quota: compute-quota, requested: limits.memory=2Gi,
  used: limits.memory=7Gi, limited: limits.memory=8Gi
each list being `name=value` pairs joined by commas; or, when the quota covers a resource that the
pod does not declare: `failed quota: compute-quota: must specify limits.cpu for: app; ...`. The
LimitRanger writes `maximum memory usage per Container is 1Gi, but limit is 2Gi`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from kubetriage.k8s.quantities import try_parse_quantity

_EXCEEDED = re.compile(
    r"exceeded quota: (?P<quota>[^,\s]+), requested: (?P<requested>\S+?), "
    r"used: (?P<used>\S+?), limited: (?P<limited>[^\s\"']+)"
)
_MUST_SPECIFY = re.compile(r"failed quota: (?P<quota>[^:\s]+): must specify (?P<what>[^\"\n]+)")
_LIMIT_RANGE = re.compile(
    r"(?P<bound>maximum|minimum) (?P<resource>[\w.-]+) usage per (?P<scope>Container|Pod) is "
    r"(?P<allowed>[^\s,]+), but (?:limit|request) is (?P<asked>[^\s,.\]]+)"
)
_GI, _MI = Decimal(2**30), Decimal(2**20)
_MEMORY_LIKE = ("memory", "storage")


@dataclass(frozen=True)
class QuotaFailure:
    """One parsed rejection: which quota (or LimitRange) and the numbers it gave."""

    kind: str  # "exceeded", "must-specify" or "limit-range"
    quota: str
    message: str
    requested: dict[str, Decimal] = field(default_factory=dict)
    used: dict[str, Decimal] = field(default_factory=dict)
    limited: dict[str, Decimal] = field(default_factory=dict)
    unspecified: str = ""


def parse_failure(message: str) -> QuotaFailure | None:
    """The quota or LimitRange rejection a FailedCreate message holds, or None."""
    found = _EXCEEDED.search(message)
    if found:
        return QuotaFailure(
            "exceeded",
            found["quota"],
            message,
            _pairs(found["requested"]),
            _pairs(found["used"]),
            _pairs(found["limited"]),
        )
    found = _MUST_SPECIFY.search(message)
    if found:
        what = found["what"].strip().rstrip(".")
        # "limits.cpu for: app; limits.memory for: app" (1.29+) or "limits.cpu,limits.memory".
        names = re.findall(r"([\w.-]+) for:", what) or [w.strip() for w in what.split(",")]
        return QuotaFailure("must-specify", found["quota"], message, unspecified=", ".join(names))
    found = _LIMIT_RANGE.search(message)
    if found:
        asked, allowed = try_parse_quantity(found["asked"]), try_parse_quantity(found["allowed"])
        resource = found["resource"]
        return QuotaFailure(
            "limit-range",
            "LimitRange",
            message,
            requested={resource: asked} if asked is not None else {},
            limited={resource: allowed} if allowed is not None else {},
            unspecified=f"{found['bound']} per {found['scope']}",
        )
    return None


def _pairs(text: str) -> dict[str, Decimal]:
    pairs: dict[str, Decimal] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        amount = try_parse_quantity(value.strip()) if sep else None
        if amount is not None:
            pairs[key.strip()] = amount
    return pairs


def per_pod(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """What one pod of this template counts against a quota, per quota resource name.

    Requests default to limits, as the apiserver defaults them; init containers count with the
    largest of them, since they run one at a time before the app containers."""
    totals: dict[str, Decimal] = {"pods": Decimal(1)}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory", "ephemeral-storage"):
            app = sum(
                (_amount(c, kind, resource) for c in _containers(pod_spec, "containers")),
                Decimal(0),
            )
            init = max(
                (_amount(c, kind, resource) for c in _containers(pod_spec, "initContainers")),
                default=Decimal(0),
            )
            value = max(app, init)
            if value:
                totals[f"{kind}.{resource}"] = value
                if kind == "requests":
                    totals[resource] = value
    return totals


def _amount(container: dict[str, Any], kind: str, resource: str) -> Decimal:
    resources = _dict(container.get("resources"))
    value = try_parse_quantity(_dict(resources.get(kind)).get(resource))
    if value is None and kind == "requests":
        value = try_parse_quantity(_dict(resources.get("limits")).get(resource))
    return value or Decimal(0)


@dataclass(frozen=True)
class QuotaNeed:
    """One quota resource that must rise for the missing pods to be admitted."""

    resource: str
    used: Decimal
    hard: Decimal
    needed: Decimal

    def text(self) -> str:
        """`limits.memory 12Gi -> 18Gi (used 12Gi)`."""
        return (
            f"{self.resource} {quantity(self.resource, self.hard)} -> "
            f"{quantity(self.resource, self.needed)} (used {quantity(self.resource, self.used)})"
        )


def quota_numbers(quota: dict[str, Any] | None) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(used, hard) of a ResourceQuota, from its status (spec.hard when status is absent)."""
    if not quota:
        return {}, {}
    status, spec = _dict(quota.get("status")), _dict(quota.get("spec"))
    hard_raw = status.get("hard") if isinstance(status.get("hard"), dict) else spec.get("hard")
    used_raw = status.get("used")

    def parsed(raw: Any) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for key, value in raw.items() if isinstance(raw, dict) else ():
            amount = try_parse_quantity(value)
            if amount is not None:
                out[str(key)] = amount
        return out

    return parsed(used_raw), parsed(hard_raw)


def needs(
    failure: QuotaFailure,
    used: dict[str, Decimal],
    hard: dict[str, Decimal],
    pod: dict[str, Decimal],
    missing_pods: int,
) -> list[QuotaNeed]:
    """Every quota resource that blocks `missing_pods` more pods, with the hard value that fits
    them. The message's numbers stand in for a quota that could not be read."""
    used = {**failure.used, **used}
    hard = {**failure.limited, **hard}
    per = {**pod, **failure.requested}
    found: list[QuotaNeed] = []
    for resource in sorted(hard):
        if resource not in per or resource not in used:
            continue
        needed = used[resource] + per[resource] * missing_pods
        if needed > hard[resource]:
            found.append(
                QuotaNeed(
                    resource, used[resource], hard[resource], _round(resource, needed, up=True)
                )
            )
    return found


def fitting_per_pod(
    need: QuotaNeed, per_pod_value: Decimal, current_pods: int, desired_pods: int
) -> Decimal | None:
    """The per-pod value at which all desired pods fit under the current hard limit, if any:
    what the rest of the namespace uses stays, this workload's share is re-divided."""
    if desired_pods <= 0:
        return None
    others = need.used - per_pod_value * current_pods
    allowed = (need.hard - others) / desired_pods
    if allowed <= 0 or allowed >= per_pod_value:
        return None
    return _round(need.resource, allowed, up=False)


def _round(resource: str, value: Decimal, *, up: bool) -> Decimal:
    mode = ROUND_CEILING if up else ROUND_FLOOR
    if any(word in resource for word in _MEMORY_LIKE):
        unit = _GI if value % _GI == 0 else _MI
        return (value / unit).to_integral_value(rounding=mode) * unit
    if "cpu" in resource:
        return (value * 1000).to_integral_value(rounding=mode) / 1000
    return value.to_integral_value(rounding=mode)


def quantity(resource: str, value: Decimal) -> str:
    """A quantity as a manifest writes it: `18Gi`, `1280Mi`, `500m`, `40`."""
    if any(word in resource for word in _MEMORY_LIKE):
        for unit, suffix in ((_GI, "Gi"), (_MI, "Mi"), (Decimal(1024), "Ki")):
            if value >= unit and value % unit == 0:
                return f"{int(value / unit)}{suffix}"
        return str(int(value))
    if "cpu" in resource and value != value.to_integral_value():
        return f"{int((value * 1000).to_integral_value(rounding=ROUND_CEILING))}m"
    return str(int(value)) if value == value.to_integral_value() else str(value)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _containers(pod_spec: dict[str, Any], field: str) -> list[dict[str, Any]]:
    value = pod_spec.get(field)
    return [c for c in value if isinstance(c, dict)] if isinstance(value, list) else []
