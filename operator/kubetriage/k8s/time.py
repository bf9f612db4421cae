"""Timestamps as the Kubernetes API writes them (RFC 3339, UTC, to the second)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

# What a missing timestamp sorts as: before everything.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The times parse_time returns. Go's zero time (0001-01-01T00:00:00Z) means "unset", and a time
# within a year of either end of the calendar would overflow the arithmetic done on it (a
# window of minutes around an event, a grace period).
_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
_LATEST = datetime(9998, 12, 31, tzinfo=UTC)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API writes it (`2025-03-13T10:50:47Z`, with or without
    fractional seconds), as an aware datetime in UTC; None for anything else, Go's zero time,
    and times in the first or last year of the calendar."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC, as the API writes them: a time with an offset at the ends of the calendar
        # (0001-01-01T00:00:00+14:00) has none, and any arithmetic on it would overflow.
        parsed = parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
    return parsed if _EARLIEST <= parsed <= _LATEST else None


def format_time(value: datetime) -> str:
    """A datetime as the API writes it, to the second, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_duration(value: timedelta | float | None) -> str:
    """A duration for a sentence: `2m48s`, `4h32m`, `1d3h`."""
    if value is None:
        return "unknown"
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    days, rest = divmod(max(seconds, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
