"""kwok's Stages held against the real kubelet (issue 13, DESIGN.md 9).

Each kind of failure kwok simulates with the real cycle (hack/kwok/cycle_stages.py, pod
annotation `kwok.kubetriage.io/cycle: "true"`) runs on kwok next to the same failure recorded
from a real node (tests/fixtures/realnode/<failure>.json, written by hack/record_realnode.py),
and the two must have the same SHAPE. Values that differ by nature (names, uids, times, image
registries, ids) are not compared; time is compared after kwok's time scale (0.1) is undone.

Fields compared, for the failing container (`containerStatuses[0]`), over the part of the cycle
both saw (up to restartCount COMPARED_RESTARTS; for image pulls, up to the COMPARED_PULLS-th
attempt):
 1. the transitions between its states: the set of (state: reason -> state: reason) pairs,
    e.g. `terminated: Error -> waiting: CrashLoopBackOff`, `ErrImagePull -> ImagePullBackOff`
    (the kubelet's status writes coalesce: a start or a death it did not write counts as
    written, e.g. `running -> running` with restartCount + 1 as `running -> terminated ->
    running`);
 2. for each state: which keys the state object has (`state.terminated` has containerID,
    exitCode, finishedAt, reason, startedAt and no message; `waiting` has reason and message),
    and which keys the container status has (imageID, containerID, lastState, ...);
 3. the exit codes of `state.terminated` and of `lastState.terminated`;
 4. `lastState.terminated`: its reasons, its keys (a message only with StartError, whose
    startedAt is 1970-01-01T00:00:00Z), and that it is empty until the first restart;
 5. restartCount: it never decreases, grows by exactly one at each start, and reaches
    COMPARED_RESTARTS;
 6. the back-off: the intervals between restarts grow, and each (kwok's divided by its time
    scale) is within a factor of 2 of the real one;
 7. where the time goes: the share of time in each state within 0.25 of the real share, and the
    state it spends most of its time in (when the real one is clear by 0.1);
 8. the pod's phase in each state, and its Ready condition (status, reason);
 9. the messages of waiting states, normalised (pod, container, image, numbers replaced);
10. the kubelet's events about the pod: the set of (type, reason, normalised message), which of
    them are aggregated (count > 1) at the end, and that non-NotFound pull errors carry no
    `rpc error:` prefix while NotFound ones do (an image that does not fail is pulled once, or
    not at all when the node has it: those two events are left out).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from helpers import REPO_ROOT
from localcluster import SIMULATE, LocalCluster
from record_realnode import Recorder

pytestmark = pytest.mark.integration

FIXTURES = REPO_ROOT / "tests" / "fixtures" / "realnode"
NAMESPACE = "fidelity"
TIME_SCALE = 0.1
COMPARED_RESTARTS = 4
COMPARED_PULLS = 4
WINDOW_SECONDS = 60.0
SHARE_TOLERANCE = 0.25
KWOK_REGISTRY = "registry.example"


@dataclass(frozen=True)
class Kind:
    """A failure as kwok plays it, and the real recording it is held against."""

    failure: str
    simulate: str
    annotations: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None

    @property
    def pulls(self) -> bool:
        """An image pull failure (no restarts)."""
        return self.simulate in {"ErrImagePull", "ImagePullBackOff"}


KINDS = [
    Kind("dependency", "CrashLoopBackOff", {"kwok.kubetriage.io/exit-code": "1"}),
    Kind("command-not-found", "CrashLoopBackOff", {"kwok.kubetriage.io/exit-code": "127"}),
    Kind("segfault", "CrashLoopBackOff", {"kwok.kubetriage.io/exit-code": "139"}),
    Kind("exits-zero", "CrashLoopBackOff", {"kwok.kubetriage.io/exit-code": "0"}),
    Kind("oom-at-limit", "OOMKilled"),
    Kind("missing-binary", "RunContainerError", command=["/app/server", "--port", "8080"]),
    Kind("image-not-found", "ErrImagePull"),
    Kind("image-unauthorized", "ErrImagePull"),
]


def real(failure: str) -> dict[str, Any]:
    """The recording of `failure`'s (last) pod."""
    document = json.loads((FIXTURES / f"{failure}.json").read_text())
    pod: dict[str, Any] = document["pods"][-1]
    return pod


def kwok_image(real_image: str) -> str:
    """The real image's path in kwok's made-up registry."""
    return f"{KWOK_REGISTRY}/{real_image.split('/', 1)[1]}"


