"""Field access on Kubernetes objects as plain dicts: metadata, containers, statuses, conditions.

Every function takes whatever a field holds and answers as if a malformed value were absent:
a snapshot may carry a string where a list belongs, and one such object must not stop a
diagnosis of the others.
"""

from __future__ import annotations

from typing import Any

# An object exactly as the API returns it in JSON (camelCase keys).
KubeObject = dict[str, Any]


def as_dict(value: Any) -> dict[str, Any]:
    """The value if it is a mapping, else {}."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """The value if it is a list, else []."""
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    """The mapping items of the value when it is a list, else []."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text(value: Any) -> str:
    """The value if it is a string, else "": a field compared with a set of known values may
    hold a list or a mapping in a malformed object, which a set cannot hash."""
    return value if isinstance(value, str) else ""


def int_field(obj: dict[str, Any], key: str, default: int) -> int:
    """An integer field, `default` when absent or not an integer (booleans are not)."""
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def clip(text: str, limit: int) -> str:
    """The text cut to `limit` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def meta(obj: KubeObject | None) -> dict[str, Any]:
    """The object's metadata, {} when absent or malformed."""
    return as_dict(as_dict(obj).get("metadata"))


def name_of(obj: KubeObject | None) -> str:
    """The object's name ("" when it has none)."""
    return str(meta(obj).get("name") or "")


def namespace_of(obj: KubeObject | None, default: str = "default") -> str:
    """The object's namespace, `default` when it has none."""
    return str(meta(obj).get("namespace") or default)


def labels_of(obj: KubeObject | None) -> dict[str, str]:
    """The object's labels, as strings."""
    return {str(k): str(v) for k, v in as_dict(meta(obj).get("labels")).items()}


def annotations_of(obj: KubeObject | None) -> dict[str, Any]:
    """The object's annotations, {} when absent or malformed."""
    return as_dict(meta(obj).get("annotations"))


def containers(pod_spec: Any, *, init: bool | None = None) -> list[dict[str, Any]]:
    """The containers of a pod spec: init containers first when `init` is None, else only the
    init containers (True) or only the app containers (False)."""
    fields = {
        None: ("initContainers", "containers"),
        True: ("initContainers",),
        False: ("containers",),
    }[init]
    spec = as_dict(pod_spec)
    return [c for f in fields for c in dicts(spec.get(f))]


def container_spec(pod: KubeObject, name: str | None) -> dict[str, Any]:
    """A container of a pod by name (init containers included), or the first one for None;
    {} when there is none."""
    candidates = containers(pod.get("spec"))
    if name is None:
        return candidates[0] if candidates else {}
    return next((c for c in candidates if c.get("name") == name), {})


def container_status(pod: KubeObject, name: str | None) -> dict[str, Any]:
    """A container's status by name (init containers included), or the first one for None;
    {} when there is none."""
    status = as_dict(pod.get("status"))
    for field in ("initContainerStatuses", "containerStatuses"):
        for item in dicts(status.get(field)):
            if name is None or item.get("name") == name:
                return item
    return {}


def container_statuses(pod: KubeObject) -> list[tuple[dict[str, Any], bool]]:
    """Every container status of a pod with whether it is an init container's, init first."""
    status = as_dict(pod.get("status"))
    return [
        (item, is_init)
        for field, is_init in (("initContainerStatuses", True), ("containerStatuses", False))
        for item in dicts(status.get(field))
    ]


def restarts(pod: KubeObject) -> int:
    """How many times the pod's containers (init containers included) have restarted."""
    counts = (item.get("restartCount") for item, _ in container_statuses(pod))
    return sum(count for count in counts if isinstance(count, int) and count > 0)


def pod_template(workload: KubeObject | None) -> dict[str, Any]:
    """The pod template spec of a workload (its `spec` for a bare Pod), {} when unknown."""
    if not workload:
        return {}
    spec = as_dict(workload.get("spec"))
    if workload.get("kind") == "Pod":
        return spec
    return as_dict(as_dict(spec.get("template")).get("spec"))


def condition(obj: KubeObject | None, kind: str) -> dict[str, Any] | None:
    """The object's status condition of one type, None when it has none."""
    for item in dicts(as_dict(as_dict(obj).get("status")).get("conditions")):
        if item.get("type") == kind:
            return item
    return None


def pod_ready(pod: KubeObject) -> bool:
    """Whether the pod's Ready condition is True."""
    ready = condition(pod, "Ready")
    return ready is not None and ready.get("status") == "True"


def node_ready(node: KubeObject) -> bool | None:
    """Whether a node's Ready condition is True; None when it reports none."""
    ready = condition(node, "Ready")
    return None if ready is None else ready.get("status") == "True"


def pod_phase(pod: KubeObject) -> str | None:
    """The pod's phase (`Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`), None if unset."""
    phase = as_dict(pod.get("status")).get("phase")
    return phase if isinstance(phase, str) and phase else None


def is_scheduled(pod: KubeObject) -> bool:
    """Bound to a node and not finished: the pod holds room on its node."""
    return node_name(pod) is not None and pod_phase(pod) not in {"Succeeded", "Failed"}


def node_name(pod: KubeObject) -> str | None:
    """The node a pod is bound to, None when it is not scheduled."""
    node = as_dict(pod.get("spec")).get("nodeName")
    return node if isinstance(node, str) and node else None


def node_images(node: KubeObject) -> list[list[str]]:
    """The names of each image a node reports in `status.images` (digests and tags). The
    kubelet lists at most `nodeStatusMaxImages` images (50 by default), largest first, and at
    most 5 names per image: an image missing from the list may still be on the node."""
    images = dicts(as_dict(node.get("status")).get("images"))
    return [[n for n in as_list(image.get("names")) if isinstance(n, str)] for image in images]
