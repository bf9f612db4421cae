"""The OOMKilled runbook: given what the pods, nodes and memory history show, the report names
LimitTooLow, MemoryLeak or NodePressure with the evidence an on-call engineer would quote, and a
concrete, sized change.

The history analysis is a pure function, tested first over synthetic shapes; then the playbook
runs end to end through `diagnose` over small snapshots, and over the shared scenario files.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kubeobjects
from helpers import SCENARIOS_DIR
from kubetriage.clients.kube import Sample
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, diagnose
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.oom.advise import memory_quantity as quantity
from kubetriage.playbooks.oom.advise import round_up_memory, size_from_peak
from kubetriage.playbooks.oom.memory import Pattern, Shape, analyze_memory

MI = 2**20
GI = 2**30
T0 = 1_741_780_800.0  # 2025-03-12T12:00:00Z
CAPTURED = "2025-03-12T16:00:00Z"
T_END = 1_741_795_200.0  # CAPTURED as unix time
METRIC = "container_memory_working_set_bytes"


# -- synthetic memory shapes ----------------------------------------------------------------------


def leak(
    instances: int = 3, hours: float = 4.0, limit: float = GI, step: float = 300.0
) -> list[Sample]:
    """Each instance climbs in a straight line from 300Mi to just under the limit, then restarts."""
    samples: list[Sample] = []
    per = int(hours * 3600 / step)
    t = T0
    for _ in range(instances):
        for i in range(per):
            samples.append((t, 300 * MI + (limit * 0.98 - 300 * MI) * i / (per - 1)))
            t += step
    return samples


def plateau(instances: int = 3, limit: float = 512 * MI) -> list[Sample]:
    """Each instance climbs to ~97% of the limit within two minutes and stays there until killed."""
    shape = [0.55, 0.8, 0.92, 0.96, 0.97, 0.975, 0.97, 0.978]
    samples: list[Sample] = []
    t = T0
    for _ in range(instances):
        for share in shape:
            samples.append((t, share * limit))
            t += 30
        t += 300  # crash-loop back-off: no samples while nothing runs
    return samples


def startup_spike(instances: int = 3, limit: float = 512 * MI) -> list[Sample]:
    """Each instance jumps past 90% of the limit at its second scrape and dies."""
    samples: list[Sample] = []
    t = T0
    for _ in range(instances):
        samples += [(t, 0.3 * limit), (t + 30, 0.99 * limit)]
        t += 360
    return samples


def noisy(samples: list[Sample], share: float, seed: int = 7) -> list[Sample]:
    rng = random.Random(seed)
    return [(t, v * (1 + rng.uniform(-share, share))) for t, v in samples]


def below_limit(limit: float = GI) -> list[Sample]:
    """Three instances that never pass half the limit; the drops show the first two were killed."""
    samples: list[Sample] = []
    t = T0
    for _ in range(3):
        for value in (300, 420, 480, 500, 490):
            samples.append((t, value * MI))
            t += 60
    return samples


def scrambled(samples: list[Sample]) -> list[Sample]:
    """Reversed, with every tenth sample repeated (two scrapes answering the same instant)."""
    return list(reversed(samples)) + samples[::10]


def with_garbage(samples: list[Sample]) -> list[Sample]:
    return [*samples[:5], (T0 + 7, math.nan), (T0 + 11, -5.0), (math.inf, 1.0), *samples[5:]]


@pytest.mark.parametrize(
    ("samples", "limit", "pattern"),
    [
        pytest.param(
            leak(), GI, Pattern.LEAK, id="leak: linear growth over hours, across restarts"
        ),
        pytest.param(plateau(), 512 * MI, Pattern.PLATEAU, id="plateau at the limit"),
        pytest.param(startup_spike(), 512 * MI, Pattern.SPIKE, id="spike at startup"),
        pytest.param([], 512 * MI, Pattern.NO_DATA, id="no samples"),
        pytest.param([(T0, 400 * MI)], 512 * MI, Pattern.TOO_FEW_SAMPLES, id="single sample"),
        pytest.param(noisy(plateau(), 0.02), 512 * MI, Pattern.PLATEAU, id="noisy plateau"),
        pytest.param(noisy(leak(), 0.04), GI, Pattern.LEAK, id="noisy leak"),
        pytest.param(scrambled(leak()), GI, Pattern.LEAK, id="unsorted, duplicate timestamps"),
        pytest.param(
            with_garbage(plateau()), 512 * MI, Pattern.PLATEAU, id="NaN and negative values"
        ),
        pytest.param(below_limit(), GI, Pattern.BELOW_LIMIT, id="killed far below the limit"),
        pytest.param(leak()[:40], GI, Pattern.GROWING, id="only a running instance, still growing"),
        pytest.param(leak(), None, Pattern.LEAK, id="no limit, grows until every restart"),
        pytest.param(below_limit(), None, Pattern.NO_LIMIT, id="no limit, no growth"),
    ],
)
def test_analyze_memory_names_the_shape(
    samples: list[Sample], limit: float | None, pattern: Pattern
) -> None:
    assert analyze_memory(samples, limit).pattern is pattern


def test_a_leak_reports_its_growth_rate_and_time_to_limit_per_instance() -> None:
    analysis = analyze_memory(leak(instances=3, hours=4.0), GI)
    assert [i.shape for i in analysis.instances] == [Shape.LEAK, Shape.LEAK, Shape.LEAK]
    expected_rate = (GI * 0.98 - 300 * MI) / (47 * 300) * 3600  # bytes per hour of the line
    assert analysis.leak_rate_per_hour == pytest.approx(expected_rate, rel=1e-6)
    assert all(i.r_squared == pytest.approx(1.0) for i in analysis.instances)
    # 90% of 1Gi is 921.6Mi: (921.6 - 300) / (1003.5 - 300) of 47 steps, rounded up to a sample
    assert analysis.seconds_to_limit == 42 * 300
    assert analysis.peak == pytest.approx(GI * 0.98)


def test_a_leak_on_a_shorter_time_scale_needs_the_setting_that_says_so() -> None:
    """The real node's leak fills 48Mi in under a minute: by default that climb is too short to
    tell from a start-up (LimitTooLow); with `memory_leak_min_climb_seconds` at 20 s it is a
    leak."""
    climb = [8 * MI + (47 - 8) * MI * i / 22 for i in range(23)]  # 2 s apart, 44 s to 47Mi
    fast = [(T0 + 60 * run + 2 * i, value) for run in range(3) for i, value in enumerate(climb)]
    assert analyze_memory(fast, 48 * MI).pattern is Pattern.PLATEAU
    assert analyze_memory(fast, 48 * MI, leak_min_seconds=20).pattern is Pattern.LEAK


def test_a_leak_killed_between_two_fresh_values_is_a_leak_not_a_kill_below_the_limit() -> None:
    """The real node's leak as Prometheus records it: scraped every 2 s, but cAdvisor refreshes
    a container's stats every ~10 s, so the series climbs in steps and the kernel's kill (at
    48Mi) comes before a step shows 90% of the limit: the last value is 40Mi. A steady climb whose
    pace reaches the limit before the next fresh value was killed at the limit."""

    def fresh(t: float) -> float:  # the stat cAdvisor last refreshed, at 6 s, 16 s, 26 s, ...
        refreshed = 6 + 10 * ((t - 6) // 10) if t >= 6 else 0
        return (4 + refreshed) * MI

    climb = [fresh(t) for t in range(0, 44, 2)]
    assert max(climb) == 40 * MI
    samples = [(T0 + 120 * run + 2 * i, v) for run in range(3) for i, v in enumerate(climb)]
    analysis = analyze_memory(samples, 48 * MI, finished={""}, leak_min_seconds=20)
    assert [i.shape for i in analysis.instances] == [Shape.LEAK] * 3
    assert analysis.pattern is Pattern.LEAK
    # 90% of 48Mi at the climb's pace (~1Mi/s) from its last value, 40Mi at 36 s
    assert analysis.seconds_to_limit == pytest.approx(39.2, abs=1.0)


def test_a_flat_instance_killed_far_below_its_limit_stays_below_it() -> None:
    """The projection is for a steady climb only: a flat working set killed at half its limit
    ran out of someone else's memory, however fresh its values."""
    flat = [(T0 + 2 * i, (20 + (i % 2)) * MI) for i in range(30)]
    analysis = analyze_memory(flat, 48 * MI, finished={""}, leak_min_seconds=20)
    assert analysis.pattern is Pattern.BELOW_LIMIT


