"""The refusals a ReplicaSet meets when it creates pods, and the error lines of a previous log.

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
from decimal import Decimal

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
# "limits.cpu for: app; limits.memory for: app" (1.29+); older releases list "limits.cpu,...".
_UNSPECIFIED_FOR = re.compile(r"([\w.-]+) for:")
# The words an application's last log lines use when it says why it stops.
_ERROR_LINE = re.compile(
    r"(?i)\b(error|fatal|panic|exception|failed|not defined|invalid|"
    r"cannot|unable|no such|denied|refused)\b"
)


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
        names = _UNSPECIFIED_FOR.findall(what) or [w.strip() for w in what.split(",")]
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


def error_line(lines: list[str]) -> str:
    """The first line that reads as an error, else the last line ("" for no lines)."""
    return next((x for x in lines if _ERROR_LINE.search(x)), lines[-1] if lines else "")
