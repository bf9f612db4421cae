"""What the scale benchmarks share: a cluster of many Deployments, breaking some, watching for
symptoms and reports, the operator's process figures, the audit log and Markdown tables.

Used by hack/bench/cluster.py (the operator at scale) and hack/bench/versus_k8sgpt.py
(`kubetriage scan` against `k8sgpt analyze`); not a script itself. Its importers put hack/ on
sys.path, for localcluster.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client import ApiClient
from kubernetes.watch.watch import iter_resp_lines

from kubetriage.detect import detect_deployment, detect_pod
from localcluster import SIMULATE, LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD = REPO_ROOT / "crds" / "diagnosisreports.kubetriage.io.yaml"
NAMESPACE_PREFIX = "bench"
# Stuck rollouts need a namespace of their own: its ResourceQuota would stop every rollout in it.
ROLLOUT_NAMESPACE = f"{NAMESPACE_PREFIX}-rollout"
SINGLES_NAMESPACE = f"{NAMESPACE_PREFIX}-singles"
BROKEN_LABEL = "bench.kubetriage.io/broken"
# A mix of sizes, repeated until the pods add up: many small Deployments and a few large ones.
REPLICA_MIX = (1, 2, 5, 10, 20, 50, 100)
ROLLOUT_REPLICAS = 3
IMAGE = "registry.example/bench/app:1.0.0"
# Broken rollouts must not also pass their progress deadline while the benchmark runs: that would
# add a RolloutStuck report to every broken Deployment halfway through.
PROGRESS_DEADLINE_SECONDS = 3600


@dataclass(frozen=True)
class Breakage:
    """One way to break a Deployment: what the operator should report, and the template change."""

    name: str
    symptom: str
    category: str
    # A case-insensitive pattern: a k8sgpt error text matching it names this failure specifically.
    k8sgpt_pattern: str


BREAKAGES = (
    Breakage(
        "CrashLoopBackOff",
        "CrashLoopBackOff",
        "CrashLoop.CommandNotFound",
        r"last termination reason is \w+|back-off \S+ restarting failed container",
    ),
    Breakage("OOMKilled", "OOMKilled", "OOMKilled.LimitTooLow", r"OOMKilled"),
    Breakage(
        "ImagePullBackOff",
        "ImagePullBackOff",
        "ImagePull.NotFound",
        r"failed to pull|ErrImagePull|ImagePullBackOff",
    ),
    Breakage(
        "PendingNodeSelector",
        "Pending",
        "Pending.NodeSelectorMismatch",
        r"node affinity/selector|didn't match",
    ),
    Breakage(
        "PendingTooBig",
        "Pending",
        "Pending.RequestExceedsNodeCapacity",
        r"Insufficient (cpu|memory)",
    ),
    Breakage("RolloutQuota", "RolloutStuck", "Rollout.QuotaExceeded", r"exceeded quota|forbidden"),
)


@dataclass
class Workload:
    """One Deployment of the benchmark, and how it will be broken (None: it stays healthy)."""

    namespace: str
    name: str
    replicas: int
    breakage: Breakage | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


def plan_workloads(pods: int, namespaces: int, broken_percent: float) -> list[Workload]:
    """Deployments totalling `pods` replicas across `namespaces` namespaces, `broken_percent` of
    them (at least one per breakage) marked to be broken."""
    sizes: list[int] = []
    while sum(sizes) < pods:
        sizes.append(min(REPLICA_MIX[len(sizes) % len(REPLICA_MIX)], pods - sum(sizes)))
    workloads = [
        Workload(f"{NAMESPACE_PREFIX}-{index % namespaces}", f"app-{index:05d}", size)
        for index, size in enumerate(sizes)
    ]
    count = min(len(workloads), max(len(BREAKAGES), round(len(workloads) * broken_percent / 100)))
    # A fixed seed: the same workloads break in every run. Not every n-th, which would keep
    # hitting the same size and namespace.
    chosen = sorted(random.Random(8).sample(range(len(workloads)), count))
    for number, index in enumerate(chosen):
        workload = workloads[index]
        workload.breakage = BREAKAGES[number % len(BREAKAGES)]
        if workload.breakage.name == "RolloutQuota":
            # Small, and in a namespace of its own whose quota admits no extra pod.
            moved = min(workload.replicas, ROLLOUT_REPLICAS)
            workload.namespace, workload.replicas = ROLLOUT_NAMESPACE, moved
    shortfall = pods - sum(w.replicas for w in workloads)
    healthy = [w for w in workloads if w.breakage is None]
    for index in range(shortfall):  # what moving the rollout ones took away, back on the others
        healthy[index % len(healthy)].replicas += 1
    return workloads


def single_workloads(count: int) -> list[Workload]:
    """`count` one-replica Deployments, each broken from the start, the breakages in turn (the
    stuck rollout in the namespace whose quota is full)."""
    singles = []
    for index in range(count):
        breakage = BREAKAGES[index % len(BREAKAGES)]
        namespace = ROLLOUT_NAMESPACE if breakage.name == "RolloutQuota" else SINGLES_NAMESPACE
        singles.append(Workload(namespace, f"single-{index:03d}", 1, breakage))
    return singles


def deployment_manifest(workload: Workload) -> dict[str, Any]:
    """The healthy Deployment: small requests, a memory limit, kwok runs its pods."""
    labels = {"app": workload.name}
    container = {
        "name": "app",
        "image": IMAGE,
        "resources": {
            "requests": {"cpu": "10m", "memory": "32Mi"},
            "limits": {"memory": "256Mi"},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": workload.name,
            "namespace": workload.namespace,
            "labels": dict(labels),
        },
        "spec": {
            "replicas": workload.replicas,
            "progressDeadlineSeconds": PROGRESS_DEADLINE_SECONDS,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [container]},
            },
        },
    }


def broken_manifest(workload: Workload) -> dict[str, Any]:
    """The Deployment as it is after `breaking_patch`: broken from its first revision."""
    assert workload.breakage is not None
    manifest = deployment_manifest(workload)
    spec, patch = manifest["spec"], breaking_patch(workload.breakage)["spec"]
    template, template_patch = spec["template"], patch["template"]
    template["metadata"]["labels"].update(template_patch["metadata"]["labels"])
    template["metadata"]["annotations"] = template_patch["metadata"]["annotations"]
    for key, value in template_patch["spec"].items():
        if key == "containers":
            template["spec"]["containers"][0].update(value[0])
        else:
            template["spec"][key] = value
    if "strategy" in patch:
        spec["strategy"] = patch["strategy"]
    return manifest


def create_one_by_one(api: Api, workloads: Sequence[Workload], gap: float) -> None:
    """Create broken Deployments, one every `gap` seconds."""
    for workload in workloads:
        api.call(
            api.apps.create_namespaced_deployment, workload.namespace, broken_manifest(workload)
        )
        time.sleep(gap)


def breaking_patch(breakage: Breakage) -> dict[str, Any]:
    """A strategic-merge patch of the Deployment: a rollout of a broken revision."""
    labels: dict[str, str] = {BROKEN_LABEL: breakage.name}
    annotations: dict[str, str] = {"bench.kubetriage.io/revision": "broken"}
    container: dict[str, Any] = {"name": "app"}
    pod_spec: dict[str, Any] = {"containers": [container]}
    spec: dict[str, Any] = {"template": {"metadata": {"labels": labels}, "spec": pod_spec}}
    if breakage.name == "CrashLoopBackOff":
        labels[SIMULATE] = "CrashLoopBackOff"
        annotations["kwok.kubetriage.io/exit-code"] = "127"
    elif breakage.name == "OOMKilled":
        labels[SIMULATE] = "OOMKilled"
    elif breakage.name == "ImagePullBackOff":
        labels[SIMULATE] = "ErrImagePull"
        container["image"] = "registry.example/bench/app:9.9.9-typo"
    elif breakage.name == "PendingNodeSelector":
        pod_spec["nodeSelector"] = {"disktype": "ssd"}
    elif breakage.name == "PendingTooBig":
        container["resources"] = {"requests": {"cpu": "1000", "memory": "32Mi"}}
    elif breakage.name == "RolloutQuota":
        container["image"] = "registry.example/bench/app:1.0.1"
        spec["strategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    spec["template"]["metadata"]["annotations"] = annotations
    return {"spec": spec}


# -- the cluster ------------------------------------------------------------------------------


def log(message: str) -> None:
    """Progress on stderr, with the time: the tables go to stdout."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _body(response: Any) -> bytes:
    try:
        return bytes(response.data)
    finally:
        response.release_conn()


