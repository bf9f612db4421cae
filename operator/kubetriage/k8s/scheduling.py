"""Where a pod may run: its node selector and required node affinity against node labels, and
node taints against its tolerations, evaluated the way the scheduler's NodeAffinity and
TaintToleration filters do, so that a report can say which label or toleration is missing.

Kubernetes combines `nodeSelector` and `requiredDuringSchedulingIgnoredDuringExecution` into one
required node affinity (component-helpers' `GetRequiredNodeAffinity`): the selector AND any one
of the terms. Only NoSchedule and NoExecute taints keep a pod off a node.
"""

from __future__ import annotations

import copy
import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubetriage.k8s.access import KubeObject, as_dict, as_list, dicts, labels_of, name_of
from kubetriage.k8s.selectors import Requirement, Selector, label_selector

# Taints the node lifecycle controller sets: the node is not usable, tolerating would not help.
NOT_READY_TAINTS = frozenset(
    {
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/network-unavailable",
        "node.kubernetes.io/out-of-service",
        "node.cloudprovider.kubernetes.io/uninitialized",
    }
)
PRESSURE_TAINTS = frozenset(
    {
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/pid-pressure",
    }
)
CORDON_TAINT = "node.kubernetes.io/unschedulable"
# Every taint the node lifecycle controller sets (not-ready, unschedulable, pressure) has this
# prefix: they follow the node's conditions, and tolerating them is never the fix.
CONTROLLER_TAINT_PREFIX = "node.kubernetes.io/"
# The tolerations the DefaultTolerationSeconds admission plugin gives every pod.
DEFAULT_TOLERATIONS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
# Control-plane taints keep workloads off those nodes on purpose: never recommend tolerating them.
DELIBERATE_TAINTS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)
BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_CLOSE = 0.6


@dataclass(frozen=True)
class Taint:
    """A node taint; `effect` is empty when only a scheduler message named it."""

    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:
        text = f"{self.key}={self.value}" if self.value else self.key
        return f"{text}:{self.effect}" if self.effect else text


@dataclass(frozen=True)
class NodeSelectorRequirement:
    """One label requirement: a nodeSelector entry or a matchExpressions/matchFields item."""

    key: str
    operator: str
    values: tuple[str, ...]
    field: bool = False  # matchFields: the key is metadata.name

    def matches(self, node: KubeObject) -> bool:
        """Whether a node satisfies it, with the operators' API semantics."""
        labels = {"metadata.name": name_of(node)} if self.field else labels_of(node)
        value = labels.get(self.key)
        if self.operator == "In":
            return value in self.values
        if self.operator == "NotIn":
            return value not in self.values
        if self.operator == "Exists":
            return value is not None
        if self.operator == "DoesNotExist":
            return value is None
        if self.operator in {"Gt", "Lt"} and value is not None and self.values:
            try:
                node_number, wanted = int(value), int(self.values[0])
            except ValueError:
                return False
            return node_number > wanted if self.operator == "Gt" else node_number < wanted
        return False

    def __str__(self) -> str:
        if self.operator == "In" and len(self.values) == 1:
            return f"{self.key}={self.values[0]}"
        if self.operator in {"Exists", "DoesNotExist"}:
            return f"{self.key} {self.operator}"
        return f"{self.key} {self.operator} ({', '.join(self.values)})"


@dataclass(frozen=True)
class RequiredNodeAffinity:
    """A pod's hard placement rules: nodeSelector AND (any one of the required terms)."""

    selector: tuple[NodeSelectorRequirement, ...]
    terms: tuple[tuple[NodeSelectorRequirement, ...], ...]
    raw_terms: tuple[dict[str, Any], ...]

    @property
    def empty(self) -> bool:
        """Whether the pod asks for no node labels at all."""
        return not self.selector and not self.terms

    @property
    def pinned_by_name(self) -> bool:
        """A DaemonSet pod: its affinity names one node, so every other node 'does not match'."""
        return any(r.field and r.key == "metadata.name" for term in self.terms for r in term)

    def matches(self, node: KubeObject) -> bool:
        """Whether the NodeAffinity filter lets the pod onto this node."""
        if not all(r.matches(node) for r in self.selector):
            return False
        return not self.terms or any(all(r.matches(node) for r in term) for term in self.terms)

    def asked(self) -> list[NodeSelectorRequirement]:
        """Every requirement, nodeSelector first."""
        return [*self.selector, *(r for term in self.terms for r in term)]


def _requirement(item: dict[str, Any], *, field: bool = False) -> NodeSelectorRequirement:
    values = tuple(str(v) for v in as_list(item.get("values")))
    return NodeSelectorRequirement(
        str(item.get("key") or ""), str(item.get("operator") or ""), values, field
    )