def test_instances_split_on_a_restart_drop_and_on_a_silent_gap() -> None:
    drop: list[Sample] = [
        (T0, 900 * MI),
        (T0 + 300, 950 * MI),
        (T0 + 600, 310 * MI),
        (T0 + 900, 330 * MI),
    ]
    gap: list[Sample] = [
        (T0, 400 * MI),
        (T0 + 30, 450 * MI),
        (T0 + 60, 460 * MI),
        (T0 + 600, 455 * MI),
    ]
    assert [len(run) for run in _runs(drop)] == [2, 2]
    assert [len(run) for run in _runs(gap)] == [3, 1]


def _runs(samples: list[Sample]) -> list[list[Sample]]:
    analysis = analyze_memory(samples, GI)
    return [[s for s in samples if i.start <= s[0] <= i.end] for i in analysis.instances]


@pytest.mark.parametrize(
    ("finished", "pattern"),
    [
        pytest.param(
            {""}, Pattern.BELOW_LIMIT, id="container stopped: its one instance was killed"
        ),
        pytest.param(set(), Pattern.INCONCLUSIVE, id="container running: nothing was killed yet"),
    ],
)
def test_a_single_instance_ended_below_the_limit_only_counts_when_the_container_stopped(
    finished: set[str], pattern: Pattern
) -> None:
    assert analyze_memory(below_limit()[:5], GI, finished=finished).pattern is pattern


