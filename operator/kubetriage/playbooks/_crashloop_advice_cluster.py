"""Recommendations whose fix is in the workload's spec or in the cluster around it: probe
settings (a startupProbe patch), missing configuration (an env patch or the ConfigMap/Secret to
create), and an unavailable dependency (a command that inspects or restores it, never a patch on
the crash-looping workload).
"""

from __future__ import annotations

import json
import math
import posixpath
from typing import Any

from kubetriage.k8s.access import as_dict
from kubetriage.models import Recommendation
from kubetriage.playbooks._crashloop_advice_base import (
    INSPECT_ONLY,
    Advice,
    Facts,
    not_patchable,
    patch_rollback,
    shell_word,
    template_patch,
    validation,
    workload_ref,
)
from kubetriage.playbooks._crashloop_checks import (
    ConfigRef,
    DependencyCheck,
    int_field,
)
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

_PROBE_HANDLERS = ("httpGet", "tcpSocket", "grpc", "exec")
# A startupProbe only holds the liveness probe back until the app is up and costs nothing
# afterwards, so its budget is generous: at least this, and four times what the app got.
_STARTUP_BUDGET_SECONDS = 300
_VOLUMES = "{.spec.template.spec.volumes}"


def startup_settings(probe: dict[str, Any], runtime: float | None) -> tuple[int, int]:
    """(periodSeconds, failureThreshold) of a startupProbe that gives the app at least
    `_STARTUP_BUDGET_SECONDS`, and four times as long as it ran before it was killed."""
    period = max(1, int_field(probe, "periodSeconds", 10))
    budget = max(_STARTUP_BUDGET_SECONDS, 4 * (runtime or 0))
    return period, math.ceil(budget / period)


def liveness(facts: Facts) -> Advice:
    """A startupProbe (with the liveness probe's own check) that gives start-up time, or a
    larger budget on the probe that killed it; a longer timeout when the probe timed out."""
    spec = facts.container_spec
    live, startup = as_dict(spec.get("livenessProbe")), as_dict(spec.get("startupProbe"))
    probe = startup if facts.startup_probe_kill else live
    period, threshold = startup_settings(probe or live, facts.runtime_seconds)
    timeout = int_field(probe, "timeoutSeconds", 1)
    longer = max(timeout, 5)
    fields: dict[str, Any]
    if startup:
        fields = {"startupProbe": {"failureThreshold": threshold, "periodSeconds": period}}
        what = f"raise the startupProbe's failureThreshold to {threshold} (every {period}s)"
    else:
        handler = {k: live[k] for k in _PROBE_HANDLERS if k in live}
        text = json.dumps(handler)
        if handler and redact(text) == text:  # an exec probe may carry a password: not copied
            timeout_s = longer if facts.detail == "timeout" else timeout
            fields = {
                "startupProbe": {
                    **handler,
                    "periodSeconds": period,
                    "failureThreshold": threshold,
                    "timeoutSeconds": timeout_s,
                }
            }
            what = (
                f"add a startupProbe with the liveness probe's check that allows "
                f"{period * threshold}s to start; the liveness probe begins once it passes"
            )
        else:
            fields = {"livenessProbe": {"initialDelaySeconds": period * threshold}}
            what = f"raise the liveness probe's initialDelaySeconds to {period * threshold}"
    if facts.detail == "timeout" and longer != timeout:
        fields.setdefault("livenessProbe", {})["timeoutSeconds"] = longer
        what += f", and its timeoutSeconds from {timeout} to {longer} (the probe timed out)"
    probe_name = "startupProbe" if facts.startup_probe_kill else "livenessProbe"
    recommendation = Recommendation(
        summary=(
            f"The kubelet restarts {facts.container} because its {probe_name} fails before the "
            f"app is ready: {what}.{not_patchable(facts)}"
        ),
        patch=template_patch(facts, fields),
        rollback=patch_rollback(facts),
        validation=f'{validation(facts)} No new "failed liveness probe" Killing events.',
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.PROBES}))


def missing_configuration(facts: Facts) -> Advice:
    """Set the variable from the ConfigMap key it was likely renamed to, create the missing
    ConfigMap/Secret (key), or mount the missing file; in that order of certainty."""
    key = facts.subject
    env = ChangeScope(touches=frozenset({Touch.ENV}))
    if key and facts.near_key and facts.detail == "missing key":
        config_map, near = facts.near_key
        source = {"configMapKeyRef": {"name": config_map, "key": near}}
        recommendation = Recommendation(
            summary=(
                f"{key} is not set, and ConfigMap {config_map} has {near}, which looks like the "
                f"same setting under another name: set {key} from it (or rename the key in the "
                f"ConfigMap).{not_patchable(facts)}"
            ),
            patch=template_patch(facts, {"env": [{"name": key, "valueFrom": source}]}),
            rollback=patch_rollback(facts),
            validation=validation(facts),
        )
        return recommendation, env
    refs = sorted(facts.missing_refs, key=lambda r: (not r.optional, r.kind != "ConfigMap"))
    if refs:
        return _create_reference(facts, refs[0], key), env
    ns = facts.target.namespace
    if facts.detail == "missing file":
        directory = posixpath.dirname(key or "") or "its directory"
        recommendation = Recommendation(
            summary=(
                f"{key or 'A configuration file'} does not exist in the container: mount the "
                f"ConfigMap or Secret that holds it at {directory} (a volume and a volumeMount), "
                "or fix the path the app is given."
            ),
            command=f"kubectl get {workload_ref(facts.target)} -o jsonpath='{_VOLUMES}'",
            rollback=INSPECT_ONLY,
            validation=validation(facts),
        )
        return recommendation, ChangeScope(touches=frozenset({Touch.VOLUMES}))
    name = shell_word(key) or "KEY"
    set_env = f"kubectl set env {workload_ref(facts.target)} -c {facts.container}"
    recommendation = Recommendation(
        summary=(
            f"{key or 'A required setting'} is not given to {facts.container} in {ns}: set it "
            "from the ConfigMap or Secret that holds it (env valueFrom), or add it to the "
            "ConfigMap that its envFrom reads."
        ),
        command=f"{set_env} {name}=<value>",
        rollback=f"{set_env} {name}-",
        validation=validation(facts),
    )
    return recommendation, env


