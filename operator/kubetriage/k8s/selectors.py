"""Label selectors: the string form kubectl and settings take (`env in (prod,production),tier`),
and the `matchLabels`/`matchExpressions` objects workloads and Services carry.

One parser for the whole package, with apimachinery's grammar: requirements separated by
commas, each `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`,
`key notin (v1,v2)`, `key>N` or `key<N`. An invalid selector raises `SelectorError` naming
what is wrong; nothing is ever dropped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubetriage.k8s.access import as_dict, dicts

_NAME = r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
_KEY = re.compile(rf"^(?:(?P<prefix>{_PREFIX})/)?(?P<name>{_NAME})$")
_VALUE = re.compile(rf"^(?:{_NAME})?$")
_REQUIREMENT = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<absent>[^\s!=<>(),]+)"
    r"|(?P<key>[^\s!=<>(),]+)\s*(?:(?P<op>==|!=|=|>|<)\s*(?P<value>[^\s!=<>(),]*)"
    r"|\s(?P<set>in|notin)\s*\((?P<values>[^()]*)\)|))\s*$"
)


class SelectorError(ValueError):
    """A label selector that does not parse; the message names the offending part."""


@dataclass(frozen=True)
class Requirement:
    """One term of a selector: a key, an operator, and its values."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a set of labels satisfies this term."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator in {"=", "in"}:
            return present and value in self.values
        if self.operator in {"!=", "notin"}:
            return not present or value not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if not present or value is None or not _is_integer(value):
            return False
        bound = int(self.values[0])
        return int(value) > bound if self.operator == ">" else int(value) < bound

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in {"in", "notin"}:
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        return f"{self.key}{self.operator}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """A parsed label selector: every requirement must hold. No requirements selects all."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, Any]) -> bool:
        """Whether these labels are selected."""
        text = {str(k): str(v) for k, v in labels.items()}
        return all(r.matches(text) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirement at all."""
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_selector(text: str) -> Selector:
    """A selector from its string form, as `kubectl get -l` takes it."""
    requirements = []
    for term in _split_terms(text):
        requirements.append(_parse_requirement(term, text))
    return Selector(tuple(requirements))


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    terms.append("".join(current))
    stripped = [t.strip() for t in terms]
    if stripped == [""]:
        return []
    if "" in stripped:
        raise SelectorError(f"empty requirement in selector {text!r}")
    return stripped


def _parse_requirement(term: str, text: str) -> Requirement:
    found = _REQUIREMENT.match(term)
    if found is None:
        raise SelectorError(f"cannot parse {term!r} in selector {text!r}")
    if found["not"]:
        return Requirement(_key(found["absent"], text), "!")
    key = _key(found["key"], text)
    if found["op"]:
        operator = "=" if found["op"] == "==" else found["op"]
        value = found["value"]
        if operator in {">", "<"} and not _is_integer(value):
            raise SelectorError(f"{term!r} in selector {text!r}: {operator} needs an integer")
        return Requirement(key, operator, (_value(value, text),))
    if found["set"]:
        values = [v.strip() for v in found["values"].split(",")]
        if values == [""]:
            raise SelectorError(f"{term!r} in selector {text!r}: {found['set']} needs values")
        return Requirement(key, found["set"], tuple(sorted({_value(v, text) for v in values})))
    return Requirement(key, "exists")


def _key(key: str, text: str) -> str:
    found = _KEY.match(key)
    if found is None or len(found["prefix"] or "") > 253:
        raise SelectorError(f"invalid label key {key!r} in selector {text!r}")
    return key


def _value(value: str, text: str) -> str:
    if not _VALUE.match(value):
        raise SelectorError(f"invalid label value {value!r} in selector {text!r}")
    return value


def _is_integer(value: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", value) is not None


def label_selector(selector: Any) -> Selector | None:
    """A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`) as a Selector; None
    when there is none (which selects nothing), an empty one selects everything."""
    if not isinstance(selector, dict):
        return None
    requirements = [
        Requirement(str(key), "=", (str(value),))
        for key, value in sorted(as_dict(selector.get("matchLabels")).items())
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expression in dicts(selector.get("matchExpressions")):
        operator = operators.get(str(expression.get("operator")))
        if operator is None or not isinstance(expression.get("key"), str):
            return None  # an expression the apiserver would refuse: select nothing
        values = expression.get("values")
        texts = tuple(sorted(str(v) for v in values)) if isinstance(values, list) else ()
        requirements.append(Requirement(expression["key"], operator, texts))
    return Selector(tuple(requirements))


def service_selects(selector: Any, labels: Mapping[str, Any]) -> bool:
    """Whether a Service's selector (a plain map) selects these labels. A Service without a
    selector selects nothing: its endpoints are managed by hand."""
    if not isinstance(selector, dict) or not selector:
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def match_labels_string(selector: Any) -> str | None:
    """The `matchLabels` of a LabelSelector as a `kubectl -l` argument, None when it has none."""
    labels = as_dict(as_dict(selector).get("matchLabels"))
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None