def test_bad_samples_are_dropped_and_counted_never_fatal() -> None:
    analysis = analyze_memory(with_garbage(plateau()), 512 * MI)
    assert analysis.discarded == 3
    assert analysis.samples == len(plateau())


any_float = st.floats(allow_nan=True, allow_infinity=True)
timestamps = st.floats(0, 2e9) | any_float
byte_counts = st.floats(0, 4e9) | any_float


@settings(max_examples=150, deadline=None)
@given(
    samples=st.lists(st.tuples(timestamps, byte_counts), max_size=80),
    limit=st.none() | any_float,
)
def test_any_history_is_analyzed_without_raising_and_keeps_its_invariants(
    samples: list[Sample], limit: float | None
) -> None:
    analysis = analyze_memory(samples, limit)
    assert analysis.samples + analysis.discarded == len(samples)
    assert sum(i.samples for i in analysis.instances) == analysis.samples
    if analysis.peak is not None:
        assert analysis.p50 is not None
        assert analysis.p95 is not None
        assert analysis.p50 <= analysis.p95 <= analysis.peak


def test_duplicate_timestamps_keep_one_sample_each() -> None:
    samples = leak()
    analysis = analyze_memory(scrambled(samples), GI)
    assert analysis.samples == len(samples)
    assert analysis.discarded == len(samples[::10])
    assert analysis.leak_rate_per_hour == pytest.approx(
        analyze_memory(samples, GI).leak_rate_per_hour
    )


def test_percentiles_are_nearest_rank_over_all_pods() -> None:
    analysis = analyze_memory(
        {
            "a": [(T0 + i, float(v)) for i, v in enumerate(range(1, 11))],
            "b": [(T0 + i, float(v)) for i, v in enumerate(range(11, 21))],
        },
        GI,
    )
    assert (analysis.p50, analysis.p95, analysis.peak) == (10.0, 19.0, 20.0)
    assert {i.series for i in analysis.instances} == {"a", "b"}


def test_a_running_instance_projects_when_it_will_reach_the_limit() -> None:
    analysis = analyze_memory(leak()[:24], GI)  # two hours into the first instance
    (instance,) = analysis.instances
    assert instance.shape is Shape.GROWING
    remaining = instance.seconds_until(GI)
    assert remaining is not None
    assert remaining == pytest.approx((GI - instance.last) / instance.growth_per_hour * 3600)


# -- the sizing rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peak", "limit", "expected"),
    [
        pytest.param(503.5 * MI, 512 * MI, "640Mi", id="peak 503.5Mi at a 512Mi limit"),
        pytest.param(1022 * MI, GI, "1280Mi", id="peak 1022Mi at a 1Gi limit"),
        pytest.param(300 * MI, 512 * MI, "640Mi", id="scrapes missed the climb: limit + 25%"),
        pytest.param(None, 512 * MI, "640Mi", id="no history: limit + 25%"),
        pytest.param(12.56 * GI, None, "16128Mi", id="no limit, 256Mi steps from 2Gi"),
        pytest.param(50 * MI, None, "64Mi", id="tiny: one step"),
    ],
)
def test_sizing_rule_peak_plus_25_percent_rounded_up(
    peak: float | None, limit: float | None, expected: str
) -> None:
    size = size_from_peak(peak, limit)
    assert size is not None
    assert quantity(size) == expected


