"""Kubernetes resource quantities (`500m`, `1.5Gi`, `2e3`), parsed as the apiserver parses them."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Decimal:
    """The quantity's value in base units: cores for cpu, bytes for memory."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}")
    number, suffix = Decimal(match.group(1)), match.group(2) or ""
    try:
        if suffix in _BINARY:
            return number * _BINARY[suffix]
        if suffix[:1] in {"e", "E"}:
            return number * (Decimal(10) ** int(suffix[1:]))
        return number * _DECIMAL[suffix]
    except (InvalidOperation, OverflowError) as error:
        raise QuantityError(f"not a Kubernetes quantity: {value!r}") from error


def try_parse_quantity(value: object) -> Decimal | None:
    """parse_quantity, or None for a missing or malformed value."""
    if value is None:
        return None
    try:
        return parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return None


def format_bytes(value: Decimal | int | float) -> str:
    """Bytes the way a person writes a memory limit: `512Mi`, `1.5Gi`."""
    amount = Decimal(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
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
