"""The change an engineer makes for a stuck rollout: raise the quota, or roll back."""

from __future__ import annotations

import json
import shlex
from decimal import Decimal

from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Recommendation
from kubetriage.playbooks._rollout_quota import QuotaFailure, QuotaNeed, quantity
from kubetriage.playbooks.base import recommendation
from kubetriage.policy import ChangeScope, Touch


def _deployment(target: WorkloadRef) -> str:
    return f"deployment/{target.name} -n {target.namespace}"


def _status(target: WorkloadRef) -> str:
    return f"kubectl rollout status {_deployment(target)} --timeout=10m"


def rollback(
    target: WorkloadRef,
    *,
    to_revision: int,
    from_revision: int | None,
    why: str,
    selector: str | None,
    paused: bool,
) -> tuple[Recommendation, ChangeScope]:
    """`kubectl rollout undo --to-revision`, and the undo of that undo."""
    command = f"kubectl rollout undo {_deployment(target)} --to-revision={to_revision}"
    if paused:
        # A paused Deployment refuses a rollback ("you cannot rollback a paused deployment").
        command = f"kubectl rollout resume {_deployment(target)} && {command}"
    again = (
        f"kubectl rollout undo {_deployment(target)} --to-revision={from_revision}"
        if from_revision is not None
        else f"kubectl rollout undo {_deployment(target)}"
    )
    listing = f"kubectl get rs -n {target.namespace}" + (
        f" -l {shlex.quote(selector)}" if selector else ""
    )
    return recommendation(
        summary=f"Roll deployment/{target.name} back to revision {to_revision}: {why}.",
        command=command,
        rollback=f"To roll forward again once the new revision is fixed: {again} (the rollback "
        f"re-numbers revision {to_revision} as the newest; revision {from_revision} keeps its "
        "number).",
        validation=f"{_status(target)}; then {listing} shows revision {to_revision}'s "
        "ReplicaSet fully ready and the new one scaled to 0.",
    ), ChangeScope(touches=frozenset({Touch.ROLLBACK}))


def fix_forward(target: WorkloadRef, why: str) -> tuple[Recommendation, ChangeScope]:
    """No earlier revision to roll back to: the pod-level failure must be fixed."""
    return recommendation(
        summary=f"No earlier revision of deployment/{target.name} to roll back to: {why}. "
        "Fix the pod-level failure (its own report names the change).",
        command=f"kubectl describe {_deployment(target)}",
        rollback="Nothing is changed by this recommendation.",
        validation=_status(target),
    ), ChangeScope()


def read_history(target: WorkloadRef) -> tuple[Recommendation, ChangeScope]:
    """The ReplicaSets are not readable: the history names the revision to return to."""
    return recommendation(
        summary=f"The ReplicaSets of deployment/{target.name} are not readable here: list the "
        "rollout history, then roll back to the last revision that ran "
        f"(kubectl rollout undo {_deployment(target)} --to-revision=<revision>).",
        command=f"kubectl rollout history {_deployment(target)}",
        rollback="Nothing is changed by this recommendation.",
        validation=_status(target),
    ), ChangeScope()


def raise_quota(
    target: WorkloadRef,
    failure: QuotaFailure,
    raises: list[QuotaNeed],
    *,
    missing_pods: int,
    lower: list[tuple[str, Decimal]] | None,
    replica_set: str | None,
) -> tuple[Recommendation, ChangeScope]:
    """Patch the ResourceQuota's hard values so the missing pods fit (or lower the requests)."""
    ns = target.namespace
    new = {n.resource: quantity(n.resource, n.needed) for n in raises}
    old = {n.resource: quantity(n.resource, n.hard) for n in raises}
    patch = f"kubectl patch resourcequota {failure.quota} -n {ns} --type=merge -p "
    change = ", ".join(n.text() for n in raises)
    alternative = ""
    if lower:
        values = " and ".join(
            f"{resource} to {quantity(resource, value)}" for resource, value in lower
        )
        alternative = (
            f" Or lower {target.name}'s {values} per pod (containers' sum) so that "
            "every replica fits the current quota."
        )
    events = (
        f"kubectl get events -n {ns} --field-selector reason=FailedCreate,"
        f"involvedObject.name={replica_set}"
        if replica_set
        else f"kubectl get events -n {ns} --field-selector reason=FailedCreate"
    )
    return recommendation(
        summary=f"Raise ResourceQuota {failure.quota} ({change}) so the {missing_pods} missing "
        f"pod(s) of deployment/{target.name} can be created.{alternative}",
        command=patch + shlex.quote(json.dumps({"spec": {"hard": new}}, separators=(",", ":"))),
        rollback=patch + shlex.quote(json.dumps({"spec": {"hard": old}}, separators=(",", ":"))),
        validation=f"kubectl describe resourcequota {failure.quota} -n {ns} shows used below "
        f"hard; {_status(target)}; {events} shows no new rejections.",
    ), ChangeScope(touches=frozenset({Touch.QUOTA}))


def quota_has_room(
    target: WorkloadRef, failure: QuotaFailure
) -> tuple[Recommendation, ChangeScope]:
    """The quota refused pods, but its current numbers would admit them: nothing to raise yet."""
    ns = target.namespace
    return recommendation(
        summary=f"ResourceQuota {failure.quota} refused pods of deployment/{target.name}, but its "
        "current used/hard would admit them: the ReplicaSet controller retries on its own. If "
        "FailedCreate continues, another workload is taking the room: compare the quota's users.",
        command=f"kubectl describe resourcequota {failure.quota} -n {ns}",
        rollback="Nothing is changed by this recommendation.",
        validation=f"{_status(target)}; no new FailedCreate events in {ns}.",
    ), ChangeScope()


def set_resources(
    target: WorkloadRef, failure: QuotaFailure, container: str | None
) -> tuple[Recommendation, ChangeScope]:
    """The quota demands declared resources, or a LimitRange bounds them: change the pod's."""
    ns = target.namespace
    flag = "-c " + container + " " if container else ""
    if failure.kind == "must-specify":
        summary = (
            f"ResourceQuota {failure.quota} requires every pod to declare "
            f"{failure.unspecified}: set them on deployment/{target.name}."
        )
        command = (
            f"kubectl set resources {_deployment(target)} {flag}"
            "--requests=cpu=<cpu>,memory=<memory> --limits=cpu=<cpu>,memory=<memory>"
        )
    else:
        resource = next(iter(failure.limited), "the resource")
        bound = quantity(resource, failure.limited[resource]) if failure.limited else "?"
        maximum = failure.unspecified.startswith("maximum")
        kind = "limits" if maximum else "requests"
        scope = failure.unspecified.rsplit(" ", 1)[-1]
        limit = (
            f"caps {resource} at {bound}" if maximum else f"requires at least {bound} of {resource}"
        )
        summary = (
            f"A LimitRange in {ns} {limit} per {scope}: bring "
            f"deployment/{target.name}'s {resource} {kind} within it, or change the LimitRange."
        )
        command = f"kubectl set resources {_deployment(target)} {flag}--{kind}={resource}={bound}"
    return recommendation(
        summary=summary,
        command=command,
        rollback=f"kubectl rollout undo {_deployment(target)}",
        validation=f"{_status(target)}; no new FailedCreate events in {ns}.",
    ), ChangeScope(touches=frozenset({Touch.RESOURCES}))
