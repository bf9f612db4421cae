"""The change that keeps the pods from being evicted again, per category.

- MemoryPressure: the kubelet evicts first the pods using most above their request; a memory
  request at what the container used (rounded up to whole Mi) makes the scheduler reserve it
  and ranks the pod fairly. A strategic merge patch of that container.
- DiskPressure / PIDPressure: the node ran out, and which process filled it is on the node:
  what to look at there, and an ephemeral-storage request (or a volume) for a container that
  writes without one. Nothing is patched: the node, not the pod spec, is where to start.
- EphemeralStorageLimit: the pod wrote more than its own limit allows: find what it writes
  (`du` in a pod that runs), then raise the limit or move the data to a volume.
- NodeNotReady: the node is gone or unreachable: look at the node (its kubelet, the machine);
  pods of a StatefulSet stay Terminating until it answers or its Node object is deleted.
"""

from __future__ import annotations

import json
from typing import Any

from kubetriage.k8s.owners import TEMPLATED_KINDS, UNDOABLE_KINDS
from kubetriage.k8s.quantities import manifest_quantity, round_quantity, try_parse_quantity
from kubetriage.models import Category, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, recommendation, strategic_patch
from kubetriage.playbooks.eviction.messages import ContainerUse
from kubetriage.playbooks.eviction.reads import EvictionFacts
from kubetriage.policy import ChangeScope, Touch

Advice = tuple[Recommendation, ChangeScope]


def _validation(facts: EvictionFacts) -> str:
    target = facts.target
    return (
        f"`kubectl get pods -n {target.namespace}` shows no new Evicted pod of {target.name} "
        "for a day; kubetriage then marks the report Resolved"
    )


def recommend(facts: EvictionFacts, category: Category) -> Advice:
    """The recommendation for `category` and what it touches."""
    if category is Category.EVICTION_NODE_NOT_READY:
        return _node(facts), ChangeScope(frozenset({Touch.NODES}))
    message = facts.message()
    users = message.users if message is not None else ()
    if category is Category.EVICTION_MEMORY_PRESSURE and users:
        return _memory_request(facts, users[0])
    if category is Category.EVICTION_EPHEMERAL_STORAGE_LIMIT:
        return _own_limit(facts), ChangeScope()
    return _node_resource(facts, category), ChangeScope()


def _memory_request(facts: EvictionFacts, use: ContainerUse) -> Advice:
    target = facts.target
    used = try_parse_quantity(use.using)
    if used is None or target.kind not in TEMPLATED_KINDS:
        return _node_resource(facts, Category.EVICTION_MEMORY_PRESSURE), ChangeScope()
    wanted = manifest_quantity("memory", round_quantity("memory", used, up=True))
    fields: dict[str, Any] = {"resources": {"requests": {"memory": wanted}}}
    body = {"spec": {"template": {"spec": {"containers": [{"name": use.container, **fields}]}}}}
    ns = target.namespace
    rollback = (
        f"kubectl rollout undo {target.kind.lower()}/{target.name} -n {ns}"
        if target.kind in UNDOABLE_KINDS
        else "Re-apply the previous manifest of the workload."
    )
    proposal = recommendation(
        summary=(
            f"Request the memory {use.container} uses: {wanted} instead of {use.request}. The "
            "kubelet evicts first the pods that use most above their request, and the scheduler "
            "only reserves what is requested; with the request at its real use the pod lands "
            "where the memory is. Set a limit too if it should never grow past that."
        ),
        patch=strategic_patch(target, body),
        command=(
            f"kubectl patch {target.kind.lower()} {target.name} -n {ns} --type strategic -p "
            f"'{json.dumps(body, separators=(',', ':'))}'"
        ),
        rollback=rollback,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(frozenset({Touch.RESOURCES}))


def _node_resource(facts: EvictionFacts, category: Category) -> Recommendation:
    nodes = sorted({p.node for p in facts.evicted if p.node})
    node = nodes[0] if nodes else "<node>"
    what = {
        Category.EVICTION_DISK_PRESSURE: (
            "the node's disk filled up (its image and container filesystems): find what fills "
            "it on the node (`crictl images`, container logs, emptyDirs), and give containers "
            "that write to local disk an ephemeral-storage request and limit, or a volume"
        ),
        Category.EVICTION_PID_PRESSURE: (
            "the node ran out of process IDs: find the pod whose process count grows (a fork "
            "loop, threads that never exit) and cap it with the kubelet's podPidsLimit"
        ),
    }.get(category, "the node ran low on memory: compare the pods' use with their requests")
    return recommendation(
        summary=f"On {node}, {what}.",
        command=f"kubectl describe node {node}",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


def _own_limit(facts: EvictionFacts) -> Recommendation:
    target = facts.target
    message = facts.message()
    limit = message.limit if message is not None and message.limit else "its limit"
    return recommendation(
        summary=(
            f"{target.name}'s pods write more to local disk than their ephemeral-storage limit "
            f"({limit}) allows: find what grows (`du -sh` of the paths it writes, in a pod that "
            "runs), then raise the limit to what the work needs, or write to a volume sized for "
            "it (an emptyDir with a sizeLimit, or a PersistentVolumeClaim)."
        ),
        command=f"kubectl get pods -n {target.namespace} -o wide",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


def _node(facts: EvictionFacts) -> Recommendation:
    nodes = sorted({p.node for p in facts.evicted if p.node})
    node = nodes[0] if nodes else "<node>"
    stateful = (
        f" The pods of StatefulSet {facts.target.name} stay Terminating until the node answers "
        "again or its Node object is deleted (only once the machine is known to be off: two "
        "pods with the same identity must never run)."
        if facts.target.kind == "StatefulSet"
        else " The controller has already replaced the pods elsewhere."
    )
    return recommendation(
        summary=(
            f"Node {node} stopped reporting: look at the machine and its kubelet (the cloud "
            f"console, `journalctl -u kubelet` on it).{stateful}"
        ),
        command=f"kubectl describe node {node}",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