class Api:
    """The official client with raw JSON in and out (no model objects: 10,000 pods stay cheap)."""

    def __init__(self, kubeconfig: Path) -> None:
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
        configuration.connection_pool_maxsize = 32
        self.client = ApiClient(configuration)
        self.core = client.CoreV1Api(self.client)
        self.apps = client.AppsV1Api(self.client)
        self.custom = client.CustomObjectsApi(self.client)

    def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One request; the decoded JSON answer."""
        return json.loads(_body(method(*args, _preload_content=False, **kwargs)))


def prepare_cluster(cluster: LocalCluster, api: Api, workloads: Sequence[Workload]) -> float:
    """CRD, namespaces, Deployments; returns the seconds until every pod ran."""
    cluster.kubectl("apply", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/diagnosisreports.kubetriage.io")
    namespaces = sorted({w.namespace for w in workloads} | {SINGLES_NAMESPACE})
    cluster.apply(
        [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
            for namespace in namespaces
        ]
    )
    for namespace in namespaces:
        cluster.wait_for_default_service_account(namespace)
    rollout_pods = sum(w.replicas for w in workloads if w.namespace == ROLLOUT_NAMESPACE)
    if rollout_pods:
        # Exactly the pods it runs: a rollout's surge pod is refused (maxUnavailable 0).
        cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "pods", "namespace": ROLLOUT_NAMESPACE},
                "spec": {"hard": {"pods": str(rollout_pods)}},
            }
        )
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda w: api.call(
                    api.apps.create_namespaced_deployment, w.namespace, deployment_manifest(w)
                ),
                workloads,
            )
        )
    log(f"created {len(workloads)} Deployments in {time.monotonic() - started:.1f} s")
    wait_for_ready(api, sum(w.replicas for w in workloads))
    return time.monotonic() - started


def wait_for_ready(api: Api, pods: int, timeout: float = 3600.0) -> None:
    """Until the Deployments' ready replicas add up to `pods`."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while True:
        listed = api.call(api.apps.list_deployment_for_all_namespaces)
        ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in listed["items"])
        if ready >= pods:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {ready} of {pods} pods ready after {timeout:.0f} s")
        if time.monotonic() - last_report > 30:
            log(f"{ready} of {pods} pods ready")
            last_report = time.monotonic()
        time.sleep(2)


