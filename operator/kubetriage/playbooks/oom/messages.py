"""How the OOMKilled playbook parses what the node says about memory. Pure.

The texts come from three writers: the kubelet's Node events, its eviction manager (an Evicted
event and the evicted pod's status message, which outlives the event by far), and the kernel's
OOM report, which node-problem-detector quotes in an `OOMKilling` Node event. Each says either
that the node ran out of memory (`NODE`) or that a container hit its own cgroup limit (`CGROUP`).
"""

from __future__ import annotations

import re

NODE = "node"  # the node ran out of memory
CGROUP = "cgroup"  # a container hit its own limit

# The kubelet's Node events that always mean the node ran short:
#   SystemOOM: "System OOM encountered, victim process: java, pid: 3190377"
#   NodeHasInsufficientMemory: "Node ip-10-0-27-142 status is now: NodeHasInsufficientMemory"
NODE_OUT_OF_MEMORY_REASONS = frozenset({"SystemOOM", "NodeHasInsufficientMemory"})
# The eviction manager's "Attempting to reclaim memory"; the same reason covers disk and pids
# ("Attempting to reclaim ephemeral-storage"), which say nothing about memory.
EVICTION_THRESHOLD_REASON = "EvictionThresholdMet"
# node-problem-detector's kernel monitor.
KERNEL_OOM_REASON = "OOMKilling"
EVICTED_REASON = "Evicted"

# The eviction manager's "The node was low on resource: memory. Threshold quantity: 100Mi,
# available: 88Ki. ..." and the kubelet's admission refusal "The node had condition:
# [MemoryPressure]."
_EVICTED_FOR_MEMORY = re.compile(
    r"low on resource:\s*memory|had condition:\s*\[[^\]]*MemoryPressure", re.IGNORECASE
)
# The kernel: a cgroup kill ("Memory cgroup out of memory: Killed process 4093 (api) ...") is a
# container at its limit; a plain "Out of memory: Killed process ..." is the whole node.
_CGROUP_OOM = re.compile(r"memory cgroup out of memory", re.IGNORECASE)
# Checked after _CGROUP_OOM. Older kernels say "Kill process N (x) score S or sacrifice child".
_GLOBAL_OOM = re.compile(r"out of memory: kill(?:ed)? process", re.IGNORECASE)


def node_event_scope(reason: str, message: str) -> str | None:
    """What a Node event says about memory: `NODE` when the node ran out, `CGROUP` when the
    kernel killed a container at its own limit, None when it is not about memory."""
    if reason in NODE_OUT_OF_MEMORY_REASONS:
        return NODE
    if reason == EVICTION_THRESHOLD_REASON and "memory" in message.lower():
        return NODE
    if reason == KERNEL_OOM_REASON:
        if _CGROUP_OOM.search(message):
            return CGROUP
        if _GLOBAL_OOM.search(message):
            return NODE
    return None


def evicted_for_memory(message: str) -> bool:
    """Whether an eviction message (event or pod status) says the node was short of memory."""
    return _EVICTED_FOR_MEMORY.search(message) is not None