def kwok_pod(kind: Kind) -> dict[str, Any]:
    """The kwok pod that plays `kind`, its image and (recorded) pull error as the real one's."""
    recorded = real(kind.failure)
    image = kwok_image(recorded["image"])
    annotations = {"kwok.kubetriage.io/cycle": "true", **kind.annotations}
    if kind.failure == "image-unauthorized":
        failed = next(e for e in recorded["events"] if e["message"].startswith("Failed to pull"))
        message = failed["message"].split(": ", 1)[1]
        annotations["kwok.kubetriage.io/pull-message"] = message.replace(
            recorded["image"].split("/", 1)[0], KWOK_REGISTRY
        )
    container: dict[str, Any] = {"name": "app", "image": image}
    if kind.command:
        container["command"] = kind.command
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": kind.failure,
            "namespace": NAMESPACE,
            "labels": {SIMULATE: kind.simulate},
            "annotations": annotations,
        },
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 0},
    }


@pytest.fixture(scope="module")
def played(cluster: LocalCluster, api: client.ApiClient) -> Iterator[dict[str, dict[str, Any]]]:
    """Every kind on kwok at once, watched until each crash loop restarted past
    COMPARED_RESTARTS and each pull failed four times: {failure: recording}."""
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.wait_for_default_service_account(NAMESPACE)
    recorder = Recorder(api, NAMESPACE)
    recorder.start()
    try:
        cluster.apply([kwok_pod(kind) for kind in KINDS])
        deadline = time.monotonic() + WINDOW_SECONDS
        while time.monotonic() < deadline and not _enough(cluster):
            time.sleep(1)
        time.sleep(1)
    finally:
        recorder.stop()
    recordings: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        pod = recorder.pods[kind.failure]
        latest: dict[str, dict[str, Any]] = {}
        for update in recorder.events.get(f"Pod/{kind.failure}", []):
            latest[update["name"]] = update
        recordings[kind.failure] = {**pod, "events": list(latest.values())}
    yield recordings
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _enough(cluster: LocalCluster) -> bool:
    pods = json.loads(cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout)
    for pod in pods["items"]:
        statuses = pod.get("status", {}).get("containerStatuses") or [{}]
        annotations = pod["metadata"].get("annotations") or {}
        if pod["metadata"]["labels"][SIMULATE] in {"ErrImagePull", "ImagePullBackOff"}:
            if int(annotations.get("kwok.kubetriage.io/pulls", "1")) < 4:
                return False
        elif int(statuses[0].get("restartCount") or 0) <= COMPARED_RESTARTS:
            return False
    return len(pods["items"]) == len(KINDS)


# -- the shape of a recording -------------------------------------------------------------------


def label(container: dict[str, Any]) -> str:
    """`terminated: Error`, `running`, `waiting: CrashLoopBackOff`."""
    kind, detail = next(iter((container.get("state") or {"none": {}}).items()))
    reason = (detail or {}).get("reason")
    return f"{kind}: {reason}" if reason else kind


@dataclass
class Shape:
    """What the fields compared say about one recording (see the module docstring)."""

    transitions: set[tuple[str, str]] = field(default_factory=set)
    state_keys: dict[str, set[frozenset[str]]] = field(default_factory=dict)
    status_keys: dict[str, set[frozenset[str]]] = field(default_factory=dict)
    exit_codes: dict[str, set[int]] = field(default_factory=dict)
    last_states: set[tuple[str, int, frozenset[str], bool]] = field(default_factory=set)
    last_state_before_a_restart: bool = False
    restart_counts: list[int] = field(default_factory=list)
    restart_times: list[float] = field(default_factory=list)
    seconds_in: dict[str, float] = field(default_factory=dict)
    phases: dict[str, set[str]] = field(default_factory=dict)
    ready: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    messages: dict[str, set[str]] = field(default_factory=dict)

    @property
    def shares(self) -> dict[str, float]:
        """The share of time in each state."""
        total = sum(self.seconds_in.values()) or 1.0
        return {k: v / total for k, v in self.seconds_in.items()}

    @property
    def intervals(self) -> list[float]:
        """Seconds between successive restarts."""
        return [b - a for a, b in itertools.pairwise(self.restart_times)]


