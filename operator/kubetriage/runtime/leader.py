"""Leader election on a coordination.k8s.io/v1 Lease, with the semantics of client-go's
`leaderelection` package.

Every replica reads the Lease each retry period. A replica acquires it when it is absent,
released (no holder), expired, unreadable, or already its own; it renews it every retry period
while it leads; and it has lost leadership when it could not renew for the renew deadline, or
finds another holder. Writes carry the `resourceVersion` that was read, so of two replicas that
try at once the apiserver lets one win and answers the other 409 Conflict.

Expiry is judged by this process's own monotonic clock, as client-go does, never by comparing
the Lease's `renewTime` with our wall clock: a holder is alive as long as its record keeps
changing, and expired when the record stayed the same for its `leaseDurationSeconds` since we
first saw it. Clock skew between nodes cannot make two leaders. Because the leader gives up
after the renew deadline, which is shorter than the lease, it has stopped before anyone else
may take over.

The decision (`decide`) is a pure function of the Lease as read, the clocks and our identity;
`LeaderElector` does the reads and writes.
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

import structlog
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException

from kubetriage.k8s.time import parse_time

log = structlog.get_logger("kubetriage.runtime.leader")
GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"
# Followers wait the retry period times a factor in [1, JITTER) between tries, so that many
# replicas do not hit the apiserver in step (client-go uses the same factor, 1.2).
JITTER = 1.2


def format_micro_time(value: datetime) -> str:
    """A MicroTime as the API writes it: RFC 3339 in UTC with microseconds."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class ElectionConfig:
    """Timing of the election, in seconds (client-go's defaults)."""

    lease_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    @property
    def request_timeout(self) -> float:
        """The longest one Lease request may take: half the renew deadline, at most 5 s."""
        return max(0.5, min(self.renew_deadline_seconds / 2, 5.0))


@dataclass(frozen=True)
class LeaseRecord:
    """The spec of a Lease as read, with what could not be read in `problems`."""

    holder: str
    lease_seconds: int | None
    acquire_time: datetime | None
    renew_time: datetime | None
    transitions: int
    problems: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> tuple[object, ...]:
        """What changes whenever the holder renews: a change means the holder is alive."""
        return (
            self.holder,
            self.lease_seconds,
            self.acquire_time,
            self.renew_time,
            self.transitions,
            self.problems,
        )


def parse_lease(lease: dict[str, Any]) -> LeaseRecord:
    """The record of a Lease object; a field that is missing or wrong is named in `problems`
    (a Lease we cannot fully read is treated as expired, never as a reason to crash)."""
    spec = lease.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    problems: list[str] = []
    holder = spec.get("holderIdentity") or ""
    if not isinstance(holder, str):
        problems.append(f"holderIdentity {holder!r} is not a string")
        holder = str(holder)
    seconds = spec.get("leaseDurationSeconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        if holder:
            problems.append(f"leaseDurationSeconds {seconds!r} is not a positive integer")
        seconds = None
    renew_time = parse_time(spec.get("renewTime"))
    if holder and renew_time is None:
        problems.append(f"renewTime {spec.get('renewTime')!r} is not a timestamp")
    transitions = spec.get("leaseTransitions", 0)
    if isinstance(transitions, bool) or not isinstance(transitions, int) or transitions < 0:
        problems.append(f"leaseTransitions {transitions!r} is not a count")
        transitions = 0
    return LeaseRecord(
        holder=holder,
        lease_seconds=seconds,
        acquire_time=parse_time(spec.get("acquireTime")),
        renew_time=renew_time,
        transitions=transitions,
        problems=tuple(problems),
    )


class Action(enum.Enum):
    """What a replica does after reading the Lease."""

    CREATE = "create"  # there is no Lease: create it, holding it
    ACQUIRE = "acquire"  # released, expired or unreadable: take it over
    RENEW = "renew"  # ours: renew it
    WAIT = "wait"  # held by another replica that is alive: try again later


@dataclass(frozen=True)
class Decision:
    """An action, the Lease spec to write for it (None for WAIT) and why."""

    action: Action
    spec: dict[str, Any] | None
    reason: str
    expires_in: float = 0.0


def _spec(
    identity: str, seconds: float, acquired: datetime, now: datetime, transitions: int
) -> dict[str, Any]:
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, math.ceil(seconds)),
        "acquireTime": format_micro_time(acquired),
        "renewTime": format_micro_time(now),
        "leaseTransitions": transitions,
    }


