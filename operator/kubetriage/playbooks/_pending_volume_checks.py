"""The Pending playbook's volume checks: the PersistentVolumeClaims an unscheduled pod waits for,
and the volumes the kubelet cannot mount for a scheduled pod stuck in ContainerCreating."""

from __future__ import annotations

import json

from kubetriage.k8s.access import name_of, pod_template
from kubetriage.k8s.events import event_count
from kubetriage.k8s.history import replica_sets_of
from kubetriage.models import Category, EvidenceSource, Recommendation
from kubetriage.playbooks import _pending_advice as advice
from kubetriage.playbooks._pending_case import Case, Finding, as_dict, events_about
from kubetriage.playbooks._pending_messages import Blocker, MountFailure, parse_mount_message
from kubetriage.playbooks._pending_storage import (
    ClaimState,
    VolumeSource,
    claims_of,
    inspect_claim,
    missing_keys,
    object_exists,
    object_sources,
)
from kubetriage.policy import ChangeScope, Touch

_MOUNT_REASONS = frozenset({"FailedMount", "FailedAttachVolume", "FailedMapVolume"})
_KIND_NAMES = {"configmap": "ConfigMap", "secret": "Secret"}
_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
_CLAIM = frozenset({Touch.PERSISTENT_VOLUME_CLAIM})

Advice = tuple[str, Recommendation, ChangeScope]


def check_claims(case: Case) -> str:
    """Read each claim the pod mounts (and any the scheduler names), its StorageClass, events."""
    ctx, inv = case.context, case.investigation
    said = case.blocked_by(Blocker.VOLUME)
    pairs = claims_of(case.pod)
    pairs += [("?", r.claim) for r in said if r.claim and r.claim not in {c for _, c in pairs}]
    if not pairs:
        if said:
            return f"The scheduler reports {said[0].text}, but the pod mounts no claim."
        return "The pod mounts no PersistentVolumeClaim."
    states = [inspect_claim(ctx.reader, ctx.namespace, volume, claim) for volume, claim in pairs]
    for state in states:
        inv.add_evidence(
            EvidenceSource.PERSISTENT_VOLUME_CLAIM,
            state.describe(),
            "\n".join(state.events) or None,
        )
        known = ", ".join(state.known_classes) or "none"
        if state.effective_class and state.class_exists is False:
            inv.add_evidence(
                EvidenceSource.STORAGE_CLASS,
                f"StorageClass {state.effective_class} does not exist (existing: {known})",
            )
        elif state.exists and state.requested_class is None and state.default_class is None:
            inv.add_evidence(
                EvidenceSource.STORAGE_CLASS,
                f"No StorageClass is marked default (existing: {known})",
            )
    problem = next((s for s in states if not s.exists or not s.bound), None)
    conflict = next((r.text for r in said if "affinity" in r.text or "zone" in r.text), None)
    if problem is None and conflict is None:
        return "Every claim is Bound: " + "; ".join(s.describe() for s in states) + "."
    if problem is None or (conflict and problem.bound):
        summary, rec, scope = _zone_conflict(case, problem or states[0], conflict or "")
    else:
        summary, rec, scope = _unbound(case, problem)
    case.claim_blocked = True
    case.findings[Category.PENDING_UNBOUND_PVC] = Finding(
        Category.PENDING_UNBOUND_PVC,
        summary,
        recommendation=rec,
        scope=scope,
        certain=problem is not None and (not problem.exists or problem.class_exists is False),
    )
    return summary + "."


def _validation(case: Case, claim: str) -> str:
    ctx = case.context
    return (
        f"kubectl get pvc {claim} -n {ctx.namespace} shows Bound; then "
        + advice.scheduled_validation(ctx)
    )


def _zone_conflict(case: Case, state: ClaimState, conflict: str) -> Advice:
    volume = state.volume_name or "<volume>"
    summary = (
        f"{case.pod_name} needs PersistentVolumeClaim {state.name}, bound to volume {volume}, "
        f"which no usable node can reach: {conflict}"
    )
    rec = advice.recommendation(
        "Give the pod a node in the volume's zone (add nodes there), or restore the data into a "
        "volume in a zone that has nodes.",
        command=f"kubectl get pv {volume} -o jsonpath='{{.spec.nodeAffinity}}'  # its zone",
        validation=_validation(case, state.name),
    )
    return summary, rec, ChangeScope(_CLAIM | {Touch.NODES})


