"""Every sentence the CrashLoopBackOff runbook writes is checked against the object it describes
(issue 15): exit codes, run times and restart counts against the pods' statuses; pod names
against the pods; hosts, IPs, Services, ready endpoints and selectors against the Services,
EndpointSlices, Endpoints and pods; probe settings and budgets against the container spec;
architectures against the nodes' labels; Secret references against the env; ConfigMaps against
what the snapshot holds. A sentence that states something the objects do not show fails.

The corpus: the product's crash-loop scenarios (../shared/scenarios) and the project's own
(tests/scenarios/crashloop), each diagnosed as `kubetriage diagnose` does.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import REPO_ROOT, SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import diagnose
from kubetriage.k8s.time import parse_time
from kubetriage.models import Symptom
from kubetriage.playbooks.crashloop.messages import is_ip

OWN = REPO_ROOT / "tests" / "scenarios" / "crashloop"
CORPUS = sorted(
    [
        *SCENARIOS_DIR.glob("crashloop-*.json"),
        SCENARIOS_DIR / "rollout-bad-revision.json",
        *(p for p in OWN.glob("*.json") if p.name != "expected.json"),
    ]
)
CHECKED: Counter[str] = Counter()

Obj = dict[str, Any]


class World:
    """The objects of one snapshot, as the sentences name them."""

    def __init__(self, document: Obj) -> None:
        self.items: list[Obj] = [i for i in document["items"] if isinstance(i, dict)]
        self.absent = {
            (a.get("kind"), a.get("namespace"), a.get("name"))
            for i in self.items
            if i.get("kind") == "SnapshotInfo"
            for a in i.get("absent") or []
        }

    def of(self, kind: str, namespace: str | None = None) -> list[Obj]:
        return [
            i
            for i in self.items
            if i.get("kind") == kind
            and (namespace is None or i.get("metadata", {}).get("namespace") == namespace)
        ]

    def one(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        return next((i for i in self.of(kind, namespace) if i["metadata"]["name"] == name), None)

    def terminations(self, pods: list[Obj]) -> list[Obj]:
        found: list[Obj] = []
        for pod in pods:
            status = pod.get("status") or {}
            for entry in [*(status.get("containerStatuses") or []),
                          *(status.get("initContainerStatuses") or [])]:  # fmt: skip
                for where in ("state", "lastState"):
                    terminated = (entry.get(where) or {}).get("terminated")
                    if terminated:
                        found.append({**terminated, "restartCount": entry.get("restartCount")})
        return found

    def containers(self) -> list[Obj]:
        found: list[Obj] = []
        for item in self.items:
            spec = item.get("spec") or {}
            spec = (spec.get("template") or {}).get("spec") or spec
            found += [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        return found

    def ready_endpoints(self, namespace: str, service: str) -> int:
        slices = [
            s
            for s in self.of("EndpointSlice", namespace)
            if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == service
        ]
        if slices:
            names = {
                (e.get("targetRef") or {}).get("name") or (e.get("addresses") or [""])[0]
                for s in slices
                for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") is not False
            }
            return len(names)
        endpoints = self.one("Endpoints", service, namespace)
        if endpoints is not None:
            return sum(len(s.get("addresses") or []) for s in endpoints.get("subsets") or [])
        service_obj = self.one("Service", service, namespace)
        selector = ((service_obj or {}).get("spec") or {}).get("selector") or {}
        return sum(
            1
            for p in self.of("Pod", namespace)
            if selector
            and all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (p.get("status") or {}).get("conditions") or []
            )
        )


Check = Callable[[World, re.Match[str], str], None]
CHECKS: list[tuple[str, re.Pattern[str], Check]] = []


def check(name: str, pattern: str) -> Callable[[Check], Check]:
    def register(function: Check) -> Check:
        CHECKS.append((name, re.compile(pattern), function))
        return function

    return register


def _pods_named(world: World, listed: str) -> list[Obj]:
    names = [n.strip() for n in re.sub(r" and \d+ more$", "", listed).split(",") if n.strip()]
    pods = [world.one("Pod", n) for n in names]
    assert all(pods), f"pods {names} not all in the snapshot"
    return [p for p in pods if p]


@check(
    "pod list",
    r"(\d+) pod\(s\) \(([a-z0-9][a-z0-9.-]*(?:, [a-z0-9][a-z0-9.-]*)*(?: and \d+ more)?)\)",
)
def _pod_list(world: World, match: re.Match[str], sentence: str) -> None:
    pods = _pods_named(world, match[2])
    more = re.search(r" and (\d+) more$", match[2])
    assert int(match[1]) == len(pods) + (int(more[1]) if more else 0), sentence


@check("exit code", r"exit code (\d+)")
def _exit_code(world: World, match: re.Match[str], sentence: str) -> None:
    codes = {t.get("exitCode") for t in world.terminations(world.of("Pod"))}
    assert int(match[1]) in codes, (sentence, codes)


@check("restarts", r"restarted (\d+) times")
def _restarts(world: World, match: re.Match[str], sentence: str) -> None:
    listed = re.search(r"pod\(s\) \(([a-z0-9][a-z0-9.-]*(?:, [a-z0-9][a-z0-9.-]*)*)", sentence)
    pods = _pods_named(world, listed[1]) if listed else world.of("Pod")
    counts = [t.get("restartCount") for t in world.terminations(pods)]
    assert int(match[1]) == max(c for c in counts if isinstance(c, int)), (sentence, counts)


@check("run time", r"terminated with exit code \d+ \([^)]*\) after (\d+)s")
def _run_time(world: World, match: re.Match[str], sentence: str) -> None:
    listed = re.search(r"pod\(s\) \(([a-z0-9][a-z0-9.-]*(?:, [a-z0-9][a-z0-9.-]*)*)", sentence)
    pods = _pods_named(world, listed[1]) if listed else world.of("Pod")
    runs = []
    for t in world.terminations(pods):
        start, end = parse_time(t.get("startedAt")), parse_time(t.get("finishedAt"))
        if start and end and start.year > 1970:
            runs.append((end - start).total_seconds())
    assert runs, sentence
    assert min(runs) - 1 <= int(match[1]) <= max(runs) + 1, (sentence, runs)


@check(
    "service exists",
    r"(?<!no )Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+) (?:exists|has|,|which)",
)
def _service_exists(world: World, match: re.Match[str], sentence: str) -> None:
    assert world.one("Service", match[1], match[2]) is not None, sentence


@check("no service", r"no Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+) exists")
def _no_service(world: World, match: re.Match[str], sentence: str) -> None:
    assert world.one("Service", match[1], match[2]) is None, sentence


@check(
    "ready endpoints",
    r"Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+)[^;:]*? has (\d+) ready endpoint",
)
def _ready_count(world: World, match: re.Match[str], sentence: str) -> None:
    assert world.ready_endpoints(match[2], match[1]) == int(match[3]), sentence


@check(
    "no ready endpoints",
    r"Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+)[^;]*? no ready endpoints",
)
def _no_ready(world: World, match: re.Match[str], sentence: str) -> None:
    assert world.ready_endpoints(match[2], match[1]) == 0, sentence


@check("ip address", r"([^\s(]+) is an IP address")
def _is_ip(world: World, match: re.Match[str], sentence: str) -> None:
    host = re.sub(r":\d+$", "", match[1])
    assert is_ip(host), sentence


@check(
    "cluster ip",
    r"([\d.]+)(?::\d+)? is the ClusterIP of Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+)",
)
def _cluster_ip(world: World, match: re.Match[str], sentence: str) -> None:
    service = world.one("Service", match[2], match[3])
    assert service is not None, sentence
    assert match[1] in service["spec"].get("clusterIPs", [service["spec"].get("clusterIP")]), (
        sentence
    )


@check("pod ip", r"([\d.]+)(?::\d+)? is the IP of pod ([a-z0-9.-]+)")
def _pod_ip(world: World, match: re.Match[str], sentence: str) -> None:
    pod = world.one("Pod", match[2])
    assert pod is not None, sentence
    assert pod["status"].get("podIP") == match[1], sentence


@check("not a cluster ip", r"([\d.]+) is not the ClusterIP of any Service")
def _no_cluster_ip(world: World, match: re.Match[str], sentence: str) -> None:
    assert all(match[1] != s["spec"].get("clusterIP") for s in world.of("Service")), sentence


PROBE_DEFAULTS = {
    "initialDelaySeconds": 0,
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "failureThreshold": 3,
}


def _probe(world: World, kind: str, container: str | None = None) -> list[Obj]:
    return [
        c[kind]
        for c in world.containers()
        if isinstance(c.get(kind), dict) and (container is None or c.get("name") == container)
    ]


@check(
    "probe settings",
    r"(livenessProbe|startupProbe) of ([a-z0-9-]+): [^,]*, initialDelaySeconds (\d+), "
    r"timeoutSeconds (\d+), periodSeconds (\d+), failureThreshold (\d+)",
)
def _probe_settings(world: World, match: re.Match[str], sentence: str) -> None:
    said = dict(zip(PROBE_DEFAULTS, map(int, match.groups()[2:]), strict=True))
    probes = [
        {k: p.get(k, d) for k, d in PROBE_DEFAULTS.items()}
        for p in _probe(world, match[1], match[2])
    ]
    assert said in probes, (sentence, probes)


@check("probe budget", r"the (startupProbe|liveness probe) allows (\d+)s")
def _budget(world: World, match: re.Match[str], sentence: str) -> None:
    kind = "startupProbe" if match[1] == "startupProbe" else "livenessProbe"
    budgets = [
        p.get("initialDelaySeconds", 0) + p.get("periodSeconds", 10) * p.get("failureThreshold", 3)
        for p in _probe(world, kind)
    ]
    assert int(match[2]) in budgets, (sentence, budgets)


@check("probe product", r"failureThreshold (\d+) \u00d7 periodSeconds (\d+)")
def _product(world: World, match: re.Match[str], sentence: str) -> None:
    kind = "startupProbe" if "startup" in sentence.lower() else "livenessProbe"
    pairs = [
        (p.get("failureThreshold", 3), p.get("periodSeconds", 10)) for p in _probe(world, kind)
    ]
    assert (int(match[1]), int(match[2])) in pairs, (sentence, pairs)


@check("node arch", r"(?:^|node: )([a-z0-9][a-z0-9.-]*): kubernetes\.io/arch=([a-z0-9]+)")
def _arch(world: World, match: re.Match[str], sentence: str) -> None:
    node = world.one("Node", match[1])
    assert node is not None, sentence
    assert node["metadata"]["labels"].get("kubernetes.io/arch") == match[2], sentence


@check("secret key", r"Secret ([a-z0-9.-]+) key ([\w.-]+) \(env (\w+)\)")
def _secret_key(world: World, match: re.Match[str], sentence: str) -> None:
    refs = {
        ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name", ""): (
            ((e.get("valueFrom") or {}).get("secretKeyRef") or {}).get("key"),
            e.get("name"),
        )
        for c in world.containers()
        for e in c.get("env") or []
    }
    assert refs.get(match[1]) == (match[2], match[3]), (sentence, refs)


@check("configmap missing", r"ConfigMap ([a-z0-9.-]+) does not exist")
def _cm_missing(world: World, match: re.Match[str], sentence: str) -> None:
    assert not any(c["metadata"]["name"] == match[1] for c in world.of("ConfigMap")), sentence
    assert any(a[0] == "ConfigMap" and a[2] == match[1] for a in world.absent) or any(
        world.of("ConfigMap")
    ), f"{sentence}: the snapshot does not show that it is absent"


@check("configmap not captured", r"ConfigMap ([a-z0-9.-]+) is not in this snapshot")
def _cm_not_captured(world: World, match: re.Match[str], sentence: str) -> None:
    assert not world.of("ConfigMap"), sentence
    assert not world.absent, sentence


@check("scaled to zero", r"(StatefulSet|Deployment) ([a-z0-9.-]+) is scaled to 0 replicas")
def _scaled(world: World, match: re.Match[str], sentence: str) -> None:
    workload = world.one(match[1], match[2])
    assert workload is not None, sentence
    assert workload["spec"].get("replicas") == 0, sentence


@check("selector matches", r"(\d+) pod\(s\) match its selector")
def _selector(world: World, match: re.Match[str], sentence: str) -> None:
    service = re.search(r"Service ([a-z0-9.-]+) in namespace ([a-z0-9-]+)", sentence)
    assert service, sentence
    selector = world.one("Service", service[1], service[2])["spec"]["selector"]  # type: ignore[index]
    pods = [
        p
        for p in world.of("Pod", service[2])
        if all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
    ]
    assert len(pods) == int(match[1]), sentence


def sentences(path: Path) -> Iterator[tuple[World, str]]:
    document = json.loads(path.read_text())
    world = World(document)
    for finding in diagnose(SnapshotReader.from_document(document)):
        if finding.symptom != Symptom.CRASH_LOOP_BACK_OFF:
            continue
        yield world, finding.conclusion.root_cause.summary
        for evidence in finding.investigation.evidence:
            if evidence.source.value != "logs":  # a log line says what the app said
                yield world, evidence.summary
        for step in finding.investigation.steps:
            yield world, step.outcome


@pytest.mark.parametrize("path", CORPUS, ids=[f"{p.parent.name}/{p.stem}" for p in CORPUS])
def test_every_sentence_states_only_what_its_object_shows(path: Path) -> None:
    for world, sentence in sentences(path):
        for name, pattern, function in CHECKS:
            for match in pattern.finditer(sentence):
                function(world, match, sentence)
                CHECKED[name] += 1


def test_the_checks_ran_on_sentences_of_every_kind() -> None:
    if not CHECKED:
        for path in CORPUS:
            test_every_sentence_states_only_what_its_object_shows(path)
    must = {"pod list", "exit code", "restarts", "run time", "service exists", "ready endpoints",
            "no ready endpoints", "cluster ip", "pod ip", "probe settings", "probe budget",
            "probe product", "node arch", "secret key", "configmap missing",
            "configmap not captured", "scaled to zero", "selector matches"}  # fmt: skip
    assert must <= set(CHECKED), sorted(must - set(CHECKED))