def decide(
    record: LeaseRecord | None,
    *,
    identity: str,
    observed_at: float,
    now: float,
    wall_now: datetime,
    lease_seconds: float,
) -> Decision:
    """What to do with the Lease as read.

    `observed_at` is the monotonic time at which this process first saw `record` as it is now
    (any change of the record restarts it), `now` the monotonic time, `wall_now` the time written
    into the Lease, and `lease_seconds` our own lease duration.
    """
    if record is None:
        return Decision(
            Action.CREATE, _spec(identity, lease_seconds, wall_now, wall_now, 0), "no Lease yet"
        )
    if record.holder == identity:
        acquired = record.acquire_time or wall_now
        spec = _spec(identity, lease_seconds, acquired, wall_now, record.transitions)
        return Decision(Action.RENEW, spec, "we hold it")
    taken_over = _spec(identity, lease_seconds, wall_now, wall_now, record.transitions + 1)
    if not record.holder:
        return Decision(Action.ACQUIRE, taken_over, "released")
    if record.problems or record.lease_seconds is None:
        return Decision(Action.ACQUIRE, taken_over, "unreadable: " + "; ".join(record.problems))
    # A clock that seems to run backwards counts as no time passed.
    unchanged_for = max(0.0, now - observed_at)
    if unchanged_for >= record.lease_seconds:
        reason = f"{record.holder} did not renew for {unchanged_for:.1f}s"
        return Decision(Action.ACQUIRE, taken_over, reason)
    return Decision(
        Action.WAIT,
        None,
        f"held by {record.holder}",
        expires_in=record.lease_seconds - unchanged_for,
    )


class LeaseClient(Protocol):
    """Reads and writes of one Lease; a lost race is an `ApiException` 409 (or 404)."""

    namespace: str
    name: str

    def get(self, timeout: float) -> dict[str, Any] | None: ...

    def create(self, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...

    def replace(self, body: dict[str, Any], timeout: float) -> dict[str, Any]: ...


class KubeLeaseClient:
    """One Lease through the Kubernetes API, as plain JSON (a Lease written by another tool
    with odd fields is read, not rejected by the typed client's model)."""

    def __init__(self, api: ApiClient, namespace: str, name: str) -> None:
        self._custom = client.CustomObjectsApi(api)
        self.namespace, self.name = namespace, name

    def get(self, timeout: float) -> dict[str, Any] | None:
        try:
            found = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], found)

    def create(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        created = self._custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=timeout
        )
        return cast(dict[str, Any], created)

    def replace(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        replaced = self._custom.replace_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, body, _request_timeout=timeout
        )
        return cast(dict[str, Any], replaced)


class Outcome(enum.Enum):
    """The result of one try."""

    HELD = "held"  # we hold the Lease now
    NOT_HELD = "not-held"  # another replica holds it (or, while renewing: it is not ours)
    CONFLICT = "conflict"  # another write came first: read again at the next try