def break_workloads(api: Api, workloads: Sequence[Workload], stagger: float = 0.0) -> float:
    """Roll out a broken revision of every workload marked so, all at once (or one every
    `stagger` seconds); returns the wall clock (time.time) of the first patch."""
    broken = [w for w in workloads if w.breakage is not None]
    started = time.time()
    if stagger > 0:
        for workload in broken:
            assert workload.breakage is not None
            api.call(
                api.apps.patch_namespaced_deployment,
                workload.name,
                workload.namespace,
                breaking_patch(workload.breakage),
            )
            time.sleep(stagger)
        log(f"broke {len(broken)} workloads, one every {stagger:.1f} s")
        return started
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(
            pool.map(
                lambda w: api.call(
                    api.apps.patch_namespaced_deployment,
                    w.name,
                    w.namespace,
                    breaking_patch(w.breakage),
                ),
                broken,
            )
        )
    log(f"broke {len(broken)} workloads in {time.time() - started:.2f} s")
    return started


# -- watching ---------------------------------------------------------------------------------


@dataclass
class Sighting:
    """When this process first saw something, by both clocks."""

    monotonic: float
    wall: float


@dataclass
class Observer:
    """Watches broken pods, the stuck-rollout namespace's Deployments and DiagnosisReports from
    this process, and remembers when each (namespace, workload, symptom) first showed and first
    got a report with a root cause. Both are seen through the same apiserver by the same clock."""

    api: Api
    symptoms: dict[tuple[str, str, str], Sighting] = field(default_factory=dict)
    reports: dict[tuple[str, str, str], Sighting] = field(default_factory=dict)
    report_bodies: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: list[threading.Event] = field(default_factory=list)

    def start(self) -> None:
        """Start the three watches; returns once each has listed."""
        streams: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Any]] = [
            (
                self.api.core.list_pod_for_all_namespaces,
                (),
                {"label_selector": BROKEN_LABEL},
                self._on_pod,
            ),
            (
                self.api.apps.list_namespaced_deployment,
                (ROLLOUT_NAMESPACE,),
                {},
                self._on_deployment,
            ),
            (
                self.api.custom.list_cluster_custom_object,
                ("kubetriage.io", "v1alpha1", "diagnosisreports"),
                {},
                self._on_report,
            ),
        ]
        for method, args, kwargs, handle in streams:
            ready = threading.Event()
            self._ready.append(ready)
            threading.Thread(
                target=self._follow, args=(method, args, kwargs, handle, ready), daemon=True
            ).start()
        for ready in self._ready:
            ready.wait(timeout=60)

    def stop(self) -> None:
        """Stop watching (the threads end at their next event or time-out)."""
        self._stop.set()

    def forget_reports(self) -> None:
        """Start counting reports afresh (after they were deleted)."""
        with self._lock:
            self.reports.clear()
            self.report_bodies.clear()

    def _follow(
        self,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        handle: Callable[[str, dict[str, Any]], None],
        ready: threading.Event,
    ) -> None:
        while not self._stop.is_set():
            try:
                listed = self.api.call(method, *args, **kwargs)
                version = listed["metadata"]["resourceVersion"]
                for item in listed.get("items") or []:
                    handle("ADDED", item)
                ready.set()
                self._watch(method, args, kwargs, handle, version)
            except Exception as error:  # a broken stream is listed again, never fatal
                log(f"watch of {method.__name__} failed ({error}); listing again")
                time.sleep(1)

    def _watch(
        self,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        handle: Callable[[str, dict[str, Any]], None],
        version: str,
    ) -> None:
        while not self._stop.is_set():
            response = method(
                *args,
                **kwargs,
                watch=True,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=15,
                _preload_content=False,
                _request_timeout=60,
            )
            try:
                for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        return  # 410 Gone: list again
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] != "BOOKMARK":
                        handle(event["type"], event["object"])
                    if self._stop.is_set():
                        return
            finally:
                response.release_conn()

    def _seen(self, found: dict[tuple[str, str, str], Sighting], key: tuple[str, str, str]) -> bool:
        with self._lock:
            if key in found:
                return False
            found[key] = Sighting(time.monotonic(), time.time())
            return True

    def _on_pod(self, event_type: str, pod: dict[str, Any]) -> None:
        if event_type == "DELETED":
            return
        metadata = pod.get("metadata") or {}
        app = (metadata.get("labels") or {}).get("app", "")
        for sighting in detect_pod(pod, datetime.now(UTC)):
            self._seen(self.symptoms, (sighting.namespace, app, sighting.symptom.value))

    def _on_deployment(self, event_type: str, deployment: dict[str, Any]) -> None:
        if event_type == "DELETED":
            return
        for sighting in detect_deployment(deployment):
            key = (sighting.namespace, sighting.object_name, sighting.symptom.value)
            self._seen(self.symptoms, key)

    def _on_report(self, event_type: str, report: dict[str, Any]) -> None:
        if event_type == "DELETED" or not (report.get("status") or {}).get("rootCause"):
            return
        spec = report.get("spec") or {}
        target = spec.get("target") or {}
        key = (report["metadata"]["namespace"], target.get("name", ""), spec.get("symptom", ""))
        self._seen(self.reports, key)
        with self._lock:
            self.report_bodies[key] = report

    def expected_key(self, workload: Workload) -> tuple[str, str, str]:
        """The (namespace, workload, symptom) a broken workload's report is filed under."""
        assert workload.breakage is not None
        return (workload.namespace, workload.name, workload.breakage.symptom)

    def wait_for_reports(
        self, workloads: Iterable[Workload], timeout: float, every: float = 30.0
    ) -> list[Workload]:
        """Until every workload has its report; returns those still without one."""
        waiting = list(workloads)
        deadline = time.monotonic() + timeout
        last_report = time.monotonic()
        while waiting and time.monotonic() < deadline:
            time.sleep(0.2)
            with self._lock:
                waiting = [w for w in waiting if self.expected_key(w) not in self.reports]
            if waiting and time.monotonic() - last_report > every:
                log(f"{len(waiting)} broken workloads still without a report")
                last_report = time.monotonic()
        return waiting