def _unbound(case: Case, state: ClaimState) -> Advice:
    """Why a claim is missing or unbound, and the commands that fix that case."""
    ns, claim = case.context.namespace, state.name
    known = ", ".join(state.known_classes) or "none"
    phase = state.phase or "not Bound"
    size = state.size or "its size"
    validation = _validation(case, claim)
    if not state.exists:
        summary = (
            f"{case.pod_name} mounts PersistentVolumeClaim {claim} (volume {state.volume}), "
            f"which does not exist in namespace {ns}"
        )
        rec = advice.recommendation(
            f"Create PersistentVolumeClaim {claim} in {ns}, or point volume {state.volume} at the "
            "claim that holds the data.",
            command=f"kubectl get pvc -n {ns}  # then create {claim}, or fix the claimName",
            rollback=f"kubectl delete pvc {claim} -n {ns}  # only a claim created by this fix",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.VOLUMES})
    if state.effective_class and state.class_exists is False:
        summary = (
            f"PersistentVolumeClaim {claim} is {phase}: it asks for StorageClass "
            f"{state.effective_class}, which does not exist (existing: {known})"
        )
        rec = advice.recommendation(
            f"Recreate claim {claim} with an existing StorageClass ({known}): storageClassName "
            "cannot be changed, and an unbound claim holds no data. Or create StorageClass "
            f"{state.effective_class}.",
            command=f"kubectl get pvc {claim} -n {ns} -o yaml > {claim}.yaml  # set "
            f"spec.storageClassName, then: kubectl replace --force -f {claim}.yaml",
            rollback=f"kubectl replace --force -f {claim}.yaml  # the saved original",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    if state.requested_class is None and state.default_class is None:
        summary = (
            f"PersistentVolumeClaim {claim} is {phase}: it names no StorageClass and the cluster "
            f"has no default StorageClass (existing: {known}), so nothing provisions a volume"
        )
        pick = state.known_classes[0] if state.known_classes else "<class>"
        annotate = json.dumps({"metadata": {"annotations": {_DEFAULT_CLASS: "true"}}})
        command = (
            f"kubectl patch storageclass {pick} -p '{annotate}'  # since Kubernetes 1.28 the "
            f"pending claim then gets that class; or recreate {claim} with storageClassName"
        )
        if not state.known_classes:
            command = (
                "kubectl get storageclass  # none: install a provisioner with a default "
                f"StorageClass, or create a PersistentVolume matching {claim} ({size})"
            )
        rec = advice.recommendation(
            f"Give claim {claim} a StorageClass: mark an existing class default, recreate the "
            "claim with storageClassName, or provide a matching PersistentVolume.",
            command=command,
            rollback=f"kubectl annotate storageclass {pick} {_DEFAULT_CLASS}-",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    if state.requested_class == "":
        summary = (
            f'PersistentVolumeClaim {claim} is {phase}: storageClassName "" binds only to a '
            "pre-created PersistentVolume, and none matches it"
        )
        rec = advice.recommendation(
            f"Create a PersistentVolume matching {claim} ({size}, its access modes), or recreate "
            "the claim with a StorageClass that provisions volumes.",
            command=f"kubectl get pv  # an Available volume of {size} with matching access modes",
            validation=validation,
        )
        return summary, rec, ChangeScope(_CLAIM | {Touch.STORAGE_CLASS})
    provisioner = state.provisioner or "no provisioner"
    last = f"; last event: {state.events[0]}" if state.events else ""
    summary = (
        f"PersistentVolumeClaim {claim} is {phase}: StorageClass {state.effective_class} "
        f"({provisioner}) has not provisioned a volume{last}"
    )
    rec = advice.recommendation(
        f"Find why {provisioner} does not create the volume: its controller's logs, quotas, the "
        "class's parameters.",
        command=f"kubectl describe pvc {claim} -n {ns}  # then the provisioner's controller logs",
        validation=validation,
    )
    return summary, rec, ChangeScope(_CLAIM)


# --- scheduled pods stuck in ContainerCreating --------------------------------------------------


def check_mounts(case: Case) -> str:
    """Read the kubelet's FailedMount events and check the ConfigMaps/Secrets the volumes use."""
    ctx, inv = case.context, case.investigation
    names = {name_of(p) for p in case.group}
    events = [
        e
        for e in events_about(ctx.reader, ctx.namespace, "Pod", names)
        if str(e.get("reason")) in _MOUNT_REASONS
    ]
    failures = [parse_mount_message(str(e.get("message") or "")) for e in events]
    for event, failure in list(zip(events, failures, strict=True))[:3]:
        pod = as_dict(event.get("involvedObject")).get("name")
        inv.add_evidence(
            EvidenceSource.EVENTS,
            f"{event.get('reason')} (x{event_count(event)}) on {pod}: {failure.text}",
        )
    sources = object_sources(case.spec)
    missing: dict[tuple[str, str], VolumeSource | None] = {}
    for failure in failures:
        for kind, name in failure.missing:
            missing.setdefault((kind, name), _source(sources, kind, name))
    # With events, check the volumes they name; without (expired), every required reference.
    named = {v for f in failures for v in f.unmounted} | {f.volume for f in failures if f.volume}
    checked = [s for s in sources if not s.optional and (s.volume in named or not events)]
    for source in checked:
        if object_exists(ctx.reader, ctx.namespace, source.kind, source.name) is False:
            missing.setdefault((source.kind, source.name), source)
    keys = [(s, k) for s in checked for k in missing_keys(ctx.reader, ctx.namespace, s)]
    for (kind, name), referer in missing.items():
        exists = object_exists(ctx.reader, ctx.namespace, kind, name)
        state = "does not exist" if exists is False else "exists now" if exists else "is unknown"
        volume = referer.volume if referer else "?"
        inv.add_evidence(
            EvidenceSource.CONFIG_MAP if kind == "configmap" else EvidenceSource.SECRET,
            f"{_KIND_NAMES[kind]} {name} (volume {volume}) {state} in {ctx.namespace}",
        )
    for keyed, key in keys:
        inv.add_evidence(
            EvidenceSource.CONFIG_MAP,
            f"ConfigMap {keyed.name} has no key {key} (volume {keyed.volume} items)",
        )
    if not missing and not keys and not failures:
        return _no_mount_failure(case)
    summary, rec, scope = _mount_advice(case, missing, keys, failures, bool(events))
    confirmed = any(object_exists(ctx.reader, ctx.namespace, k, n) is False for k, n in missing)
    case.findings[Category.PENDING_VOLUME_MOUNT_FAILURE] = Finding(
        Category.PENDING_VOLUME_MOUNT_FAILURE,
        summary,
        corroborated=True if missing or keys else None,
        recommendation=rec,
        scope=scope,
        certain=confirmed or bool(keys),
    )
    return summary + "."


def _source(sources: list[VolumeSource], kind: str, name: str) -> VolumeSource | None:
    return next((s for s in sources if s.kind == kind and s.name == name), None)


def _no_mount_failure(case: Case) -> str:
    ctx = case.context
    names = {name_of(p) for p in case.group}
    warnings = [
        e
        for e in events_about(ctx.reader, ctx.namespace, "Pod", names)
        if e.get("type") == "Warning"
    ]
    seen = ""
    if warnings:
        seen = f"; latest warning: {warnings[0].get('reason')}: {warnings[0].get('message')}"
        case.investigation.add_evidence(EvidenceSource.EVENTS, seen.removeprefix("; latest "))
    node = case.spec.get("nodeName") or "a node"
    summary = (
        f"{case.pod_name} is bound to {node} but stuck in ContainerCreating; no FailedMount "
        f"event, and every ConfigMap/Secret its volumes use exists{seen}"
    )
    rec = advice.recommendation(
        "Look at what the kubelet waits for: the pod's events (sandbox/CNI, image, volumes).",
        command=f"kubectl describe pod {case.pod_name} -n {ctx.namespace}",
        validation=advice.running_validation(ctx),
    )
    case.findings[Category.PENDING_VOLUME_MOUNT_FAILURE] = Finding(
        Category.PENDING_VOLUME_MOUNT_FAILURE,
        summary,
        corroborated=None,
        recommendation=rec,
        scope=ChangeScope(frozenset({Touch.VOLUMES})),
    )
    return summary + "."


def _mount_advice(
    case: Case,
    missing: dict[tuple[str, str], VolumeSource | None],
    keys: list[tuple[VolumeSource, str]],
    failures: list[MountFailure],
    have_events: bool,
) -> Advice:
    ctx = case.context
    ns = ctx.namespace
    scope = ChangeScope(frozenset({Touch.VOLUMES}))
    validation = (
        f"kubectl describe pod {case.pod_name} -n {ns} shows no new FailedMount; "
        + advice.running_validation(ctx)
    )
    stuck = f"{case.pod_name} is stuck in ContainerCreating"
    if missing:
        return _missing_object_advice(case, missing, failures, have_events, validation)
    if keys:
        source, key = keys[0]
        summary = (
            f"{stuck}: volume {source.volume} asks for key {key}, not in ConfigMap {source.name}"
        )
        rec = advice.recommendation(
            f"Add key {key} to ConfigMap {source.name}, or drop it from volume {source.volume}'s "
            "items.",
            command=f"kubectl edit configmap {source.name} -n {ns}",
            validation=validation,
        )
        return summary, rec, scope
    failure = failures[0]
    volume = failure.volume or ", ".join(failure.unmounted) or "?"
    summary = f"{stuck}: the kubelet cannot mount volume {volume}: {failure.text}"
    claims = [c for v, c in claims_of(case.pod) if v == failure.volume or v in failure.unmounted]
    command = f"kubectl describe pod {case.pod_name} -n {ns}"
    if claims:
        command += f"; kubectl describe pvc {claims[0]} -n {ns}; kubectl get volumeattachments"
        scope = ChangeScope(frozenset({Touch.VOLUMES, Touch.PERSISTENT_VOLUME_CLAIM}))
    rec = advice.recommendation(
        "Fix what the kubelet reports for the volume: attachment, CSI driver, server, or a "
        "ConfigMap/Secret not yet synced to the node.",
        command=command,
        validation=validation,
    )
    return summary, rec, scope


def _missing_object_advice(
    case: Case,
    missing: dict[tuple[str, str], VolumeSource | None],
    failures: list[MountFailure],
    have_events: bool,
    validation: str,
) -> Advice:
    """Create the missing ConfigMap/Secret, or point the volume back at what an older revision
    mounted there when that object still exists."""
    ctx = case.context
    ns = ctx.namespace
    (kind, name), source = next(iter(missing.items()))
    volume = source.volume if source else next((f.volume for f in failures if f.volume), "?")
    kind_name = _KIND_NAMES[kind]
    seen = f"FailedMount on {len(case.group)} pod(s)" if have_events else "its events expired"
    summary = (
        f"{case.pod_name} is stuck in ContainerCreating: volume {volume} needs {kind_name} "
        f"{name}, which does not exist in {ns} ({seen})"
    )
    if len(missing) > 1:
        summary += "; also missing: " + ", ".join(
            f"{_KIND_NAMES[k]} {n}" for k, n in list(missing)[1:]
        )
    if kind == "configmap":
        create = f"kubectl create configmap {name} -n {ns} --from-file=<the files the app expects>"
    else:
        create = f"kubectl create secret generic {name} -n {ns} --from-file=<the key files>"
    scope = ChangeScope(frozenset({Touch.VOLUMES}))
    earlier = _earlier_reference(case, volume, kind)
    if earlier is None:
        rec = advice.recommendation(
            f"Create {kind_name} {name} in {ns} with the content the workload expects, or fix "
            f"volume {volume} to reference the {kind_name} that exists "
            f"(kubectl get {kind}s -n {ns}).",
            command=create,
            rollback=f"kubectl delete {kind} {name} -n {ns}",
            validation=validation,
        )
        return summary, rec, scope

    def ref(target: str) -> dict[str, object]:
        if kind == "configmap":
            return {"name": volume, "configMap": {"name": target}}
        return {"name": volume, "secret": {"secretName": target}}

    # volumes merge by name in a strategic merge patch: only this volume's reference changes.
    patch = advice.template_patch(ctx.target, {"volumes": [ref(earlier)]})
    rec = advice.recommendation(
        f"Point volume {volume} back at {kind_name} {earlier}, which the previous revision "
        f"mounted and which exists; or create {kind_name} {name}.",
        patch=patch,
        command=create,
        rollback=advice.patch_command(ctx.target, {"volumes": [ref(name)]}),
        validation=validation,
    )
    return summary, rec, scope


def _earlier_reference(case: Case, volume: str, kind: str) -> str | None:
    """The ConfigMap/Secret an older revision mounted as this volume, when it still exists."""
    ctx = case.context
    if ctx.target.kind != "Deployment":
        return None
    for replica_set in replica_sets_of(ctx.target, ctx.reader):
        for source in object_sources(pod_template(replica_set)):
            if (
                source.volume == volume
                and source.kind == kind
                and object_exists(ctx.reader, ctx.namespace, kind, source.name)
            ):
                return source.name
    return None