def required_node_affinity(pod_spec: dict[str, Any]) -> RequiredNodeAffinity:
    """Read nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    selector = tuple(
        NodeSelectorRequirement(str(k), "In", (str(v),))
        for k, v in as_dict(pod_spec.get("nodeSelector")).items()
    )
    required = as_dict(
        as_dict(as_dict(pod_spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    terms: list[tuple[NodeSelectorRequirement, ...]] = []
    raw_terms: list[dict[str, Any]] = []
    for term in dicts(required.get("nodeSelectorTerms")):
        requirements = [
            _requirement(item, field=is_field)
            for is_field, items in (
                (False, term.get("matchExpressions")),
                (True, term.get("matchFields")),
            )
            for item in dicts(items)
        ]
        raw_terms.append(term)
        # An empty term matches no node (API semantics), so it is kept as impossible.
        terms.append(tuple(requirements) or (NodeSelectorRequirement("", "In", ()),))
    return RequiredNodeAffinity(selector, tuple(terms), tuple(raw_terms))


def nearest_labels(
    requirement: NodeSelectorRequirement, nodes: list[KubeObject], limit: int = 4
) -> list[str]:
    """Labels that exist on nodes and come closest to what is asked: the same key with other
    values first (closest value first), else similar keys, else the asked value under other keys."""
    counts: Counter[tuple[str, str]] = Counter(
        item for node in nodes for item in labels_of(node).items()
    )
    asked = requirement.values[0] if requirement.values else ""

    def shown(items: list[tuple[str, str]]) -> list[str]:
        return [f"{k}={v} ({counts[(k, v)]} node(s))" for k, v in items[:limit]]

    same_key = [kv for kv in counts if kv[0] == requirement.key]
    if same_key:
        return shown(sorted(same_key, key=lambda kv: (-_ratio(asked, kv[1]), kv[1])))
    keys = sorted({k for k, _ in counts})
    close_keys = [k for k in keys if _similar_keys(requirement.key, k)]
    if close_keys:
        return shown(
            sorted(
                (kv for kv in counts if kv[0] in close_keys),
                key=lambda kv: (-_ratio(asked, kv[1]), kv),
            )
        )
    return shown(sorted(kv for kv in counts if asked and kv[1] == asked))


def _similar_keys(asked: str, existing: str) -> bool:
    """`nodepool` and `cloud.google.com/gke-nodepool`; `node-pool` and `nodepool`."""
    if _ratio(asked, existing) >= _CLOSE:
        return True
    tail, other = asked.rsplit("/", 1)[-1].lower(), existing.rsplit("/", 1)[-1].lower()
    return _ratio(tail, other) >= _CLOSE or (len(tail) >= 4 and tail in other)


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def closest_value(requirement: NodeSelectorRequirement, nodes: list[KubeObject]) -> str | None:
    """For `key=value` / `key In (...)` that no node has: the existing value of the same key
    closest to what was asked, when it is close enough to be the intended one."""
    if requirement.operator != "In" or requirement.field:
        return None
    values = {labels_of(n)[requirement.key] for n in nodes if requirement.key in labels_of(n)}
    if not values or any(v in values for v in requirement.values):
        return None
    best = max(sorted(values), key=lambda v: max(_ratio(a, v) for a in requirement.values or ("",)))
    score = max(_ratio(a, best) for a in requirement.values or ("",))
    return best if score >= _CLOSE else None


def corrected_node_affinity(
    pod_spec: dict[str, Any], affinity: RequiredNodeAffinity, nodes: list[KubeObject]
) -> tuple[dict[str, Any], list[str]] | None:
    """A pod-spec fragment that replaces each label value no node has with the closest existing
    one, and what it changed; None when nothing can be corrected or it would still match no node."""
    fragment: dict[str, Any] = {}
    changes: list[str] = []
    selector = {r.key: r.values[0] for r in affinity.selector}
    for requirement in affinity.selector:
        value = closest_value(requirement, nodes)
        if value is not None:
            selector[requirement.key] = value
            changes.append(f"nodeSelector {requirement} -> {requirement.key}={value}")
    if changes:
        fragment["nodeSelector"] = selector
    terms = copy.deepcopy(list(affinity.raw_terms))
    term_changed = False
    for term in terms:
        for item in dicts(term.get("matchExpressions")):
            requirement = _requirement(item)
            value = closest_value(requirement, nodes)
            if value is not None:
                item["values"] = [value]
                term_changed = True
                changes.append(f"node affinity {requirement} -> {requirement.key} In ({value})")
    if term_changed:
        fragment["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
            }
        }
    if not changes:
        return None
    fixed = required_node_affinity({**pod_spec, **fragment})
    return (fragment, changes) if any(fixed.matches(n) for n in nodes) else None


# --- taints --------------------------------------------------------------------------------------


def node_taints(node: KubeObject) -> list[Taint]:
    """Every taint of a node, whatever its effect."""
    return [
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in dicts(as_dict(node.get("spec")).get("taints"))
    ]


def tolerates(tolerations: list[Any], taint: Taint) -> bool:
    """Whether any toleration matches the taint (core/v1 ToleratesTaint)."""
    for toleration in dicts(tolerations):
        effect = toleration.get("effect") or ""
        if effect and effect != taint.effect:
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if not key and operator == "Exists":
            return True
        if key != taint.key:
            continue
        if operator == "Exists" or (toleration.get("value") or "") == taint.value:
            return True
    return False


def untolerated(node: KubeObject, tolerations: list[Any]) -> list[Taint]:
    """The node's taints that keep the pod off it: NoSchedule or NoExecute, not tolerated."""
    return [
        t
        for t in node_taints(node)
        if t.effect in BLOCKING_EFFECTS and not tolerates(tolerations, t)
    ]


