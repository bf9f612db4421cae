"""The operator's index of scheduled pods stands in for a LIST of every pod.

Given any cluster, the node rooms computed from the cut-down pods of the index are the same as
from the full pods, so a Pending diagnosis says the same with no LIST at all. And the copy a
diagnosis thread reads is taken on the event loop, where kopf changes the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import SCENARIOS_DIR
from kubetriage.clients.scheduled import ScheduledPods, placement_of
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.k8s.access import is_scheduled
from kubetriage.playbooks.pending.reads import node_rooms


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


def test_the_index_follows_the_watch_and_is_ready_once_the_listing_goes_quiet() -> None:
    scheduled = ScheduledPods(quiet_seconds=0.05, wait_seconds=2)
    running, pending = pod(), pod(node=None, phase="Pending")
    running["metadata"]["uid"], pending["metadata"]["uid"] = "uid-1", "uid-2"
    scheduled.observe(None, running)
    scheduled.observe(None, pending)
    assert not scheduled.ready, "the listing has just been seen"
    assert scheduled.copy() == [placement_of(running)[1]]  # type: ignore[index]
    assert scheduled.ready

    bound = {**pending, "spec": {**pending["spec"], "nodeName": "node-b"}}
    scheduled.observe("MODIFIED", bound)
    assert len(scheduled.copy() or []) == 2, "a pod bound later holds room"
    finished = {**running, "status": {"phase": "Succeeded"}}
    scheduled.observe("MODIFIED", finished)
    scheduled.observe("DELETED", bound)
    assert scheduled.copy() == [], "finished and deleted pods hold none"


def test_without_any_pod_event_a_reader_waits_then_lists_the_pods_itself() -> None:
    scheduled = ScheduledPods(quiet_seconds=0.05, wait_seconds=0.3)
    assert scheduled.copy() is None


def test_in_an_empty_cluster_the_first_added_pod_makes_the_index_ready() -> None:
    scheduled = ScheduledPods(quiet_seconds=60, wait_seconds=0.3)
    scheduled.observe("ADDED", pod())
    assert scheduled.ready
    assert len(scheduled.copy() or []) == 1


def test_a_copy_is_the_readers_own() -> None:
    scheduled = ScheduledPods(quiet_seconds=0.0, wait_seconds=1)
    scheduled.observe(None, pod())
    first = scheduled.copy()
    assert first is not None
    first.clear()
    assert scheduled.copy() != []
