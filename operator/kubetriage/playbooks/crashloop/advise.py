"""What the CrashLoopBackOff runbook recommends for each root cause, how to undo it, how to tell
it worked, and the `ChangeScope` the escalation policy judges it by.

Where the fault is in the image or the process (a missing or non-executable command, a segfault,
an application error, a process that exits 0), the fastest fix is the revision that last worked,
when there is one; otherwise a command that shows what is wrong. Where it is in the workload's
spec, a strategic merge patch of the one container (a startupProbe, an env var); where it is in
the cluster around it (a missing ConfigMap or Secret, an unavailable dependency), a command on
that object, never a patch on the crash-looping workload.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubetriage.k8s.access import as_dict, int_field
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Category, Patch, Recommendation
from kubetriage.playbooks.base import recommendation, strategic_patch
from kubetriage.playbooks.crashloop.reads import ConfigRef, DependencyCheck, RevisionChange
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

_TEMPLATED = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
_UNDOABLE = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
_INSPECT_ONLY = "Nothing to undo: the command only reads."
_SAFE_WORD = re.compile(r"^[\w./:@+-]+$")
_PROBE_HANDLERS = ("httpGet", "tcpSocket", "grpc", "exec")
# A startupProbe only holds the liveness probe back until the app is up and costs nothing
# afterwards, so its budget is generous: at least this, and four times what the app got.
_STARTUP_BUDGET_SECONDS = 300
_VOLUMES = "{.spec.template.spec.volumes}"

Advice = tuple[Recommendation, ChangeScope]


@dataclass
class CrashLoopFacts:
    """What the investigation established, as the recommendation needs it."""

    target: WorkloadRef
    container: str
    init: bool
    category: Category
    image: str | None = None
    subject: str | None = None  # the command, key, file or host at fault
    detail: str = ""  # exec | file | bind | read-only | missing key | missing file | timeout
    exit_code: int | None = None
    headline: str | None = None
    pod: str | None = None
    container_spec: dict[str, Any] = field(default_factory=dict)
    runtime_seconds: float | None = None  # how long the container ran before it died
    startup_probe_kill: bool = False
    revision: RevisionChange | None = None
    dependency: DependencyCheck | None = None
    missing_refs: list[ConfigRef] = field(default_factory=list)
    near_key: tuple[str, str] | None = None  # (ConfigMap, key) that likely holds `subject`


def recommend(facts: CrashLoopFacts) -> Advice:
    """The recommendation for a diagnosed crash loop, and what it touches."""
    builders: dict[Category, Callable[[CrashLoopFacts], Advice]] = {
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE: _liveness,
        Category.CRASHLOOP_MISSING_CONFIGURATION: _missing_configuration,
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE: _dependency,
        Category.CRASHLOOP_EXITED_IMMEDIATELY: _exited,
        Category.CRASHLOOP_COMMAND_NOT_FOUND: _command_not_found,
        Category.CRASHLOOP_PERMISSION_DENIED: _permission_denied,
        Category.CRASHLOOP_SEGFAULT: _segfault,
    }
    return builders.get(facts.category, _application_error)(facts)


# --- shared pieces -----------------------------------------------------------------------------


def _workload_ref(target: WorkloadRef) -> str:
    """`kind/name -n namespace`, as kubectl takes it."""
    return f"{target.kind.lower()}/{target.name} -n {target.namespace}"


def _validation(facts: CrashLoopFacts) -> str:
    """How to tell the crash loop is over after the change."""
    target = facts.target
    wait = ""
    if target.kind in _UNDOABLE:
        wait = f"`kubectl rollout status {_workload_ref(target)} --timeout=10m` completes and "
    return (
        f"{wait}`kubectl get pods -n {target.namespace}` shows {facts.container} of the new pods "
        "running with a restart count that stays put for 10 minutes; kubetriage then marks "
        "this report Resolved."
    )


def _template_patch(facts: CrashLoopFacts, fields: dict[str, Any]) -> Patch | None:
    """A strategic merge patch of one container (merged by name) in the pod template; None for
    kinds whose template cannot be patched in place (bare Pods, Jobs)."""
    target = facts.target
    if target.kind not in _TEMPLATED:
        return None
    key = "initContainers" if facts.init else "containers"
    body = {"spec": {"template": {"spec": {key: [{"name": facts.container, **fields}]}}}}
    return strategic_patch(target, body)


def _patch_rollback(facts: CrashLoopFacts) -> str:
    """How to undo a template patch."""
    if facts.target.kind in _UNDOABLE:
        undo = f"kubectl rollout undo {_workload_ref(facts.target)}"
        return f"{undo} (back to the template before the patch)"
    return "Re-apply the previous manifest of the workload."


def _not_patchable(facts: CrashLoopFacts) -> str:
    """A note for kinds whose pod template is immutable (bare Pods, Jobs); "" otherwise."""
    kind = facts.target.kind
    if kind in _TEMPLATED:
        return ""
    return f" A {kind}'s pod template cannot change in place: edit the manifest and recreate it."


def _rollout_undo(facts: CrashLoopFacts, why: str) -> Advice | None:
    """`kubectl rollout undo` to the revision that last worked, when there is one."""
    revision = facts.revision
    if revision is None or revision.good_revision is None or facts.target.kind != "Deployment":
        return None
    if revision.good_ready == 0 and not revision.changes:
        return None
    changed = "; ".join(revision.changes[:3]) or "the pod template"
    known = (
        f"its {revision.good_ready} pod(s) are still ready"
        if revision.good_ready
        else "the revision before the failing one"
    )
    undo = f"kubectl rollout undo {_workload_ref(facts.target)}"
    rollback = "Re-apply the failing revision's manifest."
    if revision.failing_revision is not None:
        rollback = f"{undo} --to-revision={revision.failing_revision}"
    proposal = recommendation(
        summary=(
            f"{why} Roll back to revision {revision.good_revision} ({revision.good_replica_set}; "
            f"{known}); revision {revision.failing_revision} changed {changed}. Fix the new "
            "revision before rolling it out again."
        ),
        command=f"{undo} --to-revision={revision.good_revision}",
        rollback=rollback,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.ROLLBACK}))


def _shell_word(value: str | None) -> str | None:
    """`value` when it can go into a shell command as it is."""
    return value if value and _SAFE_WORD.match(value) else None


def _run_in_image(facts: CrashLoopFacts, suffix: str, argv: str) -> str | None:
    """A throw-away pod of the container's image that runs `argv` (to look inside the image)."""
    if not facts.image:
        return None
    return (
        f"kubectl run {facts.container}-{suffix} -n {facts.target.namespace} --rm -i "
        f"--restart=Never --image={facts.image} --command -- {argv}"
    )