def _create_reference(facts: Facts, ref: ConfigRef, key: str | None) -> Recommendation:
    ns = facts.target.namespace
    value_key = shell_word(ref.key or key) or "KEY"
    if ref.kind == "ConfigMap" and ref.state == "missing-key":
        data = json.dumps({"data": {value_key: "<value>"}})
        remove = json.dumps([{"op": "remove", "path": f"/data/{value_key}"}])
        command = f"kubectl patch configmap {ref.name} -n {ns} --type merge -p '{data}'"
        rollback = f"kubectl patch configmap {ref.name} -n {ns} --type json -p '{remove}'"
    elif ref.kind == "ConfigMap":
        command = f"kubectl create configmap {ref.name} -n {ns} --from-literal={value_key}=<value>"
        rollback = f"kubectl delete configmap {ref.name} -n {ns}"
    else:
        command = (
            f"kubectl create secret generic {ref.name} -n {ns} --from-literal={value_key}=<value>"
        )
        rollback = f"kubectl delete secret {ref.name} -n {ns}"
    return Recommendation(
        summary=(
            f"The pod references {ref.describe()}. Create it with the value the app expects, "
            "then restart the pods."
        ),
        command=command,
        rollback=rollback,
        validation=validation(facts),
    )


def dependency(facts: Facts) -> Advice:
    """Restore or inspect the dependency; the crash-looping workload itself is not changed."""
    dep = facts.dependency
    ns = facts.target.namespace
    logs = f"kubectl logs {facts.pod or facts.target.name} -n {ns} -c {facts.container} --previous"
    if dep is None:
        recommendation = Recommendation(
            summary=(
                f"{facts.container} exits because a dependency it connects to at start-up is "
                "unreachable, and the log does not say which: read it in full."
            ),
            command=logs,
            rollback=INSPECT_ONLY,
            validation=validation(facts),
        )
        return recommendation, ChangeScope()
    target = facts.target
    unchanged = (
        f"Nothing in {target.kind} {target.name} needs to change: it recovers by itself once "
        f"{dep.target} answers."
    )
    lead = f"{facts.container} cannot reach {dep.target}: {dep.sentence()}."
    if dep.scaled_to_zero is not None:
        kind, name = dep.scaled_to_zero
        scale = f"kubectl scale {kind.lower()}/{name} -n {dep.namespace}"
        recommendation = Recommendation(
            summary=(
                f"{lead} Scale {kind} {name} back up (to the replica count it normally runs). "
                f"{unchanged}"
            ),
            command=f"{scale} --replicas=1",
            rollback=f"{scale} --replicas=0",
            validation=(
                f"`kubectl get endpoints {dep.service} -n {dep.namespace}` lists a ready "
                f"address; then {validation(facts)}"
            ),
        )
        # Scaling another team's workload changes how it runs: a human decides.
        return recommendation, ChangeScope(touches=frozenset({Touch.DEPLOY_STRATEGY}))
    command, advice = _inspect_dependency(dep, ns, logs)
    recommendation = Recommendation(
        summary=f"{lead} {advice} {unchanged}",
        command=command,
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope()


def _inspect_dependency(dep: DependencyCheck, ns: str, logs: str) -> tuple[str, str]:
    """A command that looks at the dependency, and what to do with what it shows."""
    if dep.state == "no-ready-endpoints":
        describe = f"kubectl describe endpoints {dep.service} -n {dep.namespace}"
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep.selector.items()))
        if selector:
            describe = f"kubectl get pods -n {dep.namespace} -l {selector} -o wide && {describe}"
        return describe, f"Restore the pods behind Service {dep.service}."
    if dep.state == "no-service":
        return f"kubectl get services -n {dep.namespace}", (
            "Either the address is wrong (a typo, or a Service in another namespace: use "
            f"<service>.<namespace>) or Service {dep.service} must be created."
        )
    if dep.state == "ready":
        return f"kubectl get endpoints {dep.service} -n {dep.namespace} -o wide", (
            "Check that the port the app dials matches the Service's, and that the backend "
            "accepts connections."
        )
    peer = shell_word(dep.host or dep.ip)
    if dep.scope in {"external", "ip"} and peer and dep.port:
        return (
            (
                f"kubectl run net-check -n {ns} --rm -i --restart=Never --image=busybox:1.36 -- "
                f"nc -zv -w 5 {peer} {dep.port}"
            ),
            "Check that it resolves and accepts connections from the cluster (DNS, NetworkPolicy).",
        )
    return logs, "Find which dependency the app could not reach and restore it."
