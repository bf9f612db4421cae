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
from kubetriage.models import Category

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


# --- admission refusals other than quota ---------------------------------------------------------
# The apiserver's words (k8s.io/apiserver/pkg/admission/plugin/webhook/errors, the PodSecurity
# admission plugin, ServiceAccount admission, ValidatingAdmissionPolicy):
#   failed calling webhook "mpod.kb.io": failed to call webhook: Post "https://webhook-service.
#     system.svc:443/mutate?timeout=10s": no endpoints available for service "webhook-service"
#   admission webhook "validation.gatekeeper.sh" denied the request: [must-have-limits] ...
#   ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-prod' denied request: ...
#   violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "web"
#     must set securityContext.allowPrivilegeEscalation=false), ...
#   error looking up service account notifications/mailer-sa: serviceaccount "mailer-sa" not found
_WEBHOOK_CALL = re.compile(
    r'failed calling webhook "(?P<webhook>[^"]+)": (?:failed to call webhook: )?'
    r'(?:\w+ "(?P<url>[^"]+)": )?(?P<reason>.+)$'
)
_WEBHOOK_DENIED = re.compile(r'admission webhook "(?P<webhook>[^"]+)" denied the request:?\s*')
_POLICY_DENIED = re.compile(
    r"ValidatingAdmissionPolicy '(?P<policy>[^']+)'(?: with binding '(?P<binding>[^']+)')? "
    r"denied request:?\s*"
)
_POD_SECURITY = re.compile(r'violates PodSecurity "(?P<level>[^"]+)": (?P<violations>.+)$')
_SERVICE_ACCOUNT = re.compile(r'serviceaccount "(?P<name>[^"]+)" not found')
_URL_HOST = re.compile(r"^https?://(?P<host>[^/:]+)(?::(?P<port>\d+))?")
# "allowPrivilegeEscalation != false (container "web" must set ...)": a check, then why.
_VIOLATION = re.compile(r"(?P<check>[^,(]+?) \((?P<why>[^()]*(?:\([^()]*\)[^()]*)*)\)")
# What PodSecurity says a container must set, when it says it of one container.
_MUST_SET = re.compile(
    r'^(?:pod or )?container "(?P<container>[^"]+)" must set securityContext\.(?P<field>[\w.]+)'
    r'(?:=(?P<value>\S+)| to "(?P<choice>[^"]+)")'
)
_WEBHOOK_REASONS = (
    ("no endpoints available", "no endpoints available for its Service"),
    ("context deadline exceeded", "no answer before its timeout"),
    ("x509", "its serving certificate is not trusted (x509)"),
    ("connection refused", "its Service's pods refuse the connection"),
    ("no such host", "its Service's name does not resolve"),
)


@dataclass(frozen=True)
class Violation:
    """One PodSecurity check a pod fails, and the securityContext field it asks for when it
    names one container and one value."""

    check: str  # "allowPrivilegeEscalation != false"
    why: str  # 'container "web" must set securityContext.allowPrivilegeEscalation=false'
    container: str | None = None
    field: str | None = None  # "allowPrivilegeEscalation", "capabilities.drop", ...
    value: str | None = None  # as written: "false", '["ALL"]', "RuntimeDefault"


@dataclass(frozen=True)
class AdmissionRefusal:
    """A pod creation refused by an admission step other than ResourceQuota or LimitRange."""

    category: Category
    message: str
    component: str  # 'webhook "x"', "PodSecurity", "ServiceAccount admission", ...
    detail: str = ""  # the refusal's own words after the component names itself
    webhook_host: str | None = None  # the Service host a webhook is called at
    webhook_port: int | None = None
    reason: str | None = None  # why the webhook call failed, in plain words
    level: str | None = None  # PodSecurity's "restricted:latest"
    violations: tuple[Violation, ...] = ()
    service_account: str | None = None


_EVENT_PREFIXES = re.compile(r"^(?:\(combined from similar events\): )?(?:Error creating: )?")


def refused_text(message: str) -> str:
    """A FailedCreate message without the prefixes the controller and the event recorder add
    ("(combined from similar events): ", "Error creating: "): the refusal itself."""
    return _EVENT_PREFIXES.sub("", message.strip(), count=1)


def parse_refusal(message: str) -> AdmissionRefusal | None:
    """The admission step that refused a pod, from a FailedCreate message; None for a quota or
    LimitRange refusal (`parse_failure`) or a message none of these steps writes. A webhook or
    policy is named first: it is the component that refused even when it enforces what
    PodSecurity would (DESIGN.md section 12)."""
    text = message.strip()
    if match := _WEBHOOK_CALL.search(text):
        host = _URL_HOST.match(match["url"] or "")
        lowered = match["reason"].lower()
        reason = next((said for key, said in _WEBHOOK_REASONS if key in lowered), None)
        return AdmissionRefusal(
            Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE,
            text,
            f'webhook "{match["webhook"]}"',
            detail=match["reason"].strip(),
            webhook_host=host["host"] if host else None,
            webhook_port=int(host["port"]) if host and host["port"] else None,
            reason=reason,
        )
    if match := _WEBHOOK_DENIED.search(text):
        detail = text[match.end() :].strip()
        component = f'webhook "{match["webhook"]}"'
        return AdmissionRefusal(Category.ROLLOUT_ADMISSION_DENIED, text, component, detail)
    if match := _POLICY_DENIED.search(text):
        detail = text[match.end() :].strip()
        component = f'ValidatingAdmissionPolicy "{match["policy"]}"'
        return AdmissionRefusal(Category.ROLLOUT_ADMISSION_DENIED, text, component, detail)
    if match := _POD_SECURITY.search(text):
        violations = tuple(_violation(v) for v in _VIOLATION.finditer(match["violations"]))
        return AdmissionRefusal(
            Category.ROLLOUT_POD_SECURITY_VIOLATION,
            text,
            "PodSecurity",
            detail=match["violations"].strip(),
            level=match["level"],
            violations=violations,
        )
    if "service account" in text and (match := _SERVICE_ACCOUNT.search(text)):
        return AdmissionRefusal(
            Category.ROLLOUT_SERVICE_ACCOUNT_MISSING,
            text,
            "ServiceAccount admission",
            detail=match.group(0),
            service_account=match["name"],
        )
    return None


def _violation(match: re.Match[str]) -> Violation:
    check, why = match["check"].strip(), match["why"].strip()
    wanted = _MUST_SET.match(why)
    if wanted is None:
        return Violation(check, why)
    return Violation(
        check,
        why,
        container=wanted["container"],
        field=wanted["field"],
        value=wanted["value"] or wanted["choice"],
    )
