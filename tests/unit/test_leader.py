"""Leader election without a cluster: the decision table, the Lease as read, the elector against
an in-memory Lease with the apiserver's optimistic concurrency, the settings, the follower's
/healthz, and the namespace selection that shards instances."""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kopf._cogs.structs.references import match_namespace
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from kubetriage import config as config_module
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.config import Settings, election_identity
from kubetriage.diagnosis import find_problems
from kubetriage.namespaces import NamespaceSelection
from kubetriage.runtime.leader import (
    Action,
    ElectionConfig,
    LeaderElector,
    LeaseRecord,
    Outcome,
    decide,
    format_micro_time,
    parse_lease,
)
from kubetriage.runtime.runner import FollowerHealth, _callback_flag

WALL = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
EARLIER = "2026-03-01T11:00:00.000001Z"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def lease(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "kubetriage", "resourceVersion": "7"}, "spec": spec}


def held_by(holder: Any, seconds: Any = 15, **more: Any) -> dict[str, Any]:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": seconds, "acquireTime": EARLIER,
            "renewTime": EARLIER, "leaseTransitions": 3}  # fmt: skip
    return lease(**(spec | more))


# -- the decision ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    lease: dict[str, Any] | None
    unchanged_for: float  # seconds since this record was first seen as it is
    action: Action
    transitions: int | None = None  # of the spec written
    ours: int = 15  # our own lease duration


