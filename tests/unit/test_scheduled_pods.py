"""The operator's index of scheduled pods stands in for a LIST of every pod.

Given any cluster, the node rooms computed from the cut-down pods of the index are the same as
from the full pods, so a Pending diagnosis says the same with no LIST at all. And the copy a
diagnosis thread reads is taken on the event loop, where kopf changes the index.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import SCENARIOS_DIR
from kubetriage.clients.kube import is_scheduled
from kubetriage.clients.scheduled import ScheduledPods, placement_of
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.playbooks._pending_resources import node_rooms


def pod(
    *,
    node: str | None = "node-a",
    phase: str = "Running",
    containers: list[dict[str, Any]] | None = None,
    init_containers: list[dict[str, Any]] | None = None,
    overhead: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": containers
        if containers is not None
        else [
            {
                "name": "app",
                "image": "registry.example/app:1",
                "env": [{"name": "TOKEN", "value": "not-kept"}],
                "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}},
            }
        ]
    }
    if node:
        spec["nodeName"] = node
    if init_containers:
        spec["initContainers"] = init_containers
    if overhead:
        spec["overhead"] = overhead
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "api-1", "namespace": "shop", "labels": {"app": "api"}},
        "spec": spec,
        "status": {"phase": phase},
    }


PLACEMENTS = {
    "a running pod holds its requests on its node": (pod(), "node-a"),
    "a pod still Pending but bound holds room": (pod(phase="Pending"), "node-a"),
    "an unbound pod holds none": (pod(node=None, phase="Pending"), None),
    "a Succeeded pod holds none": (pod(phase="Succeeded"), None),
    "a Failed pod holds none": (pod(phase="Failed"), None),
    "a pod with no containers list is still placed": (pod(containers=[]), "node-a"),
}


@pytest.mark.parametrize(("manifest", "node"), PLACEMENTS.values(), ids=PLACEMENTS.keys())
def test_placement_of(manifest: dict[str, Any], node: str | None) -> None:
    placed = placement_of(manifest)
    assert (placed[0] if placed else None) == node
    assert is_scheduled(manifest) is (node is not None)


def test_the_cut_down_pod_keeps_what_counts_against_a_node_and_nothing_else() -> None:
    sidecar = {
        "name": "proxy",
        "restartPolicy": "Always",
        "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
    }
    placed = placement_of(pod(init_containers=[sidecar], overhead={"cpu": "10m"}))
    assert placed is not None
    _, slim = placed
    assert slim["metadata"] == {"name": "api-1", "namespace": "shop"}
    assert slim["spec"]["containers"] == [
        {"resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}
    ]
    assert slim["spec"]["initContainers"] == [
        {
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
            "restartPolicy": "Always",
        }
    ]
    assert slim["spec"]["overhead"] == {"cpu": "10m"}
    assert "not-kept" not in repr(slim), "env values never enter the index"


def test_malformed_pods_are_placed_without_crashing() -> None:
    junk: dict[str, Any] = {
        "spec": {"nodeName": "n", "containers": ["x", None, {"resources": "y"}]},
        "status": None,
    }
    placed = placement_of(junk)
    assert placed is not None
    assert placed[1]["spec"]["containers"] == [{"resources": {}}] * 3


def scenario_paths() -> list[Path]:
    return sorted(p for p in SCENARIOS_DIR.glob("*.json") if p.name != "expected.json")


@pytest.mark.parametrize("path", scenario_paths(), ids=lambda p: p.stem)
def test_node_rooms_from_the_index_equal_rooms_from_full_pods(path: Path) -> None:
    reader = SnapshotReader.from_file(path)
    nodes = reader.nodes()
    full = reader.scheduled_pods()
    indexed = [placed[1] for p in reader.pods(None) if (placed := placement_of(p))]
    assert len(indexed) == len(full)
    assert node_rooms(nodes, indexed) == node_rooms(nodes, full)


@pytest.fixture
def loop_in_a_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_a_diagnosis_thread_reads_a_copy_made_on_the_event_loop(
    loop_in_a_thread: asyncio.AbstractEventLoop,
) -> None:
    scheduled = ScheduledPods(loop_in_a_thread)
    assert scheduled.copy() is None, "no index before kopf hands it over"
    copied_on: list[threading.Thread] = []

    class Index(dict[str, list[dict[str, Any]]]):
        def __iter__(self) -> Iterator[str]:
            copied_on.append(threading.current_thread())
            return super().__iter__()

    index = Index({"node-a": [{"metadata": {"name": "a"}}], "node-b": [{"metadata": {}}]})
    scheduled.attach(index)
    copy = scheduled.copy()
    assert copy == [{"metadata": {"name": "a"}}, {"metadata": {}}]
    assert copied_on, "the index was read"
    assert copied_on[0] is not threading.current_thread(), "on the loop's thread, not ours"
    assert copy[0] is not index["node-a"][0], "a diagnosis gets its own list of its own dicts"


def test_a_stopped_event_loop_makes_the_reader_fall_back_to_a_list() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    scheduled = ScheduledPods(loop)
    scheduled.attach({"node-a": [{}]})
    assert scheduled.copy() is None
