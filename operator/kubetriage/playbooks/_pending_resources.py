"""Resource arithmetic for the Pending playbook: what a pod asks for and what each node has left.

The scheduler's NodeResourcesFit compares a pod's effective requests with a node's allocatable
minus the requests of the pods already bound to it; usage plays no part. The effective request
is, per resource, max(sum of the app containers plus sidecars, the largest init container plus
the sidecars started before it) plus the pod's overhead (Kubernetes' resourcehelper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from kubetriage.k8s.access import KubeObject, name_of
from kubetriage.k8s.quantities import format_bytes, format_cpu, try_parse_quantity

_BYTE_RESOURCES = ("memory", "ephemeral-storage", "hugepages-")
_DONE_PHASES = frozenset({"Succeeded", "Failed"})
_MI = Decimal(2**20)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _quantities(raw: Any) -> dict[str, Decimal]:
    parsed = {str(k): try_parse_quantity(v) for k, v in _dict(raw).items()}
    return {k: v for k, v in parsed.items() if v is not None}


def container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    """A container's requests; a limit without a request is its request, as the API defaults."""
    resources = _dict(container.get("resources"))
    return {**_quantities(resources.get("limits")), **_quantities(resources.get("requests"))}


def pod_requests(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """The requests the scheduler fits onto a node, per resource."""
    total: dict[str, Decimal] = {}
    for container in _list(pod_spec.get("containers")):
        if isinstance(container, dict):
            _add(total, container_requests(container))
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in _list(pod_spec.get("initContainers")):
        if not isinstance(container, dict):
            continue
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar keeps running
            _add(sidecars, requests)
            running = dict(sidecars)
        else:
            running = dict(sidecars)
            _add(running, requests)
        for resource, value in running.items():
            init_peak[resource] = max(init_peak.get(resource, Decimal(0)), value)
    _add(total, sidecars)
    for resource, value in init_peak.items():
        total[resource] = max(total.get(resource, Decimal(0)), value)
    _add(total, _quantities(pod_spec.get("overhead")))
    return {k: v for k, v in total.items() if v > 0}


def _add(into: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    for resource, value in more.items():
        into[resource] = into.get(resource, Decimal(0)) + value


def format_amount(resource: str, value: Decimal) -> str:
    """A quantity the way a person writes it for this resource."""
    if resource == "cpu":
        return format_cpu(value)
    if resource.startswith(_BYTE_RESOURCES):
        return format_bytes(value)
    return f"{value.normalize():f}"


def floor_quantity(resource: str, value: Decimal) -> str:
    """A quantity rounded down to what a manifest would carry (10m of cpu, 1Mi of memory)."""
    if resource == "cpu":
        return f"{int((value * 100).to_integral_value(ROUND_FLOOR)) * 10}m"
    if resource.startswith(_BYTE_RESOURCES):
        return f"{int((value / _MI).to_integral_value(ROUND_FLOOR))}Mi"
    return str(int(value.to_integral_value(ROUND_FLOOR)))


@dataclass
class NodeRoom:
    """One node's allocatable and the requests of the pods bound to it."""

    name: str
    allocatable: dict[str, Decimal]
    requested: dict[str, Decimal] = field(default_factory=dict)

    def free(self, resource: str) -> Decimal | None:
        """What is left of a resource; None when the node does not report cpu/memory at all."""
        if resource not in self.allocatable:
            # A node without an extended resource (nvidia.com/gpu) has none of it.
            return None if resource in {"cpu", "memory", "pods"} else Decimal(0)
        return self.allocatable[resource] - self.requested.get(resource, Decimal(0))

    def capacity(self, resource: str) -> Decimal | None:
        """The node's allocatable of a resource (0 for an extended resource it lacks)."""
        if resource not in self.allocatable:
            return None if resource in {"cpu", "memory", "pods"} else Decimal(0)
        return self.allocatable[resource]


def node_rooms(nodes: list[KubeObject], pods: list[KubeObject]) -> list[NodeRoom]:
    """Each node's allocatable and what the (non-finished) pods bound to it request."""
    rooms = {
        name_of(node): NodeRoom(
            name_of(node), _quantities(_dict(node.get("status")).get("allocatable"))
        )
        for node in nodes
        if name_of(node)
    }
    for pod in pods:
        spec = _dict(pod.get("spec"))
        room = rooms.get(str(spec.get("nodeName") or ""))
        if room is None or str(_dict(pod.get("status")).get("phase")) in _DONE_PHASES:
            continue
        _add(room.requested, pod_requests(spec))
        _add(room.requested, {"pods": Decimal(1)})
    return list(rooms.values())


@dataclass(frozen=True)
class Shortfall:
    """How one requested resource compares with the nodes."""

    resource: str
    request: Decimal
    largest_node: str
    largest: Decimal  # the largest allocatable of any node
    roomiest_node: str
    roomiest: Decimal  # the most that is free on any node
    fits_nowhere_now: bool  # no node has the request free
    exceeds_every_node: bool  # no node could ever hold it

    def _show(self, value: Decimal) -> str:
        return format_amount(self.resource, value)

    def describe(self) -> str:
        """The numbers in one clause."""
        show = self._show
        if self.exceeds_every_node:
            return (
                f"requests {self.resource} {show(self.request)} but the largest node "
                f"({self.largest_node}) has {show(self.largest)} allocatable: "
                f"{show(self.request - self.largest)} more than any node can offer"
            )
        return (
            f"requests {self.resource} {show(self.request)}; the most free on any node is "
            f"{show(max(self.roomiest, Decimal(0)))} ({self.roomiest_node}, "
            f"{show(self.largest)} allocatable)"
        )


def shortfall(resource: str, request: Decimal, rooms: list[NodeRoom]) -> Shortfall | None:
    """Compare one request with the nodes; None when no node reports the resource."""
    known = [(r, r.capacity(resource), r.free(resource)) for r in rooms]
    sized = [(r, cap, free) for r, cap, free in known if cap is not None and free is not None]
    if not sized:
        return None
    largest_room, largest, _ = max(sized, key=lambda item: item[1])
    roomiest_room, _, roomiest = max(sized, key=lambda item: item[2])
    return Shortfall(
        resource=resource,
        request=request,
        largest_node=largest_room.name,
        largest=largest,
        roomiest_node=roomiest_room.name,
        roomiest=roomiest,
        fits_nowhere_now=roomiest < request,
        exceeds_every_node=largest < request,
    )


def lowered_requests(
    pod_spec: dict[str, Any], resource: str, target: Decimal
) -> tuple[dict[str, dict[str, str]], Decimal] | None:
    """New requests per container (by name) that bring the pod's request of `resource` down to
    `target`, scaling every container that asks for it alike; and the factor applied.
    None when the pod does not request it or the target is not below it."""
    current = pod_requests(pod_spec).get(resource)
    overhead = _quantities(pod_spec.get("overhead")).get(resource, Decimal(0))
    if not current or target <= overhead or target >= current:
        return None
    factor = (target - overhead) / (current - overhead)
    changes: dict[str, dict[str, str]] = {}
    for field_name in ("initContainers", "containers"):
        for container in _list(pod_spec.get(field_name)):
            if not isinstance(container, dict) or not container.get("name"):
                continue
            value = container_requests(container).get(resource)
            if value:
                changes[str(container["name"])] = {
                    "field": field_name,
                    "old": format_amount(resource, value),
                    "new": floor_quantity(resource, value * factor),
                }
    return (changes, factor) if changes else None