CASES = {
    "absent-creates": Case(None, 0, Action.CREATE, transitions=0),
    "ours-renews": Case(held_by("me"), 0, Action.RENEW, transitions=3),
    "ours-renews-even-if-stale": Case(held_by("me"), 100, Action.RENEW, transitions=3),
    "other-fresh-waits": Case(held_by("other"), 1, Action.WAIT),
    "other-just-before-expiry-waits": Case(held_by("other"), 14.999, Action.WAIT),
    "other-expired-at-the-boundary": Case(held_by("other"), 15, Action.ACQUIRE, transitions=4),
    "other-long-expired": Case(held_by("other"), 3600, Action.ACQUIRE, transitions=4),
    "the-holders-duration-counts-not-ours": Case(held_by("other", 30), 20, Action.WAIT, ours=5),
    "released-taken-at-once": Case(held_by(""), 0, Action.ACQUIRE, transitions=4),
    "no-spec-at-all-is-released": Case({"metadata": {}}, 0, Action.ACQUIRE, transitions=1),
    # Expiry is measured on our monotonic clock, never against the holder's timestamps.
    "renew-time-long-ago-but-just-seen-waits": Case(
        held_by("other", renewTime="2020-01-01T00:00:00.000000Z"), 0, Action.WAIT
    ),
    "renew-time-in-the-future-still-expires": Case(
        held_by("other", renewTime="2099-01-01T00:00:00.000000Z"), 15, Action.ACQUIRE,
        transitions=4,
    ),
    "monotonic-clock-backwards-waits": Case(held_by("other"), -5, Action.WAIT),
    "duration-missing": Case(held_by("other", None), 0, Action.ACQUIRE, transitions=4),
    "duration-zero": Case(held_by("other", 0), 0, Action.ACQUIRE, transitions=4),
    "duration-negative": Case(held_by("other", -15), 0, Action.ACQUIRE, transitions=4),
    "duration-a-string": Case(held_by("other", "15"), 0, Action.ACQUIRE, transitions=4),
    "duration-a-bool": Case(held_by("other", True), 0, Action.ACQUIRE, transitions=4),
    "renew-time-garbage": Case(held_by("other", renewTime="yesterday"), 0, Action.ACQUIRE,
                               transitions=4),
    "renew-time-missing": Case(lease(holderIdentity="other", leaseDurationSeconds=15), 0,
                               Action.ACQUIRE, transitions=1),
    "holder-not-a-string": Case(held_by(42), 0, Action.ACQUIRE, transitions=4),
    "transitions-negative": Case(held_by("other", leaseTransitions=-1), 0, Action.ACQUIRE,
                                 transitions=1),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decide(case: Case) -> None:
    record = parse_lease(case.lease) if case.lease is not None else None
    now = 1000.0
    decision = decide(record, identity="me", observed_at=now - case.unchanged_for, now=now,
                      wall_now=WALL, lease_seconds=case.ours)  # fmt: skip
    assert decision.action is case.action, decision.reason
    if case.action is Action.WAIT:
        assert decision.spec is None
        assert 0 < decision.expires_in <= record.lease_seconds  # type: ignore[union-attr, operator]
        return
    spec = decision.spec
    assert spec is not None
    assert spec["holderIdentity"] == "me"
    assert spec["leaseDurationSeconds"] == case.ours
    assert spec["renewTime"] == format_micro_time(WALL)
    assert MICRO_TIME.match(spec["renewTime"]), spec["renewTime"]
    if case.transitions is not None:
        assert spec["leaseTransitions"] == case.transitions
    if case.action is Action.RENEW:
        assert spec["acquireTime"] == EARLIER  # an unbroken tenure keeps its start
    else:
        assert spec["acquireTime"] == format_micro_time(WALL)


def test_a_malformed_lease_names_its_problems_instead_of_raising() -> None:
    record = parse_lease(held_by("other", "15", renewTime="yesterday", leaseTransitions="x"))
    assert record.lease_seconds is None
    assert record.transitions == 0
    assert len(record.problems) == 3, record.problems
    assert "unreadable" in decide(record, identity="me", observed_at=0, now=0, wall_now=WALL,
                                  lease_seconds=15).reason  # fmt: skip


def test_a_renewed_lease_looks_different_and_a_reread_one_the_same() -> None:
    first = parse_lease(held_by("other"))
    assert parse_lease(held_by("other")).fingerprint == first.fingerprint
    renewed = parse_lease(held_by("other", renewTime="2026-03-01T11:00:02.000001Z"))
    assert renewed.fingerprint != first.fingerprint


def test_micro_time_is_utc_with_microseconds() -> None:
    local = datetime(2026, 3, 1, 13, 0, 0, 5, tzinfo=UTC).astimezone()
    assert format_micro_time(local) == "2026-03-01T13:00:00.000005Z"
    assert isinstance(parse_lease(held_by("x")), LeaseRecord)


# -- the elector against an in-memory Lease ----------------------------------------------------


class FakeLeases:
    """One Lease with the apiserver's rules: create fails if it exists, replace fails unless
    the resourceVersion is the current one; every write bumps it."""

    namespace, name = "ops", "kubetriage"

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[dict[str, Any]] = []
        self.fail_reads = False
        self.namespace_missing = False
        self.before_write: Any = None

    def get(self, timeout: float) -> dict[str, Any] | None:
        if self.fail_reads:
            raise ApiException(status=503, reason="apiserver away")
        return copy.deepcopy(self.stored)

    def _write(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.stored = stored
        self.writes.append(copy.deepcopy(stored))
        return copy.deepcopy(stored)

    def create(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.before_write:
            self.before_write()
        if self.namespace_missing:
            raise ApiException(status=404, reason="namespaces not found")
        if self.stored is not None:
            raise ApiException(status=409, reason="AlreadyExists")
        return self._write(body)

    def replace(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self.before_write:
            self.before_write()
        if self.stored is None:
            raise ApiException(status=404, reason="NotFound")
        if body["metadata"].get("resourceVersion") != self.stored["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return self._write(body)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TickingStop(threading.Event):
    """A stop event whose waits advance the fake clock instead of sleeping."""

    def __init__(self, clock: Clock, *, after: int = 1000) -> None:
        super().__init__()
        self.clock, self.left = clock, after

    def wait(self, timeout: float | None = None) -> bool:
        self.clock.now += timeout or 0
        self.left -= 1
        if self.left <= 0:
            self.set()
        return self.is_set()


FAST = ElectionConfig(lease_seconds=4, renew_deadline_seconds=3, retry_seconds=0.5)


def elector(leases: FakeLeases, identity: str, clock: Clock) -> LeaderElector:
    def wall_clock() -> datetime:
        return WALL + timedelta(seconds=clock.now)

    return LeaderElector(leases, identity, FAST, monotonic=clock, wall_clock=wall_clock)


def test_one_of_two_replicas_leads_and_the_other_takes_over_once_it_stops_renewing() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.try_once() is Outcome.HELD
    assert b.try_once() is Outcome.NOT_HELD
    assert b.holder == "a"
    clock.now += 3
    assert a.try_once() is Outcome.HELD  # a renews: b starts counting again
    clock.now += 3
    assert b.try_once() is Outcome.NOT_HELD
    clock.now += 3.9  # a is gone; b saw its last renewal 3.9 s ago
    assert b.try_once() is Outcome.NOT_HELD
    clock.now += 0.1
    assert b.try_once() is Outcome.HELD
    spec = leases.stored["spec"]  # type: ignore[index]
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    assert spec["leaseDurationSeconds"] == 4


def interleave(leases: FakeLeases, other: LeaderElector) -> None:
    """Let `other` try once between the next read and write of anyone else."""

    def once() -> None:
        leases.before_write = None
        other.try_once()

    leases.before_write = once


def test_of_two_simultaneous_takeovers_the_apiserver_lets_one_win() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    # b reads the absent Lease, but a creates it before b's create arrives.
    interleave(leases, a)
    assert b.try_once() is Outcome.CONFLICT
    assert leases.stored["spec"]["holderIdentity"] == "a"  # type: ignore[index]
    # Same for a takeover: both see the Lease expire, the first replace wins.
    c = elector(leases, "c", clock)
    assert b.try_once() is Outcome.NOT_HELD
    assert c.try_once() is Outcome.NOT_HELD
    clock.now += 5
    interleave(leases, c)
    assert b.try_once() is Outcome.CONFLICT
    assert leases.stored["spec"]["holderIdentity"] == "c"  # type: ignore[index]
    assert leases.stored["spec"]["leaseTransitions"] == 1  # type: ignore[index]


def test_renewing_keeps_the_lease_until_stopped() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    assert a.try_once() is Outcome.HELD
    assert a.keep_renewing(TickingStop(clock, after=10)) is True
    assert len(leases.writes) == 10  # the first write and nine renewals
    spec = leases.stored["spec"]  # type: ignore[index]
    assert spec["acquireTime"] == format_micro_time(WALL + timedelta(seconds=100))
    last_renewal = clock.now - FAST.retry_seconds  # the last wait ended with the stop
    assert spec["renewTime"] == format_micro_time(WALL + timedelta(seconds=last_renewal))


def test_leadership_is_lost_when_renewals_fail_for_the_renew_deadline() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    assert a.try_once() is Outcome.HELD
    leases.fail_reads = True
    started = clock.now
    assert a.keep_renewing(TickingStop(clock)) is False
    # It gave up after the renew deadline and before the lease ran out for anyone else.
    assert FAST.renew_deadline_seconds <= clock.now - started < FAST.lease_seconds


def test_the_renew_deadline_counts_from_when_the_last_renewal_was_sent() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    sent = clock.now

    def slow_apiserver() -> None:
        clock.now += 2  # the write takes 2 s: a follower may have seen it at `sent` already

    leases.before_write = slow_apiserver
    assert a.try_once() is Outcome.HELD
    leases.before_write, leases.fail_reads = None, True
    assert a.keep_renewing(TickingStop(clock)) is False
    assert clock.now - sent <= FAST.renew_deadline_seconds + FAST.retry_seconds


def test_a_missing_lease_namespace_is_an_error_not_a_lost_race() -> None:
    leases, clock = FakeLeases(), Clock()
    leases.namespace_missing = True
    with pytest.raises(ApiException, match="namespaces not found"):
        elector(leases, "a", clock).try_once()


def test_leadership_is_lost_at_once_when_someone_else_holds_the_lease() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    assert a.try_once() is Outcome.HELD
    stored = copy.deepcopy(leases.stored)
    stored["spec"]["holderIdentity"] = "intruder"  # type: ignore[index]
    leases.stored = stored
    stop = TickingStop(clock)
    assert a.keep_renewing(stop) is False
    assert stop.left == 999  # at the first renewal
    assert a.holder == "intruder"


def test_a_released_lease_is_never_taken_back_by_a_renewing_leader() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    assert a.try_once() is Outcome.HELD
    leases.stored["spec"]["holderIdentity"] = ""  # type: ignore[index]
    assert a.try_once(renewing=True) is Outcome.NOT_HELD
    assert leases.stored["spec"]["holderIdentity"] == ""  # type: ignore[index]


def test_release_lets_a_follower_take_over_at_its_next_try() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, "a", clock), elector(leases, "b", clock)
    assert a.try_once() is Outcome.HELD
    assert b.try_once() is Outcome.NOT_HELD
    assert a.release() is True
    spec = leases.stored["spec"]  # type: ignore[index]
    assert spec["holderIdentity"] == ""
    assert spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0
    assert b.try_once() is Outcome.HELD  # no waiting: the lease was released
    assert leases.stored["spec"]["leaseTransitions"] == 1  # type: ignore[index]
    writes = len(leases.writes)
    assert a.release() is False  # not ours any more: nothing written
    assert len(leases.writes) == writes


def test_a_restarted_replica_with_the_same_identity_resumes_its_lease() -> None:
    leases, clock = FakeLeases(), Clock()
    assert elector(leases, "pod-0", clock).try_once() is Outcome.HELD
    again = elector(leases, "pod-0", clock)
    assert again.try_once() is Outcome.HELD
    assert leases.stored["spec"]["leaseTransitions"] == 0  # type: ignore[index]


def test_labels_and_annotations_others_put_on_the_lease_are_kept() -> None:
    leases, clock = FakeLeases(), Clock()
    a = elector(leases, "a", clock)
    a.try_once()
    leases.stored["metadata"]["labels"] = {"team": "ops"}  # type: ignore[index]
    a.try_once()
    assert leases.stored["metadata"]["labels"] == {"team": "ops"}  # type: ignore[index]


def test_acquire_waits_while_another_holds_it_and_stops_when_asked() -> None:
    leases, clock = FakeLeases(), Clock()
    elector(leases, "a", clock).try_once()
    b = elector(leases, "b", clock)
    stop = threading.Event()
    stop.set()
    assert b.acquire(stop) is False
    leases.fail_reads = True  # an apiserver away is waited out, not raised
    ticking = TickingStop(clock, after=3)
    assert b.acquire(ticking) is False
    leases.fail_reads = False
    assert b.acquire(TickingStop(clock, after=100)) is True


# -- settings --------------------------------------------------------------------------------


def test_election_defaults_are_client_gos(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.leader_election is False
    assert settings.leader_election_lease_name == "kubetriage"
    assert (settings.leader_election_lease_seconds, settings.leader_election_renew_deadline_seconds,
            settings.leader_election_retry_seconds) == (15, 10, 2)  # fmt: skip


@pytest.mark.parametrize(
    ("env", "message"),
    [({"KUBETRIAGE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "15"}, "less than"),
     ({"KUBETRIAGE_LEADER_ELECTION_RETRY_SECONDS": "10"}, "less than"),
     ({"KUBETRIAGE_LEADER_ELECTION_LEASE_SECONDS": "0"}, "greater than 0")],
    ids=["renew-not-below-lease", "retry-not-below-renew", "zero-lease"],
)  # fmt: skip
def test_inconsistent_timing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_the_lease_namespace_falls_back_to_the_pods_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(config_module, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    assert Settings().election_namespace() == "default"
    account = tmp_path / "namespace"
    account.write_text("ops\n")
    monkeypatch.setattr(config_module, "SERVICE_ACCOUNT_NAMESPACE", account)
    assert Settings().election_namespace() == "ops"
    monkeypatch.setenv("POD_NAMESPACE", "from-downward-api")
    assert Settings().election_namespace() == "from-downward-api"
    monkeypatch.setenv("KUBETRIAGE_LEADER_ELECTION_NAMESPACE", "explicit")
    assert Settings().election_namespace() == "explicit"


def test_identity_is_the_pod_name_else_host_and_pid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    assert election_identity() == f"{socket.gethostname()}_{__import__('os').getpid()}"
    monkeypatch.setenv("POD_NAME", "kubetriage-7d9f-abcde")
    assert election_identity() == "kubetriage-7d9f-abcde"


# -- the follower's /healthz ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_a_follower_answers_healthz_and_frees_the_port_when_stopped() -> None:
    leases, clock = FakeLeases(), Clock()
    elector(leases, "a", clock).try_once()
    b = elector(leases, "b", clock)
    b.try_once()
    port = free_port()
    health = FollowerHealth(port, b, stale_after=30)
    health.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
            assert json.loads(answer.read()) == {"role": "follower", "holder": "a",
                                                 "identity": "b"}  # fmt: skip
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
        clock.now += 31  # the election loop stopped trying: not alive
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        health.stop()
        health.stop()  # idempotent
    with socket.socket() as sock:  # kopf can bind it now (asyncio servers reuse addresses)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", port))
        sock.listen()


def test_the_ready_flag_calls_back_in_the_moment_it_is_raised() -> None:
    calls: list[str] = []
    flag = _callback_flag(lambda: calls.append(threading.current_thread().name))
    assert calls == []
    flag.set_result(None)  # as kopf raises it
    assert calls == [threading.current_thread().name]


# -- namespace selection (sharding) ------------------------------------------------------------

NAMESPACES = ["team-a-1", "team-a-2", "team-a-sandbox", "team-b", "kube-system", "default"]
SELECTIONS = [
    [],
    ["team-b"],
    ["team-a-1", "team-a-2"],
    ["team-a-*"],
    ["team-?"],
    ["team-a-?", "team-b"],
    ["!kube-system"],
    ["team-a-*", "!team-a-sandbox"],
    ["!team-a-*", "team-a-1"],
]


@pytest.mark.parametrize("patterns", SELECTIONS, ids=[",".join(s) or "all" for s in SELECTIONS])
def test_a_selection_matches_exactly_what_kopf_watches(patterns: list[str]) -> None:
    selection = NamespaceSelection.of(patterns)
    for namespace in NAMESPACES:
        kopf_watches = selection.everything or any(
            match_namespace(namespace, pattern)  # type: ignore[arg-type]
            for pattern in selection.for_kopf()
        )
        assert selection.matches(namespace) is kopf_watches, namespace


def test_exclusions_read_as_one_pattern() -> None:
    selection = NamespaceSelection.of(["team-a-*", " !team-a-sandbox", ""])
    assert [n for n in NAMESPACES if selection.matches(n)] == ["team-a-1", "team-a-2"]
    assert selection.for_kopf() == ["team-a-*,!team-a-sandbox"]


def test_plain_names_are_read_per_namespace_and_globs_cluster_wide() -> None:
    assert NamespaceSelection.of(["a", "b", "a"]).exact() == ["a", "b"]
    assert NamespaceSelection.of(["a", "team-*"]).exact() is None
    assert NamespaceSelection.of(["!kube-system"]).exact() is None
    assert NamespaceSelection.of([]).exact() is None
    assert NamespaceSelection.of(None).everything


def crashing_pod(namespace: str) -> dict[str, Any]:
    started = (WALL - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": namespace, "uid": f"uid-{namespace}"},
        "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running", "startTime": started, "containerStatuses": [{
            "name": "app", "image": "app:1", "ready": False, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                         "finishedAt": started}},
        }]},
    }  # fmt: skip


def test_a_scan_with_globs_sees_only_its_shard() -> None:
    reader = SnapshotReader([crashing_pod(n) for n in NAMESPACES])
    everything = {p.target.namespace for p in find_problems(reader)}
    assert everything == set(NAMESPACES)
    shard = {p.target.namespace for p in find_problems(reader, ["team-a-*", "!team-a-sandbox"])}
    assert shard == {"team-a-1", "team-a-2"}
    assert {p.target.namespace for p in find_problems(reader, ["team-b"])} == {"team-b"}
