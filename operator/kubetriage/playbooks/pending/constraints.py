"""The Pending playbook's checks of the scheduler's later filters, in its order: the host ports a
pod binds (NodePorts), where its bound volumes can be used (VolumeBinding, VolumeZone), and the
constraints it sets relative to other pods (PodTopologySpread, InterPodAffinity).

Each check reads what the filter reads — the ports of the pods bound to each node, the
PersistentVolume behind each bound claim, the matching pods in each topology domain — records
that as evidence, notes the nodes it rules out (for inference when no scheduler message is left),
and leaves an `Obstacle` with the recommendation `advise.py` writes for it. A node an earlier
filter already rejected (cordoned, NotReady, tainted, outside the pod's selector) is not a
candidate for the later ones: the scheduler counts a node under the first filter that rejects it.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from kubetriage.k8s.access import (
    KubeObject,
    as_dict,
    is_scheduled,
    labels_of,
    meta,
    name_of,
    node_name,
)
from kubetriage.k8s.owners import WorkloadRef, owning_workload
from kubetriage.k8s.scheduling import (
    HostPort,
    PodAffinityTerm,
    SpreadConstraint,
    affinity_text,
    counts_toward_spread,
    host_ports,
    nearest_labels,
    pod_affinity_terms,
    required_node_affinity,
    spread_constraints,
    untolerated,
    volume_node_affinity,
)
from kubetriage.k8s.volumes import claims_of
from kubetriage.models import Category, EvidenceSource
from kubetriage.playbooks.pending.advise import (
    anti_affinity_advice,
    existing_anti_affinity_advice,
    host_port_advice,
    pod_affinity_advice,
    spread_advice,
    spread_label_advice,
    volume_affinity_advice,
)
from kubetriage.playbooks.pending.messages import Blocker
from kubetriage.playbooks.pending.reads import (
    SHOWN,
    Case,
    Obstacle,
    listed,
    why_unusable,
)

HOSTNAME = "kubernetes.io/hostname"


def _candidates(case: Case) -> list[str]:
    """The nodes no earlier filter (cordon, NotReady, taints, node affinity) keeps the pod off."""
    return sorted(name_of(n) for n in case.nodes if name_of(n) not in case.ruled_out)


def _out_of_play(case: Case) -> str:
    """The nodes earlier filters rule out, said briefly: `kwok-node-3 is NotReady`."""
    groups: dict[str, list[str]] = {}
    for node in sorted(case.ruled_out & {name_of(n) for n in case.nodes}):
        groups.setdefault(why_unusable(case, node), []).append(node)
    parts = []
    for why, nodes in groups.items():
        verb = "is" if len(nodes) == 1 else "are"
        parts.append(f"{listed(nodes)} {verb} {why}")
    return "; ".join(parts)


# --- host ports ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortHolder:
    """A pod bound to a node that holds one of the host ports the pending pod asks for."""

    node: str
    pod: KubeObject
    port: HostPort
    workload: WorkloadRef

    @property
    def name(self) -> str:
        """`namespace/pod`."""
        return f"{meta(self.pod).get('namespace') or 'default'}/{name_of(self.pod)}"


def check_ports(case: Case) -> str:
    """Which nodes already have the pod's host ports taken, and by whom."""
    ctx, inv = case.context, case.investigation
    ports = host_ports(case.spec)
    said = case.blocked_by(Blocker.PORTS)
    if not ports:
        if said:
            return f"The scheduler reports {said[0].text}, but the pod asks for no host port."
        return "The pod asks for no host ports."
    shown = ", ".join(f"{p} (container {p.container})" for p in ports)
    inv.add_evidence(EvidenceSource.POD_SPEC, f"Pod asks for host port(s): {shown}")
    # Any pod of any namespace may hold the port: the scheduler's view of a node is every pod on
    # it. Read only for a pod that binds host ports.
    holders: list[PortHolder] = []
    for pod in ctx.reader.pods(None):
        node = node_name(pod)
        if node is None or not is_scheduled(pod):
            continue
        for port in host_ports(as_dict(pod.get("spec"))):
            if any(port.conflicts(mine) for mine in ports):
                holders.append(PortHolder(node, pod, port, owning_workload(pod).identity))
    taken = {h.node for h in holders}
    case.port_blocked = taken & {name_of(n) for n in case.nodes}
    for holder in sorted(holders, key=lambda h: (h.node, h.name))[:SHOWN]:
        inv.add_evidence(
            EvidenceSource.NODE,
            f"{holder.node}: host port {holder.port.port}/{holder.port.protocol} taken by "
            f"{holder.name}",
        )
    candidates = _candidates(case)
    blocked = [n for n in candidates if n in taken]
    free = [n for n in candidates if n not in taken]
    ports_text = ", ".join(str(p) for p in ports)
    if not blocked:
        where = f"free on all {len(candidates)} usable node(s)" if candidates else "not taken"
        return f"Host port {ports_text} is {where}."
    if free and not said:
        return (
            f"Host port {ports_text} is taken on {len(blocked)} of {len(candidates)} usable "
            f"node(s) ({listed(blocked)}); free on {listed(free)}."
        )
    own = [h for h in holders if h.workload == ctx.target.identity and h.node in blocked]
    others = [h for h in holders if h.workload != ctx.target.identity and h.node in blocked]
    who = f"all {len(candidates)}" if not free else f"{len(blocked)} of {len(candidates)}"
    replicas = case.replicas()
    pending = case.unscheduled_count()
    if own and not others:
        summary = (
            f"{case.subject} asks for host port {ports_text}, which one pod per node can bind: "
            f"{who} usable nodes already have it taken (by {len(own)} replica(s) of "
            f"{case.subject})"
        )
    else:
        workloads = Counter(str(h.workload) for h in others)
        by = ", ".join(f"{w} ({n} pod(s))" for w, n in workloads.most_common(3))
        summary = (
            f"{case.subject} asks for host port {ports_text}, held on {who} usable nodes by "
            f"other pods: {by}"
        )
        if own:
            summary += f", and by {len(own)} replica(s) of {case.subject}"
    aside = _out_of_play(case)
    if aside:
        summary += f"; {aside}"
    summary += f", so {pending} of its {replicas} replica(s) cannot be placed"
    rec, scope = host_port_advice(case, ports, own_nodes=len(own), others=others, free=len(free))
    case.obstacles[Category.PENDING_HOST_PORT_CONFLICT] = Obstacle(
        Category.PENDING_HOST_PORT_CONFLICT,
        summary,
        corroborated=True,
        recommendation=rec,
        scope=scope,
        everywhere=not free,
    )
    return summary + "."