def normalise(text: str, pod: dict[str, Any]) -> str:
    """A message without what differs by nature: pod, image, registry, uid, numbers."""
    image = pod["image"]
    registry = image.split("/", 1)[0]
    repository = image.rsplit(":", 1)[0]
    text = text.replace(image, "<image>").replace(repository, "<repository>")
    text = text.replace(registry, "<registry>").replace(pod["name"], "<pod>")
    text = re.sub(r"\([0-9a-f-]{36}\)", "(<uid>)", text)
    text = re.sub(r"_[a-z0-9-]+\(<uid>\)", "_<namespace>(<uid>)", text)
    text = re.sub(r"\d+(\.\d+)?(ms|s)\b", "<duration>", text)
    text = re.sub(r"\d+m\d+s\b", "<duration>", text)
    return re.sub(r"\d+", "<n>", text)


def transitions(previous: str, now: str, *, restarted: bool, last: str) -> set[tuple[str, str]]:
    """The transitions from one written status to the next, with those the kubelet went through
    but did not write: its status writes coalesce, so a container that dies within a second of
    its start may go from `waiting` or `terminated` straight to `terminated` (an unwritten
    start), or from `running` to `running` with restartCount + 1 (an unwritten death, whose
    reason is the new lastState's)."""
    if now.startswith("terminated") and (
        previous not in (now, "running") or (previous == now and restarted)
    ):
        return {(previous, "running"), ("running", now)}
    if now == previous == "running" and restarted:
        died = f"terminated: {last}"
        return {("running", died), (died, "running")}
    return {(previous, now)} if previous != now else set()


def shape(pod: dict[str, Any], *, pulls: bool, time_scale: float = 1.0) -> Shape:
    """The Shape of a recording up to COMPARED_RESTARTS (COMPARED_PULLS pull attempts)."""
    found = Shape()
    previous: str | None = None
    previous_t = 0.0
    attempts = 0
    for status in pod["statuses"]:
        containers = status.get("containerStatuses") or []
        if not containers:
            continue
        container = containers[0]
        count = int(container.get("restartCount") or 0)
        now = label(container)
        if now == "waiting: ErrImagePull" and previous != now:
            attempts += 1
        if count > COMPARED_RESTARTS or attempts > COMPARED_PULLS:
            break
        t = float(status["t"]) / time_scale
        last = (container.get("lastState") or {}).get("terminated")
        if previous is not None:
            restarted = count > found.restart_counts[-1]
            reason = str((last or {}).get("reason"))
            found.transitions |= transitions(previous, now, restarted=restarted, last=reason)
        if previous is not None:
            found.seconds_in[previous] = found.seconds_in.get(previous, 0.0) + (t - previous_t)
        if not found.restart_counts or found.restart_counts[-1] != count:
            found.restart_counts.append(count)
            if count:
                found.restart_times.append(t)
        previous, previous_t = now, t
        detail = next(iter((container.get("state") or {"none": {}}).values())) or {}
        found.state_keys.setdefault(now, set()).add(frozenset(detail))
        found.status_keys.setdefault(now, set()).add(frozenset(container))
        if "exitCode" in detail:
            found.exit_codes.setdefault(now, set()).add(int(detail["exitCode"]))
        if count == 0 and last:
            found.last_state_before_a_restart = True
        if last:
            epoch = str(last.get("startedAt", "")).startswith("1970-01-01T00:00:00")
            found.last_states.add(
                (str(last.get("reason")), int(last.get("exitCode", -1)), frozenset(last), epoch)
            )
        found.phases.setdefault(now, set()).add(str(status.get("phase")))
        ready: dict[str, str] = next(
            (c for c in status.get("conditions") or [] if c["type"] == "Ready"), {}
        )
        found.ready.setdefault(now, set()).add((ready.get("status", ""), ready.get("reason", "")))
        if detail.get("message") and now.startswith("waiting"):
            found.messages.setdefault(now, set()).add(normalise(detail["message"], pod))
    return found


def kubelet_events(pod: dict[str, Any], *, pulls: bool) -> dict[tuple[str, str, str], bool]:
    """{(type, reason, normalised message): aggregated} of the kubelet's events. Unless the image
    is what fails, its one pull (Pulling, "Successfully pulled") is left out: a real node skips
    it when another pod has pulled the image already."""
    found: dict[tuple[str, str, str], bool] = {}
    for event in pod["events"]:
        if event.get("source") != "kubelet":
            continue
        first_pull = event["reason"] == "Pulling" or event["message"].startswith(
            "Successfully pulled"
        )
        if first_pull and not pulls:
            continue
        key = (event["type"], event["reason"], normalise(event["message"], pod))
        found[key] = found.get(key, False) or int(event.get("count") or 1) > 1
    return found


# -- the comparison -----------------------------------------------------------------------------