# -- measuring --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessFigures:
    """A process's memory high-water mark, its RSS now, and the CPU it used so far."""

    peak_rss_mib: float
    rss_mib: float
    cpu_seconds: float


def process_figures(pid: int) -> ProcessFigures:
    """VmHWM and VmRSS from /proc/<pid>/status, utime+stime from /proc/<pid>/stat."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    stat = Path(f"/proc/{pid}/stat").read_text()
    after_name = stat[stat.rindex(")") + 2 :].split()
    ticks = int(after_name[11]) + int(after_name[12])  # fields 14 and 15: utime, stime
    return ProcessFigures(fields["VmHWM"], fields["VmRSS"], ticks / os.sysconf("SC_CLK_TCK"))


@dataclass
class Request:
    """One audited request (Metadata level), and how long the apiserver took to answer it."""

    user: str
    received: float
    verb: str
    resource: str
    seconds: float = 0.0


def audited_requests(cluster: LocalCluster, users: Iterable[str]) -> list[Request]:
    """Every request of these users, streamed from the audit log (rotated files included)."""
    found: dict[str, Request] = {}
    for event in cluster.iter_audit_events(set(users)):
        ref = event.get("objectRef") or {}
        resource = str(ref.get("resource") or event.get("requestURI", "?").split("?")[0])
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        if ref.get("apiGroup"):
            resource += f".{ref['apiGroup']}"
        received = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
        # A watch has two records (ResponseStarted, ResponseComplete): one request.
        request = found.setdefault(
            event["auditID"], Request(event["user"]["username"], received, event["verb"], resource)
        )
        if event.get("stage") == "ResponseComplete" and event.get("stageTimestamp"):
            done = datetime.fromisoformat(event["stageTimestamp"]).timestamp()
            request.seconds = done - received
    return sorted(found.values(), key=lambda r: r.received)


def apiserver_seconds(requests: Iterable[Request], user: str, start: float, end: float) -> float:
    """How long the apiserver spent answering one user's requests (watches excluded)."""
    return sum(
        r.seconds
        for r in requests
        if r.user == user and start <= r.received < end and r.verb != "watch"
    )