# --- the bound volumes' node affinity ------------------------------------------------------------


def check_volume_affinity(case: Case) -> str:
    """For each bound claim, read its PersistentVolume and where it can be used."""
    said = case.blocked_by(Blocker.VOLUME_AFFINITY)
    outcomes: list[str] = []
    for _, claim_name in claims_of(case.pod):
        outcome, obstacle = _check_volume(case, claim_name, certain=bool(said))
        if outcome:
            outcomes.append(outcome)
        key = Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT
        if obstacle is not None and key not in case.obstacles:
            case.obstacles[key] = obstacle
    if not outcomes:
        if said:
            return (
                f"The scheduler reports {said[0].text}, but no bound claim of the pod names a "
                "volume."
            )
        return "The pod has no bound claim whose volume restricts where it can run."
    return "; ".join(outcomes) + "."


def _check_volume(
    case: Case, claim_name: str, *, certain: bool
) -> tuple[str | None, Obstacle | None]:
    """One bound claim's volume: where it can be used, and an Obstacle when no usable node is
    there. (None, None) for a claim that is not bound to a named volume."""
    ctx, inv = case.context, case.investigation
    claim = ctx.reader.persistent_volume_claim(ctx.namespace, claim_name)
    if claim is None or as_dict(claim.get("status")).get("phase") != "Bound":
        return None, None
    pv_name = str(as_dict(claim.get("spec")).get("volumeName") or "")
    if not pv_name:
        return None, None
    volume = ctx.reader.persistent_volume(pv_name)
    if volume is None:
        text = f"PersistentVolume {pv_name} (claim {claim_name}) could not be read"
        inv.add_evidence(EvidenceSource.PERSISTENT_VOLUME, text)
        return text, None
    affinity = volume_node_affinity(volume)
    if affinity.empty:
        return f"PersistentVolume {pv_name} (claim {claim_name}) may be used anywhere", None
    where = affinity_text(affinity)
    inv.add_evidence(
        EvidenceSource.PERSISTENT_VOLUME,
        f"PersistentVolume {pv_name} (claim {claim_name}) can be used only on nodes with {where}",
    )
    matching = [name_of(n) for n in case.nodes if affinity.matches(n)]
    usable = [n for n in matching if n not in case.unusable]
    case.volume_blocked |= {name_of(n) for n in case.nodes} - set(usable)
    for node in matching:
        if node in case.unusable:
            state = "cordoned" if node in case.cordoned else "NotReady"
            inv.add_evidence(
                EvidenceSource.NODE,
                f"{node} matches PersistentVolume {pv_name}'s node affinity but is {state}",
            )
    if usable:
        return (
            f"PersistentVolume {pv_name} (claim {claim_name}) can be used on {listed(usable)}",
            None,
        )
    needs = (
        f"{case.pod_name} needs PersistentVolume {pv_name} (claim {claim_name}), which can be "
        f"used only on nodes with {where}"
    )
    if not matching:
        for requirement in affinity.asked():
            if not any(requirement.matches(n) for n in case.nodes):
                close = nearest_labels(requirement, case.nodes) if case.nodes else []
                inv.add_evidence(
                    EvidenceSource.NODE,
                    f"No node has {requirement}; nearest existing labels: "
                    + (", ".join(close) or "none similar"),
                )
        first = affinity.asked()[0]
        nearest = ", ".join(nearest_labels(first, case.nodes) if case.nodes else [])
        nearest = nearest or "no similar labels"
        names = listed([name_of(n) for n in case.nodes])
        summary = f"{needs}; none of the {len(case.nodes)} nodes ({names}) is there ({nearest})"
    elif len(matching) == 1:
        node = matching[0]
        summary = f"{needs}; the one node that has it, {node}, is {why_unusable(case, node)}"
    else:
        summary = (
            f"{needs}; the {len(matching)} nodes that have it ({listed(matching)}) are "
            "cordoned or NotReady"
        )
    rec, scope = volume_affinity_advice(case, volume, affinity, matching)
    obstacle = Obstacle(
        Category.PENDING_VOLUME_NODE_AFFINITY_CONFLICT,
        summary,
        corroborated=True,
        recommendation=rec,
        scope=scope,
        certain=certain or not matching,
    )
    return summary, obstacle


