"""What the CrashLoopBackOff runbook recommends for each root cause. Where the fault is in the
image or the process (a missing or non-executable command, a segfault, an application error, a
process that exits 0), the fastest fix is the revision that last worked, when there is one;
otherwise a command that shows what is wrong. Fixes in the workload's spec or its dependencies
are in `_crashloop_advice_cluster`. Each comes with how to undo it, how to tell it worked, and
the `ChangeScope` the escalation policy judges it by.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

from kubetriage.models import Category, Recommendation
from kubetriage.playbooks._crashloop_advice_base import (
    INSPECT_ONLY,
    UNDOABLE,
    Advice,
    Facts,
    redacted,
    rollout_undo,
    run_in_image,
    shell_word,
    validation,
    workload_ref,
)
from kubetriage.playbooks._crashloop_advice_cluster import (
    dependency,
    liveness,
    missing_configuration,
)
from kubetriage.policy import ChangeScope, Touch


def recommend(facts: Facts) -> Advice:
    """The recommendation for a diagnosed crash loop, and what it touches."""
    builders: dict[Category, Callable[[Facts], Advice]] = {
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE: liveness,
        Category.CRASHLOOP_MISSING_CONFIGURATION: missing_configuration,
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE: dependency,
        Category.CRASHLOOP_EXITED_IMMEDIATELY: _exited,
        Category.CRASHLOOP_COMMAND_NOT_FOUND: _command_not_found,
        Category.CRASHLOOP_PERMISSION_DENIED: _permission_denied,
        Category.CRASHLOOP_SEGFAULT: _segfault,
    }
    recommendation, scope = builders.get(facts.category, _application_error)(facts)
    return redacted(recommendation), scope


# --- per category ------------------------------------------------------------------------------


def _command_not_found(facts: Facts) -> Advice:
    subject = facts.subject or "the container's command"
    where = ""
    if facts.subject and not facts.subject.startswith("/") and "/" in facts.subject:
        workdir = facts.container_spec.get("workingDir")
        base = f"workingDir {workdir}" if workdir else "the image's WORKDIR"
        where = f" It is a relative path, resolved against {base}."
    why = f"{subject} does not exist in image {facts.image or '(unknown)'}.{where}"
    undo = rollout_undo(facts, why)
    if undo:
        return undo
    word = shell_word(facts.subject)
    check = None
    if word:
        check = run_in_image(facts, "cmd-check", f"sh -c {shlex.quote(f'ls -l {word}')}")
    recommendation = Recommendation(
        summary=(
            f"{why} Point the container's command at a path that exists in the image, or "
            "rebuild the image with it; the command lists what the image has."
        ),
        command=check or f"kubectl get {workload_ref(facts.target)} -o yaml",
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.COMMAND, Touch.IMAGE}))


_FILE_ADVICE = {
    "file": "The process may not write {s}: set the pod's securityContext.fsGroup to the group "
    "that owns the volume, mount a writable emptyDir there, or fix the ownership in the image.",
    "read-only": "{s} is on a read-only filesystem (readOnlyRootFilesystem): mount a writable "
    "emptyDir at that directory.",
    "bind": "Binding {s} needs root or NET_BIND_SERVICE: listen on a port >= 1024 (and point the "
    "Service's targetPort at it) or add that capability.",
}


def _permission_denied(facts: Facts) -> Advice:
    subject = facts.subject or "a file"
    if facts.detail in _FILE_ADVICE:
        query = "{.spec.template.spec.securityContext}"
        recommendation = Recommendation(
            summary=_FILE_ADVICE[facts.detail].format(s=subject),
            command=f"kubectl get {workload_ref(facts.target)} -o jsonpath='{query}'",
            rollback=INSPECT_ONLY,
            validation=validation(facts),
        )
        return recommendation, ChangeScope(touches=frozenset({Touch.SECURITY_CONTEXT}))
    code = f" (exit code {facts.exit_code})" if facts.exit_code is not None else ""
    why = f"{subject} is not executable in image {facts.image or '(unknown)'}{code}."
    undo = rollout_undo(facts, why)
    if undo:
        return undo
    word = shell_word(facts.subject)
    check = run_in_image(facts, "perm-check", f"ls -l {word}") if word else None
    recommendation = Recommendation(
        summary=(
            f"{why} Rebuild the image with the file executable (RUN chmod +x {subject}), or run "
            f'it through its interpreter (command: ["/bin/sh", "{subject}"]).'
        ),
        command=check or f"kubectl get {workload_ref(facts.target)} -o yaml",
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.IMAGE, Touch.COMMAND}))


def _exited(facts: Facts) -> Advice:
    target = facts.target
    why = (
        f"{facts.container} exits with code 0 after {facts.runtime_seconds or 0:.0f}s: it "
        f"finishes its work, but a {target.kind} restarts whatever ends."
    )
    undo = rollout_undo(facts, why)
    if undo:
        return undo
    spec = facts.container_spec
    argv = [str(a) for a in (spec.get("command") or []) + (spec.get("args") or [])]
    run = f" -- {shlex.join(argv)}" if argv else ""
    recommendation = Recommendation(
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
    return recommendation, ChangeScope(touches=frozenset({Touch.DEPLOY_STRATEGY}))


def _segfault(facts: Facts) -> Advice:
    why = (
        f"{facts.container} dies of SIGSEGV (exit code 139) in image "
        f"{facts.image or '(unknown)'}: native code crashed, usually a native library or build "
        "mismatch in the image."
    )
    undo = rollout_undo(facts, why)
    if undo:
        return undo
    command = f"kubectl rollout history {workload_ref(facts.target)}"
    if facts.target.kind not in UNDOABLE:
        command = (
            f"kubectl logs {facts.pod or facts.target.name} -n {facts.target.namespace} "
            f"-c {facts.container} --previous"
        )
    recommendation = Recommendation(
        summary=(
            f"{why} Go back to the last image that worked (see the rollout history) and rebuild; "
            "the crash site is in the previous log."
        ),
        command=command,
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _application_error(facts: Facts) -> Advice:
    if facts.detail == "sigkill":
        return _killed(facts)
    code = f"exit code {facts.exit_code}" if facts.exit_code is not None else "no exit code"
    said = f" after logging: {facts.headline}" if facts.headline else ""
    why = f"{facts.container} exits with {code}{said}."
    undo = rollout_undo(facts, why)
    if undo:
        return undo
    recommendation = Recommendation(
        summary=(
            f"{why} The application itself fails at start-up: fix that error in the application "
            "or its configuration, then roll out a new image."
        ),
        command=(
            f"kubectl logs {facts.pod or facts.target.name} -n {facts.target.namespace} "
            f"-c {facts.container} --previous --tail=200"
        ),
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.IMAGE}))


def _killed(facts: Facts) -> Advice:
    """SIGKILL (137) without OOMKilled and without probe events: something outside the app."""
    ran = f" after {facts.runtime_seconds:.0f}s" if facts.runtime_seconds is not None else ""
    pod = facts.pod or facts.target.name
    recommendation = Recommendation(
        summary=(
            f"{facts.container} was killed with SIGKILL (exit code 137){ran}, yet not OOMKilled "
            "and with no liveness-probe events: look at the node (memory pressure, a parent "
            "cgroup's OOM kill in the kernel log), a preStop hook or grace period that ran out, "
            "or probe events that have expired."
        ),
        command=f"kubectl describe pod {pod} -n {facts.target.namespace}",
        rollback=INSPECT_ONLY,
        validation=validation(facts),
    )
    return recommendation, ChangeScope()
