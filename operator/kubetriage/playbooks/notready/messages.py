"""The kubelet's words for a readiness probe that fails, read into what they say.

The kubelet records each failure as an `Unhealthy` event on the container, aggregated with a
count: `Readiness probe failed: Get "http://10.88.77.15:8081/": dial tcp 10.88.77.15:8081:
connect: connection refused` (nothing listens on that port), `Readiness probe failed: HTTP probe
failed with statuscode: 503` (the app answered and said no), `Readiness probe failed: Get
"http://10.52.3.242:8080/ready": context deadline exceeded (Client.Timeout exceeded while
awaiting headers)` (no answer within timeoutSeconds). The crash-loop runbook reads the same
messages for its liveness probes: the parsing is shared (`crashloop.messages.probe_failure`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubetriage.playbooks.crashloop.messages import probe_failure

_DIALED_PORT = re.compile(r"dial tcp \[?[0-9A-Fa-f:.]+\]?:(?P<port>\d+)")
_STATUS = re.compile(r"statuscode: (?P<code>\d{3})")


@dataclass(frozen=True)
class ReadinessFailure:
    """One kind of readiness failure the kubelet reported, and how."""

    text: str  # the event's message, as the kubelet wrote it
    detail: str  # what follows "Readiness probe failed: " (an exec probe's own output)
    kind: str  # timeout | refused | status | reset | other
    port: int | None  # the port it dialled, when the message names it
    status: int | None  # the HTTP status the app answered, when it did


def read_failure(message: str) -> ReadinessFailure | None:
    """A readiness probe's `Unhealthy` message read; None for any other message (a liveness
    or startup probe's, which the crash-loop runbook reads)."""
    failure = probe_failure(message)
    if failure is None or failure.probe != "readiness":
        return None
    port = _DIALED_PORT.search(failure.detail)
    status = _STATUS.search(failure.detail)
    return ReadinessFailure(
        text=message.strip(),
        detail=failure.detail,
        kind=failure.kind,
        port=int(port["port"]) if port else None,
        status=int(status["code"]) if status else None,
    )