# --- topology spread and inter-pod affinity ------------------------------------------------------


def _counts_text(counts: dict[str, int], domains: list[str]) -> str:
    """`eu-west-1a holds 2 matching pod(s), eu-west-1b 0`."""
    ordered = sorted(domains, key=lambda d: (-counts.get(d, 0), d))
    if not ordered:
        return "no domain"
    first, rest = ordered[0], ordered[1:]
    text = f"{first} holds {counts.get(first, 0)} matching pod(s)"
    return text + "".join(f", {d} {counts.get(d, 0)}" for d in rest)


def _pods_in(case: Case, namespaces: tuple[str, ...] | None) -> list[KubeObject]:
    reader = case.context.reader
    if namespaces is None:
        return reader.pods(None)
    return [p for namespace in namespaces for p in reader.pods(namespace)]


def check_topology(case: Case) -> str:
    """The pod's hard topology spread constraints and required pod (anti-)affinity, with the
    matching pods in each domain."""
    spread = [c for c in spread_constraints(case.spec, labels_of(case.pod)) if c.hard]
    anti = pod_affinity_terms(case.spec, case.context.namespace, anti=True)
    affinity = pod_affinity_terms(case.spec, case.context.namespace, anti=False)
    said_spread = case.blocked_by(Blocker.TOPOLOGY_SPREAD)
    said_affinity = case.blocked_by(Blocker.POD_AFFINITY)
    outcomes: list[str] = []
    found: list[tuple[Obstacle, Blocker]] = []
    for constraint in spread:
        outcome, obstacle = _check_spread(case, constraint, spread)
        outcomes.append(outcome)
        if obstacle is not None:
            found.append((obstacle, Blocker.TOPOLOGY_SPREAD))
    for term in [*anti, *affinity]:
        outcome, obstacle = _check_term(case, term)
        outcomes.append(outcome)
        if obstacle is not None:
            found.append((obstacle, Blocker.POD_AFFINITY))
    if any("existing pods anti-affinity" in r.text for r in said_affinity):
        outcome, obstacle = _check_existing_anti_affinity(case)
        outcomes.append(outcome)
        if obstacle is not None:
            found.append((obstacle, Blocker.POD_AFFINITY))
    if found:
        named = {r.blocker for r in said_spread + said_affinity}
        chosen = next((o for o, b in found if b in named), found[0][0])
        case.obstacles[Category.PENDING_TOPOLOGY_CONSTRAINT] = chosen
    if not outcomes:
        said = said_spread + said_affinity
        if said:
            return (
                f"The scheduler reports {said[0].text}, but the pod has no hard topology spread "
                "constraint or required pod (anti-)affinity."
            )
        return "The pod has no hard topology spread constraint or required pod (anti-)affinity."
    return " ".join(outcomes)