def test_sizing_rule_rounds_to_64mi_below_2gi_and_256mi_above() -> None:
    assert round_up_memory(641 * MI) == 704 * MI
    assert round_up_memory(2049 * MI) == 2304 * MI
    assert size_from_peak(None, None) is None


# -- snapshots for the playbook --------------------------------------------------------------------


def _resources(limit: str | None, request: str | None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if limit is not None:
        resources["limits"] = {"memory": limit}
    if request is not None:
        resources["requests"] = {"cpu": "250m", "memory": request}
    return resources


def _container(limit: str | None, request: str | None) -> dict[str, Any]:
    return kubeobjects.container(
        "api", "registry.example.com/shop/api:3.1.0", resources=_resources(limit, request)
    )


# The ReplicaSets' owner references carry no apiVersion: owners are resolved by kind.
def deployment(limit: str | None, request: str | None, replicas: int = 2) -> list[dict[str, Any]]:
    spec = {"containers": [_container(limit, request)]}
    return [
        kubeobjects.deployment(
            "api",
            namespace="shop",
            uid="d-1",
            revision=4,
            replicas=replicas,
            selector={"app": "api"},
            pod_spec=spec,
            pod_labels={"app": "api"},
        ),
        kubeobjects.replica_set(
            "api-7d9f8b6c5",
            namespace="shop",
            created="2025-03-12T11:00:00Z",
            owner=kubeobjects.owner_reference("Deployment", "api", api_version=None),
            revision=4,
            replicas=replicas,
            pod_spec=spec,
            pod_labels={"app": "api"},
        ),
    ]


def old_revision(limit: str) -> dict[str, Any]:
    return kubeobjects.replica_set(
        "api-5c4b3a291",
        namespace="shop",
        owner=kubeobjects.owner_reference("Deployment", "api", api_version=None),
        revision=3,
        replicas=0,
        pod_spec={"containers": [_container(limit, "256Mi")]},
    )


def pod(
    name: str,
    *,
    limit: str | None = "512Mi",
    request: str | None = "256Mi",
    node: str = "node-a",
    started: str = "2025-03-12T15:55:00Z",
    finished: str = "2025-03-12T15:58:00Z",
    restarts: int = 24,
    ready: bool = False,
    owner: str | None = "api-7d9f8b6c5",
) -> dict[str, Any]:
    state = (
        kubeobjects.running(finished)
        if ready
        else kubeobjects.crash_loop_back_off("api", pod_ref=f"{name}_shop(uid)")
    )
    status = kubeobjects.container_status(
        "api",
        state,
        ready=ready,
        restart_count=restarts,
        last_state=kubeobjects.terminated(137, "OOMKilled", started=started, finished=finished),
    )
    return kubeobjects.pod(
        name,
        namespace="shop",
        labels={"app": "api"},
        owner=kubeobjects.owner_reference("ReplicaSet", owner) if owner else None,
        spec={"nodeName": node, "containers": [_container(limit, request)]},
        status={
            "phase": "Running",
            "qosClass": "Burstable",
            "startTime": "2025-03-12T12:00:00Z",
            "containerStatuses": [status],
        },
    )


def node(name: str, *, pressure: bool = False, allocatable: str = "15286236Ki") -> dict[str, Any]:
    condition = (
        kubeobjects.condition(
            "MemoryPressure",
            "True",
            reason="KubeletHasInsufficientMemory",
            message="kubelet has insufficient memory available",
            last_transition="2025-03-12T15:50:00Z",
        )
        if pressure
        else kubeobjects.condition(
            "MemoryPressure",
            "False",
            reason="KubeletHasSufficientMemory",
            message="kubelet has sufficient memory available",
            last_transition="2025-03-01T00:00:00Z",
        )
    )
    return kubeobjects.node(name, allocatable={"memory": allocatable}, conditions=[condition])


def node_event(
    node_name: str,
    reason: str,
    message: str,
    when: str,
    *,
    count: int = 1,
    namespace: str = "default",
) -> dict[str, Any]:
    return kubeobjects.event(
        "Node",
        node_name,
        reason,
        message,
        namespace=namespace,
        count=count,
        host=node_name,
        first=when,
        last=when,
        uid=node_name,
    )


def series(pod_name: str, samples: list[Sample]) -> dict[str, Any]:
    return kubeobjects.kube_object(
        "MetricSeries",
        pod_name,
        namespace="shop",
        container="api",
        metric=METRIC,
        samples=[list(s) for s in samples],
    )


def run(*items: dict[str, Any], reader: SnapshotReader | None = None) -> Finding:
    findings = diagnose(reader or kubeobjects.snapshot_reader(*items, captured_at=CAPTURED))
    assert [f.symptom for f in findings] == [Symptom.OOM_KILLED]
    return findings[0]


def evidence(finding: Finding, source: EvidenceSource | None = None) -> str:
    return "\n".join(
        e.summary for e in finding.investigation.evidence if source is None or e.source is source
    )


def patch_of(finding: Finding) -> dict[str, Any]:
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    content: dict[str, Any] = json.loads(recommendation.patch.content)
    resources: dict[str, Any] = content["spec"]["template"]["spec"]["containers"][0]["resources"]
    return resources


def shifted(samples: list[Sample], end: float = T_END - 120) -> list[Sample]:
    """The same shape, moved so that it ends just before the capture."""
    offset = end - samples[-1][0]
    return [(t + offset, v) for t, v in samples]


# -- LimitTooLow -----------------------------------------------------------------------------------


def test_plateau_at_the_limit_is_limit_too_low_with_the_sized_patch_and_its_cost() -> None:
    finding = run(
        *deployment("512Mi", "256Mi"),
        pod("api-7d9f8b6c5-aaaaa"),
        pod("api-7d9f8b6c5-bbbbb"),
        node("node-a"),
        series("api-7d9f8b6c5-aaaaa", shifted(plateau())),
        series("api-7d9f8b6c5-bbbbb", shifted(plateau())),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW
    assert root.confidence >= 0.8
    assert "512Mi" in root.summary
    assert "500.7Mi" in root.summary  # the peak: 0.978 x 512Mi
    # 500.7Mi x 1.25 = 625.9Mi, rounded up to a multiple of 64Mi
    assert patch_of(finding) == {"limits": {"memory": "640Mi"}}
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is not None
    assert recommendation.patch.target.kind == "Deployment"
    assert recommendation.cost_impact is not None
    assert recommendation.cost_impact.percent == 25.0
    assert "2 x 512Mi -> 2 x 640Mi" in recommendation.cost_impact.summary
    assert finding.conclusion.scope.resource_change_percent == 25.0
    assert "512Mi" in (recommendation.rollback or "")
    assert "-l app=api" in (recommendation.validation or "")
    assert "peak 500.7Mi" in evidence(finding, EvidenceSource.PROMETHEUS)
    assert "p95" in evidence(finding, EvidenceSource.PROMETHEUS)


def test_the_patch_keeps_a_request_equal_to_the_limit_equal() -> None:
    finding = run(
        *deployment("512Mi", "512Mi"),
        pod("api-7d9f8b6c5-aaaaa", request="512Mi"),
        series("api-7d9f8b6c5-aaaaa", shifted(plateau())),
    )
    assert patch_of(finding) == {"limits": {"memory": "640Mi"}, "requests": {"memory": "640Mi"}}


def test_a_revision_that_lowered_the_limit_is_named_and_suggested_as_the_fallback() -> None:
    finding = run(
        *deployment("512Mi", "256Mi"),
        old_revision("1Gi"),
        pod("api-7d9f8b6c5-aaaaa"),
        series("api-7d9f8b6c5-aaaaa", shifted(plateau())),
    )
    assert "lowered limits.memory from 1Gi" in evidence(finding, EvidenceSource.REPLICASET)
    assert "revision 4 lowered it from 1Gi" in finding.conclusion.root_cause.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "go back to 1Gi" in recommendation.summary


def test_a_spike_at_startup_is_limit_too_low_too() -> None:
    finding = run(
        *deployment("512Mi", "256Mi"),
        pod("api-7d9f8b6c5-aaaaa"),
        series("api-7d9f8b6c5-aaaaa", shifted(startup_spike())),
    )
    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    assert "spike" in finding.conclusion.root_cause.summary


# -- MemoryLeak ------------------------------------------------------------------------------------


def test_steady_growth_over_hours_across_restarts_is_a_leak_and_a_bigger_limit_only_delays_it() -> (
    None
):
    finding = run(
        *deployment("1Gi", "1Gi", replicas=1),
        pod(
            "api-7d9f8b6c5-aaaaa",
            limit="1Gi",
            request="1Gi",
            restarts=3,
            ready=True,
            started="2025-03-12T11:50:00Z",
            finished="2025-03-12T15:50:00Z",
        ),
        series("api-7d9f8b6c5-aaaaa", shifted(leak())),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_MEMORY_LEAK
    assert root.confidence >= 0.85
    assert "only delays the next kill" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "only delays the next kill" in recommendation.summary
    assert "heap profile" in recommendation.summary
    assert "restart is not a fix" in recommendation.summary
    assert patch_of(finding) == {"limits": {"memory": "1280Mi"}, "requests": {"memory": "1280Mi"}}
    trend = evidence(finding, EvidenceSource.PROMETHEUS)
    assert "/h" in trend
    assert "reached 90% of the limit after 3h30m" in trend


def slow_killed(name: str) -> dict[str, Any]:
    """A pod whose container is killed 4h30m after each start, for the sixth time."""
    return pod(name, limit="1Gi", request="1Gi", restarts=6, ready=True,
               started="2025-03-12T11:20:00Z", finished="2025-03-12T15:50:00Z")  # fmt: skip


def test_without_history_slow_repeated_kills_suggest_a_leak_at_low_confidence() -> None:
    finding = run(
        *deployment("1Gi", "1Gi"),
        slow_killed("api-7d9f8b6c5-aaaaa"),
        slow_killed("api-7d9f8b6c5-bbbbb"),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_MEMORY_LEAK
    assert root.confidence < 0.5
    assert "no metrics source" in root.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "only delays the next kill" in recommendation.summary


# -- NodePressure ----------------------------------------------------------------------------------


def test_no_limit_and_a_system_oom_on_the_node_is_node_pressure() -> None:
    burst = [(T_END - 900 + 30 * i, (1.4 + 0.4 * i) * GI) for i in range(28)]
    finding = run(
        *deployment(None, "1Gi", replicas=1),
        pod(
            "api-7d9f8b6c5-aaaaa",
            limit=None,
            request="1Gi",
            node="node-b",
            restarts=3,
            ready=True,
            started="2025-03-12T15:30:00Z",
            finished="2025-03-12T15:45:02Z",
        ),
        node("node-b", pressure=True),
        node_event(
            "node-b",
            "SystemOOM",
            "System OOM encountered, victim process: java, pid: 3190377",
            "2025-03-12T15:45:01Z",
        ),
        node_event(
            "node-b",
            "EvictionThresholdMet",
            "Attempting to reclaim memory",
            "2025-03-12T15:50:00Z",
            count=9,
        ),
        series("api-7d9f8b6c5-aaaaa", burst),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_NODE_PRESSURE
    assert root.confidence >= 0.85
    assert "no memory limit" in root.summary
    events = evidence(finding, EvidenceSource.EVENTS)
    assert "SystemOOM at 2025-03-12T15:45:01Z" in events
    assert "1s from the kill of api-7d9f8b6c5-aaaaa" in events
    assert "Attempting to reclaim memory" in events
    assert "MemoryPressure=True" in evidence(finding, EvidenceSource.NODE)
    resources = patch_of(finding)
    assert resources["limits"] == resources["requests"]  # the container gets its memory reserved
    assert finding.conclusion.scope.resource_change_percent is not None


def test_no_limit_without_history_still_answers_node_pressure_and_asks_to_measure() -> None:
    finding = run(
        *deployment(None, None, replicas=1),
        pod("api-7d9f8b6c5-aaaaa", limit=None, request=None),
        node("node-a"),
    )
    assert finding.conclusion.root_cause.category is Category.OOM_NODE_PRESSURE
    assert finding.conclusion.root_cause.confidence <= 0.7
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None
    assert (recommendation.command or "").startswith("kubectl")


def test_a_kill_below_the_limit_while_the_node_ran_out_is_node_pressure() -> None:
    finding = run(
        *deployment("1Gi", "256Mi"),
        pod("api-7d9f8b6c5-aaaaa", limit="1Gi"),
        node("node-a"),
        node_event(
            "node-a",
            "SystemOOM",
            "System OOM encountered, victim process: api, pid: 4242",
            "2025-03-12T15:58:01Z",
        ),
        series("api-7d9f8b6c5-aaaaa", shifted(below_limit(), end=T_END - 119)),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_NODE_PRESSURE
    assert root.confidence >= 0.8
    assert "500Mi (49% of its 1Gi limit)" in root.summary
    # raise the request to the real peak so the scheduler stops overpacking the node
    assert patch_of(finding) == {"requests": {"memory": "640Mi"}}


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 88Ki. "
            "Container worker was using 2146300Ki, request is 0, has larger consumption of memory.",
            id="eviction manager",
        ),
        pytest.param("The node had condition: [MemoryPressure]. ", id="admission refusal"),
    ],
)
def test_pods_evicted_for_memory_show_the_pressure_after_the_events_expired(message: str) -> None:
    evicted = kubeobjects.pod(
        "worker-1",
        namespace="shop",
        spec={"nodeName": "node-a"},
        status={"phase": "Failed", "reason": "Evicted", "message": message},
    )
    # one killed instance that never came near its limit; the container is backing off now
    findings = diagnose(
        kubeobjects.snapshot_reader(
            *deployment("1Gi", "256Mi"),
            pod("api-7d9f8b6c5-aaaaa", limit="1Gi"),
            node("node-a"),
            evicted,
            series("api-7d9f8b6c5-aaaaa", shifted(below_limit()[:5])),
            captured_at=CAPTURED,
        )
    )
    # The evicted pod is its own report (DESIGN.md section 12); the OOM one reads it too.
    assert sorted((f.symptom, f.target.name) for f in findings) == [
        (Symptom.EVICTED, "worker-1"),
        (Symptom.OOM_KILLED, "api"),
    ]
    (finding,) = [f for f in findings if f.symptom is Symptom.OOM_KILLED]
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_NODE_PRESSURE
    assert "Evicted on node-a" in root.summary
    assert message.strip() in evidence(finding, EvidenceSource.POD_STATUS)


def test_a_kernel_cgroup_kill_report_is_not_node_pressure() -> None:
    cgroup = node_event(
        "node-a",
        "OOMKilling",
        "Memory cgroup out of memory: Killed process 4093 (api) total-vm:1029340kB, "
        "anon-rss:521632kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:1144kB oom_score_adj:985",
        "2025-03-12T15:58:00Z",
    )
    finding = run(*deployment("512Mi", "256Mi"), pod("api-7d9f8b6c5-aaaaa"), node("node-a"), cgroup)
    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    outcome = {s.name: s.outcome for s in finding.investigation.steps}
    assert "memory cgroup (limit) kill" in outcome["Check the nodes for memory pressure"]


# -- missing data ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "missing"),
    [
        pytest.param([], "no metrics source (Prometheus) is configured", id="no history source"),
        pytest.param(
            [series("other-pod", plateau())],
            f"no {METRIC} series for container api in pod(s) api-7d9f8b6c5-aaaaa",
            id="no series for this container",
        ),
    ],
)
def test_without_history_the_answer_comes_from_timing_at_lower_confidence_and_names_the_gap(
    extra: list[dict[str, Any]], missing: str
) -> None:
    finding = run(*deployment("512Mi", "256Mi"), pod("api-7d9f8b6c5-aaaaa"), node("node-a"), *extra)
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW  # killed 3 minutes after each start
    assert root.confidence <= 0.5
    assert missing in evidence(finding, EvidenceSource.PROMETHEUS)
    assert (
        missing
        in {s.name: s.outcome for s in finding.investigation.steps}["Read the memory history"]
    )
    assert patch_of(finding) == {"limits": {"memory": "640Mi"}}  # the limit + 25%, said as such
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "no memory history" in recommendation.summary


def test_a_failing_metrics_source_degrades_the_diagnosis_instead_of_breaking_it() -> None:
    class BrokenPrometheus(SnapshotReader):
        def metric_series(
            self, namespace: str, pod: str, container: str, metric: str
        ) -> list[Sample] | None:
            raise TimeoutError("query timed out after 30s")

    document = kubeobjects.snapshot(
        *deployment("512Mi", "256Mi"), pod("api-7d9f8b6c5-aaaaa"), captured_at=CAPTURED
    )
    finding = run(reader=BrokenPrometheus(document["items"]))
    assert finding.conclusion.root_cause.category is Category.OOM_LIMIT_TOO_LOW
    assert "metrics source failed (TimeoutError" in evidence(finding, EvidenceSource.PROMETHEUS)


def test_a_limit_lowered_by_the_running_revision_decides_when_there_is_no_history() -> None:
    finding = run(
        *deployment("512Mi", "256Mi"),
        old_revision("1Gi"),
        pod("api-7d9f8b6c5-aaaaa", started="2025-03-12T14:00:00Z"),
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW
    assert root.confidence == 0.6


def test_malformed_objects_degrade_instead_of_raising() -> None:
    broken = pod("api-7d9f8b6c5-aaaaa", limit="lots", started="not a time", finished="")
    broken["spec"]["containers"].append("not a container")
    broken["status"]["containerStatuses"].append(None)
    finding = run(
        *deployment("lots", "256Mi"),
        broken,
        {"kind": "Node", "metadata": {"name": "node-a"}, "status": {"conditions": "garbage"}},
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.OOM_LIMIT_TOO_LOW
    assert root.confidence <= 0.4
    assert "unreadable (lots)" in root.summary
    assert "'lots' is not a quantity" in evidence(finding, EvidenceSource.POD_SPEC)


def test_a_bare_pod_gets_a_recreate_command_not_a_patch() -> None:
    finding = run(pod("batch-once", owner=None), series("batch-once", shifted(plateau())))
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None
    assert "kubectl replace --force" in (recommendation.command or "")
    assert '"memory":"640Mi"' in (recommendation.command or "")


# -- the runbook itself, and the shared scenarios --------------------------------------------------


def test_the_trace_follows_the_documented_steps_in_order() -> None:
    finding = run(*deployment("512Mi", "256Mi"), pod("api-7d9f8b6c5-aaaaa"), node("node-a"))
    playbook = playbook_for(Symptom.OOM_KILLED)
    assert [s.name for s in finding.investigation.steps] == [s.name for s in playbook.steps]
    assert all(s.outcome for s in finding.investigation.steps)
    assert set(playbook.categories) == {
        Category.OOM_LIMIT_TOO_LOW,
        Category.OOM_MEMORY_LEAK,
        Category.OOM_NODE_PRESSURE,
    }


EXPECTED = json.loads((SCENARIOS_DIR / "expected.json").read_text())
OOM_SCENARIOS = sorted(
    name
    for name, reports in EXPECTED.items()
    if reports and any(r["symptom"] == "OOMKilled" for r in reports)
)


@pytest.mark.parametrize("name", OOM_SCENARIOS)
def test_shared_scenario_names_the_expected_category(name: str) -> None:
    findings = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / name))
    got = {
        (f.target.name, f.symptom.value, f.conclusion.root_cause.category.value) for f in findings
    }
    for report in EXPECTED[name]:
        assert (report["targetName"], report["symptom"], report["category"]) in got


def test_scenario_limit_too_low_recommends_640mi_across_two_replicas() -> None:
    (finding,) = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / "oom-limit-too-low.json"))
    assert patch_of(finding) == {"limits": {"memory": "640Mi"}}
    assert finding.conclusion.scope.resource_change_percent == 25.0


def test_scenario_memory_leak_says_a_bigger_limit_only_delays_the_kill() -> None:
    (finding,) = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / "oom-memory-leak.json"))
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert "only delays the next kill" in recommendation.summary
    assert "155.5Mi/h" in finding.conclusion.root_cause.summary


def test_scenario_node_pressure_caps_the_limit_to_what_a_node_holds() -> None:
    (finding,) = diagnose(SnapshotReader.from_file(SCENARIOS_DIR / "oom-node-pressure.json"))
    events = evidence(finding, EvidenceSource.EVENTS)
    assert "SystemOOM at 2025-03-14T01:53:41Z" in events  # the kill in the pod status
    # an earlier kill, known only as the end of an instance in the memory history
    assert (
        "SystemOOM at 2025-03-14T01:28:32Z: System OOM encountered, victim process: java" in events
    )
    assert "2s from the kill of report-builder-gxkvsd6bj-6jr4z" in events
    # peak 12.6Gi + 25% does not fit a 14.6Gi node: 90% of its allocatable, rounded down
    assert patch_of(finding) == {"limits": {"memory": "13Gi"}, "requests": {"memory": "13Gi"}}