class LeaderElector:
    """Acquires, renews and releases one Lease for `identity` (from one thread at a time)."""

    def __init__(
        self,
        leases: LeaseClient,
        identity: str,
        config: ElectionConfig | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.leases = leases
        self.identity = identity
        self.config = config or ElectionConfig()
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        # What a follower shows (in its log and /healthz): who holds the Lease, and when the
        # last try ended.
        self.holder = ""
        self.last_try: float | None = None
        # When the last successful write was sent: the leader's renew deadline counts from it.
        self.held_since_try: float | None = None
        self._seen: tuple[tuple[object, ...], float] | None = None

    @property
    def lease_name(self) -> str:
        return f"{self.leases.namespace}/{self.leases.name}"

    def _observe(self, record: LeaseRecord | None) -> float:
        """When we first saw `record` as it is (now, if it changed since the last read)."""
        fingerprint = record.fingerprint if record else ()
        if self._seen is None or self._seen[0] != fingerprint:
            self._seen = (fingerprint, self.monotonic())
        return self._seen[1]

    def try_once(self, timeout: float | None = None, *, renewing: bool = False) -> Outcome:
        """Read the Lease, then create, take over or renew it when `decide` says so. While
        `renewing`, a Lease that is no longer ours is never taken back: NOT_HELD.

        Errors other than a lost race (apiserver away, forbidden) are raised to the caller.
        """
        timeout = timeout or self.config.request_timeout
        started = self.monotonic()
        try:
            lease = self.leases.get(timeout)
            record = parse_lease(lease) if lease is not None else None
            self.holder = record.holder if record else ""
            if renewing and self.holder != self.identity:
                return Outcome.NOT_HELD
            decision = decide(
                record,
                identity=self.identity,
                observed_at=self._observe(record),
                now=self.monotonic(),
                wall_now=self.wall_clock(),
                lease_seconds=self.config.lease_seconds,
            )
            if decision.action is Action.WAIT:
                return Outcome.NOT_HELD
            if record is not None and record.problems:
                log.warning(
                    "the Lease is unreadable: treated as expired",
                    lease=self.lease_name,
                    problems=list(record.problems),
                )
            assert decision.spec is not None
            body = self._body(lease, decision.spec)
            try:
                if decision.action is Action.CREATE:
                    written = self.leases.create(body, timeout)
                else:
                    written = self.leases.replace(body, timeout)
            except ApiException as error:
                # Another write came first (409), or a delete (404 on replace; on create, a 404
                # means the namespace is missing: an error to show).
                if error.status == 409 or (error.status == 404 and lease is not None):
                    return Outcome.CONFLICT
                raise
            if decision.action is not Action.RENEW:
                log.info(
                    "acquired the Lease",
                    lease=self.lease_name,
                    identity=self.identity,
                    previous=self.holder or None,
                    reason=decision.reason,
                )
            self._observe(parse_lease(written))
            self.holder = self.identity
            self.held_since_try = started
            return Outcome.HELD
        finally:
            self.last_try = self.monotonic()

    def _body(self, lease: dict[str, Any] | None, spec: dict[str, Any]) -> dict[str, Any]:
        """The Lease to write: `spec`, with the `resourceVersion` read (optimistic concurrency)
        and whatever labels and annotations others put on it."""
        metadata: dict[str, Any] = {"name": self.leases.name, "namespace": self.leases.namespace}
        kept = (lease or {}).get("metadata") or {}
        for key in ("resourceVersion", "labels", "annotations"):
            if key in kept:
                metadata[key] = kept[key]
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    def acquire(self, stop: threading.Event) -> bool:
        """Block until we hold the Lease (True) or `stop` is set (False), trying every retry
        period (with jitter) and logging who holds it while we wait."""
        shown: str | None = None
        while not stop.is_set():
            try:
                outcome = self.try_once()
            except Exception as error:
                log.warning(
                    "could not acquire the Lease; will retry",
                    lease=self.lease_name,
                    error=str(error)[:300],
                )
                outcome = Outcome.CONFLICT
            if outcome is Outcome.HELD:
                return True
            if outcome is Outcome.NOT_HELD and self.holder != shown:
                shown = self.holder
                log.info(
                    "waiting for leadership",
                    lease=self.lease_name,
                    holder=self.holder,
                    identity=self.identity,
                )
            stop.wait(self.config.retry_seconds * random.uniform(1.0, JITTER))
        return False

    def keep_renewing(self, stop: threading.Event) -> bool:
        """Renew every retry period until `stop` is set (True), or until leadership is lost
        (False): the Lease is found not ours, or no renewal succeeded for the renew deadline.

        A renewal counts from the moment it was sent, so the leader gives up no later than
        the renew deadline after the last write any follower can have seen.
        """
        last_renewed = self.held_since_try or self.monotonic()
        while not stop.wait(self.config.retry_seconds):
            started = self.monotonic()
            remaining = last_renewed + self.config.renew_deadline_seconds - started
            if remaining <= 0:
                log.error(
                    "could not renew the Lease within the renew deadline",
                    lease=self.lease_name,
                    seconds=self.config.renew_deadline_seconds,
                )
                return False
            try:
                outcome = self.try_once(min(remaining, self.config.request_timeout), renewing=True)
            except Exception as error:
                log.warning(
                    "could not renew the Lease; will retry",
                    lease=self.lease_name,
                    error=str(error)[:300],
                )
                continue
            if outcome is Outcome.HELD:
                last_renewed = started
            elif outcome is Outcome.NOT_HELD:
                log.error(
                    "the Lease is no longer ours", lease=self.lease_name, holder=self.holder or None
                )
                return False
        return True

    def release(self) -> bool:
        """Give the Lease up at a clean stop, so that a follower takes over at its next try
        instead of waiting the lease out: no holder, a lease of one second (as client-go)."""
        try:
            lease = self.leases.get(self.config.request_timeout)
            record = parse_lease(lease) if lease is not None else None
            if record is None or record.holder != self.identity:
                return False
            now = self.wall_clock()
            spec = _spec("", 1, now, now, record.transitions)
            self.leases.replace(self._body(lease, spec), self.config.request_timeout)
        except Exception as error:
            log.warning(
                "could not release the Lease", lease=self.lease_name, error=str(error)[:300]
            )
            return False
        log.info("released the Lease", lease=self.lease_name, identity=self.identity)
        self.holder = ""
        return True