@pytest.fixture(params=KINDS, ids=[k.failure for k in KINDS])
def pair(
    request: pytest.FixtureRequest, played: dict[str, dict[str, Any]]
) -> tuple[Kind, dict[str, Any], dict[str, Any]]:
    """(kind, the real recording, kwok's recording)."""
    kind: Kind = request.param
    return kind, real(kind.failure), played[kind.failure]


def test_state_transitions_and_keys_are_the_real_ones(
    pair: tuple[Kind, dict[str, Any], dict[str, Any]],
) -> None:
    kind, recorded, simulated = pair
    truth = shape(recorded, pulls=kind.pulls)
    kwok = shape(simulated, pulls=kind.pulls, time_scale=TIME_SCALE)
    assert kwok.transitions == truth.transitions
    assert kwok.state_keys == truth.state_keys
    assert kwok.status_keys == truth.status_keys
    assert kwok.exit_codes == truth.exit_codes
    assert kwok.phases == truth.phases
    assert kwok.ready == truth.ready
    assert kwok.messages == truth.messages


def test_last_state_and_restart_counts_are_the_real_ones(
    pair: tuple[Kind, dict[str, Any], dict[str, Any]],
) -> None:
    kind, recorded, simulated = pair
    truth = shape(recorded, pulls=kind.pulls)
    kwok = shape(simulated, pulls=kind.pulls, time_scale=TIME_SCALE)
    assert kwok.last_states == truth.last_states
    assert kwok.last_state_before_a_restart == truth.last_state_before_a_restart
    for counts in (truth.restart_counts, kwok.restart_counts):
        assert counts == list(range(counts[0], counts[0] + len(counts))), counts
    if not kind.pulls:
        assert kwok.restart_counts[-1] == truth.restart_counts[-1] == COMPARED_RESTARTS


def test_back_off_and_time_spent_are_the_real_ones(
    pair: tuple[Kind, dict[str, Any], dict[str, Any]],
) -> None:
    kind, recorded, simulated = pair
    truth = shape(recorded, pulls=kind.pulls)
    kwok = shape(simulated, pulls=kind.pulls, time_scale=TIME_SCALE)
    if not kind.pulls:
        # From the second restart on (the first is at once): 10 s, 20 s, 40 s, ...
        real_gaps, kwok_gaps = truth.intervals[1:], kwok.intervals[1:]
        assert kwok_gaps == sorted(kwok_gaps), kwok_gaps
        assert real_gaps == sorted(real_gaps), real_gaps
        for real_gap, kwok_gap in zip(real_gaps, kwok_gaps, strict=False):
            assert 0.5 <= kwok_gap / real_gap <= 2.0, (real_gaps, kwok_gaps)
    first, second = [*sorted(truth.shares.values(), reverse=True), 0.0][:2]
    if first - second > 0.1:
        mostly = max(truth.shares, key=truth.shares.__getitem__)
        assert max(kwok.shares, key=kwok.shares.__getitem__) == mostly, (truth.shares, kwok.shares)
    for state, share in truth.shares.items():
        assert abs(kwok.shares.get(state, 0.0) - share) <= SHARE_TOLERANCE, (
            state,
            truth.shares,
            kwok.shares,
        )


def test_events_are_the_real_ones_and_aggregated_alike(
    pair: tuple[Kind, dict[str, Any], dict[str, Any]],
) -> None:
    kind, recorded, simulated = pair
    truth = kubelet_events(recorded, pulls=kind.pulls)
    kwok = kubelet_events(simulated, pulls=kind.pulls)
    assert set(kwok) == set(truth)
    assert {k for k, aggregated in kwok.items() if aggregated} == {
        k for k, aggregated in truth.items() if aggregated
    }
    for _type, reason, message in kwok:
        if reason == "Failed" and message.startswith("Failed to pull image"):
            assert ("rpc error:" in message) == ("NotFound" in message), message


def test_the_generated_stages_are_current() -> None:
    from kwok import cycle_stages  # noqa: PLC0415 (hack/kwok, generated file)

    assert cycle_stages.main(["--check"]) == 0, "run python hack/kwok/cycle_stages.py"


def test_the_recordings_are_those_of_a_real_node() -> None:
    index = json.loads((FIXTURES / "index.json").read_text())
    assert index["versions"]["kubelet"].startswith("Kubernetes v1.36.")
    assert index["versions"]["containerd"].startswith("1.6.")
    assert sorted(index["failures"]) == sorted(
        p.stem for p in Path(FIXTURES).glob("*.json") if p.stem != "index"
    )
