"""What a pod asks for, as the scheduler counts it against a node.

The scheduler's NodeResourcesFit compares a pod's effective requests with a node's allocatable
minus the requests of the pods already bound to it; usage plays no part. The effective request
is, per resource, max(sum of the app containers plus sidecars, the largest init container plus
the sidecars started before it) plus the pod's overhead (Kubernetes' resourcehelper).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kubetriage.k8s.access import as_dict, containers
from kubetriage.k8s.quantities import quantities


def container_requests(container: dict[str, Any]) -> dict[str, Decimal]:
    """A container's requests; a limit without a request is its request, as the API defaults."""
    resources = as_dict(container.get("resources"))
    return {**quantities(resources.get("limits")), **quantities(resources.get("requests"))}


def pod_requests(pod_spec: dict[str, Any]) -> dict[str, Decimal]:
    """The requests the scheduler fits onto a node, per resource."""
    total: dict[str, Decimal] = {}
    for container in containers(pod_spec, init=False):
        add(total, container_requests(container))
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in containers(pod_spec, init=True):
        requests = container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar keeps running
            add(sidecars, requests)
            running = dict(sidecars)
        else:
            running = dict(sidecars)
            add(running, requests)
        for resource, value in running.items():
            init_peak[resource] = max(init_peak.get(resource, Decimal(0)), value)
    add(total, sidecars)
    for resource, value in init_peak.items():
        total[resource] = max(total.get(resource, Decimal(0)), value)
    add(total, quantities(pod_spec.get("overhead")))
    return {k: v for k, v in total.items() if v > 0}


def add(into: dict[str, Decimal], more: dict[str, Decimal]) -> None:
    """Add one resource list to another, in place."""
    for resource, value in more.items():
        into[resource] = into.get(resource, Decimal(0)) + value
