"""The NotReady decision: the kubelet's most frequent probe failure names the category, the
probe's settings, the container's ports and the app's log decide how firmly. Pure.

- `connect: connection refused` on a port the container does not declare among its ports ->
  ProbeMisconfigured, 0.9: the probe asks a port nothing is meant to listen on.
- `HTTP probe failed with statuscode: 404` -> ProbeMisconfigured, 0.85: the app answers, not
  at that path.
- `statuscode: 503` and a failed connection in the app's log -> DependencyUnavailable: 0.9
  when the cluster confirms the dependency is down (no Service, no ready endpoints), 0.8 when
  only the log says so. A 503 with nothing in the log is ReadinessProbeFailure (0.6), with
  DependencyUnavailable as the runner-up.
- a timeout -> ReadinessProbeFailure, 0.75: the app does not answer within timeoutSeconds.
- `connection refused` on a declared port -> ReadinessProbeFailure, 0.6: the app has not
  opened its port (still starting, or listening elsewhere: ProbeMisconfigured is the
  runner-up).
- any other answer -> ReadinessProbeFailure, 0.7; no event left -> 0.4.

Every summary ends with the impact: how many endpoints of the Services that select the pods
are ready.
"""

from __future__ import annotations

from kubetriage.models import Category
from kubetriage.playbooks.base import Verdict, cause
from kubetriage.playbooks.notready.messages import ReadinessFailure
from kubetriage.playbooks.notready.reads import NotReadyFacts

C = Category
_DOWN = frozenset({"no-service", "no-ready-endpoints"})


def impact_text(facts: NotReadyFacts) -> str:
    """What the unready pods cost: the ready endpoints of the Services that select them."""
    if not facts.services:
        return "no Service selects its pods"
    parts = []
    for service in facts.services[:3]:
        total = service.ready + service.not_ready
        counted = "" if service.counted else " (counted from the pods: no endpoints read)"
        parts.append(
            f"Service {service.name} has {service.ready} of {total} endpoints ready{counted}"
        )
    return "; ".join(parts)


def declared_ports(facts: NotReadyFacts) -> str:
    """The container's ports for a sentence."""
    return ", ".join(f"{n} ({name})" if name else str(n) for n, name in facts.ports) or "none"


def decide(facts: NotReadyFacts) -> Verdict:
    """Apply the rules of this module's docstring."""
    who = f"Container {facts.container} of {facts.target.kind} {facts.target.name}"
    unready = len(facts.unready_pods)
    total = max(len(facts.pods), unready)
    state = f"{who} runs but is not Ready in {unready} of {total} pods"
    impact = impact_text(facts)
    failure = facts.most_common()
    if failure is None:
        return Verdict(
            cause(
                C.NOTREADY_READINESS_PROBE_FAILURE,
                f"{state}; the kubelet's Unhealthy events about it are gone (they expire an "
                f"hour after their last update); {impact}",
                0.4,
            )
        )
    count = facts.failures[0].count
    said = f"the kubelet reports {_failure_text(failure)} (x{count})"
    probe = facts.probe
    declared = {number for number, _ in facts.ports}
    if failure.kind == "refused" and failure.port is not None:
        if declared and failure.port not in declared:
            return Verdict(
                cause(
                    C.NOTREADY_PROBE_MISCONFIGURED,
                    f"{state}: its readinessProbe dials port {failure.port}, which the container "
                    f"does not declare (its ports: {declared_ports(facts)}), and {said}; {impact}",
                    0.9,
                )
            )
        runner_up = cause(
            C.NOTREADY_PROBE_MISCONFIGURED,
            f"the app listens on another port than {failure.port}",
            0.35,
        )
        return Verdict(
            cause(
                C.NOTREADY_READINESS_PROBE_FAILURE,
                f"{state}: nothing listens on port {failure.port} yet, and {said}; {impact}",
                0.6,
            ),
            (runner_up,),
        )
    if failure.status == 404:
        path = probe.path if probe is not None and probe.path else "the probe's path"
        return Verdict(
            cause(
                C.NOTREADY_PROBE_MISCONFIGURED,
                f"{state}: the app answers 404 at {path}, a path it does not serve, and {said}; "
                f"{impact}",
                0.85,
            )
        )
    if failure.status == 503:
        return _unavailable(facts, state, said, impact)
    if failure.kind == "timeout":
        timeout = f"{probe.timeout}s" if probe is not None else "its timeoutSeconds"
        return Verdict(
            cause(
                C.NOTREADY_READINESS_PROBE_FAILURE,
                f"{state}: the app does not answer its readinessProbe within {timeout}, and "
                f"{said}; {impact}",
                0.75,
            )
        )
    return Verdict(cause(C.NOTREADY_READINESS_PROBE_FAILURE, f"{state}: {said}; {impact}", 0.7))


def _unavailable(facts: NotReadyFacts, state: str, said: str, impact: str) -> Verdict:
    clue, check = facts.dependency_clue, facts.dependency
    if clue is None:
        return Verdict(
            cause(
                C.NOTREADY_READINESS_PROBE_FAILURE,
                f"{state}: the app answers 503 to its readinessProbe and its log names no "
                f"failed connection; {said}; {impact}",
                0.6,
            ),
            (cause(C.NOTREADY_DEPENDENCY_UNAVAILABLE, "a dependency the log does not name", 0.35),),
        )
    confirmed = check is not None and check.scope == "service" and check.state in _DOWN
    where = f": {check.sentence()}" if check is not None and check.scope != "unknown" else ""
    target = check.target if check is not None else (clue.subject or clue.host_ip or "a host")
    return Verdict(
        cause(
            C.NOTREADY_DEPENDENCY_UNAVAILABLE,
            f"{state}: the app answers 503 to its readinessProbe ({said}) and its log reports "
            f"{clue.detail} to {target}{where}; {impact}",
            0.9 if confirmed else 0.8,
        )
    )


def _failure_text(failure: ReadinessFailure) -> str:
    if failure.kind == "refused":
        return (
            f"connection refused on port {failure.port}" if failure.port else "connection refused"
        )
    if failure.status is not None:
        return f"HTTP {failure.status}"
    if failure.kind == "timeout":
        return "a timeout"
    return f"the probe failing with {failure.detail!r}" if failure.detail else "a failed probe"
