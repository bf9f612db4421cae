"""Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`): parsed by the client library, as
the apiserver writes them, and written back the two ways a report needs.

- `format_amount` for a sentence: `503.5Mi`, `250m`, `2` (rounded to what a person reads);
- `manifest_quantity` for a patch: the exact value in the largest unit that divides it
  (`1280Mi`, `18Gi`), since a patch must carry exactly what the arithmetic chose.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from kubernetes.utils.quantity import parse_quantity as _library_parse

_BINARY = (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_GI, _MI, _KI = Decimal(2**30), Decimal(2**20), Decimal(2**10)
# No quantity the apiserver keeps is larger in magnitude (resource.Quantity caps it there); a
# larger one (`1e309`) would overflow the arithmetic and the formatting done on quantities.
_LARGEST = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The quantity's value in base units: cores for cpu, bytes for memory."""
    if isinstance(value, bool):
        raise QuantityError(f"not a Kubernetes quantity: {value!r}")
    try:
        parsed = _library_parse(value.strip() if isinstance(value, str) else value)  # type: ignore[no-untyped-call]
    except (ValueError, ArithmeticError) as error:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}") from error
    if not isinstance(parsed, Decimal) or not parsed.is_finite() or abs(parsed) > _LARGEST:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}")
    return parsed


def try_parse_quantity(value: object) -> Decimal | None:
    """parse_quantity, or None for a missing or malformed value."""
    if not isinstance(value, str | int | float | Decimal):
        return None
    try:
        return parse_quantity(value)
    except QuantityError:
        return None


def quantities(raw: object) -> dict[str, Decimal]:
    """A resource list (`{cpu: 500m, memory: 1Gi}`) parsed, malformed entries left out."""
    if not isinstance(raw, dict):
        return {}
    parsed = {str(k): try_parse_quantity(v) for k, v in raw.items()}
    return {k: v for k, v in parsed.items() if v is not None}


def is_byte_resource(resource: str) -> bool:
    """Whether a resource (or a quota's `requests.`/`limits.` name of one) counts bytes."""
    name = resource.removeprefix("requests.").removeprefix("limits.")
    return "memory" in name or "storage" in name or name.startswith("hugepages-")


def format_bytes(value: Decimal | int | float) -> str:
    """Bytes the way a person writes a memory limit: `512Mi`, `1.5Gi`."""
    amount = Decimal(value)
    for suffix, unit in _BINARY:
        if abs(amount) >= unit:
            scaled = (amount / unit).quantize(Decimal("0.1")).normalize()
            return f"{scaled:f}{suffix}"
    return f"{int(amount)}"


def format_cpu(value: Decimal | int | float) -> str:
    """Cores the way a person writes a cpu request: `250m`, `2`."""
    amount = Decimal(value)
    if amount == amount.to_integral_value():
        return f"{int(amount)}"
    return f"{int((amount * 1000).to_integral_value())}m"


def format_amount(resource: str, value: Decimal) -> str:
    """A quantity the way a person writes it for this resource, for a sentence."""
    name = resource.removeprefix("requests.").removeprefix("limits.")
    if name == "cpu":
        return format_cpu(value)
    if is_byte_resource(resource):
        return format_bytes(value)
    return f"{value.normalize():f}"


def manifest_quantity(resource: str, value: Decimal | int | float) -> str:
    """A quantity exactly as a manifest carries it: `18Gi`, `1280Mi`, `500m`, `40`; cpu is
    rounded up to the millicore, the smallest unit the apiserver keeps."""
    amount = Decimal(value)
    if is_byte_resource(resource):
        for unit, suffix in ((_GI, "Gi"), (_MI, "Mi"), (_KI, "Ki")):
            if amount >= unit and amount % unit == 0:
                return f"{int(amount / unit)}{suffix}"
        return str(int(amount))
    if "cpu" in resource and amount != amount.to_integral_value():
        return f"{int((amount * 1000).to_integral_value(rounding=ROUND_CEILING))}m"
    return str(int(amount)) if amount == amount.to_integral_value() else str(amount)


def floor_quantity(resource: str, value: Decimal) -> str:
    """A quantity rounded down to what a manifest would carry (10m of cpu, 1Mi of memory)."""
    if resource == "cpu":
        return f"{int((value * 100).to_integral_value(ROUND_FLOOR)) * 10}m"
    if is_byte_resource(resource):
        return f"{int((value / _MI).to_integral_value(ROUND_FLOOR))}Mi"
    return str(int(value.to_integral_value(ROUND_FLOOR)))


def round_quantity(resource: str, value: Decimal, *, up: bool) -> Decimal:
    """A value rounded to a unit a manifest would use: whole Gi or Mi for bytes, millicores for
    cpu, whole units otherwise."""
    mode = ROUND_CEILING if up else ROUND_FLOOR
    if is_byte_resource(resource):
        unit = _GI if value % _GI == 0 else _MI
        return (value / unit).to_integral_value(rounding=mode) * unit
    if "cpu" in resource:
        return (value * 1000).to_integral_value(rounding=mode) / 1000
    return value.to_integral_value(rounding=mode)
