"""What the CrashLoopBackOff runbook recommends for each root cause, how to undo it, how to tell
it worked, and the `ChangeScope` the escalation policy judges it by.

Where the fault is in the image or the process (a missing or non-executable command, a segfault,
an application error, a process that exits 0), the fastest fix is the revision that last worked,
when there is one; otherwise a command that shows what is wrong. Where it is in the workload's
spec, a strategic merge patch of the one container (a startupProbe's budget, a liveness timeout,
an env var) or of its pod (the nodes' architecture it may run on); where it is in the cluster
around it (a missing ConfigMap or Secret, a credential a dependency refuses, a dependency without
ready endpoints), a command on that object, never a patch on the crash-looping workload.
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
from kubetriage.k8s.owners import TEMPLATED_KINDS, UNDOABLE_KINDS, WorkloadRef
from kubetriage.models import Category, Patch, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, recommendation, strategic_patch
from kubetriage.playbooks.crashloop.reads import (
    Architectures,
    ConfigFile,
    ConfigRef,
    CredentialSource,
    DependencyCheck,
    RevisionChange,
    probe_window,
)
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

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
    keys: list[str] = field(default_factory=list)  # every setting the log says is missing
    config_files: list[ConfigFile] = field(default_factory=list)
    uncaptured_refs: list[ConfigRef] = field(default_factory=list)  # not in the snapshot
    credentials: list[CredentialSource] = field(default_factory=list)
    credential_quote: str | None = None
    credential_kind: str = "API"
    arches: Architectures | None = None
    probe_said: str | None = None  # what the failing probe's Unhealthy event says
    had_started: bool = False  # it passed its probe before the liveness probe killed it
    stall: str | None = None  # the log line saying the process stalled
    address_sources: list[str] = field(default_factory=list)  # env vars that may hold an address


def recommend(facts: CrashLoopFacts) -> Advice:
    """The recommendation for a diagnosed crash loop, and what it touches."""
    builders: dict[Category, Callable[[CrashLoopFacts], Advice]] = {
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE: _liveness,
        Category.CRASHLOOP_STARTUP_PROBE_FAILURE: _startup,
        Category.CRASHLOOP_WRONG_ARCHITECTURE: _architecture,
        Category.CRASHLOOP_INVALID_CREDENTIALS: _credentials,
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
    if target.kind in UNDOABLE_KINDS:
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
    if target.kind not in TEMPLATED_KINDS:
        return None
    key = "initContainers" if facts.init else "containers"
    body = {"spec": {"template": {"spec": {key: [{"name": facts.container, **fields}]}}}}
    return strategic_patch(target, body)


def _patch_rollback(facts: CrashLoopFacts) -> str:
    """How to undo a template patch."""
    if facts.target.kind in UNDOABLE_KINDS:
        undo = f"kubectl rollout undo {_workload_ref(facts.target)}"
        return f"{undo} (back to the template before the patch)"
    return "Re-apply the previous manifest of the workload."


def _not_patchable(facts: CrashLoopFacts) -> str:
    """A note for kinds whose pod template is immutable (bare Pods, Jobs); "" otherwise."""
    kind = facts.target.kind
    if kind in TEMPLATED_KINDS:
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
        rollback=INSPECT_ONLY,
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
            rollback=INSPECT_ONLY,
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
        rollback=INSPECT_ONLY,
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
    if facts.target.kind not in UNDOABLE_KINDS:
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
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _application_error(facts: CrashLoopFacts) -> Advice:
    if facts.detail == "sigkill":
        return _killed(facts)
    code = f"exit code {facts.exit_code}" if facts.exit_code is not None else "no exit code"
    said = f" after logging: {facts.headline.rstrip('.')}" if facts.headline else ""
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
        rollback=INSPECT_ONLY,
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
        rollback=INSPECT_ONLY,
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
    """What the liveness kill calls for: a path the app serves when the probe gets 404, a
    tolerant timeout and the stall fixed when the app had started and then stopped answering,
    the app's own failure when its health check answers 5xx after it ran; only a start that is
    slower than the probe allows gets a startupProbe."""
    spec = facts.container_spec
    live = as_dict(spec.get("livenessProbe"))
    status = re.search(r"statuscode: (\d+)", facts.probe_said or "")
    code = int(status[1]) if status else None
    if code is not None and 400 <= code < 500:
        return _probe_path(facts, live, code)
    if facts.had_started:
        return _stalled(facts, live, code)
    period, threshold = _startup_settings(live, facts.runtime_seconds)
    timeout = int_field(live, "timeoutSeconds", 1)
    longer = max(timeout, 5)
    fields: dict[str, Any]
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
    proposal = recommendation(
        summary=(
            f"The kubelet restarts {facts.container} because its livenessProbe fails before the "
            f"app is ready: {what}.{_not_patchable(facts)}"
        ),
        patch=_template_patch(facts, fields),
        rollback=_patch_rollback(facts),
        validation=f'{_validation(facts)} No new "failed liveness probe" Killing events.',
    )
    return proposal, ChangeScope(touches=frozenset({Touch.PROBES}))


def _probe_target(probe: dict[str, Any]) -> str:
    http = as_dict(probe.get("httpGet"))
    return f"{http.get('path') or '/'} on port {http.get('port')}" if http else "its check"


def _probe_path(facts: CrashLoopFacts, probe: dict[str, Any], code: int) -> Advice:
    """The app answers the probe, with 4xx: the path (or port) is wrong, and no budget helps."""
    query = "{.spec.template.spec.containers[*].livenessProbe}"
    proposal = recommendation(
        summary=(
            f"The kubelet restarts {facts.container} because its livenessProbe gets HTTP {code} "
            f"from {_probe_target(probe)}: the app answers, but not on that path. Point "
            "livenessProbe.httpGet.path (and port) at an endpoint the app serves, or serve that "
            "path in the app; more time before or between checks would not change the answer."
        ),
        command=f"kubectl get {_workload_ref(facts.target)} -o jsonpath='{query}'",
        rollback=INSPECT_ONLY,
        validation=f'{_validation(facts)} No new "failed liveness probe" Killing events.',
    )
    return proposal, ChangeScope(touches=frozenset({Touch.PROBES}))


def _stalled(facts: CrashLoopFacts, probe: dict[str, Any], code: int | None) -> Advice:
    """The app had started and ran, then stopped answering its liveness probe: the stall (or
    the failing health check) is the fault; a timeout that outlasts a short stall keeps the
    kubelet from making it worse."""
    ran = f"ran {facts.runtime_seconds:.0f}s and " if facts.runtime_seconds is not None else ""
    stall = f" The log says: {facts.stall}." if facts.stall else ""
    timeout = int_field(probe, "timeoutSeconds", 1)
    if facts.detail == "timeout" and timeout < 5:
        fields = {"livenessProbe": {"timeoutSeconds": 5}}
        proposal = recommendation(
            summary=(
                f"{facts.container} {ran}had passed its liveness probe before it stopped "
                f"answering within {timeout}s: the process stalls while it runs (an event loop "
                f"or a runtime pause blocked by work), it did not start slowly.{stall} Raise the "
                f"liveness probe's timeoutSeconds from {timeout} to 5 so a short stall does not "
                "restart it, and move the blocking work off the event loop (or give it the CPU "
                f"it waits for).{_not_patchable(facts)}"
            ),
            patch=_template_patch(facts, fields),
            rollback=_patch_rollback(facts),
            validation=f'{_validation(facts)} No new "failed liveness probe" Killing events.',
        )
        return proposal, ChangeScope(touches=frozenset({Touch.PROBES}))
    answered = f"HTTP {code}" if code is not None else "a failure"
    pod = facts.pod or facts.target.name
    proposal = recommendation(
        summary=(
            f"{facts.container} {ran}had started (it passed its probes) when its health check "
            f"began to answer {answered}: the app reports itself unhealthy while it runs.{stall} "
            "Fix what its health check finds failing (its log says what), or keep checks of "
            "other services out of the liveness endpoint; a longer start-up allowance would "
            "change nothing."
        ),
        command=(
            f"kubectl logs {pod} -n {facts.target.namespace} -c {facts.container} --previous "
            "--tail=200"
        ),
        rollback=INSPECT_ONLY,
        validation=f'{_validation(facts)} No new "failed liveness probe" Killing events.',
    )
    return proposal, ChangeScope()


def _startup(facts: CrashLoopFacts) -> Advice:
    """A larger startup budget (failureThreshold x periodSeconds) for an app that starts slower
    than its startupProbe allows; never the liveness probe, which only begins after it."""
    probe = as_dict(facts.container_spec.get("startupProbe"))
    status = re.search(r"statuscode: (\d+)", facts.probe_said or "")
    if status and 400 <= int(status[1]) < 500:
        return _probe_path(facts, probe, int(status[1]))
    _, timeout, period, threshold, window = probe_window(probe)
    period, wanted = _startup_settings(probe, facts.runtime_seconds)
    fields: dict[str, Any] = {"startupProbe": {"failureThreshold": max(wanted, threshold)}}
    what = (
        f"raise the startupProbe's failureThreshold from {threshold} to {max(wanted, threshold)} "
        f"(every {period}s: {period * max(wanted, threshold)}s to start)"
    )
    if facts.detail == "timeout" and timeout < 5:
        fields["startupProbe"]["timeoutSeconds"] = 5
        what += f", and its timeoutSeconds from {timeout} to 5 (the probe timed out)"
    proposal = recommendation(
        summary=(
            f"The kubelet restarts {facts.container} because its startupProbe gives up after "
            f"{window}s, before the app has started: {what}. A startupProbe costs nothing once "
            f"it passes, and the liveness probe only begins then.{_not_patchable(facts)}"
        ),
        patch=_template_patch(facts, fields),
        rollback=_patch_rollback(facts),
        validation=f'{_validation(facts)} No new "failed startup probe" Killing events.',
    )
    return proposal, ChangeScope(touches=frozenset({Touch.PROBES}))


def _architecture(facts: CrashLoopFacts) -> Advice:
    """Pin the pods to the architecture the image runs on, until it is built for the others."""
    arches = facts.arches or Architectures()
    failing = sorted(arches.failing)
    running = sorted(a for a in arches.running if a not in arches.failing)
    platforms = ",".join(f"linux/{a}" for a in sorted({*failing, *running}) if a != "unknown")
    build = (
        f"publish the image for every architecture of the cluster (docker buildx build "
        f"--platform {platforms} ...)"
        if platforms
        else "publish the image for the nodes' architecture"
    )
    image = facts.image or "the image"
    if len(running) == 1 and facts.target.kind in TEMPLATED_KINDS:
        arch = running[0]
        fields = {"spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/arch": arch}}}}}
        proposal = recommendation(
            summary=(
                f"{image} does not run on {' or '.join(failing)} nodes (exec format error) and "
                f"runs on {arch} nodes: schedule {facts.container}'s pods on {arch} nodes only "
                f"(nodeSelector kubernetes.io/arch={arch}) until you {build}. The {arch} nodes "
                "must have room for every replica."
            ),
            patch=strategic_patch(facts.target, fields),
            rollback=_patch_rollback(facts),
            validation=(
                f"`kubectl get pods -n {facts.target.namespace} -o wide` shows the new pods on "
                f"{arch} nodes; then {_validation(facts)}"
            ),
        )
        return proposal, ChangeScope(touches=frozenset({Touch.SCHEDULING}))
    proposal = recommendation(
        summary=(
            f"{image} does not run on the {' or '.join(failing) or 'cluster'}'s nodes (exec "
            f"format error), and no node of another architecture runs it: {build}, or use an "
            "image built for them. The command lists the platforms the image has."
            + _not_patchable(facts)
        ),
        command=f"docker buildx imagetools inspect {_shell_word(facts.image) or '<image>'}",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _credentials(facts: CrashLoopFacts) -> Advice:
    """Correct the credential the dependency refuses, where it comes from (a Secret key, names
    only); the crash-looping workload itself does not change."""
    ns = facts.target.namespace
    dep = facts.dependency
    named = dep is not None and (dep.host or dep.ip)
    peer = dep.target if dep is not None and named else f"its {facts.credential_kind}"
    said = f" ({facts.credential_quote})" if facts.credential_quote else ""
    lead = f"{peer} answers and refuses the credential {facts.container} sends{said}."
    restart = (
        f"The crash-looping container reads it again at its next restart (env and files from a "
        f"Secret are read at container start): nothing in {facts.target.kind} "
        f"{facts.target.name} needs to change."
    )
    source = facts.credentials[0] if facts.credentials else None
    access = ChangeScope(touches=frozenset({Touch.SECRET}))
    if source is not None and source.kind == "secret-key" and _shell_word(source.key):
        key = str(source.key)
        secret = f"secret {source.secret} -n {ns}"
        patch = json.dumps(
            [{"op": "replace", "path": f"/data/{key}", "value": "<base64 of the right value>"}],
            separators=(",", ":"),
        )
        escaped = key.replace(".", "\\\\.")
        proposal = recommendation(
            summary=(
                f"{lead} It comes from {source.describe()}: set that key to the value the "
                f"{facts.credential_kind} expects (or reset the server's password to the one in "
                f"the Secret). {restart}"
            ),
            command=f"kubectl patch {secret} --type json -p '{patch}'",
            rollback=(
                f"Keep the current value before the change (kubectl get {secret} -o "
                f"jsonpath='{{.data.{escaped}}}' > {key}.b64) and patch it back the same way."
            ),
            validation=_validation(facts),
        )
        return proposal, access
    if source is not None and source.secret:
        proposal = recommendation(
            summary=(
                f"{lead} It likely comes from {source.describe()}: correct the key that holds "
                f"it (the command lists the Secret's keys and sizes, never values). {restart}"
            ),
            command=f"kubectl describe secret {source.secret} -n {ns}",
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, access
    where = f" It is set by {source.describe()}." if source is not None else ""
    proposal = recommendation(
        summary=(
            f"{lead}{where} Give the container the right credential, from a Secret "
            "(env valueFrom.secretKeyRef), not as a plain value in the pod spec."
        ),
        command=f"kubectl get {_workload_ref(facts.target)} -o yaml",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, access


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
    if facts.uncaptured_refs and facts.detail == "missing key":
        ref = facts.uncaptured_refs[0]
        proposal = recommendation(
            summary=(
                f"{key} should come from {ref.kind} {ref.name}"
                + (f" key {ref.key}" if ref.key else "")
                + ", which this snapshot did not capture: check that it exists and has the key "
                "(the command shows it), then create or fix it."
            ),
            command=f"kubectl get {ref.kind.lower()} {ref.name} -n {ns} -o yaml",
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, env
    keys = facts.keys or ([key] if key else [])
    if keys and facts.detail == "missing key" and not all(_ENV_NAME.fullmatch(k) for k in keys):
        return _settings_in_file(facts, keys), env
    if facts.detail == "missing file":
        directory = posixpath.dirname(key or "") or "its directory"
        proposal = recommendation(
            summary=(
                f"{key or 'A configuration file'} does not exist in the container: mount the "
                f"ConfigMap or Secret that holds it at {directory} (a volume and a volumeMount), "
                "or fix the path the app is given."
            ),
            command=f"kubectl get {_workload_ref(facts.target)} -o jsonpath='{_VOLUMES}'",
            rollback=INSPECT_ONLY,
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


_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_SECRET_SETTING = re.compile(r"secret|password|passwd|token|credential|private|key$", re.I)


def _settings_in_file(facts: CrashLoopFacts, keys: list[str]) -> Recommendation:
    """Settings named as a file or flag names them (client-id, database.url), not as an env
    var: they go into the configuration file the app reads, and a credential into a Secret."""
    ns = facts.target.namespace
    listed = keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"
    plain = [k for k in keys if not _SECRET_SETTING.search(k)]
    secret = [k for k in keys if _SECRET_SETTING.search(k)]
    secret_text = ""
    if secret:
        secret_text = (
            f" Keep {', '.join(secret)} out of the ConfigMap: give it from a Secret (mounted as "
            "a file, or as an env var from valueFrom.secretKeyRef)."
        )
    source = next((f for f in facts.config_files if f.kind == "ConfigMap"), None)
    if source is not None:
        copy = f"{source.name}.configmap.yaml"
        return recommendation(
            summary=(
                f"{listed} {'is' if len(keys) == 1 else 'are'} not set in the configuration "
                f"{facts.container} reads, {source.describe()}: add "
                f"{', '.join(plain) or 'them'} there, named as that file names its settings."
                f"{secret_text}"
            ),
            command=f"kubectl edit configmap {source.name} -n {ns}",
            rollback=(
                f"Save it before the edit (kubectl get configmap {source.name} -n {ns} -o yaml > "
                f"{copy}) and put it back with kubectl apply -f {copy}."
            ),
            validation=_validation(facts),
        )
    where = f" It is given {facts.config_files[0].describe()}." if facts.config_files else ""
    return recommendation(
        summary=(
            f"{listed} {'is' if len(keys) == 1 else 'are'} not set: the names are those of a "
            f"configuration file or command-line flags, not env vars.{where} Set them where "
            f"{facts.container} reads its configuration (its args, or the file it is given)."
            f"{secret_text}"
        ),
        command=f"kubectl get {_workload_ref(facts.target)} -o yaml",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


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
            rollback=INSPECT_ONLY,
            validation=_validation(facts),
        )
        return proposal, ChangeScope()
    target = facts.target
    unchanged = (
        f"Nothing in {target.kind} {target.name} needs to change: it recovers by itself once "
        f"{dep.target} answers."
        if target.kind != "Job"
        # A Job that has failed is not restarted by anyone: it must be run again.
        else f"Nothing in Job {target.name} needs to change, but once it has failed it does "
        f"not run again by itself when {dep.target} answers."
    )
    lead = f"{facts.container} cannot reach {dep.target}: {dep.sentence(pronoun=True)}."
    if dep.relabel is not None and dep.service and dep.namespace:
        return _select_again(facts, dep, lead, unchanged)
    if dep.scope == "pod":
        return _through_service(facts, dep, lead, unchanged)
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
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope()


def _select_again(facts: CrashLoopFacts, dep: DependencyCheck, lead: str, unchanged: str) -> Advice:
    """A Service whose selector nearly matches a workload's pods: select them again."""
    assert dep.relabel is not None
    kind, name, values = dep.relabel
    old = {k: dep.selector[k] for k in values if k in dep.selector}
    patch = json.dumps({"spec": {"selector": values}}, separators=(",", ":"))
    undo = json.dumps({"spec": {"selector": old}}, separators=(",", ":"))
    service = f"service {dep.service} -n {dep.namespace}"
    proposal = recommendation(
        summary=(
            f"{lead} Make Service {dep.service} select {kind} {name}'s pods again (or label the "
            f"pods as the selector expects, if the Service is right). {unchanged}"
        ),
        command=f"kubectl patch {service} -p '{patch}'",
        rollback=f"kubectl patch {service} -p '{undo}'",
        validation=(
            f"`kubectl get endpointslices -n {dep.namespace} -l kubernetes.io/service-name="
            f"{dep.service}` lists ready endpoints; then {_validation(facts)}"
        ),
    )
    # Re-pointing another team's Service changes what it serves: a human decides.
    return proposal, ChangeScope(touches=frozenset({Touch.DEPLOY_STRATEGY}))