# --- the image or the process -----------------------------------------------------------------


def _command_not_found(facts: CrashLoopFacts) -> Advice:
    subject = facts.subject or "the container's command"
    where = ""
    if facts.subject and not facts.subject.startswith("/") and "/" in facts.subject:
        workdir = facts.container_spec.get("workingDir")
        base = f"workingDir {workdir}" if workdir else "the image's WORKDIR"
        where = f" It is a relative path, resolved against {base}."
    why = f"{subject} does not exist in image {facts.image or '(unknown)'}.{where}"
    undo = _rollout_undo(facts, why)
    if undo:
        return undo
    word = _shell_word(facts.subject)
    check = None
    if word:
        check = _run_in_image(facts, "cmd-check", f"sh -c {shlex.quote(f'ls -l {word}')}")
    proposal = recommendation(
        summary=(
            f"{why} Point the container's command at a path that exists in the image, or "
            "rebuild the image with it; the command lists what the image has."
        ),
        command=check or f"kubectl get {_workload_ref(facts.target)} -o yaml",
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.COMMAND, Touch.IMAGE}))


_FILE_ADVICE = {
    "file": "The process may not write {s}: set the pod's securityContext.fsGroup to the group "
    "that owns the volume, mount a writable emptyDir there, or fix the ownership in the image.",
    "read-only": "{s} is on a read-only filesystem (readOnlyRootFilesystem): mount a writable "
    "emptyDir at that directory.",
    "bind": "Binding {s} needs root or NET_BIND_SERVICE: listen on a port >= 1024 (and point the "
    "Service's targetPort at it) or add that capability.",
}


