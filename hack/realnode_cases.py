"""The failures a real node can really produce, one Deployment each (issue 13, DESIGN.md 3, 12).

Shared by the recorder (hack/record_realnode.py, which writes tests/fixtures/realnode/) and the
real-node tier (tests/realnode/). Every pod is pinned to the real node, runs busybox-static from
the node's local registry (hack/realnode.py), and fails the way an application would: the
crash-looping ones through a shell, so their logs say what went wrong; the probe failures with
short periods, so that the kubelet kills them within seconds rather than minutes (the back-off
between restarts is the kubelet's own: 10 s doubling to 5 min).

`category` is what DESIGN.md says kubetriage must name for it; `symptom` the report's symptom.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from realnode import IMAGES, NODE_NAME

NAMESPACE = "realnode"
BUSYBOX = IMAGES[0].reference
GOOD_API = IMAGES[1].reference
BAD_API = IMAGES[2].reference
# What the app of `dependency` prints before it exits 1: the form Go's resolver gives.
DEPENDENCY_ERROR = (
    'level=fatal msg="cannot connect to the database" '
    'error="dial tcp: lookup db on 10.0.0.10:53: no such host"'
)
# A SIGTERM ends the app as most runtimes do (exit 143); busybox sh as PID 1 would ignore it.
# (In a container's command Kubernetes turns `$$` into `$`: a shell's own `$$` is written `$$$$`.)
IDLE = "trap 'exit 143' TERM; while :; do sleep 1; done"


# The api images' port and readiness probe.
SERVES: dict[str, Any] = {
    "ports": [{"containerPort": 8080, "name": "http"}],
    "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 2},
}


@dataclass(frozen=True)
class Failure:
    """One broken Deployment on the real node and what kubetriage must say about it."""

    name: str
    what: str
    symptom: str
    category: str
    container: dict[str, Any]
    pod: dict[str, Any] = field(default_factory=dict)
    # Objects created with it (a Secret that lacks the key, ...).
    extra: Callable[[str], list[dict[str, Any]]] = field(default=lambda namespace: [])
    # A second revision applied once the first is available (the bad rollout).
    revision: dict[str, Any] | None = None
    progress_deadline: int | None = None
    min_ready_seconds: int | None = None
    crash_loops: bool = False
    # The workload it runs as: a Deployment, or a Job (run once, backoffLimit 1).
    kind: str = "Deployment"


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


class ImageRef(Protocol):
    """Where an image is: RealNode.image (a registry of the node), or a placeholder."""

    def __call__(self, reference: str, *, private: bool = False) -> str: ...


def placeholder(reference: str, *, private: bool = False) -> str:
    """An image reference without a registry (to list the failures without a node)."""
    return f"{'private.invalid' if private else 'registry.invalid'}/{reference}"


def failures(image: ImageRef = placeholder) -> list[Failure]:
    """Every failure, with images from `image` (a node's `RealNode.image`)."""

    def _busybox(**container: Any) -> dict[str, Any]:
        return {"name": "app", "image": image(BUSYBOX), **container}

    return [
        Failure(
            "dependency", "exit 1 after a DNS failure to its database",
            "CrashLoopBackOff", "CrashLoop.DependencyUnavailable",
            _busybox(command=_sh(f"echo 'starting'; echo '{DEPENDENCY_ERROR}' >&2; exit 1")),
            crash_loops=True,
        ),
        Failure(
            "command-not-found", "exit 127: the shell cannot find the server",
            "CrashLoopBackOff", "CrashLoop.CommandNotFound",
            _busybox(command=_sh("/app/server --port 8080")),
            crash_loops=True,
        ),
        Failure(
            "missing-binary", "the entrypoint does not exist: StartError, RunContainerError",
            "CrashLoopBackOff", "CrashLoop.CommandNotFound",
            _busybox(command=["/app/server", "--port", "8080"]),
            crash_loops=True,
        ),
        Failure(
            "segfault", "exit 139: the server dies of SIGSEGV",
            "CrashLoopBackOff", "CrashLoop.Segfault",
            _busybox(command=_sh(
                "echo 'loading model'; sh -c 'kill -SEGV $$$$'; exit $?"
            )),
            crash_loops=True,
        ),
        Failure(
            "exits-zero", "exit 0: a one-shot command in a Deployment",
            "CrashLoopBackOff", "CrashLoop.ExitedImmediately",
            _busybox(command=_sh("echo 'migration complete'; exit 0")),
            crash_loops=True,
        ),
        Failure(
            "oom-at-limit", "allocates 256 MiB at once under a 48 MiB limit: memcg OOM kill",
            "OOMKilled", "OOMKilled.LimitTooLow",
            _busybox(
                command=_sh("echo 'loading cache'; x=$(head -c 268435456 /dev/zero | tr '\\0' x)"),
                resources={"limits": {"memory": "48Mi"}, "requests": {"memory": "48Mi"}},
            ),
            crash_loops=True,
        ),
        Failure(
            "memory-leak", "grows by 1 MiB a second under a 48 MiB limit until the OOM kill",
            "OOMKilled", "OOMKilled.MemoryLeak",
            # `tail` keeps all of an input without newlines: it grows by what it is fed, 1 MiB a
            # second, in a straight line (a shell's own string would double at each copy). Once
            # the kernel kills it, `head` fails on the broken pipe, the loop ends, and the shell
            # exits with tail's status.
            _busybox(
                command=_sh(
                    "echo 'serving'; "
                    "(while head -c 1048576 /dev/zero; do sleep 1; done) | tail; exit $?"
                ),
                resources={"limits": {"memory": "48Mi"}, "requests": {"memory": "48Mi"}},
            ),
            crash_loops=True,
        ),
        Failure(
            "liveness-exec", "an exec liveness probe that always fails (no output)",
            "CrashLoopBackOff", "CrashLoop.LivenessProbeFailure",
            _busybox(
                command=_sh(IDLE),
                livenessProbe={"exec": {"command": ["test", "-f", "/tmp/healthy"]},
                               "periodSeconds": 2, "failureThreshold": 2},
            ),
            crash_loops=True,
        ),
        Failure(
            "liveness-http", "an HTTP liveness probe on a path the server answers 404",
            "CrashLoopBackOff", "CrashLoop.LivenessProbeFailure",
            _busybox(
                command=_sh("trap 'exit 143' TERM; httpd -f -p 8080 -h /www & wait"),
                ports=[{"containerPort": 8080, "name": "http"}],
                livenessProbe={"httpGet": {"path": "/healthz", "port": 8080},
                               "periodSeconds": 2, "failureThreshold": 2},
            ),
            crash_loops=True,
        ),
        Failure(
            "startup-probe", "a startup probe whose budget (3 x 2 s) ends before the app starts",
            "CrashLoopBackOff", "CrashLoop.StartupProbeFailure",
            _busybox(
                command=_sh(f"sleep 30; touch /tmp/started; {IDLE}"),
                startupProbe={"exec": {"command": ["test", "-f", "/tmp/started"]},
                              "periodSeconds": 2, "failureThreshold": 3},
            ),
            crash_loops=True,
        ),
        Failure(
            "missing-configmap", "mounts a ConfigMap that does not exist",
            "Pending", "Pending.VolumeMountFailure",
            _busybox(command=_sh(IDLE),
                     volumeMounts=[{"name": "config", "mountPath": "/etc/app"}]),
            pod={"volumes": [{"name": "config", "configMap": {"name": "app-config"}}]},
        ),
        Failure(
            "missing-secret-key", "an env var from a Secret key that does not exist",
            "CreateContainerConfigError", "ContainerConfig.MissingKey",
            _busybox(command=_sh(IDLE), env=[{
                "name": "DB_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "db-credentials", "key": "password"}},
            }]),
            extra=lambda ns: [{
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "db-credentials", "namespace": ns},
                "stringData": {"username": "app"},
            }],
        ),
        Failure(
            "image-not-found", "a tag the registry does not have",
            "ImagePullBackOff", "ImagePull.NotFound",
            {"name": "app", "image": image("kubetriage/busybox:9.9.9")},
        ),
        Failure(
            "image-unauthorized", "a registry that wants credentials, and no imagePullSecrets",
            "ImagePullBackOff", "ImagePull.Unauthorized",
            {"name": "app", "image": image(BUSYBOX, private=True)},
        ),
        Failure(
            "readiness-closed-port", "a readiness probe on a port nothing listens on",
            "NotReady", "NotReady.ProbeMisconfigured",
            _busybox(
                command=_sh("trap 'exit 143' TERM; httpd -f -p 8080 -h /www & wait"),
                ports=[{"containerPort": 8080, "name": "http"}],
                readinessProbe={"httpGet": {"path": "/", "port": 8081}, "periodSeconds": 2},
            ),
        ),
        Failure(
            "storage-over-limit", "writes 64 MiB to an emptyDir under a 16 MiB storage limit",
            "Evicted", "Eviction.EphemeralStorageLimit",
            # The kubelet's eviction manager measures the pod's local storage (its emptyDirs,
            # writable layers and logs) every few seconds and evicts the pod past its limit.
            _busybox(
                command=_sh(f"dd if=/dev/zero of=/scratch/blob bs=1M count=64; {IDLE}"),
                resources={"limits": {"ephemeral-storage": "16Mi"},
                           "requests": {"ephemeral-storage": "16Mi"}},
                volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
            ),
            pod={"volumes": [{"name": "scratch", "emptyDir": {}}]},
        ),
        Failure(
            "job-exits-one", "a Job whose pod exits 1, twice (backoffLimit 1)",
            "JobFailed", "Job.BackoffLimitExceeded",
            _busybox(command=_sh("echo 'migrating: relation \"users\" is locked'; exit 1")),
            kind="Job",
        ),
        Failure(
            "invalid-reference", "an image reference with upper-case letters",
            "ImagePullBackOff", "ImagePull.InvalidReference",
            {"name": "app", "image": image("kubetriage/BusyBox:1.36")},
        ),
        Failure(
            "too-big", "requests more CPU than the node has",
            "Pending", "Pending.RequestExceedsNodeCapacity",
            _busybox(command=_sh(IDLE), resources={"requests": {"cpu": "64"}}),
        ),
        Failure(
            "bad-rollout", "revision 2 (api:2.0) panics at start; revision 1 (api:1.0) serves",
            "RolloutStuck", "Rollout.BadRevision",
            {"name": "app", "image": image(GOOD_API), **SERVES},
            revision={"name": "app", "image": image(BAD_API), **SERVES},
            # A pod counts as available after 10 s Ready: one that dies a second after its start
            # (Ready until then, having no readiness probe to fail) must not end the rollout.
            min_ready_seconds=10,
            progress_deadline=20,
            crash_loops=True,
        ),
    ]  # fmt: skip