def toleration_for(taint: Taint) -> dict[str, str]:
    """The toleration that lets a pod onto nodes with this taint."""
    toleration = {
        "key": taint.key,
        "operator": "Equal",
        "value": taint.value,
        "effect": taint.effect,
    }
    if not taint.value:
        toleration = {"key": taint.key, "operator": "Exists", "effect": taint.effect}
    return {k: v for k, v in toleration.items() if v}


def toleration_text(toleration: dict[str, Any]) -> str:
    """A toleration as a person reads it: `dedicated=gpu:NoSchedule`, `gpu Exists`, `*`."""
    key = str(toleration.get("key") or "*")
    value = f"={toleration['value']}" if toleration.get("value") else ""
    exists = " Exists" if toleration.get("operator") == "Exists" else ""
    effect = f":{toleration['effect']}" if toleration.get("effect") else ""
    return f"{key}{value}{exists}{effect}"


# --- host ports (NodePorts) ----------------------------------------------------------------------


@dataclass(frozen=True)
class HostPort:
    """A port a container binds on its node: `hostIP` empty means every address (0.0.0.0)."""

    port: int
    protocol: str = "TCP"
    host_ip: str = ""
    container: str = ""
    container_port: int = 0

    def conflicts(self, other: HostPort) -> bool:
        """Whether two pods asking for these cannot share a node (the scheduler's
        HostPortInfo.CheckConflict: same protocol and port, and one of them on every address
        or both on the same one)."""
        if (self.port, self.protocol) != (other.port, other.protocol):
            return False
        everywhere = {"", "0.0.0.0"}
        return (
            self.host_ip in everywhere
            or other.host_ip in everywhere
            or (self.host_ip == other.host_ip)
        )

    def __str__(self) -> str:
        where = f"{self.host_ip}:" if self.host_ip not in {"", "0.0.0.0"} else ""
        return f"{where}{self.port}/{self.protocol}"


def host_ports(pod_spec: dict[str, Any]) -> list[HostPort]:
    """The host ports a pod binds: its containers' and its sidecars' (init containers with
    restartPolicy Always), as the NodePorts filter collects them."""
    found: list[HostPort] = []
    sidecars = [
        c for c in dicts(pod_spec.get("initContainers")) if c.get("restartPolicy") == "Always"
    ]
    for container in [*sidecars, *dicts(pod_spec.get("containers"))]:
        for port in dicts(container.get("ports")):
            number = port.get("hostPort")
            if isinstance(number, int) and not isinstance(number, bool) and number > 0:
                found.append(
                    HostPort(
                        number,
                        str(port.get("protocol") or "TCP"),
                        str(port.get("hostIP") or ""),
                        str(container.get("name") or ""),
                        port["containerPort"] if isinstance(port.get("containerPort"), int) else 0,
                    )
                )
    return found


# --- where a PersistentVolume can be used (VolumeBinding, VolumeZone) ----------------------------

_ZONE_LABELS = (
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
)


def volume_node_affinity(volume: KubeObject) -> RequiredNodeAffinity:
    """The nodes a PersistentVolume may be used on: its `spec.nodeAffinity.required` terms, and
    the zone/region labels older provisioners set on the volume instead (`a__b` lists several
    zones), which the VolumeZone filter checks. Empty when the volume may be used anywhere."""
    required = as_dict(as_dict(as_dict(volume.get("spec")).get("nodeAffinity")).get("required"))
    affinity = required_node_affinity(
        {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}}
        if dicts(required.get("nodeSelectorTerms"))
        else {}
    )
    zoned = tuple(
        NodeSelectorRequirement(key, "In", tuple(str(labels_of(volume)[key]).split("__")))
        for key in _ZONE_LABELS
        if labels_of(volume).get(key)
    )
    return RequiredNodeAffinity(zoned, affinity.terms, affinity.raw_terms)


