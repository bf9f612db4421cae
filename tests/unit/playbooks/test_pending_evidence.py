"""Every sentence the Pending runbook writes is checked against the object it describes (issue 15):
pod conditions, node counts, taints, labels, allocatable and the room left on each node against
the Nodes and the pods bound to them; requests against the pod spec; claims, volumes and
StorageClasses against those objects; host ports, topology counts and node conditions against
the pods and nodes. A sentence that states something the objects do not show fails, and so does
a sentence no check knows: a new kind of sentence needs its check here.

The corpus: the product's Pending scenarios (../shared/scenarios), the project's own
(tests/scenarios/pending), and the clusters of test_pending.py's runbook cases.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from kubernetes.utils import parse_quantity as _parse_quantity

from helpers import REPO_ROOT, SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.k8s.quantities import format_amount
from kubetriage.models import Symptom

Obj = dict[str, Any]
parse_quantity: Callable[[Any], Any] = _parse_quantity
# test_pending.py's runbook cases, by module name (a test module beside this one).
test_pending: Any = importlib.import_module("test_pending")
OWN = REPO_ROOT / "tests" / "scenarios" / "pending"
FILES = sorted(
    [
        *SCENARIOS_DIR.glob("pending-*.json"),
        *(p for p in OWN.glob("*.json") if p.name != "expected.json"),
    ]
)
CHECKED: Counter[str] = Counter()


class World:
    """The objects of one snapshot, as the sentences name them."""

    def __init__(self, document: Obj) -> None:
        self.items: list[Obj] = [i for i in document["items"] if isinstance(i, dict)]

    def of(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [
            i
            for i in self.items
            if i.get("kind") == kind
            and (namespace is None or (i.get("metadata") or {}).get("namespace") == namespace)
        ]

    def one(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return next((i for i in self.of(kind, namespace) if name_of(i) == name), None)

    @property
    def nodes(self) -> list[Obj]:
        return self.of("Node")

    def node(self, name: str) -> Obj:
        found = self.one("Node", name)
        assert found is not None, f"no node {name}"
        return found

    def pod(self, name: str) -> Obj:
        found = self.one("Pod", name)
        assert found is not None, f"no pod {name}"
        return found

    def bound_pods(self, node: str) -> list[Obj]:
        return [
            p
            for p in self.of("Pod")
            if (p.get("spec") or {}).get("nodeName") == node
            and (p.get("status") or {}).get("phase") not in {"Succeeded", "Failed"}
        ]


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def labels(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def condition(obj: Obj, kind: str) -> Obj:
    found = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind]
    return found[0] if found else {}


def names(listed: str) -> list[str]:
    """`a, b and 3 more` -> [a, b]."""
    listed = re.sub(r" and \d+ more$", "", listed.strip())
    return [n.strip() for n in listed.split(",") if n.strip()]


def not_usable(node: Obj) -> bool:
    taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or []}
    ready = condition(node, "Ready").get("status")
    return ready != "True" or bool(
        taints & {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    )


def taint_text(taint: Obj) -> str:
    text = f"{taint['key']}={taint['value']}" if taint.get("value") else str(taint["key"])
    return f"{text}:{taint['effect']}" if taint.get("effect") else text


def requests_of(spec: Obj) -> dict[str, Decimal]:
    """What the scheduler counts: the containers' requests (a limit without a request is the
    request), or the largest init container when bigger, plus overhead."""

    def of(container: Obj) -> dict[str, Decimal]:
        resources = container.get("resources") or {}
        merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        found = {}
        for key, value in merged.items():
            try:
                found[key] = Decimal(str(parse_quantity(value)))
            except (ValueError, TypeError):
                continue
        return found

    total: dict[str, Decimal] = {}
    listed_containers = spec.get("containers")
    for container in listed_containers if isinstance(listed_containers, list) else []:
        if isinstance(container, dict):
            for key, value in of(container).items():
                total[key] = total.get(key, Decimal(0)) + value
    sidecars: dict[str, Decimal] = {}
    init = spec.get("initContainers")
    for container in init if isinstance(init, list) else []:
        if not isinstance(container, dict):
            continue
        amounts = of(container)
        if container.get("restartPolicy") == "Always":
            for key, value in amounts.items():
                sidecars[key] = sidecars.get(key, Decimal(0)) + value
                total[key] = total.get(key, Decimal(0)) + value
            continue
        for key, value in amounts.items():
            total[key] = max(total.get(key, Decimal(0)), value + sidecars.get(key, Decimal(0)))
    for key, value in (spec.get("overhead") or {}).items():
        total[key] = total.get(key, Decimal(0)) + Decimal(str(parse_quantity(value)))
    return total


def pending_specs(world: World, finding: Finding) -> list[Obj]:
    return [
        p.get("spec") or {}
        for p in world.of("Pod", finding.target.namespace)
        if isinstance(p.get("spec"), dict)
    ]


# --- the checks, one per kind of sentence -----------------------------------------------------

Check = Callable[[World, re.Match[str], Finding], None]
CHECKS: list[tuple[str, re.Pattern[str], Check]] = []


def check(name: str, pattern: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS.append((name, re.compile(pattern), function))
        return function

    return register


@check("pod scheduling state", r"^(?P<pod>\S+): Pending, PodScheduled=(?P<status>\S+) "
       r"\((?P<reason>[^)]*)\)(?: since (?P<since>\S+))?$")  # fmt: skip
def _pod_state(world: World, m: re.Match[str], _: Finding) -> None:
    pod = world.pod(m["pod"])
    assert (pod.get("status") or {}).get("phase") == "Pending"
    scheduled = condition(pod, "PodScheduled")
    assert scheduled.get("status", "?") == m["status"]
    assert scheduled.get("reason", "no reason") == m["reason"]
    assert scheduled.get("lastTransitionTime") == m["since"]


@check("bound pod", r"^(?P<pod>\S+): bound to (?P<node>\S+), waiting \((?P<waiting>.*)\)$")
def _bound(world: World, m: re.Match[str], _: Finding) -> None:
    assert (world.pod(m["pod"]).get("spec") or {}).get("nodeName") == m["node"]


def scheduler_events(world: World, pod: str | None = None) -> list[Obj]:
    return [
        e
        for e in world.of("Event")
        if e.get("reason") == "FailedScheduling"
        and (pod is None or (e.get("involvedObject") or {}).get("name") == pod)
    ]


def flat(text: Any) -> str:
    return " ".join(str(text or "").split())


@check("FailedScheduling", r"^FailedScheduling \(x(?P<count>\d+)(?:, last (?P<last>[^)]+))?\) "
       r"on (?P<pod>\S+): (?P<text>.*)$")  # fmt: skip
def _failed_scheduling(world: World, m: re.Match[str], _: Finding) -> None:
    events = scheduler_events(world, m["pod"])
    assert events, f"no FailedScheduling event about {m['pod']}"
    quoted = m["text"].rstrip(".")
    matching = [e for e in events if flat(e.get("message")).startswith(quoted)]
    assert matching, f"no event says {quoted!r}"
    counts = {(e.get("series") or {}).get("count") or e.get("count") or 1 for e in matching}
    assert int(m["count"]) in counts


@check("another pod's message", r"^Another pod of the workload was told: (?P<text>.*)$")
def _another(world: World, m: re.Match[str], _: Finding) -> None:
    assert any(flat(e.get("message")) == flat(m["text"]) for e in scheduler_events(world))


@check("expired events", r"^PodScheduled=False on (?P<pod>\S+), its FailedScheduling events "
       r"expired: (?P<text>.*)$")  # fmt: skip
def _expired(world: World, m: re.Match[str], _: Finding) -> None:
    pod = world.pod(m["pod"])
    assert flat(condition(pod, "PodScheduled").get("message")) == flat(m["text"])
    assert not scheduler_events(world, m["pod"])


@check("no nodes", r"^No Node objects: the cluster has no nodes$")
def _no_nodes(world: World, _m: re.Match[str], _: Finding) -> None:
    assert not world.nodes


@check("node counts", r"^(?P<n>\d+) node\(s\)(?:, (?P<c>\d+) cordoned \((?P<cn>[^)]*)\))?"
       r"(?:, (?P<r>\d+) NotReady \((?P<rn>[^)]*)\))?; "
       r"(?P<u>\d+) schedulable and ready$")  # fmt: skip
def _node_counts(world: World, m: re.Match[str], _: Finding) -> None:
    nodes = world.nodes
    cordoned = {name_of(n) for n in nodes if (n.get("spec") or {}).get("unschedulable")}
    unusable = {name_of(n) for n in nodes if not_usable(n)}
    assert int(m["n"]) == len(nodes)
    assert int(m["c"] or 0) == len(cordoned)
    assert set(names(m["cn"] or "")) <= cordoned
    assert int(m["r"] or 0) == len(unusable)
    assert set(names(m["rn"] or "")) <= unusable
    assert int(m["u"]) == len(nodes) - len(cordoned | unusable)


@check("node condition", r"^(?P<node>[^:\s]+): Ready=(?P<status>\w+)(?: \((?P<reason>[^:)]+)"
       r"(?:: (?P<message>.*))?\))?(?:, last heartbeat (?P<beat>\S+))?$")  # fmt: skip
def _node_condition(world: World, m: re.Match[str], _: Finding) -> None:
    ready = condition(world.node(m["node"]), "Ready")
    assert ready.get("status") == m["status"]
    if m["reason"]:
        assert ready.get("reason") == m["reason"]
    if m["message"]:
        assert flat(ready.get("message")) == m["message"]
    if m["beat"]:
        assert ready.get("lastHeartbeatTime") == m["beat"]


@check("taint", r"^(?P<n>\d+) node\(s\) carry taint (?P<taint>\S+), which the pod does not "
       r"tolerate: (?P<names>.*)$")  # fmt: skip
def _taint(world: World, m: re.Match[str], _: Finding) -> None:
    having = {
        name_of(n)
        for n in world.nodes
        if m["taint"] in {taint_text(t) for t in (n.get("spec") or {}).get("taints") or []}
    }
    assert int(m["n"]) == len(having)
    assert set(names(m["names"])) <= having


@check("tolerations", r"^Pod tolerations: (?P<listed>.*)$")
def _tolerations(world: World, m: re.Match[str], finding: Finding) -> None:
    defaults = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
    own = {
        str(t.get("key") or "*")
        for spec in pending_specs(world, finding)
        for t in spec.get("tolerations") or []
        if isinstance(t, dict) and t.get("key") not in defaults
    }
    if m["listed"].startswith("only the defaults"):
        assert not own
    else:
        listed = {re.split(r"[=: ]", item.strip())[0] for item in m["listed"].split(",")}
        assert listed <= own


@check("asked labels", r"^Pod asks for node labels: (?P<asked>.*)$")
def _asked(world: World, m: re.Match[str], finding: Finding) -> None:
    text = json.dumps(
        [s.get("nodeSelector") or s.get("affinity") for s in pending_specs(world, finding)]
    )
    for requirement in m["asked"].split("; "):
        key = re.split(r"[= ]", requirement)[0]
        assert key in text, f"the pod does not ask for {key}"


@check("pinned", r"^The pod is pinned to one node by name")
def _pinned(world: World, _m: re.Match[str], finding: Finding) -> None:
    assert any(
        "metadata.name" in json.dumps(s.get("affinity")) for s in pending_specs(world, finding)
    )


def requirement_matches(requirement: str, node: Obj) -> bool:
    node_labels = labels(node)
    if " Exists" in requirement:
        return requirement.split(maxsplit=1)[0] in node_labels
    if " DoesNotExist" in requirement:
        return requirement.split(maxsplit=1)[0] not in node_labels
    found = re.match(r"^(\S+) (In|NotIn) \((.*)\)$", requirement)
    if found:
        values = {v.strip() for v in found[3].split(",")}
        inside = node_labels.get(found[1]) in values
        return inside if found[2] == "In" else not inside
    key, _, value = requirement.partition("=")
    return node_labels.get(key) == value


@check("no node has", r"^No node has (?!the label )(?P<req>.+); nearest existing labels: "
       r"(?P<labels>.*)$")  # fmt: skip
def _no_node_has(world: World, m: re.Match[str], _finding: Finding) -> None:
    assert not any(requirement_matches(m["req"], n) for n in world.nodes)
    if m["labels"] == "none similar":
        return
    for item in re.finditer(r"(?P<kv>[^ ,]+=[^ ,]*) \((?P<count>\d+) node\(s\)\)", m["labels"]):
        key, _, value = item["kv"].partition("=")
        assert sum(1 for n in world.nodes if labels(n).get(key) == value) == int(item["count"])


@check("requests", r"^Pod requests \(containers, init containers, overhead\): (?P<listed>.*)$")
def _requests(world: World, m: re.Match[str], finding: Finding) -> None:
    shown = [
        ", ".join(f"{r} {format_amount(r, v)}" for r, v in sorted(requests_of(spec).items()))
        for spec in pending_specs(world, finding)
    ]
    assert m["listed"] in shown, (m["listed"], shown)


@check("no requests", r"^The pod requests no resources$")
def _no_requests(world: World, _m: re.Match[str], finding: Finding) -> None:
    assert any(not requests_of(spec) for spec in pending_specs(world, finding))


@check("host ports asked", r"^Pod asks for host port\(s\): (?P<listed>.*)$")
def _ports_asked(world: World, m: re.Match[str], finding: Finding) -> None:
    asked = set()
    for spec in pending_specs(world, finding):
        for container in spec.get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("hostPort"):
                    where = f"{port['hostIP']}:" if port.get("hostIP") else ""
                    protocol = port.get("protocol") or "TCP"
                    asked.add(
                        f"{where}{port['hostPort']}/{protocol} (container {container['name']})"
                    )
    assert set(m["listed"].split(", ")) <= asked


@check("host port taken", r"^(?P<node>[^:\s]+): host port (?P<port>\d+)/(?P<protocol>\w+) "
       r"taken by (?P<ns>[^/\s]+)/(?P<pod>\S+)$")  # fmt: skip
def _port_taken(world: World, m: re.Match[str], _: Finding) -> None:
    holder = world.one("Pod", m["pod"], m["ns"])
    assert holder is not None
    assert (holder.get("spec") or {}).get("nodeName") == m["node"]
    ports = [
        (str(p.get("hostPort")), p.get("protocol") or "TCP")
        for c in (holder.get("spec") or {}).get("containers") or []
        for p in c.get("ports") or []
    ]
    assert (m["port"], m["protocol"]) in ports


def room(world: World, node: Obj, resource: str) -> tuple[Decimal, Decimal] | None:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    if resource not in allocatable:
        return None
    total = Decimal(str(parse_quantity(allocatable[resource])))
    bound = world.bound_pods(name_of(node))
    used = sum(
        (requests_of(p.get("spec") or {}).get(resource, Decimal(0)) for p in bound), Decimal(0)
    )
    if resource == "pods":
        used = Decimal(len(bound))
    return total - used, total


@check("room on a node", r"^(?P<node>[^:\s]+): (?P<rest>(?:[\w./-]+ \S+ free of \S+(?:, )?)+|no "
       r"allocatable reported|.+ not reported)$")  # fmt: skip
def _room(world: World, m: re.Match[str], _: Finding) -> None:
    node = world.node(m["node"])
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    if m["rest"] == "no allocatable reported":
        assert not allocatable, f"{m['node']} reports allocatable {allocatable}"
        return
    for part in m["rest"].split(", "):
        missing = re.match(r"^([\w./-]+) not reported$", part)
        if missing:
            assert missing[1] not in allocatable
            continue
        resource, free, _of, _free, capacity = part.split(" ")
        numbers = room(world, node, resource)
        assert numbers is not None, f"{m['node']} reports no {resource}"
        assert format_amount(resource, numbers[0]) == free, (part, numbers)
        assert format_amount(resource, numbers[1]) == capacity, (part, numbers)


@check(
    "claim missing", r"^PersistentVolumeClaim (?P<name>\S+) \(volume (?P<vol>\S+)\) does not exist$"
)
def _claim_missing(world: World, m: re.Match[str], finding: Finding) -> None:
    assert world.one("PersistentVolumeClaim", m["name"], finding.target.namespace) is None


@check("claim", r"^PersistentVolumeClaim (?P<name>\S+) is (?P<phase>\S+)(?P<rest>.*)$")
def _claim(world: World, m: re.Match[str], finding: Finding) -> None:
    claim = world.one("PersistentVolumeClaim", m["name"], finding.target.namespace)
    assert claim is not None
    spec = claim.get("spec") or {}
    assert (claim.get("status") or {}).get("phase") == m["phase"]
    size = re.search(r"\(requests (\S+)\)", m["rest"])
    if size:
        assert ((spec.get("resources") or {}).get("requests") or {}).get("storage") == size[1]
    named = re.search(r"StorageClass (\S+) exists \(([^,]+), (\w+)\)", m["rest"])
    if named:
        storage_class = world.one("StorageClass", named[1])
        assert storage_class is not None
        assert storage_class.get("provisioner", "no provisioner") == named[2]
        assert storage_class.get("volumeBindingMode", "Immediate") == named[3]
    if "WaitForFirstConsumer" in m["rest"] and "once the pod" in m["rest"]:
        assert named is not None
        assert named[3] == "WaitForFirstConsumer"
    if "names no StorageClass" in m["rest"]:
        assert "storageClassName" not in spec
    gone = re.search(r"StorageClass (\S+) does not exist", m["rest"])
    if gone:
        assert world.one("StorageClass", gone[1]) is None


@check("class missing", r"^StorageClass (?P<sc>\S+) does not exist \(existing: (?P<listed>.*)\)$")
def _class_missing(world: World, m: re.Match[str], _: Finding) -> None:
    assert world.one("StorageClass", m["sc"]) is None
    existing = sorted(name_of(s) for s in world.of("StorageClass"))
    assert m["listed"] == (", ".join(existing) or "none")


@check("no default class", r"^No StorageClass is marked default \(existing: (?P<listed>.*)\)$")
def _no_default(world: World, m: re.Match[str], _: Finding) -> None:
    for storage_class in world.of("StorageClass"):
        annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
        assert annotations.get("storageclass.kubernetes.io/is-default-class") != "true"


@check("volume affinity", r"^PersistentVolume (?P<pv>\S+) \(claim (?P<claim>\S+)\) can be used "
       r"only on nodes with (?P<req>.+)$")  # fmt: skip
def _volume_affinity(world: World, m: re.Match[str], _: Finding) -> None:
    volume = world.one("PersistentVolume", m["pv"])
    assert volume is not None
    spec = volume.get("spec") or {}
    assert (spec.get("claimRef") or {}).get("name") == m["claim"]
    terms = ((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
    for requirement in m["req"].split(" or "):
        key = re.split(r"[= ]", requirement)[0]
        assert key in json.dumps(terms), f"{key} is not in the volume's node affinity"


@check("volume not read", r"^PersistentVolume (?P<pv>\S+) \(claim (?P<claim>\S+)\) could not "
       r"be read$")  # fmt: skip
def _volume_not_read(world: World, m: re.Match[str], _: Finding) -> None:
    assert world.one("PersistentVolume", m["pv"]) is None


@check("volume node unusable", r"^(?P<node>\S+) matches PersistentVolume (?P<pv>\S+)'s node "
       r"affinity but is (?P<state>cordoned|NotReady)$")  # fmt: skip
def _volume_node(world: World, m: re.Match[str], _: Finding) -> None:
    node = world.node(m["node"])
    if m["state"] == "cordoned":
        assert (node.get("spec") or {}).get("unschedulable")
    else:
        assert not_usable(node)


def matching_pods(world: World, namespace: str, selector: dict[str, str]) -> list[Obj]:
    return [
        p
        for p in world.of("Pod", namespace)
        if all(labels(p).get(k) == v for k, v in selector.items())
        and (p.get("spec") or {}).get("nodeName")
        and not (p.get("metadata") or {}).get("deletionTimestamp")
    ]


def selector_of(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def domain_counts(world: World, pods: list[Obj], key: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for pod in pods:
        value = labels(world.node(pod["spec"]["nodeName"])).get(key)
        if value is not None:
            counts[value] += 1
    return counts


def check_counts(world: World, listed: str, pods: list[Obj], key: str) -> None:
    counts = domain_counts(world, pods, key)
    first = re.match(r"^(?P<domain>\S+) holds (?P<n>\d+) matching pod\(s\)", listed)
    assert first is not None, listed
    pairs = [(first["domain"], first["n"])]
    pairs += re.findall(r", (\S+) (\d+)", listed[first.end() :])
    for domain, count in pairs:
        assert counts.get(domain, 0) == int(count), (domain, count, counts)


@check("spread counts", r"^Topology spread on (?P<key>\S+) \(maxSkew (?P<skew>\d+), (?P<when>\w+), "
       r"selector (?P<sel>[^)]*)\): (?P<listed>.*)$")  # fmt: skip
def _spread(world: World, m: re.Match[str], finding: Finding) -> None:
    constraints = [
        c
        for spec in pending_specs(world, finding)
        for c in spec.get("topologySpreadConstraints") or []
    ]
    assert any(
        c.get("topologyKey") == m["key"] and str(c.get("maxSkew")) == m["skew"] for c in constraints
    )
    pods = matching_pods(world, finding.target.namespace, selector_of(m["sel"]))
    check_counts(world, m["listed"], pods, m["key"])


@check("label for spread", r"^No node has the label (?P<key>\S+) that the topology spread keys "
       r"on; nearest existing labels: (?P<labels>.*)$")  # fmt: skip
def _spread_label(world: World, m: re.Match[str], _: Finding) -> None:
    assert not any(m["key"] in labels(n) for n in world.nodes)


@check("inter-pod terms", r"^Required pod (?P<kind>affinity|anti-affinity) on (?P<key>\S+) "
       r"\((?P<sel>[^)]*) in (?P<ns>[^)]+)\): (?P<listed>.*)$")  # fmt: skip
def _inter_pod(world: World, m: re.Match[str], _: Finding) -> None:
    pods = [
        p
        for namespace in m["ns"].split(", ")
        for p in matching_pods(world, namespace, selector_of(m["sel"]))
    ]
    if m["listed"] == "no pod matches":
        assert not pods
        return
    check_counts(world, m["listed"], pods, m["key"])


@check("others' anti-affinity", r"^Pod (?P<ns>[^/\s]+)/(?P<pod>\S+) on (?P<node>\S+) has a "
       r"required pod anti-affinity \((?P<sel>[^,]+), one per (?P<key>\S+)\) that selects this "
       r"pod$")  # fmt: skip
def _others_anti_affinity(world: World, m: re.Match[str], finding: Finding) -> None:
    holder = world.one("Pod", m["pod"], m["ns"])
    assert holder is not None
    assert (holder.get("spec") or {}).get("nodeName") == m["node"]
    affinity = ((holder.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []
    wanted = selector_of(m["sel"])
    assert any(
        t.get("topologyKey") == m["key"]
        and (t.get("labelSelector") or {}).get("matchLabels") == wanted
        for t in terms
    )
    pending = [
        p
        for p in world.of("Pod", finding.target.namespace)
        if not (p.get("spec") or {}).get("nodeName")
    ]
    assert any(all(labels(p).get(k) == v for k, v in wanted.items()) for p in pending)


@check("mount event", r"^(?P<reason>FailedMount|FailedAttachVolume|FailedMapVolume) "
       r"\(x(?P<n>\d+)\) on (?P<pod>\S+): (?P<text>.*)$")  # fmt: skip
def _mount(world: World, m: re.Match[str], _: Finding) -> None:
    assert any(
        e.get("reason") == m["reason"]
        and (e.get("involvedObject") or {}).get("name") == m["pod"]
        and flat(e.get("message")) == flat(m["text"])
        for e in world.of("Event")
    )


@check("volume object", r"^(?P<kind>ConfigMap|Secret) (?P<name>\S+) \(volume (?P<vol>[^)]+)\) "
       r"(?P<state>does not exist|exists now|is unknown) in (?P<ns>\S+)$")  # fmt: skip
def _volume_object(world: World, m: re.Match[str], _: Finding) -> None:
    found = world.one(m["kind"], m["name"], m["ns"])
    if m["state"] == "does not exist":
        assert found is None
    elif m["state"] == "exists now":
        assert found is not None


@check(
    "missing key", r"^ConfigMap (?P<cm>\S+) has no key (?P<key>\S+) \(volume (?P<vol>\S+) items\)$"
)
def _missing_key(world: World, m: re.Match[str], _: Finding) -> None:
    config_map = world.one("ConfigMap", m["cm"])
    assert config_map is not None
    assert m["key"] not in (config_map.get("data") or {})


@check("latest warning", r"^warning: (?P<reason>[^:]+): (?P<msg>.*)$")
def _warning(world: World, m: re.Match[str], _: Finding) -> None:
    assert any(
        e.get("reason") == m["reason"] and flat(e.get("message")) == flat(m["msg"])
        for e in world.of("Event")
    )


# --- the corpus --------------------------------------------------------------------------------


def corpus() -> Iterator[tuple[str, Obj]]:
    healthy = {name for name, reports in json.loads((OWN / "expected.json").read_text()).items()
               if not reports}  # fmt: skip
    for path in FILES:
        if path.parent != OWN or path.name not in healthy:
            yield f"{path.parent.name}/{path.stem}", json.loads(path.read_text())
    for name, case in test_pending.CASES.items():
        yield f"case: {name}", case.cluster.document()


CORPUS = list(corpus())


def sentences(document: Obj) -> Iterator[tuple[Finding, str]]:
    for found in diagnose(SnapshotReader.from_document(document)):
        if found.symptom is Symptom.PENDING:
            for evidence in found.investigation.evidence:
                yield found, evidence.summary


@pytest.mark.parametrize(("name", "document"), CORPUS, ids=[n for n, _ in CORPUS])
def test_every_evidence_sentence_states_what_its_object_shows(name: str, document: Obj) -> None:
    world = World(document)
    said = list(sentences(document))
    assert said, f"{name}: no Pending evidence at all"
    for found, sentence in said:
        for check_name, pattern, function in CHECKS:
            match = pattern.match(sentence)
            if match:
                try:
                    function(world, match, found)
                except AssertionError as error:
                    raise AssertionError(f"{name}: {sentence!r} ({check_name}): {error}") from error
                CHECKED[check_name] += 1
                break
        else:
            pytest.fail(f"{name}: no check knows the sentence {sentence!r}")


def test_the_checks_catch_a_false_sentence() -> None:
    """The checks are not vacuous: a node said to have no allocatable while it has some fails."""
    world = World(json.loads((OWN / "demo-request-exceeds-with-taint.json").read_text()))
    _, pattern, function = next(c for c in CHECKS if c[0] == "room on a node")
    match = pattern.match("kwok-gpu-0: no allocatable reported")
    assert match is not None
    with pytest.raises(AssertionError):
        function(world, match, None)  # type: ignore[arg-type]
    match = pattern.match("kwok-gpu-0: cpu 3 free of 4")
    assert match is not None
    with pytest.raises(AssertionError):
        function(world, match, None)  # type: ignore[arg-type]