def deployment(failure: Failure, namespace: str, container: dict[str, Any]) -> dict[str, Any]:
    """The Deployment of `failure` with `container`, pinned to the real node."""
    spec: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": failure.name}},
        "template": {
            "metadata": {"labels": {"app": failure.name}},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": NODE_NAME},
                "terminationGracePeriodSeconds": 2,
                "containers": [container],
                **failure.pod,
            },
        },
    }
    if failure.progress_deadline is not None:
        spec["progressDeadlineSeconds"] = failure.progress_deadline
    if failure.min_ready_seconds is not None:
        spec["minReadySeconds"] = failure.min_ready_seconds
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": failure.name, "namespace": namespace},
        "spec": spec,
    }


def job(failure: Failure, namespace: str, container: dict[str, Any]) -> dict[str, Any]:
    """The Job of `failure` with `container`, pinned to the real node: one pod at a time, one
    retry, never restarted in place."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": failure.name, "namespace": namespace},
        "spec": {
            "backoffLimit": 1,
            "template": {
                "metadata": {"labels": {"app": failure.name}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": NODE_NAME},
                    "terminationGracePeriodSeconds": 2,
                    "restartPolicy": "Never",
                    "containers": [container],
                    **failure.pod,
                },
            },
        },
    }


def manifests(image: ImageRef, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The namespace, every failure's objects and first revision: one `kubectl apply`."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    ]
    for failure in failures(image):
        objects.extend(failure.extra(namespace))
        build = job if failure.kind == "Job" else deployment
        objects.append(build(failure, namespace, failure.container))
    return objects


def second_revisions(image: ImageRef, namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The bad revisions, applied once the first revisions are available."""
    return [deployment(f, namespace, f.revision) for f in failures(image) if f.revision is not None]


# The failures' names, without a node (for test ids).
NAMES = [f.name for f in failures()]
