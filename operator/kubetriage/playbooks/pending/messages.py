"""The scheduler's and the kubelet's messages about a pod that cannot start, parsed as they read.

kube-scheduler explains a failed attempt in one line, e.g.

    0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient
    memory, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/5 nodes are
    available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful ...

Each reason carries the number of nodes it rejected; everything from ". preemption:" on is about
preemption, not a reason, and so is what a plugin appends after the reasons (`no new claims to
deallocate,` from DynamicResources). A node is counted under the first filter that rejects it,
in the scheduler's order (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit, VolumeBinding, VolumeZone, PodTopologySpread, InterPodAffinity). The texts
move between releases: `had untolerated taint {k: v}` became `had untolerated taint(s)`
(kubernetes#134740: 1.35, and 1.34 patch releases), so the taint is then found on the
nodes; `had volume node affinity conflict` became `didn't match PersistentVolume's node
affinity` (kubernetes#129887, 1.33). Older releases wrote `had taint {k: v}, that the pod didn't
tolerate` (with a comma inside the reason) and `didn't match node selector`; a PreFilter
rejection (an unbound or missing claim) names no count because it applies to every node.

The kubelet's FailedMount events read `MountVolume.SetUp failed for volume "config" : configmap
"gateway-config" not found`, or, once it gives up waiting, `Unable to attach or mount volumes:
unmounted volumes=[config], unattached volumes=[...]: timed out waiting for the condition`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from kubetriage.k8s.scheduling import CORDON_TAINT, NOT_READY_TAINTS, PRESSURE_TAINTS, Taint


class Blocker(StrEnum):
    """What kind of obstacle one scheduler reason is."""

    RESOURCES = "resources"  # Insufficient <resource>, Too many pods
    PORTS = "ports"  # host ports already taken
    NODE_PRESSURE = "node-pressure"  # memory/disk/pid pressure taints or conditions
    TAINT = "taint"
    SELECTOR = "selector"  # nodeSelector / required node affinity
    POD_AFFINITY = "pod-affinity"  # inter-pod affinity and anti-affinity
    TOPOLOGY_SPREAD = "topology-spread"  # topologySpreadConstraints
    VOLUME = "volume"  # unbound/missing claims, no volume to bind
    VOLUME_AFFINITY = "volume-affinity"  # a bound volume's node affinity or zone
    UNSCHEDULABLE = "unschedulable"  # cordoned nodes
    NODE_NOT_READY = "node-not-ready"
    NO_NODES = "no-nodes"
    OTHER = "other"


@dataclass(frozen=True)
class Reason:
    """One reason of a scheduler message: `nodes` is None when the scheduler gave no count."""

    text: str
    nodes: int | None
    blocker: Blocker
    resource: str | None = None
    taint: Taint | None = None
    claim: str | None = None


@dataclass(frozen=True)
class SchedulerMessage:
    """A parsed FailedScheduling message: total nodes (None when unsaid) and the reasons."""

    text: str
    total_nodes: int | None
    reasons: tuple[Reason, ...] = ()
    # The message up to the end of its reasons: what the scheduler said about the nodes,
    # without the preemption part or the commentary plugins append after the reasons.
    head: str = ""


_AVAILABLE = re.compile(r"^\s*(\d+)/(\d+) nodes are available:?\s*(.*)$", re.DOTALL | re.I)
_PREEMPTION = re.compile(r"\.?\s*preemption:", re.I)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# Reasons are joined with ", "; a new one starts with its node count.
_SPLIT = re.compile(r",\s+(?=\d+\s)")
_COUNTED = re.compile(r"^(\d+)\s+(.*)$", re.DOTALL)
_TAINT = re.compile(r"taints?\s*\{([^}]*)\}", re.I)
_CLAIM_NOT_FOUND = re.compile(
    r'persistentvolumeclaim "([^"]+)" (?:not found|is being deleted)', re.I
)
_PATTERNS: tuple[tuple[re.Pattern[str], Blocker], ...] = (
    (re.compile(r"no nodes available to schedule pods", re.I), Blocker.NO_NODES),
    (re.compile(r"untolerated taint|had taints?\b|didn't tolerate", re.I), Blocker.TAINT),
    (re.compile(r"insufficient\s+\S|too many pods|exceed max volume count", re.I),
     Blocker.RESOURCES),
    (re.compile(r"free ports", re.I), Blocker.PORTS),
    (re.compile(r"(?:memory|disk|pid) pressure|out of disk", re.I), Blocker.NODE_PRESSURE),
    (re.compile(r"not ready|were unreachable|network unavailable", re.I), Blocker.NODE_NOT_READY),
    (re.compile(r"unschedulable", re.I), Blocker.UNSCHEDULABLE),
    # "didn't match PersistentVolume's node affinity" since 1.33, "had volume node affinity
    # conflict" before; "had no available volume zone" from the VolumeZone filter.
    (re.compile(r"volume node affinity|persistentvolume's node affinity|volume zone", re.I),
     Blocker.VOLUME_AFFINITY),
    (re.compile(r"persistentvolumeclaim|persistent volume|volumebinding|free storage"
                r"|bound to non-existent pv", re.I), Blocker.VOLUME),
    (re.compile(r"topology spread", re.I), Blocker.TOPOLOGY_SPREAD),
    (re.compile(r"pod affinity|anti-affinity", re.I), Blocker.POD_AFFINITY),
    (re.compile(r"node affinity|node selector|affinity/selector|requested node name", re.I),
     Blocker.SELECTOR),
)  # fmt: skip
_INSUFFICIENT = re.compile(r"insufficient\s+([\w./-]+)", re.I)


def parse_scheduler_message(message: str) -> SchedulerMessage:
    """Split a FailedScheduling message into its reasons, each with the nodes it rejected."""
    text = " ".join(str(message or "").split())
    head = _PREEMPTION.split(text, maxsplit=1)[0].strip().rstrip(". ")
    match = _AVAILABLE.match(head)
    if match is None:
        # A bare PreFilter error ("persistentvolumeclaim "x" not found", "running PreFilter
        # plugin ...") or "no nodes available to schedule pods": one reason for every node.
        return SchedulerMessage(text, None, (_reason(head, None),) if head else (), head)
    total = int(match.group(2))
    # The reasons end at the first sentence break; what follows is post-filter commentary,
    # e.g. "no new claims to deallocate," from the DynamicResources plugin since 1.34.
    body = _SENTENCE_END.split(match.group(3).strip(), maxsplit=1)[0].strip().rstrip(". ")
    reasons: list[Reason] = []
    for part in _SPLIT.split(body) if body else []:
        counted = _COUNTED.match(part.strip())
        if counted:
            reasons.append(_reason(counted.group(2).strip(), int(counted.group(1))))
        elif part.strip():
            reasons.append(_reason(part.strip(), None))
    shown = f"{match.group(1)}/{total} nodes are available: {body}." if body else head
    return SchedulerMessage(text, total, tuple(reasons), shown)


def _reason(text: str, nodes: int | None) -> Reason:
    blocker = next((b for pattern, b in _PATTERNS if pattern.search(text)), Blocker.OTHER)
    taint = None
    resource = None
    if blocker is Blocker.TAINT:
        taint = _taint_in(text)
        if taint is not None and taint.key == CORDON_TAINT:
            blocker = Blocker.UNSCHEDULABLE
        elif taint is not None and taint.key in NOT_READY_TAINTS:
            blocker = Blocker.NODE_NOT_READY
        elif taint is not None and taint.key in PRESSURE_TAINTS:
            blocker = Blocker.NODE_PRESSURE
    if blocker is Blocker.RESOURCES:
        found = _INSUFFICIENT.search(text)
        resource = found.group(1) if found else "pods" if "pods" in text.lower() else None
    claim = _CLAIM_NOT_FOUND.search(text)
    return Reason(text, nodes, blocker, resource, taint, claim.group(1) if claim else None)


def _taint_in(text: str) -> Taint | None:
    found = _TAINT.search(text)
    if found is None:
        return None
    key, _, value = found.group(1).partition(":")
    return Taint(key.strip(), value.strip()) if key.strip() else None


# --- the kubelet ---------------------------------------------------------------------------------

# The reasons of the kubelet's (and the attach/detach controller's) events about a volume.
MOUNT_REASONS = frozenset({"FailedMount", "FailedAttachVolume", "FailedMapVolume"})
_VOLUME = re.compile(r'for volume "([^"]+)"')
_MISSING_OBJECT = re.compile(r'\b(configmap|secret)s? "([^"]+)" not found', re.I)
# Projected and kube-api-access volumes, before the kubelet's informer has seen the object.
_NOT_REGISTERED = re.compile(r'object "([^"]+)"/"([^"]+)" not registered')
_MISSING_KEY = re.compile(
    r"(configmap|secret) references non-existent (?:config|secret) key:\s*(\S+)", re.I
)
_UNMOUNTED = re.compile(r"unmounted volumes=\[([^\]]*)\]")


@dataclass(frozen=True)
class MountFailure:
    """What one FailedMount/FailedAttachVolume message says failed."""

    text: str
    volume: str | None = None
    missing: tuple[tuple[str, str], ...] = ()  # (configmap|secret, name)
    missing_key: tuple[str, str] | None = None  # (configmap|secret, key)
    unmounted: tuple[str, ...] = field(default_factory=tuple)
    not_registered: bool = False


def parse_mount_message(message: str) -> MountFailure:
    """Read a kubelet volume event: the volume, and the ConfigMap/Secret it could not find."""
    text = " ".join(str(message or "").split())
    volume = _VOLUME.search(text)
    missing = tuple(
        dict.fromkeys((kind.lower(), name) for kind, name in _MISSING_OBJECT.findall(text))
    )
    key = _MISSING_KEY.search(text)
    unmounted = _UNMOUNTED.search(text)
    return MountFailure(
        text=text,
        volume=volume.group(1) if volume else None,
        missing=missing,
        missing_key=(key.group(1).lower(), key.group(2)) if key else None,
        unmounted=tuple(unmounted.group(1).split()) if unmounted else (),
        not_registered=_NOT_REGISTERED.search(text) is not None,
    )