def _through_service(
    facts: CrashLoopFacts, dep: DependencyCheck, lead: str, unchanged: str
) -> Advice:
    """The app dials a pod's IP: it should dial the Service in front of it, on its port."""
    service = dep.selected_by[0] if dep.selected_by else None
    where = (
        f"Service {service[0]} ({dep.namespace}), port {', '.join(map(str, service[1]))}"
        if service
        else f"a Service in front of pod {dep.pod}"
    )
    given = (
        f" The address likely comes from {', '.join(facts.address_sources)}."
        if facts.address_sources
        else ""
    )
    command = (
        f"kubectl get service {service[0]} -n {dep.namespace} -o wide"
        if service
        else f"kubectl get pod {dep.pod} -n {dep.namespace} -o wide"
    )
    proposal = recommendation(
        summary=(
            f"{lead} Point {facts.container} at {where} instead of a pod's IP (a pod's IP "
            f"changes whenever the pod is recreated), on the port it serves.{given}"
        ),
        command=command,
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches=frozenset({Touch.ENV}))


def _inspect_dependency(dep: DependencyCheck, ns: str, logs: str) -> tuple[str, str]:
    """A command that looks at the dependency, and what to do with what it shows."""
    if dep.state == "no-ready-endpoints":
        describe = f"kubectl describe endpoints {dep.service} -n {dep.namespace}"
        selector = ",".join(f"{k}={v}" for k, v in sorted(dep.selector.items()))
        if selector:
            describe = f"kubectl get pods -n {dep.namespace} -l {selector} -o wide && {describe}"
        if dep.not_ready_pods:
            describe = (
                f"kubectl get pods -n {dep.namespace} -l {selector} -o wide && kubectl describe "
                f"pod {dep.not_ready_pods[0]} -n {dep.namespace}"
                if selector
                else f"kubectl describe pod {dep.not_ready_pods[0]} -n {dep.namespace}"
            )
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