def _nearest_keys(key: str, nodes: list[KubeObject], limit: int = 3) -> list[str]:
    """The node labels whose keys come closest to a topology key no node has (`zone` for
    `rack` under topology.kubernetes.io/), each with its values and node counts."""
    counts: Counter[tuple[str, str]] = Counter(
        item for node in nodes for item in labels_of(node).items()
    )
    keys = sorted(
        {k for k, _ in counts}, key=lambda k: (-difflib.SequenceMatcher(None, k, key).ratio(), k)
    )
    found = []
    for candidate in keys[:limit]:
        values = sorted(v for k, v in counts if k == candidate)
        found.append(
            ", ".join(f"{candidate}={v} ({counts[(candidate, v)]} node(s))" for v in values[:3])
        )
    return [f for f in found if f]


def _eligible(
    case: Case, constraints: list[SpreadConstraint], constraint: SpreadConstraint
) -> list[KubeObject]:
    """The nodes whose domains count for a spread constraint: every topology key present, the
    pod's node affinity matched (nodeAffinityPolicy Honor, the default), and, with
    nodeTaintsPolicy Honor, no untolerated taint."""
    affinity = required_node_affinity(case.spec)
    tolerations = case.spec.get("tolerations")
    eligible = []
    for node in case.nodes:
        node_labels = labels_of(node)
        if not all(c.topology_key in node_labels for c in constraints):
            continue
        if constraint.honors_node_affinity and not affinity.matches(node):
            continue
        if constraint.honors_taints and untolerated(
            node, tolerations if isinstance(tolerations, list) else []
        ):
            continue
        eligible.append(node)
    return eligible


