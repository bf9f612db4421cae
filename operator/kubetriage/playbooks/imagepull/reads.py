"""What the ImagePull playbook reads: the failing container and its pull errors, the revision that
last ran, and the pull secrets the kubelet would use (by name and existence, never their data).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    containers,
    dicts,
    meta,
    name_of,
    pod_template,
)
from kubetriage.models import EvidenceSource
from kubetriage.playbooks.base import Context
from kubetriage.playbooks.imagepull.messages import PullError, parse_image


@dataclass
class PullMessage:
    """One pull error text, where it was read, how often, and what it names."""

    text: str
    source: EvidenceSource
    count: int
    when: datetime
    error: PullError | None = None


@dataclass
class PullReading:
    """What the first steps read of the failing container and its pull errors."""

    container: str
    init_container: bool
    image: str
    reasons: Counter[str] = field(default_factory=Counter)
    messages: list[PullMessage] = field(default_factory=list)
    unretrieved_secrets: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Revisions:
    """The failing revision and the one that last ran, as far as the history shows."""

    failing: int | None = None
    previous: int | None = None
    previous_image: str | None = None
    previous_healthy: bool | None = None


@dataclass(frozen=True)
class Credentials:
    """Pull secrets the pod would use, and what is known of each (existence only)."""

    service_account: str = "default"
    pod_secrets: tuple[str, ...] = ()
    account_secrets: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    present: tuple[str, ...] = ()
    neighbour_secret: str | None = None

    @property
    def configured(self) -> tuple[str, ...]:
        """Every secret name the kubelet will try, pod's first."""
        return tuple(dict.fromkeys((*self.pod_secrets, *self.account_secrets)))


def secret_names(value: Any) -> tuple[str, ...]:
    """The names in an `imagePullSecrets` list, () when it is absent or malformed."""
    return tuple(str(s["name"]) for s in dicts(value) if s.get("name"))


def template_image(replica_set: KubeObject, container: str) -> str | None:
    """The image a ReplicaSet's pod template gives the named container, None when it has none."""
    spec = pod_template(replica_set)
    # App containers before init containers: the first match wins.
    for item in (*containers(spec, init=False), *containers(spec, init=True)):
        if item.get("name") == container and item.get("image"):
            return str(item["image"])
    return None


def neighbour_secret(context: Context, image: str) -> str | None:
    """A pull secret other pods of the namespace use for the same registry, if any."""
    ref = parse_image(image)
    if ref is None:
        return None
    affected = {name_of(p) for p in context.pods}
    for pod in context.reader.pods(context.namespace):
        spec = as_dict(pod.get("spec"))
        secrets = secret_names(spec.get("imagePullSecrets"))
        if name_of(pod) in affected or not secrets or meta(pod).get("deletionTimestamp"):
            continue
        for item in containers(spec):
            other = parse_image(str(item.get("image") or ""))
            if other is not None and other.registry == ref.registry:
                return secrets[0]
    return None