def count_requests(
    requests: Iterable[Request], user: str, start: float, end: float
) -> Counter[tuple[str, str]]:
    """(verb, resource) counts of one user's requests received in [start, end)."""
    return Counter(
        (r.verb, r.resource) for r in requests if r.user == user and start <= r.received < end
    )


def by_verb(counts: Counter[tuple[str, str]]) -> Counter[str]:
    """The same counts, by verb only."""
    verbs: Counter[str] = Counter()
    for (verb, _), number in counts.items():
        verbs[verb] += number
    return verbs


def describe_verbs(counts: Counter[tuple[str, str]], per: float = 1.0, unit: str = "") -> str:
    """`list 4, get 7` (divided by `per`), for a table cell."""
    verbs = by_verb(counts)
    if not verbs:
        return "none"
    return ", ".join(
        f"{verb} {n / per:.{0 if per == 1 else 1}f}{unit}" for verb, n in sorted(verbs.items())
    )


def describe_counts(counts: Counter[tuple[str, str]], limit: int = 8) -> str:
    """`verb resource xN` for the most frequent, for a table cell."""
    if not counts:
        return "none"
    parts = [f"{verb} {resource} x{n}" for (verb, resource), n in counts.most_common(limit)]
    if len(counts) > limit:
        parts.append("…")
    return ", ".join(parts)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


def machine() -> str:
    """nproc, the CPU model, RAM, kernel and Python, for the tables' heading."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kib / 1024 / 1024:.1f} GiB RAM, "
        f"Linux {platform.release()}, CPython {platform.python_version()}"
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def seconds(value: float) -> str:
    """`1.234 s`."""
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
