"""What a pod's volumes reference: ConfigMaps and Secrets (projected sources included) and
PersistentVolumeClaims, as the kubelet must find them before any container can start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubetriage.k8s.access import KubeObject, as_dict, dicts, name_of

# The API server's service account volume (`kube-api-access-xxxxx`): its kube-root-ca.crt is
# published into every namespace, and snapshots rarely carry it.
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"


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
    for volume in dicts(pod_spec.get("volumes")):
        if not volume.get("name"):
            continue
        if str(volume["name"]).startswith(SERVICE_ACCOUNT_VOLUME_PREFIX):
            continue
        name = str(volume["name"])
        sources = [volume, *dicts(as_dict(volume.get("projected")).get("sources"))]
        for source in sources:
            for field_name, kind, name_key in (
                ("configMap", "configmap", "name"),
                ("secret", "secret", "secretName"),
            ):
                ref = as_dict(source.get(field_name))
                # A secret volume names its Secret `secretName`, a projected source `name`.
                target = ref.get(name_key) or ref.get("name")
                if target:
                    keys = tuple(str(i.get("key")) for i in dicts(ref.get("items")) if i.get("key"))
                    found.append(
                        VolumeSource(name, kind, str(target), bool(ref.get("optional")), keys)
                    )
    return found


def claims_of(pod: KubeObject) -> list[tuple[str, str]]:
    """(volume, claim) for every PVC the pod mounts, generic ephemeral volumes included."""
    found: list[tuple[str, str]] = []
    for volume in dicts(as_dict(pod.get("spec")).get("volumes")):
        if not volume.get("name"):
            continue
        claim = as_dict(volume.get("persistentVolumeClaim")).get("claimName")
        if claim:
            found.append((str(volume["name"]), str(claim)))
        elif isinstance(volume.get("ephemeral"), dict):
            # The ephemeral volume controller names the claim <pod>-<volume>.
            found.append((str(volume["name"]), f"{name_of(pod)}-{volume['name']}"))
    return found
