"""The change that lets the pods pass their readiness probe, per category.

- ProbeMisconfigured, a port the container does not declare: when the container declares one
  port, a strategic merge patch points the probe at it (by name when it has one); with several,
  the engineer chooses, so only the probe is shown. A 404: the path is the app's to know, so
  the probe is shown and no path is guessed.
- DependencyUnavailable: nothing in the workload changes: the dependency the log names is
  brought back (its Service's endpoints), and the pods turn Ready on their own.
- ReadinessProbeFailure, a timeout: a longer timeoutSeconds (twice the current, at least 5 s),
  with the app's log to say why it answers slowly. Otherwise the app's log and the probe, read.

Every change keeps the probe: a pod that is not ready stays out of its Services' endpoints,
which is the probe doing its job.
"""

from __future__ import annotations

import json
from typing import Any

from kubetriage.k8s.owners import TEMPLATED_KINDS, UNDOABLE_KINDS
from kubetriage.models import Category, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, recommendation, strategic_patch
from kubetriage.playbooks.notready.reads import NotReadyFacts
from kubetriage.policy import ChangeScope, Touch

Advice = tuple[Recommendation, ChangeScope]
_MIN_TIMEOUT = 5


def _validation(facts: NotReadyFacts) -> str:
    target = facts.target
    services = ", ".join(s.name for s in facts.services[:2])
    endpoints = (
        f" and `kubectl get endpointslices -n {target.namespace} -l "
        f"kubernetes.io/service-name={facts.services[0].name}` lists them ready ({services})"
        if facts.services
        else ""
    )
    return (
        f"`kubectl get pods -n {target.namespace}` shows {target.name}'s pods READY{endpoints}; "
        "kubetriage then marks the report Resolved"
    )


def _rollback(facts: NotReadyFacts) -> str:
    target = facts.target
    if target.kind in UNDOABLE_KINDS:
        return f"kubectl rollout undo {target.kind.lower()}/{target.name} -n {target.namespace}"
    return "Re-apply the previous manifest of the workload."


def _show_probe(facts: NotReadyFacts) -> str:
    target = facts.target
    query = f'{{.spec.template.spec.containers[?(@.name=="{facts.container}")].readinessProbe}}'
    if target.kind == "Pod":
        query = f'{{.spec.containers[?(@.name=="{facts.container}")].readinessProbe}}'
    return (
        f"kubectl get {target.kind.lower()} {target.name} -n {target.namespace} "
        f"-o jsonpath='{query}'"
    )


def recommend(facts: NotReadyFacts, category: Category) -> Advice:
    """The recommendation for `category` and what it touches."""
    failure = facts.most_common()
    if category is Category.NOTREADY_PROBE_MISCONFIGURED and failure is not None:
        if failure.status == 404:
            return _wrong_path(facts), ChangeScope()
        return _wrong_port(facts)
    if category is Category.NOTREADY_DEPENDENCY_UNAVAILABLE:
        return _dependency(facts), ChangeScope()
    if failure is not None and failure.kind == "timeout" and facts.probe is not None:
        return _timeout(facts)
    return _inspect(facts), ChangeScope()


def _container_patch(facts: NotReadyFacts, fields: dict[str, Any]) -> dict[str, Any] | None:
    if facts.target.kind not in TEMPLATED_KINDS:
        return None
    return {"spec": {"template": {"spec": {"containers": [{"name": facts.container, **fields}]}}}}


