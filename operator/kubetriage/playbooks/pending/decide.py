"""How the Pending playbook decides: each request against the nodes (`Shortfall`), the nodes each
category blocks (from the scheduler's message, else inferred from the checks), and the ranking
that names one root cause with its confidence and the others as alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kubetriage.k8s.access import name_of
from kubetriage.k8s.quantities import format_amount
from kubetriage.k8s.scheduling import required_node_affinity
from kubetriage.models import Category, RootCause
from kubetriage.playbooks.base import Conclusion, cause
from kubetriage.playbooks.pending.advise import generic_advice
from kubetriage.playbooks.pending.messages import Blocker, Reason
from kubetriage.playbooks.pending.reads import Case, NodeRoom, Obstacle

# The scheduler categories, and the blockers of the scheduler's reasons each one covers.
CATEGORY_OF: dict[Blocker, Category] = {
    Blocker.RESOURCES: Category.PENDING_INSUFFICIENT_RESOURCES,
    Blocker.PORTS: Category.PENDING_HOST_PORT_CONFLICT,
    Blocker.NODE_PRESSURE: Category.PENDING_INSUFFICIENT_RESOURCES,
    Blocker.TAINT: Category.PENDING_UNTOLERATED_TAINT,
    Blocker.SELECTOR: Category.PENDING_NODE_SELECTOR_MISMATCH,
    Blocker.POD_AFFINITY: Category.PENDING_TOPOLOGY_CONSTRAINT,
    Blocker.TOPOLOGY_SPREAD: Category.PENDING_TOPOLOGY_CONSTRAINT,
    Blocker.VOLUME: Category.PENDING_UNBOUND_PVC,
    Blocker.VOLUME_AFFINITY: Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
    Blocker.UNSCHEDULABLE: Category.PENDING_NO_NODES,
    Blocker.NODE_NOT_READY: Category.PENDING_NO_NODES,
    Blocker.NO_NODES: Category.PENDING_NO_NODES,
}
# On a tie the category of the filter the scheduler runs later wins: the nodes it rejected had
# passed the earlier filters (cordon, taints, affinity), so they are where the pod is meant to run.
# The scheduler's order: NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
# NodeResourcesFit, VolumeBinding, VolumeZone, PodTopologySpread, InterPodAffinity.
TIE_ORDER: tuple[Category, ...] = (
    Category.PENDING_TOPOLOGY_CONSTRAINT,
    Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
    Category.PENDING_UNBOUND_PVC,
    Category.PENDING_INSUFFICIENT_RESOURCES,
    Category.PENDING_HOST_PORT_CONFLICT,
    Category.PENDING_NODE_SELECTOR_MISMATCH,
    Category.PENDING_UNTOLERATED_TAINT,
    Category.PENDING_NO_NODES,
)
_INFERRED = 0.7  # confidence factor when the scheduler's own message is gone


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


def blocked_nodes(case: Case) -> tuple[dict[Category, int], bool, int]:
    """Nodes each category blocks (from the scheduler's message, else inferred from the checks),
    whether they were inferred, and how many nodes the pod could have used at all."""
    reasons = [r for r in case.reasons if r.blocker in CATEGORY_OF]
    total = case.total_nodes
    if required_node_affinity(case.spec).pinned_by_name and any(
        r.blocker is not Blocker.SELECTOR for r in reasons
    ):
        # A DaemonSet pod "does not match" every node but its own: by design, not a cause.
        pinned_away = sum(r.nodes or 0 for r in reasons if r.blocker is Blocker.SELECTOR)
        reasons = [r for r in reasons if r.blocker is not Blocker.SELECTOR]
        total = max(total - pinned_away, 1)
    counts: dict[Category, int] = {}
    if reasons:
        per: dict[tuple[Category, Blocker], int] = {}
        for blocker, nodes in _attributed(case, reasons, total):
            key = (CATEGORY_OF[blocker], blocker)
            if blocker is Blocker.RESOURCES:
                # A node short of cpu and memory is listed under both: the larger, not the sum.
                per[key] = max(per.get(key, 0), nodes)
            else:
                per[key] = per.get(key, 0) + nodes
        for (category, _), nodes in per.items():
            counts[category] = min(counts.get(category, 0) + nodes, total or nodes)
        return counts, False, total
    if not case.nodes:
        counts[Category.PENDING_NO_NODES] = 1
    remaining = {name_of(n) for n in case.nodes}
    for category, ruled_out in (
        (Category.PENDING_NO_NODES, case.cordoned | case.not_ready),
        (Category.PENDING_UNTOLERATED_TAINT, case.tainted),
        (Category.PENDING_NODE_SELECTOR_MISMATCH, case.mismatched),
        (Category.PENDING_HOST_PORT_CONFLICT, case.port_blocked),
        (Category.PENDING_INSUFFICIENT_RESOURCES, case.short),
        (Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT, case.volume_blocked),
        (Category.PENDING_TOPOLOGY_CONSTRAINT, case.topology_blocked),
    ):
        if remaining & ruled_out:
            counts[category] = len(remaining & ruled_out)
            remaining -= ruled_out
    if case.claim_blocked:
        counts[Category.PENDING_UNBOUND_PVC] = max(len(case.nodes), 1)
    return counts, True, total


def _attributed(case: Case, reasons: list[Reason], total: int) -> list[tuple[Blocker, int]]:
    """Each reason's blocker and the nodes it rejected. Since 1.33 the scheduler says "had
    untolerated taint(s)" without naming the taint: the nodes say which taints those were, and
    a node the node lifecycle controller tainted not-ready or unreachable is a node that is
    down (NoNodes), one under pressure is full: neither is a missing toleration."""
    found: list[tuple[Blocker, int]] = []
    for reason in reasons:
        nodes = reason.nodes if reason.nodes is not None else max(total, 1)
        if reason.blocker is not Blocker.TAINT or reason.taint is not None:
            found.append((reason.blocker, nodes))
            continue
        down = min(nodes, len(case.condition_tainted - case.cordoned))
        pressured = min(nodes - down, len(case.pressure_tainted - case.cordoned))
        for blocker, share in (
            (Blocker.NODE_NOT_READY, down),
            (Blocker.NODE_PRESSURE, pressured),
            (Blocker.TAINT, nodes - down - pressured),
        ):
            if share:
                found.append((blocker, share))
    return found


def fallback(case: Case, category: Category) -> Obstacle:
    """An obstacle from the scheduler's words alone, when no check could add the numbers."""
    said = [r for r in case.reasons if CATEGORY_OF.get(r.blocker) == category]
    text = "; ".join(f"{r.nodes if r.nodes is not None else 'all'} node(s): {r.text}" for r in said)
    summary = f"The scheduler rejects nodes for {case.pod_name}: {text or 'no reason given'}"
    if not case.nodes and not case.scheduled:
        summary += " (no Node objects could be read to check it)"
    rec, scope = generic_advice(case, category)
    return Obstacle(category, summary, None, rec, scope)


def conclude(case: Case) -> tuple[Conclusion, str]:
    """Rank the categories by the nodes they block and name the first, with alternatives; and
    the decision step's outcome."""
    if case.scheduled:
        mount = Category.PENDING_VOLUME_MOUNT_FAILURE
        obstacle = case.obstacles.get(mount) or fallback(case, mount)
        confidence = {True: 0.85, None: 0.35, False: 0.3}[obstacle.corroborated]
        root = cause(obstacle.category, obstacle.summary, 0.95 if obstacle.certain else confidence)
        outcome = f"{root.category.value} (confidence {root.confidence}): {root.summary}"
        return Conclusion(root, (), obstacle.recommendation, obstacle.scope), outcome
    counts, inferred, considered = blocked_nodes(case)
    if not counts:
        capacity = Category.PENDING_INSUFFICIENT_RESOURCES
        obstacle = case.obstacles.get(capacity) or fallback(case, capacity)
        summary = f"{obstacle.summary}; no scheduler message and no obstacle visible in the cluster"
        root = cause(obstacle.category, summary, 0.25)
        outcome = f"No reason could be established; {root.category.value} at low confidence."
        return Conclusion(root, (), obstacle.recommendation, obstacle.scope), outcome
    ranked, outside, never = _ranked(case, counts)
    selector = Category.PENDING_NODE_SELECTOR_MISMATCH
    root_category, root_nodes = ranked[0]
    total = max(considered, root_nodes, 1)
    obstacle = case.obstacles.get(root_category) or fallback(case, root_category)
    tie = len(ranked) > 1 and ranked[1][1] == root_nodes and ranked[1][0] != selector
    share = root_nodes / max(considered - outside, root_nodes, 1)
    confidence = _confidence(share, obstacle, tie=tie and not never, inferred=inferred)
    root = cause(obstacle.category, obstacle.summary, confidence)
    alternatives: list[RootCause] = []
    for category, nodes in ranked[1:]:
        other = case.obstacles.get(category) or fallback(case, category)
        alt = min(root.confidence - 0.05, 0.2 + 0.5 * nodes / total)
        alternatives.append(
            cause(other.category, f"{nodes} of {total} nodes: {other.summary}", alt)
        )
    for category, other in case.obstacles.items():
        if category not in counts and category != root_category and other.everywhere:
            # Hidden behind the scheduler's first failing filter: it blocks once that is fixed.
            summary = f"Not named by the scheduler, but also blocking: {other.summary}"
            alternatives.append(cause(other.category, summary, min(root.confidence - 0.1, 0.3)))
    alternatives.sort(key=lambda a: -a.confidence)
    how = (
        "inferred from the cluster's state (no scheduler message)"
        if inferred
        else "per the scheduler"
    )
    blocks = f"blocks {root_nodes} of {total} nodes" if case.total_nodes else "(there are no nodes)"
    if never:
        blocks = (
            "decides before any count of nodes: the request exceeds every node's allocatable, "
            "so no node can ever hold the pod"
        )
        how = ""
    elif outside:
        blocks += f" ({outside} more are outside the nodes the pod selects, never candidates)"
    others = "; ".join(f"{category.value}: {nodes} node(s)" for category, nodes in ranked[1:])
    outcome = f"{root.category.value} (confidence {root.confidence}) {blocks}"
    outcome += f" {how}" if how else ""
    outcome += f"; alternatives — {others}" if others else ""
    return Conclusion(
        root, tuple(alternatives[:10]), obstacle.recommendation, obstacle.scope
    ), outcome


def _ranked(
    case: Case, counts: dict[Category, int]
) -> tuple[list[tuple[Category, int]], int, bool]:
    """The categories, the one that decides first; how many nodes lie outside the pod's pool;
    and whether a request above every node's allocatable decided."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], TIE_ORDER.index(kv[0])))
    capacity = Category.PENDING_INSUFFICIENT_RESOURCES
    selector = Category.PENDING_NODE_SELECTOR_MISMATCH
    outside = 0
    if case.pool and selector in counts and len(ranked) > 1:
        # The nodes outside the pod's own pool were never candidates: never the cause, and not
        # counted against the pool when weighing what blocks it.
        outside = counts[selector]
        ranked = [kv for kv in ranked if kv[0] != selector] + [(selector, outside)]
    exceeds = case.obstacles.get(capacity)
    never = (
        exceeds is not None
        and exceeds.category is Category.PENDING_REQUEST_EXCEEDS_NODE_CAPACITY
        and exceeds.certain
    )
    if never:
        # A request above every node's allocatable decides before any count of nodes: whatever
        # else rejects a node, no node could ever hold the pod (DESIGN.md section 3).
        ranked = [(capacity, counts.get(capacity, 0)), *(kv for kv in ranked if kv[0] != capacity)]
    return ranked, outside, never


def _confidence(share: float, obstacle: Obstacle, *, tie: bool, inferred: bool) -> float:
    """0.5 plus up to 0.4 for the share of nodes blocked; the checks confirm or weaken it."""
    confidence = 0.5 + 0.4 * min(1.0, share)
    if obstacle.corroborated is True:
        confidence += 0.05
    elif obstacle.corroborated is False:
        confidence -= 0.2
    if tie:
        confidence -= 0.1
    if inferred:
        confidence *= _INFERRED
    if obstacle.certain:
        confidence = max(confidence, 0.95)
    return min(confidence, 0.97)
