"""Storage behind a Pending pod: its PersistentVolumeClaims and their StorageClasses, and the
ConfigMaps and Secrets its volumes reference.

A claim without `storageClassName` gets the cluster's default class (the StorageClass annotated
`storageclass.kubernetes.io/is-default-class: "true"`); with `storageClassName: ""` it binds
only to a pre-created PersistentVolume. Either way an Immediate claim that nothing can provision
stays Pending, and the scheduler says `pod has unbound immediate PersistentVolumeClaims`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject, meta, name_of
from kubetriage.k8s.events import event_count
from kubetriage.playbooks._pending_case import events_about

_SERVICE_ACCOUNT_VOLUME = "kube-api-access-"
_DEFAULT_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def claims_of(pod: KubeObject) -> list[tuple[str, str]]:
    """(volume, claim) for every PVC the pod mounts, generic ephemeral volumes included."""
    found: list[tuple[str, str]] = []
    for volume in _list(_dict(pod.get("spec")).get("volumes")):
        if not isinstance(volume, dict) or not volume.get("name"):
            continue
        claim = _dict(volume.get("persistentVolumeClaim")).get("claimName")
        if claim:
            found.append((str(volume["name"]), str(claim)))
        elif isinstance(volume.get("ephemeral"), dict):
            # The ephemeral volume controller names the claim <pod>-<volume>.
            found.append((str(volume["name"]), f"{name_of(pod)}-{volume['name']}"))
    return found


def default_storage_class(reader: ClusterReader) -> str | None:
    """The cluster's default StorageClass (the newest one if several claim it, as the API does)."""
    defaults = [
        sc
        for sc in reader.storage_classes()
        if any(
            str(_dict(meta(sc).get("annotations")).get(a)).lower() == "true"
            for a in _DEFAULT_ANNOTATIONS
        )
    ]
    if not defaults:
        return None
    newest = max(defaults, key=lambda sc: str(meta(sc).get("creationTimestamp") or ""))
    return name_of(newest)


@dataclass
class ClaimState:
    """What the playbook learned about one claim."""

    volume: str
    name: str
    exists: bool
    phase: str = ""
    size: str = ""
    requested_class: str | None = None  # None: unset; "": explicitly none
    effective_class: str | None = None
    class_exists: bool | None = None
    default_class: str | None = None
    provisioner: str = ""
    binding_mode: str = ""
    volume_name: str = ""
    known_classes: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    @property
    def bound(self) -> bool:
        """Whether the claim is bound to a volume."""
        return self.phase == "Bound"

    def describe(self) -> str:
        """The claim's state in one sentence."""
        if not self.exists:
            return f"PersistentVolumeClaim {self.name} (volume {self.volume}) does not exist"
        text = f"PersistentVolumeClaim {self.name} is {self.phase or 'of unknown phase'}"
        if self.size:
            text += f" (requests {self.size})"
        if self.requested_class == "":
            text += '; storageClassName "" asks for a pre-created PersistentVolume, no provisioning'
        elif self.requested_class is None and self.default_class is None:
            text += "; it names no StorageClass and the cluster has no default StorageClass"
        elif self.requested_class is None:
            text += f"; it names no StorageClass, so the default {self.default_class} applies"
        if self.effective_class and self.class_exists is False:
            text += f"; StorageClass {self.effective_class} does not exist"
        elif self.effective_class and self.class_exists:
            provisioner = self.provisioner or "no provisioner"
            mode = self.binding_mode or "Immediate"
            text += f"; StorageClass {self.effective_class} exists ({provisioner}, {mode})"
        return text


def inspect_claim(
    reader: ClusterReader, namespace: str, volume: str, claim_name: str
) -> ClaimState:
    """Read the claim, its StorageClass (named or default) and the claim's own events."""
    claim = reader.persistent_volume_claim(namespace, claim_name)
    events = [
        f"{e.get('reason')}: {e.get('message')} (x{event_count(e)})"
        for e in events_about(reader, namespace, "PersistentVolumeClaim", {claim_name})[:3]
        if e.get("type") == "Warning"
        or str(e.get("reason")) in {"ExternalProvisioning", "WaitForFirstConsumer"}
    ]
    known = sorted(name_of(sc) for sc in reader.storage_classes() if name_of(sc))
    if claim is None:
        return ClaimState(volume, claim_name, exists=False, events=events, known_classes=known)
    spec = _dict(claim.get("spec"))
    requested = spec.get("storageClassName")
    requested = str(requested) if isinstance(requested, str) else None
    default = default_storage_class(reader)
    state = ClaimState(
        volume=volume,
        name=claim_name,
        exists=True,
        phase=str(_dict(claim.get("status")).get("phase") or ""),
        size=str(_dict(_dict(spec.get("resources")).get("requests")).get("storage") or ""),
        requested_class=requested,
        default_class=default,
        volume_name=str(spec.get("volumeName") or ""),
        known_classes=known,
        events=events,
    )
    state.effective_class = requested if requested else (default if requested is None else None)
    if state.effective_class:
        storage_class = reader.storage_class(state.effective_class)
        state.class_exists = storage_class is not None
        if storage_class is not None:
            state.provisioner = str(storage_class.get("provisioner") or "")
            state.binding_mode = str(storage_class.get("volumeBindingMode") or "")
    return state


# --- ConfigMap and Secret volumes -----------------------------------------------------------------


@dataclass(frozen=True)
class VolumeSource:
    """A ConfigMap or Secret a pod volume (or a projected source) references."""

    volume: str
    kind: str  # configmap | secret
    name: str
    optional: bool
    keys: tuple[str, ...]


def object_sources(pod_spec: dict[str, Any]) -> list[VolumeSource]:
    """Every ConfigMap/Secret the pod's volumes reference, projected sources included, except
    the service account volume the API server adds (its kube-root-ca.crt is published into every
    namespace, and snapshots rarely carry it)."""
    found: list[VolumeSource] = []
    for volume in _list(pod_spec.get("volumes")):
        if not isinstance(volume, dict) or not volume.get("name"):
            continue
        if str(volume["name"]).startswith(_SERVICE_ACCOUNT_VOLUME):
            continue
        name = str(volume["name"])
        sources = [volume] + [
            s for s in _list(_dict(volume.get("projected")).get("sources")) if isinstance(s, dict)
        ]
        for source in sources:
            for field_name, kind, name_key in (
                ("configMap", "configmap", "name"),
                ("secret", "secret", "secretName"),
            ):
                ref = _dict(source.get(field_name))
                # A secret volume names its Secret `secretName`, a projected source `name`.
                target = ref.get(name_key) or ref.get("name")
                if target:
                    keys = tuple(
                        str(i.get("key"))
                        for i in _list(ref.get("items"))
                        if isinstance(i, dict) and i.get("key")
                    )
                    found.append(
                        VolumeSource(name, kind, str(target), bool(ref.get("optional")), keys)
                    )
    return found


def object_exists(reader: ClusterReader, namespace: str, kind: str, name: str) -> bool | None:
    """Whether a ConfigMap/Secret exists (None: the reader cannot tell). Never reads Secret data."""
    if kind == "configmap":
        return reader.config_map_keys(namespace, name) is not None
    return reader.secret_exists(namespace, name)


def missing_keys(reader: ClusterReader, namespace: str, source: VolumeSource) -> list[str]:
    """Keys a ConfigMap volume's `items` ask for that the ConfigMap lacks (Secrets: not read)."""
    if source.kind != "configmap" or not source.keys:
        return []
    keys = reader.config_map_keys(namespace, source.name)
    return [] if keys is None else [k for k in source.keys if k not in keys]