def _patched(facts: NotReadyFacts, summary: str, fields: dict[str, Any]) -> Advice:
    body = _container_patch(facts, fields)
    if body is None:
        proposal = recommendation(
            summary=summary + " A Pod's probes cannot change in place: edit its manifest.",
            command=_show_probe(facts),
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope()
    target = facts.target
    proposal = recommendation(
        summary=summary,
        patch=strategic_patch(target, body),
        command=(
            f"kubectl patch {target.kind.lower()} {target.name} -n {target.namespace} "
            f"--type strategic -p '{json.dumps(body, separators=(',', ':'))}'"
        ),
        rollback=_rollback(facts),
        validation=_validation(facts),
    )
    return proposal, ChangeScope(frozenset({Touch.PROBES}))


def _wrong_port(facts: NotReadyFacts) -> Advice:
    probe = facts.probe
    dialled = facts.most_common()
    port = dialled.port if dialled is not None else None
    if (
        probe is None
        or probe.handler not in {"httpGet", "tcpSocket", "grpc"}
        or len(facts.ports) != 1
    ):
        proposal = recommendation(
            summary=(
                f"Point {facts.container}'s readinessProbe at a port the app listens on (it "
                f"declares {', '.join(str(n) for n, _ in facts.ports) or 'none'}; the probe "
                f"dials {port}), or make the app listen where the probe asks."
            ),
            command=_show_probe(facts),
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope()
    number, name = facts.ports[0]
    action: dict[str, Any] = {"port": name or number}
    if probe.handler == "httpGet" and probe.path:
        action["path"] = probe.path
    summary = (
        f"Point {facts.container}'s readinessProbe at port {name or number} ({number}), the "
        f"one port the container declares, instead of {port}."
    )
    return _patched(facts, summary, {"readinessProbe": {probe.handler: action}})


def _wrong_path(facts: NotReadyFacts) -> Recommendation:
    path = facts.probe.path if facts.probe is not None and facts.probe.path else "its path"
    return recommendation(
        summary=(
            f"The app answers 404 at {path}: point {facts.container}'s "
            "readinessProbe.httpGet.path at the readiness endpoint the app serves (its "
            "documentation or framework names it), or serve that path."
        ),
        command=_show_probe(facts),
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


def _dependency(facts: NotReadyFacts) -> Recommendation:
    check = facts.dependency
    ns = facts.target.namespace
    if check is not None and check.scope == "service" and check.service:
        service_ns = check.namespace or ns
        return recommendation(
            summary=(
                f"Bring back what Service {check.service} in namespace {service_ns} routes to "
                f"({check.sentence(pronoun=True)}); {facts.container} turns Ready on its own "
                "when its readiness check reaches it. Nothing in this workload needs to change."
            ),
            command=(
                f"kubectl get endpointslices -n {service_ns} "
                f"-l kubernetes.io/service-name={check.service} -o wide"
            ),
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
    target = check.target if check is not None else "the dependency its log names"
    pod = facts.unready_pods[0] if facts.unready_pods else facts.target.name
    return recommendation(
        summary=(
            f"Bring back {target}, which the app's log says it cannot reach; {facts.container} "
            "turns Ready on its own when its readiness check passes. Nothing in this workload "
            "needs to change."
        ),
        command=f"kubectl logs {pod} -n {ns} -c {facts.container} --tail=50",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


def _timeout(facts: NotReadyFacts) -> Advice:
    probe = facts.probe
    assert probe is not None  # recommend() checks
    longer = max(_MIN_TIMEOUT, probe.timeout * 2)
    pod = facts.unready_pods[0] if facts.unready_pods else facts.target.name
    summary = (
        f"Give {facts.container}'s readinessProbe timeoutSeconds {longer} instead of "
        f"{probe.timeout}, and find out why the app answers slowly (`kubectl logs {pod} -n "
        f"{facts.target.namespace} -c {facts.container}`: long pauses, a slow dependency); a "
        "longer timeout only hides a slowness the users also see."
    )
    return _patched(facts, summary, {"readinessProbe": {"timeoutSeconds": longer}})


def _inspect(facts: NotReadyFacts) -> Recommendation:
    pod = facts.unready_pods[0] if facts.unready_pods else facts.target.name
    return recommendation(
        summary=(
            f"Read why {facts.container} fails its readiness check: the app's log around the "
            "probe's failures, and the probe's settings against what the app serves."
        ),
        command=f"kubectl logs {pod} -n {facts.target.namespace} -c {facts.container} --tail=100",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