def affinity_text(affinity: RequiredNodeAffinity) -> str:
    """Node affinity as a person reads it: `zone=a` (the selector AND each term), terms joined
    by `or`."""
    selector = [str(r) for r in affinity.selector]
    terms = [" and ".join(selector + [str(r) for r in term]) for term in affinity.terms]
    return " or ".join(terms) if terms else " and ".join(selector)


# --- topology spread (PodTopologySpread) ---------------------------------------------------------


@dataclass(frozen=True)
class SpreadConstraint:
    """One topologySpreadConstraint of a pod, with its selector merged with `matchLabelKeys`."""

    index: int
    topology_key: str
    max_skew: int
    when_unsatisfiable: str
    selector: Selector | None
    min_domains: int
    honors_node_affinity: bool
    honors_taints: bool
    raw: dict[str, Any]

    @property
    def hard(self) -> bool:
        """Whether the scheduler filters on it (DoNotSchedule) rather than only scoring."""
        return self.when_unsatisfiable != "ScheduleAnyway"


def spread_constraints(
    pod_spec: dict[str, Any], pod_labels: dict[str, str]
) -> list[SpreadConstraint]:
    """A pod's topology spread constraints, as the PodTopologySpread plugin reads them."""
    found = []
    for index, raw in enumerate(dicts(pod_spec.get("topologySpreadConstraints"))):
        selector = label_selector(raw.get("labelSelector"))
        keys = [str(k) for k in as_list(raw.get("matchLabelKeys")) if str(k) in pod_labels]
        if selector is not None and keys:
            extra = tuple(Requirement(k, "=", (pod_labels[k],)) for k in keys)
            selector = Selector(selector.requirements + extra)
        skew, domains = raw.get("maxSkew"), raw.get("minDomains")
        found.append(
            SpreadConstraint(
                index=index,
                topology_key=str(raw.get("topologyKey") or ""),
                max_skew=skew if isinstance(skew, int) and skew > 0 else 1,
                when_unsatisfiable=str(raw.get("whenUnsatisfiable") or "DoNotSchedule"),
                selector=selector,
                min_domains=domains if isinstance(domains, int) and domains > 0 else 1,
                honors_node_affinity=raw.get("nodeAffinityPolicy", "Honor") != "Ignore",
                honors_taints=raw.get("nodeTaintsPolicy", "Ignore") == "Honor",
                raw=raw,
            )
        )
    return found


def counts_toward_spread(pod: KubeObject, namespace: str, selector: Selector | None) -> bool:
    """Whether an existing pod counts in a spread domain: same namespace, bound to a node, not
    terminating, and selected (an empty or missing selector counts nothing)."""
    metadata = as_dict(pod.get("metadata"))
    return (
        selector is not None
        and not selector.empty
        and metadata.get("namespace") == namespace
        and not metadata.get("deletionTimestamp")
        and bool(as_dict(pod.get("spec")).get("nodeName"))
        and selector.matches(labels_of(pod))
    )


# --- inter-pod affinity (InterPodAffinity) -------------------------------------------------------


@dataclass(frozen=True)
class PodAffinityTerm:
    """One required pod affinity or anti-affinity term. `namespaces` None means every
    namespace (an empty namespaceSelector); else the namespaces its pods may live in."""

    anti: bool
    topology_key: str
    selector: Selector | None
    namespaces: tuple[str, ...] | None
    raw: dict[str, Any]

    def selects(self, pod: KubeObject) -> bool:
        """Whether an existing pod is one the term is about."""
        namespace = str(as_dict(pod.get("metadata")).get("namespace") or "")
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.selector is not None and self.selector.matches(labels_of(pod))


def pod_affinity_terms(
    pod_spec: dict[str, Any], namespace: str, *, anti: bool
) -> list[PodAffinityTerm]:
    """The required terms of a pod's podAffinity (or podAntiAffinity). A term with neither
    `namespaces` nor `namespaceSelector` is about the pod's own namespace; an empty
    namespaceSelector is about every namespace (a non-empty one is taken as every namespace
    too: Namespace labels are not read here)."""
    field = "podAntiAffinity" if anti else "podAffinity"
    block = as_dict(as_dict(pod_spec.get("affinity")).get(field))
    found = []
    for raw in dicts(block.get("requiredDuringSchedulingIgnoredDuringExecution")):
        listed = tuple(str(n) for n in as_list(raw.get("namespaces")))
        namespaces: tuple[str, ...] | None = listed or (namespace,)
        if isinstance(raw.get("namespaceSelector"), dict):
            namespaces = None
        found.append(
            PodAffinityTerm(
                anti=anti,
                topology_key=str(raw.get("topologyKey") or ""),
                selector=label_selector(raw.get("labelSelector")),
                namespaces=namespaces,
                raw=raw,
            )
        )
    return found
