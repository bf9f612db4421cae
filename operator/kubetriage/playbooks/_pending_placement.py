"""Where a pod may go: its node selector and required node affinity against node labels, and node
taints against its tolerations — evaluated the way the scheduler's NodeAffinity and
TaintToleration filters do, so the report can say which label or toleration is missing.
"""

from __future__ import annotations

import copy
import difflib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubetriage.k8s.access import KubeObject, meta, name_of
from kubetriage.playbooks._pending_messages import Taint

# Control-plane taints keep workloads off those nodes on purpose: never recommend tolerating them.
DELIBERATE_TAINTS = frozenset(
    {"node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master"}
)
_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
_CLOSE = 0.6


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def node_labels(node: KubeObject) -> dict[str, str]:
    """A node's labels as strings."""
    return {str(k): str(v) for k, v in _dict(meta(node).get("labels")).items()}


@dataclass(frozen=True)
class Requirement:
    """One label requirement: a nodeSelector entry or a matchExpressions/matchFields item."""

    key: str
    operator: str
    values: tuple[str, ...]
    field: bool = False  # matchFields: the key is metadata.name

    def matches(self, node: KubeObject) -> bool:
        """Whether a node satisfies it, with the operators' API semantics."""
        labels = {"metadata.name": name_of(node)} if self.field else node_labels(node)
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
class Placement:
    """A pod's hard placement rules: nodeSelector AND (any one of the required terms)."""

    selector: tuple[Requirement, ...]
    terms: tuple[tuple[Requirement, ...], ...]
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

    def asked(self) -> list[Requirement]:
        """Every requirement, nodeSelector first."""
        return [*self.selector, *(r for term in self.terms for r in term)]


def _requirement(item: dict[str, Any], *, field: bool = False) -> Requirement:
    values = tuple(str(v) for v in _list(item.get("values")))
    return Requirement(str(item.get("key") or ""), str(item.get("operator") or ""), values, field)


def placement_of(pod_spec: dict[str, Any]) -> Placement:
    """Read nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""
    selector = tuple(
        Requirement(str(k), "In", (str(v),)) for k, v in _dict(pod_spec.get("nodeSelector")).items()
    )
    required = _dict(
        _dict(_dict(pod_spec.get("affinity")).get("nodeAffinity")).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    )
    terms: list[tuple[Requirement, ...]] = []
    raw_terms: list[dict[str, Any]] = []
    for term in _list(required.get("nodeSelectorTerms")):
        if not isinstance(term, dict):
            continue
        requirements = [
            _requirement(item, field=is_field)
            for is_field, items in (
                (False, term.get("matchExpressions")),
                (True, term.get("matchFields")),
            )
            for item in _list(items)
            if isinstance(item, dict)
        ]
        raw_terms.append(term)
        # An empty term matches no node (API semantics), so it is kept as impossible.
        terms.append(tuple(requirements) or (Requirement("", "In", ()),))
    return Placement(selector, tuple(terms), tuple(raw_terms))


def nearest_labels(requirement: Requirement, nodes: list[KubeObject], limit: int = 4) -> list[str]:
    """Labels that exist on nodes and come closest to what is asked: the same key with other
    values first (closest value first), else similar keys, else the asked value under other keys."""
    counts: Counter[tuple[str, str]] = Counter(
        item for node in nodes for item in node_labels(node).items()
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


def closest_value(requirement: Requirement, nodes: list[KubeObject]) -> str | None:
    """For `key=value` / `key In (...)` that no node has: the existing value of the same key
    closest to what was asked, when it is close enough to be the intended one."""
    if requirement.operator != "In" or requirement.field:
        return None
    values = {node_labels(n)[requirement.key] for n in nodes if requirement.key in node_labels(n)}
    if not values or any(v in values for v in requirement.values):
        return None
    best = max(sorted(values), key=lambda v: max(_ratio(a, v) for a in requirement.values or ("",)))
    score = max(_ratio(a, best) for a in requirement.values or ("",))
    return best if score >= _CLOSE else None


def corrected_placement(
    pod_spec: dict[str, Any], placement: Placement, nodes: list[KubeObject]
) -> tuple[dict[str, Any], list[str]] | None:
    """A pod-spec fragment that replaces each label value no node has with the closest existing
    one, and what it changed; None when nothing can be corrected or it would still match no node."""
    fragment: dict[str, Any] = {}
    changes: list[str] = []
    selector = {r.key: r.values[0] for r in placement.selector}
    for requirement in placement.selector:
        value = closest_value(requirement, nodes)
        if value is not None:
            selector[requirement.key] = value
            changes.append(f"nodeSelector {requirement} -> {requirement.key}={value}")
    if changes:
        fragment["nodeSelector"] = selector
    terms = copy.deepcopy(list(placement.raw_terms))
    term_changed = False
    for term in terms:
        for item in _list(term.get("matchExpressions")):
            if not isinstance(item, dict):
                continue
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
    fixed = placement_of({**pod_spec, **fragment})
    return (fragment, changes) if any(fixed.matches(n) for n in nodes) else None


# --- taints --------------------------------------------------------------------------------------


def node_taints(node: KubeObject) -> list[Taint]:
    """The taints that keep pods off a node (NoSchedule, NoExecute)."""
    return [
        Taint(str(t.get("key") or ""), str(t.get("value") or ""), str(t.get("effect") or ""))
        for t in _list(_dict(node.get("spec")).get("taints"))
        if isinstance(t, dict) and str(t.get("effect")) in _BLOCKING_EFFECTS
    ]


def tolerates(tolerations: list[Any], taint: Taint) -> bool:
    """Whether any toleration matches the taint (core/v1 ToleratesTaint)."""
    for toleration in tolerations:
        if not isinstance(toleration, dict):
            continue
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
    """The node's blocking taints that the pod does not tolerate."""
    return [t for t in node_taints(node) if not tolerates(tolerations, t)]


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
