"""The change an engineer makes for a stuck rollout: raise the quota (or lower the requests),
set the resources admission asks for, or roll back; with its undo and how to validate it."""

from __future__ import annotations

import json
import shlex
from decimal import Decimal
from typing import Any

from kubetriage.k8s.access import KubeObject, as_dict
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.k8s.quantities import manifest_quantity
from kubetriage.k8s.selectors import match_labels_string
from kubetriage.models import Category, PatchTarget, PatchType, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, object_patch, recommendation, strategic_patch
from kubetriage.playbooks.rollout.decide import QuotaNeed, RolloutFacts
from kubetriage.playbooks.rollout.messages import AdmissionRefusal, QuotaFailure, Violation
from kubetriage.playbooks.rollout.reads import first_container, ready_text
from kubetriage.policy import ChangeScope, Touch


def advise(
    target: WorkloadRef, deployment: KubeObject | None, facts: RolloutFacts
) -> tuple[Recommendation, ChangeScope]:
    """The change that unblocks the rollout, for the cause `decide` names from these facts."""
    failure, newest, previous = facts.quota_failure, facts.newest, facts.previous
    if failure is None and facts.admission is not None:
        return admitted(target, facts, facts.admission)
    if failure is not None and failure.kind == "exceeded":
        if not facts.quota_raises:
            return quota_has_room(target, failure)
        return raise_quota(
            target,
            failure,
            facts.quota_raises,
            missing_pods=facts.missing_pods,
            lower=facts.lower_instead,
            replica_set=facts.refused_replica_set,
        )
    if failure is not None:
        return set_resources(
            target, failure, first_container(newest.replica_set if newest else None)
        )
    why = f"{facts.newest_label}: {facts.symptom_text}"
    if previous is not None and previous.number is not None:
        health = previous.healthy()
        if health is False:
            why += f"; revision {previous.number} was failing too, so rolling back may not help"
        elif health is True:
            why += f"; revision {previous.number} ran {ready_text(previous)}"
        spec = as_dict(as_dict(deployment).get("spec"))
        return rollback(
            target,
            to_revision=previous.number,
            from_revision=newest.number if newest else None,
            why=why,
            selector=match_labels_string(spec.get("selector")),
            paused=bool(spec.get("paused")),
        )
    if newest is None:
        return read_history(target)
    return fix_forward(target, why)


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
    new = {n.resource: manifest_quantity(n.resource, n.needed) for n in raises}
    old = {n.resource: manifest_quantity(n.resource, n.hard) for n in raises}
    command = f"kubectl patch resourcequota {failure.quota} -n {ns} --type=merge -p "
    # A patch of the quota, so that the apiserver checks it (dryRun=All) like any other.
    patch = object_patch(
        PatchTarget(api_version="v1", kind="ResourceQuota", name=failure.quota, namespace=ns),
        {"spec": {"hard": new}},
        PatchType.MERGE,
    )
    change = ", ".join(n.text() for n in raises)
    alternative = ""
    if lower:
        values = " and ".join(
            f"{resource} to {manifest_quantity(resource, value)}" for resource, value in lower
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
        patch=patch,
        command=None
        if patch
        else command + shlex.quote(json.dumps({"spec": {"hard": new}}, separators=(",", ":"))),
        rollback=command + shlex.quote(json.dumps({"spec": {"hard": old}}, separators=(",", ":"))),
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
        bound = manifest_quantity(resource, failure.limited[resource]) if failure.limited else "?"
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


def admitted(
    target: WorkloadRef, facts: RolloutFacts, refusal: AdmissionRefusal
) -> tuple[Recommendation, ChangeScope]:
    """What lets admission accept the pods, for each component that refuses them."""
    ns = target.namespace
    validation = f"{_status(target)}; no new FailedCreate events in {ns}."
    if refusal.category is Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE:
        backend = facts.webhook_backend
        if backend is not None and backend.scope == "service" and backend.service:
            where = backend.namespace or ns
            summary = (
                f"Bring back Service {backend.service} in namespace {where}, which admission "
                f"{refusal.component} is called at ({backend.sentence(pronoun=True)}); the "
                "ReplicaSet retries on its own. Nothing in this Deployment needs to change. "
                "If the webhook is optional, its failurePolicy Ignore keeps pods admitted while "
                "it is away."
            )
            command = (
                f"kubectl get endpointslices -n {where} "
                f"-l kubernetes.io/service-name={backend.service} -o wide"
            )
        else:
            summary = (
                f"Make admission {refusal.component} answer again ({refusal.detail}): its "
                "webhook configuration names the Service and the failurePolicy."
            )
            command = "kubectl get mutatingwebhookconfigurations,validatingwebhookconfigurations"
        return recommendation(
            summary=summary,
            command=command,
            rollback=INSPECT_ONLY,
            validation=validation,
        ), ChangeScope()
    if refusal.category is Category.ROLLOUT_POD_SECURITY_VIOLATION:
        return _pod_security(target, refusal, validation)
    if refusal.category is Category.ROLLOUT_SERVICE_ACCOUNT_MISSING:
        account = refusal.service_account or "<name>"
        return recommendation(
            summary=(
                f"Create ServiceAccount {account} in namespace {ns} (with the RoleBindings "
                "the app needs), or point the pod template's serviceAccountName at an "
                "account that exists."
            ),
            command=f"kubectl create serviceaccount {account} -n {ns}",
            rollback=f"kubectl delete serviceaccount {account} -n {ns}",
            validation=validation,
        ), ChangeScope(touches=frozenset({Touch.SERVICE_ACCOUNT}))
    return recommendation(
        summary=(
            f"Change deployment/{target.name}'s pod template so that admission "
            f"{refusal.component} accepts it ({refusal.detail}), or ask the policy's owners "
            "for an exception: the policy, not the Deployment, decides."
        ),
        command=f"kubectl get {_deployment(target).replace('/', ' ', 1)} -o yaml",
        rollback=INSPECT_ONLY,
        validation=validation,
    ), ChangeScope()


def _pod_security(
    target: WorkloadRef, refusal: AdmissionRefusal, validation: str
) -> tuple[Recommendation, ChangeScope]:
    """A patch of the container's securityContext with exactly what PodSecurity asks for,
    when every violation names one container and one value; otherwise what to set, in words."""
    fields: dict[str, dict[str, Any]] = {}
    for violation in refusal.violations:
        value = _security_value(violation)
        if violation.container is None or violation.field is None or value is None:
            fields = {}
            break
        context = fields.setdefault(violation.container, {})
        *parents, leaf = violation.field.split(".")
        for parent in parents:
            context = context.setdefault(parent, {})
        context[leaf] = value
    asks = "; ".join(v.why for v in refusal.violations) or refusal.detail
    summary = (
        f"Make deployment/{target.name}'s pods meet pod-security level {refusal.level}: {asks}."
    )
    if not fields:
        return recommendation(
            summary=summary,
            command=f"kubectl get {_deployment(target).replace('/', ' ', 1)} -o yaml",
            rollback=INSPECT_ONLY,
            validation=validation,
        ), ChangeScope()
    body = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {"name": name, "securityContext": context}
                        for name, context in sorted(fields.items())
                    ]
                }
            }
        }
    }
    content = json.dumps(body, separators=(",", ":"))
    return recommendation(
        summary=summary + " The image must run as a non-root user for runAsNonRoot to hold.",
        patch=strategic_patch(target, body),
        command=f"kubectl patch {_deployment(target)} --type strategic -p {shlex.quote(content)}",
        rollback=f"kubectl rollout undo {_deployment(target)}",
        validation=validation,
    ), ChangeScope(touches=frozenset({Touch.SECURITY_CONTEXT}))


def _security_value(violation: Violation) -> Any:
    """The JSON value PodSecurity asks for (`false`, `["ALL"]`, `RuntimeDefault`), None when it
    is not one the patch can state."""
    raw = violation.value
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw if raw.isidentifier() else None
