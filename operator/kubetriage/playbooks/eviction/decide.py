"""The Evicted decision: the kubelet's message names the category, the node's conditions and
the container's request decide how firmly. Pure.

- Pods taken off a node that stopped reporting (the taint manager's DisruptionTarget, or Ready
  turned False while the containers say ready) -> NodeNotReady: 0.95 when the node's Ready
  condition is not True, 0.75 when the node is gone or unread.
- `The node was low on resource: memory` -> MemoryPressure; `pids` -> PIDPressure;
  `ephemeral-storage` or `inodes` -> DiskPressure: 0.9 when the message names the container
  that used most (against its request), 0.8 otherwise.
- `Pod ephemeral local storage usage exceeds the total limit of containers`, a container over
  its own ephemeral-storage limit, or an emptyDir over its sizeLimit -> EphemeralStorageLimit:
  0.95 (the pod's own limit, not the node, decided).
- A message none of the kubelet's formats matches: the most common pressure on the nodes, 0.5.
"""

from __future__ import annotations

from kubetriage.k8s.quantities import format_bytes, is_byte_resource, try_parse_quantity
from kubetriage.models import Category
from kubetriage.playbooks.base import Verdict, cause
from kubetriage.playbooks.eviction.messages import ContainerUse, EvictionMessage
from kubetriage.playbooks.eviction.reads import EvictionFacts

C = Category
_PRESSURE_OF = {
    "MemoryPressure": C.EVICTION_MEMORY_PRESSURE,
    "DiskPressure": C.EVICTION_DISK_PRESSURE,
    "PIDPressure": C.EVICTION_PID_PRESSURE,
}


def amount(resource: str, quantity: str) -> str:
    """A quantity from a message, as a person reads it (`1729880Ki` -> `1.6Gi`)."""
    parsed = try_parse_quantity(quantity)
    if parsed is None or not is_byte_resource(resource):
        return quantity
    return format_bytes(parsed)


def use_text(use: ContainerUse) -> str:
    """`container app used 1.6Gi of memory against a request of 512Mi`."""
    request = (
        "no request"
        if use.request in {"0", ""}
        else f"a request of {amount(use.resource, use.request)}"
    )
    return (
        f"container {use.container} used {amount(use.resource, use.using)} of {use.resource} "
        f"against {request}"
    )


def replaced_text(facts: EvictionFacts) -> str:
    """How the workload stands now."""
    return f"{facts.running} of its pods run now, {facts.ready} ready"


def decide(facts: EvictionFacts) -> Verdict:
    """Apply the rules of this module's docstring."""
    evicted = len({p.pod for p in facts.evicted})
    who = f"{facts.target.kind} {facts.target.name}"
    if facts.node_lost:
        return _node_lost(facts, who, evicted)
    message = facts.message()
    nodes = sorted({p.node for p in facts.evicted if p.node})
    on = f" on {', '.join(nodes[:3])}" if nodes else ""
    if message is None or message.category is None:
        return _unexplained(facts, who, evicted, on)
    head = f"{evicted} pod(s) of {who} were evicted{on}"
    if message.category is C.EVICTION_EPHEMERAL_STORAGE_LIMIT:
        return Verdict(
            cause(message.category, f"{head}: {_over_limit(message)}; {replaced_text(facts)}", 0.95)
        )
    low = f"the node ran low on {message.resource}"
    if message.threshold and message.available:
        low += (
            f" ({amount(message.resource or '', message.available)} available, eviction threshold "
            f"{amount(message.resource or '', message.threshold)})"
        )
    users = "; ".join(use_text(u) for u in message.users[:2])
    summary = f"{head}: {low}" + (f"; {users}" if users else "") + f"; {replaced_text(facts)}"
    return Verdict(cause(message.category, summary, 0.9 if message.users else 0.8))


def _over_limit(message: EvictionMessage) -> str:
    if message.volume:
        return f"emptyDir volume {message.volume} went over its sizeLimit {message.limit}"
    if message.container:
        return (
            f"container {message.container} went over its ephemeral-storage limit {message.limit}"
        )
    return (
        "the pod's local storage went over its containers' ephemeral-storage limits "
        f"({message.limit} in all)"
    )


def _node_lost(facts: EvictionFacts, who: str, evicted: int) -> Verdict:
    nodes = sorted({p.node for p in facts.evicted if p.node})
    states = [facts.nodes[n] for n in nodes if n in facts.nodes]
    lost = [s for s in states if (s.condition("Ready") or ("", "True", "", ""))[1] != "True"]
    if lost:
        node = lost[0]
        ready = node.condition("Ready")
        beat = ready[3] if ready and ready[3] else "unknown"
        taints = f", tainted {', '.join(node.taints)}" if node.taints else ""
        status = ready[1] if ready else "?"
        said = f"node {node.name} stopped reporting (Ready={status}, last heartbeat {beat}{taints})"
        confidence = 0.95
    else:
        said = f"node {', '.join(nodes) or 'unknown'} is not readable: it may have been deleted"
        confidence = 0.75
    summary = (
        f"{evicted} pod(s) of {who} are being taken off a node that stopped reporting: {said}; "
        f"{replaced_text(facts)}"
    )
    return Verdict(cause(C.EVICTION_NODE_NOT_READY, summary, confidence))


def _unexplained(facts: EvictionFacts, who: str, evicted: int, on: str) -> Verdict:
    pressures = [
        _PRESSURE_OF[kind]
        for state in facts.nodes.values()
        for kind, status, _, _ in state.conditions
        if kind in _PRESSURE_OF and status == "True"
    ]
    category = pressures[0] if pressures else C.EVICTION_MEMORY_PRESSURE
    said = facts.evicted[0].message.text if facts.evicted else ""
    summary = f"{evicted} pod(s) of {who} were evicted{on}" + (
        f": the kubelet says {said!r}" if said else ""
    )
    return Verdict(cause(category, summary + f"; {replaced_text(facts)}", 0.5))
