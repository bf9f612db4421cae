"""What every CrashLoopBackOff recommendation is built from: the facts the investigation
established, and the shared pieces (a strategic merge patch of one container in the pod
template, a `kubectl rollout undo` to the revision that last worked, how to validate and undo).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Category, Patch, Recommendation
from kubetriage.playbooks._crashloop_checks import (
    ConfigRef,
    DependencyCheck,
    RevisionChange,
)
from kubetriage.playbooks.base import strategic_patch
from kubetriage.policy import ChangeScope, Touch
from kubetriage.redact import redact

TEMPLATED = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})
UNDOABLE = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
INSPECT_ONLY = "Nothing to undo: the command only reads."
_SAFE_WORD = re.compile(r"^[\w./:@+-]+$")

Advice = tuple[Recommendation, ChangeScope]


@dataclass
class Facts:
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


def redacted(recommendation: Recommendation) -> Recommendation:
    """The recommendation with every text redacted and bounded: each is built from cluster data
    (log subjects, commands, image names)."""
    update: dict[str, str] = {}
    for name, limit in (("summary", 1024), ("command", 2048), ("rollback", 2048),
                        ("validation", 2048)):  # fmt: skip
        value = getattr(recommendation, name)
        if isinstance(value, str):
            update[name] = _clip(redact(value), limit)
    return recommendation.model_copy(update=update)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- shared pieces -----------------------------------------------------------------------------


def workload_ref(target: WorkloadRef) -> str:
    """`kind/name -n namespace`, as kubectl takes it."""
    return f"{target.kind.lower()}/{target.name} -n {target.namespace}"


def validation(facts: Facts) -> str:
    """How to tell the crash loop is over after the change."""
    target = facts.target
    wait = ""
    if target.kind in UNDOABLE:
        wait = f"`kubectl rollout status {workload_ref(target)} --timeout=10m` completes and "
    return (
        f"{wait}`kubectl get pods -n {target.namespace}` shows {facts.container} of the new pods "
        "running with a restart count that stays put for 10 minutes; kubetriage then marks "
        "this report Resolved."
    )


def template_patch(facts: Facts, fields: dict[str, Any]) -> Patch | None:
    """A strategic merge patch of one container (merged by name) in the pod template; None for
    kinds whose template cannot be patched in place (bare Pods, Jobs)."""
    target = facts.target
    if target.kind not in TEMPLATED:
        return None
    key = "initContainers" if facts.init else "containers"
    body = {"spec": {"template": {"spec": {key: [{"name": facts.container, **fields}]}}}}
    return strategic_patch(target, body)


def patch_rollback(facts: Facts) -> str:
    """How to undo a template patch."""
    if facts.target.kind in UNDOABLE:
        undo = f"kubectl rollout undo {workload_ref(facts.target)}"
        return f"{undo} (back to the template before the patch)"
    return "Re-apply the previous manifest of the workload."


def not_patchable(facts: Facts) -> str:
    """A note for kinds whose pod template is immutable (bare Pods, Jobs); "" otherwise."""
    kind = facts.target.kind
    if kind in TEMPLATED:
        return ""
    return f" A {kind}'s pod template cannot change in place: edit the manifest and recreate it."


def rollout_undo(facts: Facts, why: str) -> Advice | None:
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
    undo = f"kubectl rollout undo {workload_ref(facts.target)}"
    rollback = "Re-apply the failing revision's manifest."
    if revision.failing_revision is not None:
        rollback = f"{undo} --to-revision={revision.failing_revision}"
    recommendation = Recommendation(
        summary=(
            f"{why} Roll back to revision {revision.good_revision} ({revision.good_replica_set}; "
            f"{known}); revision {revision.failing_revision} changed {changed}. Fix the new "
            "revision before rolling it out again."
        ),
        command=f"{undo} --to-revision={revision.good_revision}",
        rollback=rollback,
        validation=validation(facts),
    )
    return recommendation, ChangeScope(touches=frozenset({Touch.ROLLBACK}))


def shell_word(value: str | None) -> str | None:
    """`value` when it can go into a shell command as it is."""
    return value if value and _SAFE_WORD.match(value) else None


def run_in_image(facts: Facts, suffix: str, argv: str) -> str | None:
    """A throw-away pod of the container's image that runs `argv` (to look inside the image)."""
    if not facts.image:
        return None
    return (
        f"kubectl run {facts.container}-{suffix} -n {facts.target.namespace} --rm -i "
        f"--restart=Never --image={facts.image} --command -- {argv}"
    )
