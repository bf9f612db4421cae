"""Kubernetes objects for unit tests, as the plain dicts the API returns in JSON.

Each builder writes the shape of one kind once; a test file wraps them in its own few builders
that fix its names, namespace and the state its cases vary. Two rules hold throughout:

- A field given as None is left out: a test builds sparse objects as easily as full ones (an
  Event without `type`, a ReplicaSet whose status was never written).
- The dicts a builder is given go into the object as they are, not copied: a test that shares
  one pod spec between a Deployment and its pods, or edits an object after building it, sees
  the same aliasing it would with a literal.

`snapshot` puts the objects into the `v1 List` that `SnapshotReader` reads.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from kubetriage.clients.snapshot import KUBETRIAGE_API, SnapshotReader

KubeObject = dict[str, Any]

_REVISION = "deployment.kubernetes.io/revision"

_API_VERSIONS = {
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "StorageClass": "storage.k8s.io/v1",
    "ContainerLog": KUBETRIAGE_API,
    "MetricSeries": KUBETRIAGE_API,
}
# Events about these name no namespace in involvedObject: the objects have none.
_CLUSTER_SCOPED = {"Node", "Namespace", "PersistentVolume", "StorageClass"}


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


# --- any object ------------------------------------------------------------------------------


def kube_object(
    kind: str,
    name: str,
    *,
    namespace: str | None = None,
    api_version: str | None = None,
    uid: str | None = None,
    created: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    owners: list[KubeObject] | None = None,
    **body: Any,
) -> KubeObject:
    """An object of `kind`: apiVersion (from the kind unless given), metadata, then `body`'s
    top-level fields (`spec`, `status`, `data`, ...) as given."""
    metadata = _present(
        name=name,
        namespace=namespace,
        uid=uid,
        creationTimestamp=created,
        labels=labels,
        annotations=annotations,
        ownerReferences=owners,
    )
    return {
        "apiVersion": api_version or _API_VERSIONS.get(kind, "v1"),
        "kind": kind,
        "metadata": metadata,
        **_present(**body),
    }


def owner_reference(
    kind: str, name: str, *, uid: str | None = None, api_version: str | None = "apps/v1"
) -> KubeObject:
    """A controller reference to the workload that owns an object (`controller: true`)."""
    return _present(apiVersion=api_version, kind=kind, name=name, uid=uid, controller=True)


def condition(
    type: str,
    status: str,
    *,
    reason: str | None = None,
    message: str | None = None,
    last_transition: str | None = None,
) -> KubeObject:
    """A status condition of a Pod, Node or Deployment."""
    return _present(
        type=type,
        status=status,
        reason=reason,
        message=message,
        lastTransitionTime=last_transition,
    )


# --- pods and their containers ---------------------------------------------------------------


def container(name: str, image: str, **fields: Any) -> KubeObject:
    """A container of a pod spec; `fields` are its other keys (`resources`, `command`, ...)."""
    return {"name": name, "image": image, **fields}


def pod(
    name: str,
    *,
    namespace: str,
    labels: dict[str, str] | None = None,
    owner: KubeObject | None = None,
    spec: KubeObject | None = None,
    status: KubeObject | None = None,
) -> KubeObject:
    """A Pod; `owner` is its controller reference (see `owner_reference`), usually a
    ReplicaSet."""
    return kube_object(
        "Pod",
        name,
        namespace=namespace,
        labels=labels,
        owners=[owner] if owner is not None else None,
        spec=spec,
        status=status,
    )


def container_status(
    name: str,
    state: KubeObject,
    *,
    image: str | None = None,
    ready: bool | None = False,
    restart_count: int | None = 0,
    last_state: KubeObject | None = None,
    started: bool | None = None,
) -> KubeObject:
    """An entry of `status.containerStatuses` (or `initContainerStatuses`); `state` and
    `last_state` are built with `waiting`, `running` and `terminated`."""
    return _present(
        name=name,
        image=image,
        ready=ready,
        restartCount=restart_count,
        state=state,
        lastState=last_state,
        started=started,
    )


def waiting(reason: str, message: str | None = None) -> KubeObject:
    """A container state: waiting for `reason` (ImagePullBackOff, ContainerCreating, ...)."""
    return {"waiting": _present(reason=reason, message=message)}


def crash_loop_back_off(container_name: str, *, pod_ref: str | None = None) -> KubeObject:
    """A container state: waiting in CrashLoopBackOff, with the kubelet's message at its
    longest back-off; with `pod_ref`, the ` pod=<pod>_<namespace>(<uid>)` the kubelet appends."""
    message = f"back-off 5m0s restarting failed container={container_name}"
    if pod_ref is not None:
        message += f" pod={pod_ref}"
    return waiting("CrashLoopBackOff", message)


def running(started_at: str) -> KubeObject:
    """A container state: running since `started_at`."""
    return {"running": {"startedAt": started_at}}


def terminated(
    exit_code: int | None,
    reason: str,
    *,
    started: str | None = None,
    finished: str | None = None,
    message: str | None = None,
) -> KubeObject:
    """A container state: terminated with `exit_code` (None: the runtime gave none)."""
    return {
        "terminated": _present(
            exitCode=exit_code,
            reason=reason,
            startedAt=started,
            finishedAt=finished,
            message=message,
        )
    }


def container_log(
    pod_name: str, container_name: str, text: str, *, namespace: str, previous: bool = True
) -> KubeObject:
    """A captured container log (kubetriage's `ContainerLog` snapshot item); `previous` is the
    log of the instance before the last restart, as `kubectl logs --previous`."""
    return kube_object(
        "ContainerLog",
        pod_name,
        namespace=namespace,
        container=container_name,
        previous=previous,
        text=text,
    )


# --- workloads -------------------------------------------------------------------------------


def _pod_template(spec: KubeObject, labels: dict[str, str] | None) -> KubeObject:
    return _present(metadata={"labels": labels} if labels is not None else None, spec=spec)


def replica_counts(replicas: int, ready: int = 0) -> KubeObject:
    """The status of a ReplicaSet the controller has observed: `replicas` pods, `ready` of them
    ready and available (the ready fields are absent at 0, as the API omits them)."""
    status: KubeObject = {"replicas": replicas, "observedGeneration": 1}
    if ready:
        status |= {"readyReplicas": ready, "availableReplicas": ready}
    return status


def deployment(
    name: str,
    *,
    namespace: str,
    pod_spec: KubeObject,
    pod_labels: dict[str, str] | None = None,
    uid: str | None = None,
    revision: int | str | None = None,
    replicas: int = 1,
    selector: dict[str, str] | None = None,
    paused: bool | None = None,
    status_replicas: int | None = None,
    ready: int | None = 0,
    unavailable: int | None = None,
    conditions: list[Any] | None = None,
) -> KubeObject:
    """A Deployment wanting `replicas` pods of `pod_spec` (its template's labels `pod_labels`,
    its selector `matchLabels: selector`), at `revision`. The status counts `status_replicas`
    pods (default `replicas`), `ready` and `unavailable` of them, and carries `conditions`."""
    annotations = {_REVISION: str(revision)} if revision is not None else None
    spec = _present(
        replicas=replicas,
        paused=paused,
        selector={"matchLabels": selector} if selector is not None else None,
        template=_pod_template(pod_spec, pod_labels),
    )
    status = _present(
        replicas=replicas if status_replicas is None else status_replicas,
        readyReplicas=ready,
        unavailableReplicas=unavailable,
        conditions=conditions,
    )
    return kube_object(
        "Deployment",
        name,
        namespace=namespace,
        uid=uid,
        annotations=annotations,
        spec=spec,
        status=status,
    )


def replica_set(
    name: str,
    *,
    namespace: str,
    owner: KubeObject,
    revision: int | str,
    pod_spec: KubeObject,
    pod_labels: dict[str, str] | None = None,
    replicas: int | None = None,
    created: str | None = None,
    status: KubeObject | None = None,
) -> KubeObject:
    """A ReplicaSet of a Deployment (`owner`, see `owner_reference`) at `revision`, whose
    template is `pod_spec`; `status` as given (see `replica_counts`), absent when None."""
    return kube_object(
        "ReplicaSet",
        name,
        namespace=namespace,
        created=created,
        annotations={_REVISION: str(revision)},
        owners=[owner],
        spec=_present(replicas=replicas, template=_pod_template(pod_spec, pod_labels)),
        status=status,
    )


# --- the cluster around them -----------------------------------------------------------------


def event(
    kind: str,
    name: str,
    reason: str,
    message: str,
    *,
    namespace: str,
    event_name: str | None = None,
    type: str | None = "Warning",
    count: int | None = 1,
    component: str | None = "kubelet",
    host: str | None = None,
    first: str | None = None,
    last: str | None = None,
    field_path: str | None = None,
    uid: str | None = None,
) -> KubeObject:
    """An Event about `kind`/`name` in the legacy core/v1 shape, as the kubelet and the
    controllers write it: involvedObject (with `field_path` when it is about one container),
    reason, message, type, count, the `component`/`host` that reported it, and its
    first/last timestamps. Named `<name>.<reason>` unless `event_name` says otherwise."""
    involved = _present(
        kind=kind,
        name=name,
        namespace=None if kind in _CLUSTER_SCOPED else namespace,
        uid=uid,
        fieldPath=field_path,
    )
    source = _present(component=component, host=host)
    return kube_object(
        "Event",
        event_name or f"{name}.{reason.lower()}",
        namespace=namespace,
        involvedObject=involved,
        reason=reason,
        message=message,
        type=type,
        count=count,
        source=source or None,
        firstTimestamp=first,
        lastTimestamp=last,
    )


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    spec: KubeObject | None = None,
    allocatable: dict[str, str] | None = None,
    conditions: list[KubeObject] | None = None,
) -> KubeObject:
    """A Node; with no arguments, one that has neither labels, spec nor status."""
    status = _present(allocatable=allocatable, conditions=conditions)
    return kube_object("Node", name, labels=labels, spec=spec, status=status or None)


def config_map(name: str, *, namespace: str, data: dict[str, str]) -> KubeObject:
    """A ConfigMap holding `data`."""
    return kube_object("ConfigMap", name, namespace=namespace, data=data)


def namespace(name: str) -> KubeObject:
    """A Namespace."""
    return kube_object("Namespace", name)


# --- the snapshot ----------------------------------------------------------------------------


def snapshot(
    *items: KubeObject, namespace: str | None = None, captured_at: str | None = None
) -> KubeObject:
    """The `v1 List` document `SnapshotReader` reads: a SnapshotInfo stating `captured_at` (the
    diagnosis' "now"), the Namespace object `namespace`, then `items`; each left out when None."""
    head: list[KubeObject] = []
    if captured_at is not None:
        head.append(
            {"apiVersion": KUBETRIAGE_API, "kind": "SnapshotInfo", "capturedAt": captured_at}
        )
    if namespace is not None:
        head.append(kube_object("Namespace", namespace))
    return {"apiVersion": "v1", "kind": "List", "items": [*head, *items]}


def snapshot_reader(
    *items: KubeObject, namespace: str | None = None, captured_at: str | None = None
) -> SnapshotReader:
    """A `SnapshotReader` over `snapshot(*items, ...)`."""
    return SnapshotReader.from_document(
        snapshot(*items, namespace=namespace, captured_at=captured_at)
    )


def plant_junk(document: KubeObject, data: Any, junk: Any) -> None:
    """Replace one to four fields anywhere in the snapshot's objects, each at a random depth,
    with a value drawn from `junk` (a hypothesis strategy; `data` is `st.data()`'s object):
    what a property test feeds a playbook to show that no field's type can break it."""
    for _ in range(data.draw(st.integers(1, 4))):
        node: Any = data.draw(st.sampled_from(document["items"]))
        while True:
            keys = sorted(k for k in node if k not in {"kind", "apiVersion"})
            if not keys:
                break
            key = data.draw(st.sampled_from(keys))
            if isinstance(node[key], dict) and node[key] and data.draw(st.booleans()):
                node = node[key]
                continue
            if isinstance(node[key], list) and node[key] and data.draw(st.booleans()):
                entry = data.draw(st.sampled_from(node[key]))
                if isinstance(entry, dict) and entry:
                    node = entry
                    continue
            # A copy: the strategy's values are shared between examples, and a later round
            # (or the playbook) may write into a dict or list planted here.
            node[key] = copy.deepcopy(data.draw(junk))
            break