def _check_spread(
    case: Case, constraint: SpreadConstraint, constraints: list[SpreadConstraint]
) -> tuple[str, Obstacle | None]:
    inv = case.investigation
    key = constraint.topology_key
    selector = str(constraint.selector) if constraint.selector is not None else "none"
    candidates = _candidates(case)
    lacking = [n for n in candidates if key not in labels_of(case.node(n))]
    if candidates and len(lacking) == len(candidates):
        close = _nearest_keys(key, case.nodes)
        inv.add_evidence(
            EvidenceSource.NODE,
            f"No node has the label {key} that the topology spread keys on; nearest existing "
            f"labels: " + (", ".join(close) or "none similar"),
        )
        case.topology_blocked |= set(lacking)
        has_none = not any(key in labels_of(n) for n in case.nodes)
        count = (
            f"none of the {len(case.nodes)} nodes has"
            if has_none
            else (f"none of the {len(candidates)} nodes the pod may use has")
        )
        summary = (
            f"{case.pod_name}'s topology spread constraint keys on {key}, a label {count} "
            f"(nearest: {', '.join(close[:2]) or 'no similar label'})"
        )
        rec, scope = spread_label_advice(case, constraint, close)
        obstacle = Obstacle(
            Category.PENDING_TOPOLOGY_CONSTRAINT, summary, True, rec, scope, certain=True
        )
        return summary + ".", obstacle
    eligible = _eligible(case, constraints, constraint)
    domains: dict[str, list[str]] = {}
    for node in eligible:
        domains.setdefault(labels_of(node)[key], []).append(name_of(node))
    counts: Counter[str] = Counter()
    for pod in case.context.reader.pods(case.context.namespace):
        if counts_toward_spread(pod, case.context.namespace, constraint.selector):
            value = labels_of(case.node(node_name(pod) or "")).get(key)
            if value in domains:
                counts[value] += 1
    listed_counts = _counts_text(counts, list(domains))
    inv.add_evidence(
        EvidenceSource.POD_SPEC,
        f"Topology spread on {key} (maxSkew {constraint.max_skew}, "
        f"{constraint.when_unsatisfiable}, selector {selector}): {listed_counts}",
    )
    if not domains:
        return f"Topology spread on {key}: no node counts as a domain.", None
    minimum = min(counts.get(d, 0) for d in domains)
    if len(domains) < constraint.min_domains:
        minimum = 0
    self_match = int(
        constraint.selector is not None and constraint.selector.matches(labels_of(case.pod))
    )
    allowed = [
        n
        for n in candidates
        if key in labels_of(case.node(n))
        and counts.get(labels_of(case.node(n))[key], 0) + self_match - minimum
        <= constraint.max_skew
    ]
    blocked = [n for n in candidates if n not in allowed]
    case.topology_blocked |= set(blocked)
    if allowed:
        return (
            f"Topology spread on {key} (maxSkew {constraint.max_skew}) admits "
            f"{listed(allowed)}: {listed_counts}."
        ), None
    fewest = sorted(d for d in domains if counts.get(d, 0) == minimum)
    domain = fewest[0]
    nodes = sorted(domains[domain])
    reasons = sorted({why_unusable(case, n) for n in nodes})
    reason = " or ".join(reasons)
    if candidates:
        here = labels_of(case.node(candidates[0])).get(key)
        skew = counts.get(here or "", 0) + self_match - minimum
        place = f"a pod in {here} would make the skew {skew}"
    else:
        place = "no node the pod may use is left"
    summary = (
        f"{case.pod_name}'s topology spread constraint on {key} (maxSkew {constraint.max_skew}, "
        f"{constraint.when_unsatisfiable}, {selector}) admits no node: {listed_counts}; {place}, "
        f"and {domain}'s only node(s) ({listed(nodes)}) are {reason}"
    )
    rec, scope = spread_advice(case, constraint, domain, nodes)
    obstacle = Obstacle(Category.PENDING_TOPOLOGY_CONSTRAINT, summary, True, rec, scope)
    return summary + ".", obstacle


