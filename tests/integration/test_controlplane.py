"""The local control plane is a real one: real scheduling, real controllers, kwok kubelets.

These are the foundations every later integration test stands on, checked the way a cluster
operator would check a new cluster.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client

from helpers import wait_until
from localcluster import LocalCluster, kubernetes_version


def pods(cluster: LocalCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def test_components_report_the_pinned_versions(cluster: LocalCluster) -> None:
    versions = cluster.versions()
    pinned = kubernetes_version()
    assert versions["kube-apiserver"] == pinned
    assert versions["kubectl"] == pinned
    assert pinned in versions["kube-controller-manager"]
    assert pinned in versions["kube-scheduler"]
    assert "etcd Version: 3." in versions["etcd"]
    print("component versions:", json.dumps(versions, indent=2))


def test_nodes_are_kwok_nodes_and_ready(cluster: LocalCluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == cluster.nodes
    for node in nodes:
        assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], node["metadata"]["name"]


def test_deployment_of_three_becomes_three_ready_pods_on_kwok_nodes(
    cluster: LocalCluster, namespace: str
) -> None:
    cluster.kubectl(
        "create", "deployment", "web", "-n", namespace, "--image=nginx:1.27", "--replicas=3"
    )

    def three_ready() -> list[dict[str, Any]] | None:
        ready = [p for p in pods(cluster, namespace, "app=web") if is_ready(p)]
        return ready if len(ready) == 3 else None

    ready = wait_until(three_ready, what="3 ready pods of deployment web")
    assert {p["status"]["phase"] for p in ready} == {"Running"}
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in ready)
    # The pods went through the real ReplicaSet controller and scheduler.
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in ready)

    def deployment_status() -> dict[str, Any] | None:
        out = cluster.kubectl("get", "deployment", "web", "-n", namespace, "-o", "json").stdout
        status: dict[str, Any] = json.loads(out)["status"]
        return status if status.get("readyReplicas") == 3 else None

    status = wait_until(deployment_status, what="deployment web with readyReplicas=3")
    assert status["availableReplicas"] == 3


def test_pod_too_big_for_any_node_gets_the_schedulers_failed_scheduling(
    cluster: LocalCluster, namespace: str, api: client.ApiClient
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "huge", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "64", "memory": "1Ti"}},
                }
            ]
        },
    }
    cluster.apply(pod)
    core = client.CoreV1Api(api)

    def failed_scheduling() -> str | None:
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=huge,reason=FailedScheduling"
        ).items
        return events[0].message if events else None

    message = wait_until(failed_scheduling, what="a FailedScheduling event")
    assert message.startswith(f"0/{cluster.nodes} nodes are available:")
    assert f"{cluster.nodes} Insufficient cpu" in message
    assert f"{cluster.nodes} Insufficient memory" in message
    pod_now = json.loads(
        cluster.kubectl("get", "pod", "huge", "-n", namespace, "-o", "json").stdout
    )
    assert pod_now["status"]["phase"] == "Pending"
    scheduled = [c for c in pod_now["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled == [scheduled[0] | {"status": "False", "reason": "Unschedulable"}]