def _permission_denied(facts: CrashLoopFacts) -> Advice:
    subject = facts.subject or "a file"
    if facts.detail in _FILE_ADVICE:
        query = "{.spec.template.spec.securityContext}"
        proposal = recommendation(
            summary=_FILE_ADVICE[facts.detail].format(s=subject),
            command=f"kubectl get {_workload_ref(facts.target)} -o jsonpath='{query}'",
            rollback=_INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope(touches=frozenset({Touch.SECURITY_CONTEXT}))
    code = f" (exit code {facts.exit_code})" if facts.exit_code is not None else ""
    why = f"{subject} is not executable in image {facts.image or '(unknown)'}{code}."
    undo = _rollout_undo(facts, why)
    if undo:
        return undo
    word = _shell_word(facts.subject)
    check = _run_in_image(facts, "perm-check", f"ls -l {word}") if word else None
    proposal = recommendation(
        summary=(
            f"{why} Rebuild the image with the file executable (RUN chmod +x {subject}), or run "
            f'it through its interpreter (command: ["/bin/sh", "{subject}"]).'
        ),
        command=check or f"kubectl get {_workload_ref(facts.target)} -o yaml",
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.IMAGE, Touch.COMMAND}))


def _exited(facts: CrashLoopFacts) -> Advice:
    target = facts.target
    why = (
        f"{facts.container} exits with code 0 after {facts.runtime_seconds or 0:.0f}s: it "
        f"finishes its work, but a {target.kind} restarts whatever ends."
    )
    undo = _rollout_undo(facts, why)
    if undo:
        return undo
    spec = facts.container_spec
    argv = [str(a) for a in (spec.get("command") or []) + (spec.get("args") or [])]
    run = f" -- {shlex.join(argv)}" if argv else ""
    proposal = recommendation(
        summary=(
            f"{why} Run it as a CronJob (or a Job) with the same pod template (copy env, "
            f"resources and volumes) and delete the {target.kind}; or, if it should serve, fix "
            "its entrypoint so the main process keeps running."
        ),
        command=(
            f"kubectl create cronjob {target.name} -n {target.namespace} "
            f"--image={facts.image or '<image>'} --schedule='*/30 * * * *'{run}"
        ),
        rollback=f"kubectl delete cronjob {target.name} -n {target.namespace}",
        validation=(
            f"`kubectl get jobs -n {target.namespace}` shows the CronJob's runs completing, and "
            "the workload is no longer crash-looping."
        ),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.DEPLOY_STRATEGY}))


