"""How `kubetriage run` runs: alone, or as one replica of several under leader election.

Alone, it is kopf and nothing else. With `KUBETRIAGE_LEADER_ELECTION=true` a replica first
follows: it serves `/healthz` itself (kopf's liveness endpoint only exists once kopf has
started) and tries the Lease every retry period. Once it holds the Lease, a thread renews it and
kopf starts; at the moment kopf declares its start-up done, and before kopf's own health server
binds, the follower's server hands the port over. Losing the Lease ends the process at once
with exit code 1 (the Deployment restarts it as a follower): two leaders would diagnose and
write the same reports. SIGTERM while following exits 0; while leading, kopf stops, then the
Lease is released so that a follower takes over at its next try.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

import kopf
import structlog

from kubetriage.config import Settings, election_identity
from kubetriage.runtime import metrics
from kubetriage.runtime.leader import ElectionConfig, KubeLeaseClient, LeaderElector

log = structlog.get_logger("kubetriage.runtime.runner")
EXIT_LOST_LEADERSHIP = 1


def run(settings: Settings) -> int:
    """Run the operator until it is stopped; the process exit code. Raises NoClusterError at
    once when there is no cluster to run against."""
    from kubetriage.runtime.handlers import api_client  # noqa: PLC0415 (kopf's handlers register here)

    # Without a cluster, kopf would retry its start-up handler every 60 s for ever (and its
    # own login after it): nothing would ever work, so say so and stop before kopf starts.
    api_client().close()  # type: ignore[no-untyped-call]
    if not settings.leader_election:
        metrics.LEADER.set(1)
        kopf.run(**_kopf_options(settings))
        return 0
    return run_elected(settings)


def _kopf_options(settings: Settings) -> dict[str, Any]:
    selection = settings.namespace_selection()
    return {
        "clusterwide": selection.everything,
        "namespaces": selection.for_kopf(),
        # kopf's own peering stays off: the Lease decides who runs.
        "standalone": True,
        "liveness_endpoint": f"http://0.0.0.0:{settings.health_port}/healthz",
    }


class FollowerHealth:
    """`/healthz` while following: 200 while the election loop is alive, with who leads."""

    def __init__(self, port: int, elector: LeaderElector, stale_after: float) -> None:
        self.elector = elector
        self.stale_after = stale_after
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.port = port

    def start(self) -> None:
        """Listen on the health port (0: no endpoint, as kopf would pick a random port)."""
        if not self.port:
            return
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/healthz":
                    self.send_error(404)
                    return
                status, body = health.status()
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass  # probes every few seconds are not worth a log line

        server = ThreadingHTTPServer(("0.0.0.0", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="follower-health",
            daemon=True,
        )
        self._thread.start()

    def status(self) -> tuple[int, dict[str, Any]]:
        """503 when the election loop has not finished a try for `stale_after` seconds."""
        elector = self.elector
        last = elector.last_try
        age = None if last is None else elector.monotonic() - last
        alive = age is None or age < self.stale_after
        body = {"role": "follower", "holder": elector.holder or None, "identity": elector.identity}
        return (200 if alive else 503), body

    def stop(self) -> None:
        """Stop serving and free the port (idempotent; safe from any thread but the server's)."""
        with self._lock:
            server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _StopRequest:
    """SIGTERM/SIGINT before kopf runs: stops the election loop. Once kopf has started, its own
    handlers (installed as it starts) take the signals; one that came in between is passed on
    to them by `pass_on`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._signal = signal.SIGTERM

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signal = signal.Signals(signum)
        log.info("stop requested", signal=self._signal.name)
        self.event.set()

    def pass_on(self) -> None:
        """Send a signal that arrived before kopf's handlers again, now that they are there."""
        if self.event.is_set():
            os.kill(os.getpid(), self._signal)


def run_elected(settings: Settings) -> int:
    """Follow until this replica holds the Lease, then run kopf while renewing it."""
    from kubetriage.runtime.handlers import api_client  # noqa: PLC0415 (kopf's handlers register here)

    config = ElectionConfig(
        lease_seconds=settings.leader_election_lease_seconds,
        renew_deadline_seconds=settings.leader_election_renew_deadline_seconds,
        retry_seconds=settings.leader_election_retry_seconds,
    )
    leases = KubeLeaseClient(
        api_client(), settings.election_namespace(), settings.leader_election_lease_name
    )
    elector = LeaderElector(leases, election_identity(), config)
    stop = _StopRequest()
    stop.install()
    metrics.LEADER.set(0)
    health = FollowerHealth(
        settings.health_port, elector, stale_after=max(30.0, 3 * config.lease_seconds)
    )
    health.start()
    log.info("following", lease=elector.lease_name, identity=elector.identity)
    try:
        acquired = elector.acquire(stop.event)
    except BaseException:
        health.stop()
        raise
    if not acquired:
        health.stop()
        log.info("stopped while following", identity=elector.identity)
        return 0

    metrics.LEADER.set(1)
    log.info("leading", lease=elector.lease_name, identity=elector.identity)
    renewing = threading.Event()
    renewer = threading.Thread(
        target=_renew_or_exit, args=(elector, renewing), name="lease-renewer", daemon=True
    )
    renewer.start()

    def on_started() -> None:
        health.stop()
        stop.pass_on()

    try:
        if not stop.event.is_set():
            kopf.run(**_kopf_options(settings), ready_flag=_callback_flag(on_started))
    except asyncio.CancelledError:
        pass
    finally:
        health.stop()
        renewing.set()
        renewer.join(timeout=config.request_timeout + config.retry_seconds + 1)
        elector.release()
        metrics.LEADER.set(0)
    return 0


def _callback_flag(callback: Callable[[], None]) -> concurrent.futures.Future[None]:
    """A kopf flag that calls `callback` the moment kopf raises it. kopf raises its ready flag
    right after its start-up handlers, synchronously, before its health reporter first runs: the
    follower's server frees the port just before kopf's binds it."""
    flag: concurrent.futures.Future[None] = concurrent.futures.Future()
    flag.add_done_callback(lambda _: callback())
    return flag


def _renew_or_exit(elector: LeaderElector, renewing: threading.Event) -> None:
    """Renew until told to stop; on a lost Lease, end the process now, whatever it does."""
    if elector.keep_renewing(renewing):
        return
    log.critical(
        "leadership lost: exiting so that no two replicas diagnose at once",
        lease=elector.lease_name,
        identity=elector.identity,
        exit_code=EXIT_LOST_LEADERSHIP,
    )
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
        sys.stdout.flush()
    os._exit(EXIT_LOST_LEADERSHIP)
