"""What the Pending playbook's steps share: the pods under investigation, what the scheduler
said, and the findings each check leaves for the final decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubetriage.clients.kube import ClusterReader
from kubetriage.k8s.access import KubeObject, name_of
from kubetriage.k8s.events import event_time
from kubetriage.models import Category, Recommendation
from kubetriage.playbooks._pending_messages import Blocker, Reason, SchedulerMessage
from kubetriage.playbooks.base import Context, Investigation
from kubetriage.policy import ChangeScope

# The scheduler categories, and the blockers of the scheduler's reasons each one covers.
CATEGORY_OF: dict[Blocker, Category] = {
    Blocker.RESOURCES: Category.PENDING_INSUFFICIENT_RESOURCES,
    Blocker.PORTS: Category.PENDING_INSUFFICIENT_RESOURCES,
    Blocker.NODE_PRESSURE: Category.PENDING_INSUFFICIENT_RESOURCES,
    Blocker.TAINT: Category.PENDING_UNTOLERATED_TAINT,
    Blocker.SELECTOR: Category.PENDING_NODE_SELECTOR_MISMATCH,
    Blocker.POD_AFFINITY: Category.PENDING_NODE_SELECTOR_MISMATCH,
    Blocker.VOLUME: Category.PENDING_UNBOUND_PVC,
    Blocker.UNSCHEDULABLE: Category.PENDING_NO_NODES,
    Blocker.NODE_NOT_READY: Category.PENDING_NO_NODES,
    Blocker.NO_NODES: Category.PENDING_NO_NODES,
}
# On a tie the category of the filter the scheduler runs later wins: the nodes it rejected had
# passed the earlier filters (cordon, taints, affinity), so they are where the pod is meant to run.
TIE_ORDER: tuple[Category, ...] = (
    Category.PENDING_UNBOUND_PVC,
    Category.PENDING_INSUFFICIENT_RESOURCES,
    Category.PENDING_NODE_SELECTOR_MISMATCH,
    Category.PENDING_UNTOLERATED_TAINT,
    Category.PENDING_NO_NODES,
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_dict(value: Any) -> dict[str, Any]:
    """`value` if it is a dict, else {} (objects may be malformed)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else [] (objects may be malformed)."""
    return value if isinstance(value, list) else []


def events_about(
    reader: ClusterReader, namespace: str, kind: str, names: set[str]
) -> list[KubeObject]:
    """Events about these objects, newest first: `objects.events_about`, without its TypeError
    on an `involvedObject.name` that is not a string (a list cannot be looked up in a set)."""
    found = []
    for event in reader.events(namespace):
        involved = as_dict(event.get("involvedObject")) if isinstance(event, dict) else {}
        name = involved.get("name")
        if involved.get("kind") == kind and isinstance(name, str) and name in names:
            found.append(event)
    return sorted(found, key=lambda e: event_time(e) or _EPOCH, reverse=True)


@dataclass
class Finding:
    """What one check concluded about one category. `corroborated` says whether the cluster's
    state confirms the obstacle (True), contradicts it (False), or cannot tell (None)."""

    category: Category
    summary: str
    corroborated: bool | None = True
    recommendation: Recommendation | None = None
    scope: ChangeScope = field(default_factory=ChangeScope)
    # A check's own floor on confidence, for facts that are certain whatever the message says
    # (a request above every node's allocatable, a claim that does not exist).
    certain: bool = False
    # Whether the obstacle alone keeps the pod off every node: only such a finding is worth
    # reporting when the scheduler did not name it (its first failing filter hid it).
    everywhere: bool = True


@dataclass
class Case:
    """The investigation's working state."""

    context: Context
    investigation: Investigation
    group: list[KubeObject] = field(default_factory=list)
    pod: KubeObject = field(default_factory=dict)
    scheduled: bool = False
    nodes: list[KubeObject] = field(default_factory=list)
    message: SchedulerMessage | None = None
    # Nodes each check found the pod cannot use, for inference when no message is left.
    cordoned: set[str] = field(default_factory=set)
    not_ready: set[str] = field(default_factory=set)
    tainted: set[str] = field(default_factory=set)
    mismatched: set[str] = field(default_factory=set)
    short: set[str] = field(default_factory=set)
    claim_blocked: bool = False
    # Keyed by the scheduler category a finding answers; the capacity check files a
    # RequestExceedsNodeCapacity finding under InsufficientResources ("Insufficient cpu").
    findings: dict[Category, Finding] = field(default_factory=dict)

    @property
    def spec(self) -> dict[str, Any]:
        """The representative pod's spec."""
        return as_dict(self.pod.get("spec"))

    @property
    def pod_name(self) -> str:
        """The representative pod's name."""
        return name_of(self.pod) or "the pod"

    @property
    def reasons(self) -> tuple[Reason, ...]:
        """The scheduler's reasons (none when no message was found)."""
        return self.message.reasons if self.message else ()

    def blocked_by(self, *blockers: Blocker) -> list[Reason]:
        """The scheduler's reasons of these kinds."""
        return [r for r in self.reasons if r.blocker in blockers]

    @property
    def total_nodes(self) -> int:
        """How many nodes the scheduler considered (else how many the reader shows)."""
        if self.message and self.message.total_nodes is not None:
            return self.message.total_nodes
        return len(self.nodes)

    def unscheduled_count(self) -> int:
        """How many of the workload's pods wait for a node."""
        return sum(1 for p in self.group if not as_dict(p.get("spec")).get("nodeName")) or 1