def _segfault(facts: CrashLoopFacts) -> Advice:
    why = (
        f"{facts.container} dies of SIGSEGV (exit code 139) in image "
        f"{facts.image or '(unknown)'}: native code crashed, usually a native library or build "
        "mismatch in the image."
    )
    undo = _rollout_undo(facts, why)
    if undo:
        return undo
    command = f"kubectl rollout history {_workload_ref(facts.target)}"
    if facts.target.kind not in _UNDOABLE:
        command = (
            f"kubectl logs {facts.pod or facts.target.name} -n {facts.target.namespace} "
            f"-c {facts.container} --previous"
        )
    proposal = recommendation(
        summary=(
            f"{why} Go back to the last image that worked (see the rollout history) and rebuild; "
            "the crash site is in the previous log."
        ),
        command=command,
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _application_error(facts: CrashLoopFacts) -> Advice:
    if facts.detail == "sigkill":
        return _killed(facts)
    code = f"exit code {facts.exit_code}" if facts.exit_code is not None else "no exit code"
    said = f" after logging: {facts.headline}" if facts.headline else ""
    why = f"{facts.container} exits with {code}{said}."
    undo = _rollout_undo(facts, why)
    if undo:
        return undo
    proposal = recommendation(
        summary=(
            f"{why} The application itself fails at start-up: fix that error in the application "
            "or its configuration, then roll out a new image."
        ),
        command=(
            f"kubectl logs {facts.pod or facts.target.name} -n {facts.target.namespace} "
            f"-c {facts.container} --previous --tail=200"
        ),
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _killed(facts: CrashLoopFacts) -> Advice:
    """SIGKILL (137) without OOMKilled and without probe events: something outside the app."""
    ran = f" after {facts.runtime_seconds:.0f}s" if facts.runtime_seconds is not None else ""
    pod = facts.pod or facts.target.name
    proposal = recommendation(
        summary=(
            f"{facts.container} was killed with SIGKILL (exit code 137){ran}, yet not OOMKilled "
            "and with no liveness-probe events: look at the node (memory pressure, a parent "
            "cgroup's OOM kill in the kernel log), a preStop hook or grace period that ran out, "
            "or probe events that have expired."
        ),
        command=f"kubectl describe pod {pod} -n {facts.target.namespace}",
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope()


# --- the workload's spec and the cluster around it --------------------------------------------


def _startup_settings(probe: dict[str, Any], runtime: float | None) -> tuple[int, int]:
    """(periodSeconds, failureThreshold) of a startupProbe that gives the app at least
    `_STARTUP_BUDGET_SECONDS`, and four times as long as it ran before it was killed."""
    period = max(1, int_field(probe, "periodSeconds", 10))
    budget = max(_STARTUP_BUDGET_SECONDS, 4 * (runtime or 0))
    return period, math.ceil(budget / period)


def _liveness(facts: CrashLoopFacts) -> Advice:
    """A startupProbe (with the liveness probe's own check) that gives start-up time, or a
    larger budget on the probe that killed it; a longer timeout when the probe timed out."""
    spec = facts.container_spec
    live, startup = as_dict(spec.get("livenessProbe")), as_dict(spec.get("startupProbe"))
    probe = startup if facts.startup_probe_kill else live
    period, threshold = _startup_settings(probe or live, facts.runtime_seconds)
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
    proposal = recommendation(
        summary=(
            f"The kubelet restarts {facts.container} because its {probe_name} fails before the "
            f"app is ready: {what}.{_not_patchable(facts)}"
        ),
        patch=_template_patch(facts, fields),
        rollback=_patch_rollback(facts),
        validation=f'{_validation(facts)} No new "failed liveness probe" Killing events.',
    )
    return proposal, ChangeScope(touches=frozenset({Touch.PROBES}))


def _missing_configuration(facts: CrashLoopFacts) -> Advice:
    """Set the variable from the ConfigMap key it was likely renamed to, create the missing
    ConfigMap/Secret (key), or mount the missing file; in that order of certainty."""
    key = facts.subject
    env = ChangeScope(touches=frozenset({Touch.ENV}))
    if key and facts.near_key and facts.detail == "missing key":
        config_map, near = facts.near_key
        source = {"configMapKeyRef": {"name": config_map, "key": near}}
        proposal = recommendation(
            summary=(
                f"{key} is not set, and ConfigMap {config_map} has {near}, which looks like the "
                f"same setting under another name: set {key} from it (or rename the key in the "
                f"ConfigMap).{_not_patchable(facts)}"
            ),
            patch=_template_patch(facts, {"env": [{"name": key, "valueFrom": source}]}),
            rollback=_patch_rollback(facts),
            validation=_validation(facts),
        )
        return proposal, env
    refs = sorted(facts.missing_refs, key=lambda r: (not r.optional, r.kind != "ConfigMap"))
    if refs:
        return _create_reference(facts, refs[0], key), env
    ns = facts.target.namespace
    if facts.detail == "missing file":
        directory = posixpath.dirname(key or "") or "its directory"
        proposal = recommendation(
            summary=(
                f"{key or 'A configuration file'} does not exist in the container: mount the "
                f"ConfigMap or Secret that holds it at {directory} (a volume and a volumeMount), "
                "or fix the path the app is given."
            ),
            command=f"kubectl get {_workload_ref(facts.target)} -o jsonpath='{_VOLUMES}'",
            rollback=_INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope(touches=frozenset({Touch.VOLUMES}))
    name = _shell_word(key) or "KEY"
    set_env = f"kubectl set env {_workload_ref(facts.target)} -c {facts.container}"
    proposal = recommendation(
        summary=(
            f"{key or 'A required setting'} is not given to {facts.container} in {ns}: set it "
            "from the ConfigMap or Secret that holds it (env valueFrom), or add it to the "
            "ConfigMap that its envFrom reads."
        ),
        command=f"{set_env} {name}=<value>",
        rollback=f"{set_env} {name}-",
        validation=_validation(facts),
    )
    return proposal, env


def _create_reference(facts: CrashLoopFacts, ref: ConfigRef, key: str | None) -> Recommendation:
    ns = facts.target.namespace
    value_key = _shell_word(ref.key or key) or "KEY"
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
    return recommendation(
        summary=(
            f"The pod references {ref.describe()}. Create it with the value the app expects, "
            "then restart the pods."
        ),
        command=command,
        rollback=rollback,
        validation=_validation(facts),
    )


def _dependency(facts: CrashLoopFacts) -> Advice:
    """Restore or inspect the dependency; the crash-looping workload itself is not changed."""
    dep = facts.dependency
    ns = facts.target.namespace
    logs = f"kubectl logs {facts.pod or facts.target.name} -n {ns} -c {facts.container} --previous"
    if dep is None:
        proposal = recommendation(
            summary=(
                f"{facts.container} exits because a dependency it connects to at start-up is "
                "unreachable, and the log does not say which: read it in full."
            ),
            command=logs,
            rollback=_INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope()
    target = facts.target
    unchanged = (
        f"Nothing in {target.kind} {target.name} needs to change: it recovers by itself once "
        f"{dep.target} answers."
    )
    lead = f"{facts.container} cannot reach {dep.target}: {dep.sentence()}."
    if dep.scaled_to_zero is not None:
        kind, name = dep.scaled_to_zero
        scale = f"kubectl scale {kind.lower()}/{name} -n {dep.namespace}"
        proposal = recommendation(
            summary=(
                f"{lead} Scale {kind} {name} back up (to the replica count it normally runs). "
                f"{unchanged}"
            ),
            command=f"{scale} --replicas=1",
            rollback=f"{scale} --replicas=0",
            validation=(
                f"`kubectl get endpoints {dep.service} -n {dep.namespace}` lists a ready "
                f"address; then {_validation(facts)}"
            ),
        )
        # Scaling another team's workload changes how it runs: a human decides.
        return proposal, ChangeScope(touches=frozenset({Touch.DEPLOY_STRATEGY}))
    command, advice = _inspect_dependency(dep, ns, logs)
    proposal = recommendation(
        summary=f"{lead} {advice} {unchanged}",
        command=command,
        rollback=_INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope()


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
    peer = _shell_word(dep.host or dep.ip)
    if dep.scope in {"external", "ip"} and peer and dep.port:
        return (
            (
                f"kubectl run net-check -n {ns} --rm -i --restart=Never --image=busybox:1.36 -- "
                f"nc -zv -w 5 {peer} {dep.port}"
            ),
            "Check that it resolves and accepts connections from the cluster (DNS, NetworkPolicy).",
        )
    return logs, "Find which dependency the app could not reach and restore it."