def _check_term(case: Case, term: PodAffinityTerm) -> tuple[str, Obstacle | None]:
    inv = case.investigation
    kind = "anti-affinity" if term.anti else "affinity"
    selector = str(term.selector) if term.selector is not None else "nothing"
    spaces = ", ".join(term.namespaces) if term.namespaces is not None else "all namespaces"
    own = {name_of(p) for p in case.group}
    pods = [
        p
        for p in _pods_in(case, term.namespaces)
        if term.selects(p) and node_name(p) and name_of(p) not in own and is_scheduled(p)
    ]
    key = term.topology_key
    counts: Counter[str] = Counter()
    for pod in pods:
        value = labels_of(case.node(node_name(pod) or "")).get(key)
        if value is not None:
            counts[value] += 1
    candidates = _candidates(case)
    domains = sorted({v for n in candidates if (v := labels_of(case.node(n)).get(key)) is not None})
    listed_counts = (
        _counts_text(counts, sorted(set(domains) | set(counts))) if pods else ("no pod matches")
    )
    inv.add_evidence(
        EvidenceSource.POD_SPEC,
        f"Required pod {kind} on {key} ({selector} in {spaces}): {listed_counts}",
    )
    if term.anti:
        blocked = [n for n in candidates if counts.get(labels_of(case.node(n)).get(key) or "", 0)]
        case.topology_blocked |= set(blocked)
        if not candidates or len(blocked) < len(candidates):
            return f"Required pod anti-affinity on {key} ({selector}) admits some nodes.", None
        replicas = case.replicas()
        mine = all(owning_workload(p).identity == case.context.target.identity for p in pods)
        if mine and key == HOSTNAME:
            held = ", ".join(
                f"{node_name(p)}: {name_of(p)}" for p in sorted(pods, key=name_of)[:SHOWN]
            )
            summary = (
                f"{case.subject} wants {replicas} replica(s), but its required pod anti-affinity "
                f"({selector}, one per {key}) allows one per node: each of the "
                f"{len(candidates)} nodes already runs one ({held})"
            )
        else:
            summary = (
                f"{case.pod_name}'s required pod anti-affinity ({selector}, one per {key}) rules "
                f"out every node the pod may use: {listed_counts}"
            )
        rec, scope = anti_affinity_advice(case, term, len(domains))
        return summary + ".", Obstacle(
            Category.PENDING_TOPOLOGY_CONSTRAINT, summary, True, rec, scope
        )
    allowed = [n for n in candidates if counts.get(labels_of(case.node(n)).get(key) or "", 0)]
    self_match = term.selector is not None and term.selector.matches(labels_of(case.pod))
    if allowed or (not pods and self_match):
        return f"Required pod affinity on {key} ({selector}) admits some nodes.", None
    case.topology_blocked |= set(candidates)
    if not pods:
        summary = (
            f"{case.pod_name}'s required pod affinity asks to run in the same {key} as pods with "
            f"{selector}, and no pod {_in_namespaces(term)} carries it"
        )
    else:
        summary = (
            f"{case.pod_name}'s required pod affinity asks to run in the same {key} as pods with "
            f"{selector}: they run only in {', '.join(sorted(counts))}, where no node can take it "
            f"({_out_of_play(case) or 'every node there is ruled out'})"
        )
    rec, scope = pod_affinity_advice(case, term, bool(pods))
    certain = not pods
    return summary + ".", Obstacle(
        Category.PENDING_TOPOLOGY_CONSTRAINT, summary, True, rec, scope, certain=certain
    )


def _in_namespaces(term: PodAffinityTerm) -> str:
    """`in namespace api`, `in namespaces a, b`, `in any namespace`."""
    if term.namespaces is None:
        return "in any namespace"
    plural = "s" if len(term.namespaces) > 1 else ""
    return f"in namespace{plural} {', '.join(term.namespaces)}"


def _check_existing_anti_affinity(case: Case) -> tuple[str, Obstacle | None]:
    """Pods already running whose own required anti-affinity selects this pod."""
    inv = case.investigation
    mine = labels_of(case.pod)
    found: list[tuple[KubeObject, PodAffinityTerm]] = []
    for pod in case.context.reader.pods(None):
        if not node_name(pod) or not is_scheduled(pod):
            continue
        namespace = str(meta(pod).get("namespace") or "default")
        for term in pod_affinity_terms(as_dict(pod.get("spec")), namespace, anti=True):
            in_scope = term.namespaces is None or case.context.namespace in term.namespaces
            if in_scope and term.selector is not None and term.selector.matches(mine):
                found.append((pod, term))
    if not found:
        return "No running pod's anti-affinity selects this pod's labels.", None
    for pod, term in found[:SHOWN]:
        inv.add_evidence(
            EvidenceSource.POD_SPEC,
            f"Pod {meta(pod).get('namespace')}/{name_of(pod)} on {node_name(pod)} has a required "
            f"pod anti-affinity ({term.selector}, one per {term.topology_key}) that selects this "
            "pod",
        )
    pods = ", ".join(f"{meta(p).get('namespace')}/{name_of(p)}" for p, _ in found[:3])
    summary = (
        f"Running pods keep {case.pod_name} away with their own required anti-affinity: {pods}"
        + (f" and {len(found) - 3} more" if len(found) > 3 else "")
    )
    rec, scope = existing_anti_affinity_advice(case, found)
    return summary + ".", Obstacle(Category.PENDING_TOPOLOGY_CONSTRAINT, summary, True, rec, scope)
