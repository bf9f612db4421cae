"""A connection goes back to the pool only with its answer read to the end.

During the demo a report write failed with `ProtocolError('Connection aborted.',
BadStatusLine(',"lastTransitionTime"…'))`: the status line read was the body of another answer.
A dry run released its connection without reading the answer, so the next request on that
keep-alive connection read the leftover body as its status line. Given one pooled connection to
a keep-alive server, every way the operator talks to the apiserver (a dry run, a report write,
a read) is followed by another request that must read its own answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client

from kubetriage.clients.kube import LiveClusterReader
from kubetriage.models import Patch, PatchTarget, PatchType
from kubetriage.reports.dry_run import dry_run_patch

# An answer as long as a real Deployment's with its managedFields (tens of KB): longer than the
# buffer that reads the headers, so part of it stays on the socket until read.
PROGRESSING = 'ReplicaSet "api-7d9f" is progressing.' * 1000
LONG = {
    "kind": "Deployment",
    "metadata": {"name": "api"},
    "status": {"conditions": [{"type": "Progressing", "message": PROGRESSING}]},
}


class _KeepAlive(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses the connection

    def _answer(self, document: dict[str, Any]) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        # The rest of a long answer arrives a moment later, as from a busy apiserver: a
        # connection put back unread looks idle then, and is reused.
        self.wfile.write(body[:1024])
        self.wfile.flush()
        time.sleep(0.3)
        self.wfile.write(body[1024:])

    def do_PATCH(self) -> None:
        self._answer(LONG)

    def do_GET(self) -> None:
        self._answer(
            {"kind": "Namespace", "metadata": {"name": "shop", "labels": {}}, "pad": "x" * 2000}
        )

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[client.ApiClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    configuration.connection_pool_maxsize = 1  # one connection: each request reuses it
    api_client = client.ApiClient(configuration)
    try:
        yield api_client
    finally:
        api_client.close()  # type: ignore[no-untyped-call]
        server.shutdown()
        server.server_close()


def test_a_dry_run_reads_its_answer_before_the_connection_is_reused(
    api: client.ApiClient,
) -> None:
    patch = Patch(
        type=PatchType.STRATEGIC,
        target=PatchTarget(api_version="apps/v1", kind="Deployment", name="api", namespace="shop"),
        content='{"spec":{"replicas":2}}',
    )
    reader = LiveClusterReader(api)
    for _ in range(3):
        assert dry_run_patch(api, patch).result.value == "Passed"
        # The next request on the same connection reads its own answer, not the dry run's.
        namespace = LiveClusterReader(api).namespace("shop")
        assert namespace is not None
        assert namespace["kind"] == "Namespace"
    assert reader.requests == 0


class _Answer:
    """A raw answer (`_preload_content=False`) that records what was done with it."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @property
    def data(self) -> bytes:
        self.calls.append("read")
        return json.dumps(LONG).encode()

    def drain_conn(self) -> None:
        self.calls.append("read")

    def release_conn(self) -> None:
        self.calls.append("release")


def test_a_dry_run_never_puts_a_connection_back_with_its_answer_unread(
    api: client.ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        client.AppsV1Api, "patch_namespaced_deployment", lambda *_, **__: _Answer(calls)
    )
    patch = Patch(
        type=PatchType.STRATEGIC,
        target=PatchTarget(api_version="apps/v1", kind="Deployment", name="api", namespace="shop"),
        content='{"spec":{"replicas":2}}',
    )
    assert dry_run_patch(api, patch).result.value == "Passed"
    assert calls[-1] == "release"
    assert "read" in calls[:-1], "the answer must be read to its end before the release"
