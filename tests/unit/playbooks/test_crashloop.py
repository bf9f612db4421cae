"""The CrashLoopBackOff runbook, read as the runbook: given this pod, event and log state, the
report names this cause, with this evidence and this recommendation.

Messages are the texts containerd, runc, crun, the kubelet and common runtimes really write.
Small snapshots go through `diagnose` exactly as the operator runs it; the shared scenario files
are checked against `expected.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kubeobjects
from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.detect import DetectedSymptom
from kubetriage.diagnosis import Finding, diagnose, find_problems
from kubetriage.k8s.access import name_of
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Category, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation
from kubetriage.playbooks.crashloop import STEPS, CrashLoopPlaybook
from kubetriage.playbooks.crashloop.decide import near_name
from kubetriage.playbooks.crashloop.messages import (
    Signal,
    headline,
    probe_failure,
    scan_log,
    start_error,
)
from kubetriage.playbooks.crashloop.reads import check_dependency
from kubetriage.reports.build import build_report

NS = "shop"
APP = "api"
HASH = "7d9f8b6c5"
CAPTURED = "2025-03-14T12:00:00Z"
RUNC_NOT_FOUND = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "celery": executable file not '
    "found in $PATH: unknown"
)
RUNC_DENIED = (
    "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
    'runc create failed: unable to start container process: exec: "/app/entrypoint.sh": '
    "permission denied: unknown"
)
CRUN_NOT_FOUND = (
    "executable file `worker` not found in $PATH: No such file or directory: OCI runtime "
    "attempted to invoke a command that was not found"
)
CRIO_RUNC_NOT_FOUND = (
    'container create failed: time="2025-03-14T11:58:01Z" level=error msg="runc create failed: '
    'unable to start container process: exec: \\"gunicorn\\": executable file not found in $PATH"'
)
LIVENESS_TIMEOUT = (
    'Liveness probe failed: Get "http://10.244.2.17:8080/healthz": context deadline exceeded '
    "(Client.Timeout exceeded while awaiting headers)"
)
LIVENESS_KILL = f"Container {APP} failed liveness probe, will be restarted"
READINESS_503 = "Readiness probe failed: HTTP probe failed with statuscode: 503"
REDIS_NO_HOST = (
    "redis.exceptions.ConnectionError: Error -2 connecting to redis:6379. "
    "Name or service not known."
)
REDIS_REFUSED = (
    "redis.exceptions.ConnectionError: Error 111 connecting to redis:6379. Connection refused."
)
NGINX_DENIED = (
    '2025/03/14 11:58:01 [emerg] 1#1: mkdir() "/var/cache/nginx/client_temp" failed '
    "(13: Permission denied)\n"
)
GO_NIL_PANIC = (
    "panic: runtime error: invalid memory address or nil pointer dereference\n"
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\n"
    "goroutine 1 [running]:\n"
)
LIVENESS = {
    "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
    "initialDelaySeconds": 5,
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "failureThreshold": 3,
}


# --- snapshot builders --------------------------------------------------------------------------
# Owner references carry no apiVersion here: owners are resolved by kind.


def container(name: str = APP, image: str | None = None, **fields: Any) -> dict[str, Any]:
    return kubeobjects.container(name, image or f"registry.example/{NS}/{name}:2.0.0", **fields)


def crashed(
    name: str = APP,
    code: int | None = 1,
    *,
    reason: str = "Error",
    message: str | None = None,
    started: str = "2025-03-14T11:58:00Z",
    finished: str = "2025-03-14T11:58:01Z",
) -> dict[str, Any]:
    """A container status in CrashLoopBackOff, as the kubelet reports it."""
    return kubeobjects.container_status(
        name,
        kubeobjects.crash_loop_back_off(name),
        last_state=kubeobjects.terminated(
            code, reason, started=started, finished=finished, message=message
        ),
        restart_count=7,
        started=False,
    )


def pod_name(index: int) -> str:
    return f"{APP}-{HASH}-p{index}"


def world(
    spec: dict[str, Any],
    statuses: list[dict[str, Any]],
    *,
    logs: list[str] | None = None,
    init: dict[str, Any] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Deployment `api` in namespace `shop`: one pod per status, previous logs in order."""
    template: dict[str, Any] = {"containers": [spec]}
    if init:
        template["initContainers"] = [init]
    pods: list[dict[str, Any]] = []
    for index, status in enumerate(statuses):
        pod_status: dict[str, Any] = {"phase": "Running", "containerStatuses": [status]}
        if init:
            initializing = {"name": spec["name"], "state": kubeobjects.waiting("PodInitializing")}
            pod_status = {
                "phase": "Pending",
                "initContainerStatuses": [(init_statuses or [])[index]],
                "containerStatuses": [initializing],
            }
        pods.append(
            kubeobjects.pod(
                pod_name(index),
                namespace=NS,
                labels={"app": APP, "pod-template-hash": HASH},
                owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-{HASH}", api_version=None),
                spec={"restartPolicy": "Always", **template},
                status=pod_status,
            )
        )
    logged = (init or spec)["name"]
    return kubeobjects.snapshot(
        kubeobjects.deployment(
            APP,
            namespace=NS,
            uid="d-1",
            pod_spec=template,
            pod_labels={"app": APP},
            replicas=len(statuses),
        ),
        replica_set(HASH, 4, template),
        *pods,
        *(log(pod_name(index), logged, text) for index, text in enumerate(logs or [])),
        *(extra or []),
        namespace=NS,
        captured_at=CAPTURED,
    )


def replica_set(
    template_hash: str, revision: int, template: dict[str, Any], ready: int = 0
) -> dict[str, Any]:
    return kubeobjects.replica_set(
        f"{APP}-{template_hash}",
        namespace=NS,
        owner=kubeobjects.owner_reference("Deployment", APP, uid="d-1", api_version=None),
        revision=revision,
        pod_spec=template,
        status={"readyReplicas": ready},
    )


def log(pod: str, name: str, text: str) -> dict[str, Any]:
    return kubeobjects.container_log(pod, name, text, namespace=NS)


def event(
    index: int, reason: str, message: str, *, count: int = 1, last: str = "2025-03-14T11:58:00Z"
) -> dict[str, Any]:
    """A kubelet event about the `api` container of pod `index`."""
    return kubeobjects.event(
        "Pod",
        pod_name(index),
        reason,
        message,
        namespace=NS,
        event_name=f"{pod_name(index)}.{reason.lower()}{count}",
        type=None,
        count=count,
        first="2025-03-14T11:30:00Z",
        last=last,
        field_path=f"spec.containers{{{APP}}}",
    )


def service(name: str, selector: dict[str, str] | None = None, port: int = 6379) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": port, "targetPort": port}], "type": "ClusterIP"}
    if selector:
        spec["selector"] = selector
    return kubeobjects.kube_object("Service", name, namespace=NS, spec=spec)


def endpoints(name: str, *, ready: int = 0, not_ready: int = 0) -> dict[str, Any]:
    subset: dict[str, Any] = {"ports": [{"port": 6379}]}
    if ready:
        subset["addresses"] = [{"ip": f"10.244.1.{i}"} for i in range(ready)]
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": f"10.244.2.{i}"} for i in range(not_ready)]
    subsets = [subset] if ready or not_ready else None
    return kubeobjects.kube_object("Endpoints", name, namespace=NS, subsets=subsets)


def config_map(name: str, *keys: str) -> dict[str, Any]:
    return kubeobjects.config_map(name, namespace=NS, data=dict.fromkeys(keys, "x"))


def env_from_config_map_key(var: str, config_map_name: str, key: str) -> dict[str, Any]:
    ref = {"name": config_map_name, "key": key, "optional": True}
    return {"name": var, "valueFrom": {"configMapKeyRef": ref}}


def crashloop_finding(document: dict[str, Any]) -> Finding:
    reader = SnapshotReader.from_document(document)
    found = [f for f in diagnose(reader) if f.symptom == Symptom.CRASH_LOOP_BACK_OFF]
    assert len(found) == 1, [f.target for f in found]
    return found[0]


def report(finding: Finding) -> dict[str, Any]:
    return build_report(finding).to_api()


def evidence_lines(finding: Finding) -> list[str]:
    return [f"{e.source.value}: {e.summary}" for e in finding.investigation.evidence]


# --- the runbook, case by case ------------------------------------------------------------------


@dataclass
class Case:
    """Given `document`, the report names `category` and states these facts."""

    document: dict[str, Any]
    category: Category
    summary: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    recommendation: list[str] = field(default_factory=list)
    patch: dict[str, Any] | None = None  # the container entry the patch must carry
    confidence: tuple[float, float] = (0.0, 1.0)
    not_in_summary: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)


def _liveness_events(pods: int) -> list[dict[str, Any]]:
    kill_time = "2025-03-14T11:57:35Z"
    return [
        item
        for index in range(pods)
        for item in (
            event(index, "Unhealthy", LIVENESS_TIMEOUT, count=21, last=kill_time),
            event(index, "Killing", LIVENESS_KILL, count=7, last=kill_time),
            event(index, "Unhealthy", READINESS_503, count=40),
        )
    ]


CASES = {
    "exit-127-shell-not-found": Case(
        world(
            container(command=["/bin/sh", "-c", "./bin/start-worker"]),
            [crashed(code=127)] * 2,
            logs=["/bin/sh: 1: ./bin/start-worker: not found\n"] * 2,
        ),
        Category.CRASHLOOP_COMMAND_NOT_FOUND,
        summary=["./bin/start-worker is not found", "exit code 127", "2 of 2 pod(s)"],
        evidence=["pod.status: 2 pod(s)", "exit code 127", "logs: previous log of 2 pod(s)"],
        recommendation=["relative path", "ls -l ./bin/start-worker"],
        confidence=(0.95, 1.0),
    ),
    "start-error-128-runc-not-found": Case(
        world(
            container(command=["celery", "-A", "tasks", "worker"]),
            [crashed(code=128, reason="StartError", message=RUNC_NOT_FOUND)],
        ),
        Category.CRASHLOOP_COMMAND_NOT_FOUND,
        summary=["celery is not found", "exit code 128, StartError"],
        evidence=["exit code 128 (StartError)"],
        not_in_summary=["no previous log"],
        confidence=(0.85, 1.0),
    ),
    "container-cannot-run-128-permission-denied": Case(
        world(container(), [crashed(code=128, reason="ContainerCannotRun", message=RUNC_DENIED)]),
        Category.CRASHLOOP_PERMISSION_DENIED,
        summary=["permission denied on /app/entrypoint.sh", "exit code 128"],
        recommendation=["chmod +x /app/entrypoint.sh", "(exit code 128)"],
    ),
    "start-error-only-in-failed-event": Case(
        world(
            container(),
            [crashed(code=128, reason="StartError")],
            extra=[event(0, "Failed", f"Error: {RUNC_NOT_FOUND}", count=7)],
        ),
        Category.CRASHLOOP_COMMAND_NOT_FOUND,
        summary=["celery is not found"],
        evidence=["events: Failed in 1 pod(s): Error: failed to create containerd task"],
    ),
    "crio-crun-not-found": Case(
        world(
            container(), [crashed(code=127, reason="ContainerCannotRun", message=CRUN_NOT_FOUND)]
        ),
        Category.CRASHLOOP_COMMAND_NOT_FOUND,
        summary=["worker is not found"],
    ),
    "exit-126-script-not-executable": Case(
        world(
            container(), [crashed(code=126)], logs=["/bin/sh: 1: /app/run.sh: Permission denied\n"]
        ),
        Category.CRASHLOOP_PERMISSION_DENIED,
        summary=["permission denied on /app/run.sh", "exit code 126"],
        recommendation=['"/bin/sh", "/app/run.sh"'],
    ),
    "nginx-cannot-write-cache-dir": Case(
        world(container(), [crashed(code=1)], logs=[NGINX_DENIED]),
        Category.CRASHLOOP_PERMISSION_DENIED,
        summary=["/var/cache/nginx/client_temp"],
        recommendation=["fsGroup", "securityContext"],
    ),
    "liveness-kill-with-probe-settings": Case(
        world(
            container(livenessProbe=LIVENESS),
            [crashed(code=137, started="2025-03-14T11:57:00Z", finished="2025-03-14T11:58:05Z")]
            * 2,
            extra=_liveness_events(2),
        ),
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE,
        summary=[
            "context deadline exceeded",
            "after 65s",
            "allows 35s (initialDelaySeconds 5, periodSeconds 10, failureThreshold 3, "
            "timeoutSeconds 1) and there is no startupProbe",
        ],
        evidence=[
            "pod.spec: livenessProbe of api: httpGet /healthz port 8080, initialDelaySeconds 5, "
            "timeoutSeconds 1, periodSeconds 10, failureThreshold 3",
            f"events: Killing in 2 pod(s): {LIVENESS_KILL}",
        ],
        recommendation=["startupProbe", "timeoutSeconds from 1 to 5"],
        patch={
            "startupProbe": {
                "httpGet": LIVENESS["httpGet"],
                "periodSeconds": 10,
                "failureThreshold": 30,
                "timeoutSeconds": 5,
            },
            "livenessProbe": {"timeoutSeconds": 5},
        },
        confidence=(0.9, 1.0),
    ),
    "sigkill-at-probe-deadline-after-events-expired": Case(
        world(
            container(livenessProbe=LIVENESS),
            [crashed(code=137, started="2025-03-14T10:00:00Z", finished="2025-03-14T10:01:05Z")],
        ),
        Category.CRASHLOOP_LIVENESS_PROBE_FAILURE,
        summary=["events have expired"],
        confidence=(0.4, 0.7),
    ),
    "sigkill-without-probe-or-oom": Case(
        world(
            container(),
            [crashed(code=137, started="2025-03-14T10:00:00Z", finished="2025-03-14T10:30:00Z")],
            logs=["worker started\n"],
        ),
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=[
            "exit code 137",
            "SIGKILL without OOMKilled or liveness-probe events",
            "its log ends with: worker started",
        ],
        recommendation=["kubectl describe pod api-7d9f8b6c5-p0 -n shop", "not OOMKilled"],
        confidence=(0.3, 0.6),
        not_in_summary=["events: worker started"],
        alternatives=["CrashLoop.LivenessProbeFailure: exit code 137 is a SIGKILL"],
    ),
    "optional-configmap-key-missing": Case(
        world(
            container(env=[env_from_config_map_key("FLAGS_URL", "api-config", "flags_url")]),
            [crashed(code=1)],
            logs=["2025/03/14 11:58:01 config: required key FLAGS_URL missing value\n"],
            extra=[config_map("api-config", "flags-url", "log_level")],
        ),
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=[
            "FLAGS_URL is missing",
            "FLAGS_URL comes from ConfigMap api-config key flags_url",
            "the variable is left unset",
        ],
        evidence=[
            "configmap: ConfigMap api-config key flags_url via env FLAGS_URL (optional): "
            "ConfigMap api-config has no key flags_url"
        ],
        recommendation=["kubectl patch configmap api-config -n shop --type merge", "flags_url"],
        confidence=(0.85, 1.0),
    ),
    "configmap-key-missing-without-logs": Case(
        world(
            container(env=[env_from_config_map_key("FLAGS_URL", "api-config", "flags_url")]),
            [crashed(code=1)],
            extra=[config_map("api-config", "log_level")],
        ),
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=["flags_url unavailable", "no previous log was available"],
        confidence=(0.5, 0.7),
        alternatives=["CrashLoop.ApplicationError: the missing reference may be unrelated"],
    ),
    "env-var-under-another-name-in-envfrom-configmap": Case(
        world(
            container(envFrom=[{"configMapRef": {"name": "api-config"}}]),
            [crashed(code=1)] * 2,
            logs=["config: required key DATABASE_URL missing value\n"] * 2,
            extra=[config_map("api-config", "DB_URL", "LOG_LEVEL")],
        ),
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=[
            "DATABASE_URL is set neither by env nor by envFrom",
            "ConfigMap api-config has DB_URL",
        ],
        patch={
            "env": [
                {
                    "name": "DATABASE_URL",
                    "valueFrom": {"configMapKeyRef": {"name": "api-config", "key": "DB_URL"}},
                }
            ]
        },
    ),
    "config-file-not-mounted": Case(
        world(
            container(),
            [crashed(code=1)],
            logs=["panic: open /etc/api/config.yaml: no such file or directory\n\ngoroutine 1:\n"],
        ),
        Category.CRASHLOOP_MISSING_CONFIGURATION,
        summary=["/etc/api/config.yaml is missing"],
        recommendation=["mount the ConfigMap or Secret that holds it at /etc/api"],
    ),
    "dependency-service-without-ready-endpoints": Case(
        world(
            container(),
            [crashed(code=1)] * 2,
            logs=[REDIS_REFUSED] * 2,
            extra=[service("redis", {"app": "redis"}), endpoints("redis", not_ready=1)],
        ),
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=[
            "cannot reach redis:6379",
            "Service redis in namespace shop exists but has no ready endpoints (1 not ready)",
        ],
        evidence=["endpoints: redis:6379 (connection refused)"],
        recommendation=[
            "kubectl get pods -n shop -l app=redis",
            "kubectl describe endpoints redis -n shop",
        ],
        confidence=(0.9, 1.0),
    ),
    "dependency-host-with-no-service": Case(
        world(container(), [crashed(code=1)], logs=[REDIS_NO_HOST]),
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=["cannot reach redis:6379", "no Service redis in namespace shop exists"],
        evidence=["service: redis:6379 (DNS lookup failed (no such host))"],
        recommendation=["kubectl get services -n shop", "<service>.<namespace>"],
    ),
    "dependency-service-is-up": Case(
        world(
            container(),
            [crashed(code=1)],
            logs=[REDIS_REFUSED],
            extra=[service("redis", {"app": "redis"}), endpoints("redis", ready=2)],
        ),
        Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        summary=["has 2 ready endpoint(s)"],
        confidence=(0.5, 0.75),
        alternatives=["CrashLoop.ApplicationError: Service redis has ready endpoints"],
    ),
    "exit-0-in-a-deployment": Case(
        world(
            container(command=["python", "-m", "warmer"]),
            [crashed(code=0, reason="Completed", finished="2025-03-14T11:58:04Z")],
            logs=["INFO warmer: done: 412 keys warmed in 1.84s\n"],
        ),
        Category.CRASHLOOP_EXITED_IMMEDIATELY,
        summary=["exits with code 0 (Completed) after 4s", "Deployment restarts it"],
        recommendation=["kubectl create cronjob api", "-- python -m warmer"],
    ),
    "exit-139-segfault": Case(
        world(container(), [crashed(code=139)], logs=["Fatal Python error: Segmentation fault\n"]),
        Category.CRASHLOOP_SEGFAULT,
        summary=["SIGSEGV (exit code 139)", "Fatal Python error: Segmentation fault"],
        recommendation=["kubectl rollout history deployment/api -n shop"],
    ),
    "go-nil-pointer-panic-is-an-application-error": Case(
        world(container(), [crashed(code=2)], logs=[GO_NIL_PANIC]),
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["exit code 2", "panic: runtime error"],
    ),
    "init-container-crash-loop": Case(
        world(
            container(),
            [{"name": APP, "state": {"waiting": {"reason": "PodInitializing"}}}],
            init=container("migrate", command=["/app/migrate", "up"]),
            init_statuses=[crashed("migrate", code=1)],
            logs=['ERROR: relation "schema_migrations" is locked by another migration\n'],
        ),
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["init container migrate of Deployment api", "exit code 1", "schema_migrations"],
        evidence=[
            "pod.status: 1 pod(s) (api-7d9f8b6c5-p0): init container migrate last terminated "
            "with exit code 1"
        ],
        recommendation=["-c migrate --previous"],
    ),
    "no-logs-exit-1": Case(
        world(container(), [crashed(code=1)]),
        Category.CRASHLOOP_APPLICATION_ERROR,
        summary=["exit code 1", "no previous log was available"],
        confidence=(0.2, 0.45),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_report_names_the_cause_with_its_evidence(case: Case) -> None:
    finding = crashloop_finding(case.document)
    root = finding.conclusion.root_cause
    assert root.category == case.category, root.summary
    for fact in case.summary:
        assert fact in root.summary
    for fact in case.not_in_summary:
        assert fact not in root.summary
    low, high = case.confidence
    assert low <= root.confidence <= high, root.confidence
    lines = evidence_lines(finding)
    for fact in case.evidence:
        assert any(fact in line for line in lines), (fact, lines)
    alternatives = [f"{a.category.value}: {a.summary}" for a in finding.conclusion.alternatives]
    for fact in case.alternatives:
        assert any(fact in line for line in alternatives), (fact, alternatives)
    assert all(a.category != root.category for a in finding.conclusion.alternatives)
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    text = json.dumps(recommendation.to_api())
    for fact in case.recommendation:
        assert fact in text or fact in recommendation.summary, (fact, text)
    if case.patch is not None:
        assert recommendation.patch is not None
        pod_spec = json.loads(recommendation.patch.content)["spec"]["template"]["spec"]
        assert pod_spec["containers"] == [{"name": APP, **case.patch}]


def test_every_documented_step_runs_in_order_with_an_outcome() -> None:
    finding = crashloop_finding(CASES["dependency-service-without-ready-endpoints"].document)
    steps = finding.investigation.steps
    assert [s.name for s in steps] == [s.name for s in STEPS]
    assert all(s.outcome for s in steps)
    assert "Service redis in namespace shop exists but has no ready endpoints" in steps[5].outcome


def test_the_playbook_documents_every_crashloop_category() -> None:
    crash_categories = {c for c in Category if c.value.startswith("CrashLoop.")}
    assert set(CrashLoopPlaybook.categories) == crash_categories
    markdown = CrashLoopPlaybook().to_markdown()
    assert all(f"**{step.name}**" in markdown for step in STEPS)


def test_pods_that_disagree_lower_confidence_and_name_the_minority() -> None:
    split = world(
        container(),
        [crashed(code=1), crashed(code=1), crashed(code=139)],
        logs=[REDIS_NO_HOST, REDIS_NO_HOST, "Segmentation fault (core dumped)\n"],
    )
    agreeing = world(container(), [crashed(code=1)] * 2, logs=[REDIS_NO_HOST] * 2)
    finding = crashloop_finding(split)
    root = finding.conclusion.root_cause
    assert root.category == Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE
    assert "2 of 3 pod(s)" in root.summary
    assert root.confidence < crashloop_finding(agreeing).conclusion.root_cause.confidence
    minority = finding.conclusion.alternatives[0]
    assert minority.category == Category.CRASHLOOP_SEGFAULT
    assert "api-7d9f8b6c5-p2" in minority.summary


def test_a_failing_new_revision_is_rolled_back_to_the_one_with_ready_pods() -> None:
    working = {"containers": [container(image=f"registry.example/{NS}/{APP}:1.9.3")]}
    document = world(
        container(),
        [crashed(code=3)],
        logs=["ERROR:    Application startup failed. Exiting.\n"],
        extra=[replica_set("5c4b3a2f1", 3, working, ready=3)],
    )
    finding = crashloop_finding(document)
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.command == "kubectl rollout undo deployment/api -n shop --to-revision=3"
    assert recommendation.rollback == "kubectl rollout undo deployment/api -n shop --to-revision=4"
    change = "containers[api].image: api 1.9.3 -> 2.0.0"
    assert any(change in line for line in evidence_lines(finding))
    assert finding.classification is not None
    assert "rollout" in [c.value for c in finding.classification.classes]


def test_a_dependency_scaled_to_zero_is_restored_with_a_human_in_the_loop() -> None:
    statefulset = kubeobjects.kube_object(
        "StatefulSet",
        "redis",
        namespace=NS,
        spec={"replicas": 0, "template": {"metadata": {"labels": {"app": "redis"}}}},
        status={"replicas": 0},
    )
    document = world(
        container(),
        [crashed(code=1)],
        logs=[REDIS_REFUSED],
        extra=[service("redis", {"app": "redis"}), endpoints("redis"), statefulset],
    )
    finding = crashloop_finding(document)
    assert "StatefulSet redis is scaled to 0 replicas" in finding.conclusion.root_cause.summary
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None
    assert recommendation.patch is None
    assert recommendation.command == "kubectl scale statefulset/redis -n shop --replicas=1"
    assert finding.classification is not None
    assert finding.classification.needs_human


MALFORMED = {
    "last-state-not-an-object": {"lastState": "garbage"},
    "fields-of-the-wrong-type": {
        "lastState": {"terminated": {"exitCode": "1", "startedAt": 5, "message": None}},
        "restartCount": "x",
    },
    "no-last-state": {},
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_status_degrades_to_a_low_confidence_answer(fields: dict[str, Any]) -> None:
    status = {"name": APP, "state": {"waiting": {"reason": "CrashLoopBackOff"}}, **fields}
    spec = container(livenessProbe="not a probe", env="nope", volumeMounts=[None])
    finding = crashloop_finding(world(spec, [status]))
    root = finding.conclusion.root_cause
    assert root.category == Category.CRASHLOOP_APPLICATION_ERROR
    assert root.confidence <= 0.35
    assert "no exit code" in root.summary


# --- the shared scenarios -----------------------------------------------------------------------

EXPECTED = json.loads((SCENARIOS_DIR / "expected.json").read_text())
SCENARIOS = sorted(
    name
    for name, reports in EXPECTED.items()
    if reports and any(r["symptom"] == Symptom.CRASH_LOOP_BACK_OFF.value for r in reports)
)


def test_every_crashloop_scenario_is_covered() -> None:
    on_disk = {p.name for p in SCENARIOS_DIR.glob("crashloop-*.json")}
    assert len(on_disk) == 8
    assert on_disk <= set(SCENARIOS)
    assert "rollout-bad-revision.json" in SCENARIOS


def _crashloop_reports(path: Any) -> list[dict[str, Any]]:
    findings = diagnose(SnapshotReader.from_file(path))
    return [report(f) for f in findings if f.symptom == Symptom.CRASH_LOOP_BACK_OFF]


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_produces_the_expected_crashloop_category(name: str) -> None:
    wanted = [
        (w["namespace"], w["targetKind"], w["targetName"], w["category"])
        for w in EXPECTED[name]
        if w["symptom"] == Symptom.CRASH_LOOP_BACK_OFF.value
    ]
    got = [
        (
            r["metadata"]["namespace"],
            r["spec"]["target"]["kind"],
            r["spec"]["target"]["name"],
            r["status"]["rootCause"]["category"],
        )
        for r in _crashloop_reports(SCENARIOS_DIR / name)
    ]
    assert got == wanted


def test_the_database_password_in_a_plain_env_value_never_reaches_the_report() -> None:
    password = "Xk9pL2vQ7mZt"
    path = SCENARIOS_DIR / "crashloop-dependency-unavailable.json"
    assert password in path.read_text(), "the scenario no longer carries the secret guarded here"
    reports = _crashloop_reports(path)
    assert reports
    document = json.dumps(reports)
    assert password not in document
    assert "Service postgres in namespace shop exists but has no ready endpoints" in document


def test_the_dependency_scenario_says_which_service_and_why() -> None:
    path = SCENARIOS_DIR / "crashloop-dependency-unavailable.json"
    (only,) = _crashloop_reports(path)
    root = only["status"]["rootCause"]
    assert "cannot reach postgres:5432" in root["summary"]
    assert "StatefulSet postgres is scaled to 0 replicas" in root["summary"]
    assert root["confidence"] >= 0.9


JUNK: st.SearchStrategy[Any] = st.sampled_from(
    [None, 0, -1, 1.5, True, "", "137", [], [None], {}, {"name": None}, [1, "2"], {"a": {}}]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_junk_in_any_field_of_a_scenario_never_breaks_the_runbook(data: st.DataObject) -> None:
    """Detection runs on the intact scenario; the runbook then reads a copy in which a few
    fields anywhere (pods, events, logs, workloads, Services) hold values of the wrong type."""
    name = data.draw(st.sampled_from(SCENARIOS))
    document = json.loads((SCENARIOS_DIR / name).read_text())
    problems = find_problems(SnapshotReader.from_document(document))
    problem = next(p for p in problems if p.symptom == Symptom.CRASH_LOOP_BACK_OFF)
    kubeobjects.plant_junk(document, data, JUNK)
    conclusion = _run_on(document, problem.target, problem.sightings, problem.pods)
    assert conclusion.root_cause.category in CrashLoopPlaybook.categories
    assert conclusion.recommendation is not None


def _run_on(
    document: dict[str, Any],
    target: WorkloadRef,
    sightings: list[DetectedSymptom],
    pods: list[dict[str, Any]],
) -> Conclusion:
    """The runbook over `document`, for the problem detected before it was damaged."""
    reader = SnapshotReader.from_document(document)
    wanted = {name_of(p) for p in pods}
    context = Context(
        reader=reader,
        target=target,
        symptom=Symptom.CRASH_LOOP_BACK_OFF,
        sightings=sightings,
        pods=[p for p in reader.pods(target.namespace) if name_of(p) in wanted],
        workload=reader.workload(target.kind, target.namespace, target.name),
        now=reader.now(),
    )
    return CrashLoopPlaybook().run(context, Investigation())


# Fields whose junk once broke a shared reader the runbook relied on, each set on every object
# of its kind: (kind, path, junk).
FRAGILE = {
    "event-involved-name-is-a-list": ("Event", ("involvedObject", "name"), ["x"]),
    "event-involved-object-is-a-string": ("Event", ("involvedObject",), "pod"),
    "pod-init-containers-is-a-number": ("Pod", ("spec", "initContainers"), 5),
    "pod-containers-hold-junk": ("Pod", ("spec", "containers"), [None, 3, {"name": None}]),
    "pod-owner-references-is-a-dict": ("Pod", ("metadata", "ownerReferences"), {"kind": "x"}),
    "replicaset-metadata-is-a-list": ("ReplicaSet", ("metadata", "annotations"), []),
    "replicaset-revision-is-not-a-number": (
        "ReplicaSet",
        ("metadata", "annotations", "deployment.kubernetes.io/revision"),
        "v2",
    ),
    "service-selector-is-a-list": ("Service", ("spec", "selector"), ["app"]),
    "endpoints-subsets-hold-junk": ("Endpoints", ("subsets",), [None, {"addresses": 3}]),
    "statefulset-replicas-is-a-string": ("StatefulSet", ("spec", "replicas"), "zero"),
    "configmap-data-is-a-list": ("ConfigMap", ("data",), ["DB_URL"]),
}


@pytest.mark.parametrize(("kind", "path", "junk"), FRAGILE.values(), ids=FRAGILE)
@pytest.mark.parametrize("name", SCENARIOS)
def test_junk_where_shared_readers_break_is_tolerated(
    name: str, kind: str, path: tuple[str, ...], junk: Any
) -> None:
    document = json.loads((SCENARIOS_DIR / name).read_text())
    problems = find_problems(SnapshotReader.from_document(document))
    problem = next(p for p in problems if p.symptom == Symptom.CRASH_LOOP_BACK_OFF)
    for item in document["items"]:
        if item.get("kind") == kind:
            node = item
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = junk
    conclusion = _run_on(document, problem.target, problem.sightings, problem.pods)
    assert conclusion.root_cause.category in CrashLoopPlaybook.categories


# --- the parsers, on real message texts ---------------------------------------------------------

START_ERRORS = {
    "containerd-runc-not-found": (RUNC_NOT_FOUND, Signal.COMMAND, "celery"),
    "containerd-runc-denied": (RUNC_DENIED, Signal.PERMISSION, "/app/entrypoint.sh"),
    "crio-crun-not-found": (CRUN_NOT_FOUND, Signal.COMMAND, "worker"),
    "crio-runc-escaped-quotes": (CRIO_RUNC_NOT_FOUND, Signal.COMMAND, None),
    "exec-format-error": (
        "exec /docker-entrypoint.sh: exec format error",
        Signal.EXEC_FORMAT,
        "/docker-entrypoint.sh",
    ),
}


@pytest.mark.parametrize(("text", "signal", "subject"), START_ERRORS.values(), ids=START_ERRORS)
def test_start_errors_are_read_as_the_runtime_writes_them(
    text: str, signal: Signal, subject: str | None
) -> None:
    found = start_error(text)
    assert found is not None
    assert found.signal == signal
    if subject is not None:
        assert found.subject == subject


LOG_LINES = {
    "go-dns": (
        "dial tcp: lookup postgres on 10.96.0.10:53: no such host",
        Signal.DEPENDENCY,
        "postgres",
        None,
    ),
    "psycopg-dns": (
        'psycopg2.OperationalError: could not translate host name "db.data.svc.cluster.local" '
        "to address: Name or service not known",
        Signal.DEPENDENCY,
        "db.data.svc.cluster.local",
        None,
    ),
    "pgx-refused": (
        "failed to connect to `user=shop database=shop`: 10.96.131.7:5432 (postgres): dial "
        "error: dial tcp 10.96.131.7:5432: connect: connection refused",
        Signal.DEPENDENCY,
        "postgres",
        5432,
    ),
    "node-dns": ("Error: getaddrinfo ENOTFOUND mongo", Signal.DEPENDENCY, "mongo", None),
    "kafka": (
        "WARN org.apache.kafka.clients.NetworkClient - Connection to node -1 "
        "(kafka/10.96.3.3:9092) could not be established. Broker may not be available.",
        Signal.DEPENDENCY,
        "kafka",
        9092,
    ),
    "java-dns": ("java.net.UnknownHostException: rabbitmq", Signal.DEPENDENCY, "rabbitmq", None),
    "envconfig": (
        "config: required key DATABASE_URL missing value",
        Signal.CONFIG_KEY,
        "DATABASE_URL",
        None,
    ),
    "python-keyerror": ("KeyError: 'STRIPE_API_BASE'", Signal.CONFIG_KEY, "STRIPE_API_BASE", None),
    "env-not-set": (
        "Error: environment variable SMTP_HOST is not set",
        Signal.CONFIG_KEY,
        "SMTP_HOST",
        None,
    ),
    "python-config-file": (
        "FileNotFoundError: [Errno 2] No such file or directory: '/etc/app/settings.toml'",
        Signal.CONFIG_FILE,
        "/etc/app/settings.toml",
        None,
    ),
    "env-interpreter": (
        "/usr/bin/env: \u2018python\u2019: No such file or directory",
        Signal.COMMAND,
        "python",
        None,
    ),
    "missing-entrypoint": (
        "exec /app/start.sh: no such file or directory",
        Signal.COMMAND,
        "/app/start.sh",
        None,
    ),
    "bind-privileged-port": (
        "2025/03/14 listen tcp :80: bind: permission denied",
        Signal.PERMISSION,
        ":80",
        None,
    ),
    "shell-segfault": ("Segmentation fault (core dumped)", Signal.SEGFAULT, None, None),
}


@pytest.mark.parametrize(("line", "signal", "subject", "port"), LOG_LINES.values(), ids=LOG_LINES)
def test_log_lines_name_what_failed(
    line: str, signal: Signal, subject: str | None, port: int | None
) -> None:
    found = scan_log(f"starting\n{line}\n")
    assert [f.signal for f in found] == [signal]
    assert found[0].subject == subject
    assert found[0].port == port


ORDINARY = {
    "sql-error": 'sqlalchemy.exc.ProgrammingError: column "discount_code" does not exist',
    "go-flag": "flag provided but not defined: -metrics-port",
    "health-message": "health check failed: product cache not ready",
    "json-caller-is-not-a-host": '{"level":"info","caller":"cmd/api/main.go:48","msg":"start"}',
}


@pytest.mark.parametrize("line", ORDINARY.values(), ids=ORDINARY)
def test_ordinary_application_errors_raise_no_specific_signal(line: str) -> None:
    assert scan_log(line) == []


def test_the_headline_skips_usage_text_and_reads_structured_logs() -> None:
    usage = (
        "flag provided but not defined: -metrics-port\nUsage of /app/pricing:\n"
        "  -log-level string\n    \tlog level: debug, info, warn, error\n"
    )
    assert headline(usage) == "flag provided but not defined: -metrics-port"
    structured = (
        '{"level":"fatal","msg":"database connection failed",'
        '"error":"dial tcp 10.0.0.1:5432: connect: connection refused"}'
    )
    assert headline(structured) == (
        "database connection failed: dial tcp 10.0.0.1:5432: connect: connection refused"
    )


PROBE_EVENTS = {
    "liveness-timeout": (LIVENESS_TIMEOUT, "liveness", "timeout"),
    "liveness-500": (
        "Liveness probe failed: HTTP probe failed with statuscode: 500",
        "liveness",
        "status",
    ),
    "startup-refused": (
        'Startup probe failed: Get "http://10.244.1.5:8080/ready": dial tcp 10.244.1.5:8080: '
        "connect: connection refused",
        "startup",
        "refused",
    ),
    "readiness": (READINESS_503, "readiness", "status"),
}


@pytest.mark.parametrize(("message", "probe", "kind"), PROBE_EVENTS.values(), ids=PROBE_EVENTS)
def test_probe_events_are_parsed(message: str, probe: str, kind: str) -> None:
    failure = probe_failure(message)
    assert failure is not None
    assert (failure.probe, failure.kind) == (probe, kind)


HOSTS = {
    "svc": ("redis", "redis", NS, "service"),
    "svc.ns": ("redis.cache", "redis", "cache", "service"),
    "fqdn": ("redis.cache.svc.cluster.local", "redis", "cache", "service"),
    "statefulset-pod": ("redis-0.redis.cache.svc.cluster.local", "redis", "cache", "service"),
    "external": ("smtp.eu.mailgun.org", None, None, "external"),
    "local": ("localhost", None, None, "local"),
}


@pytest.mark.parametrize(("host", "service", "namespace", "scope"), HOSTS.values(), ids=HOSTS)
def test_hosts_resolve_to_services_the_way_cluster_dns_does(
    host: str, service: str | None, namespace: str | None, scope: str
) -> None:
    reader = kubeobjects.snapshot_reader(kubeobjects.namespace("cache"))
    check = check_dependency(reader, NS, host, None, 6379)
    assert (check.service, check.namespace, check.scope) == (service, namespace, scope)
    if scope == "service":
        assert check.state == "no-service"


NEAR = {
    "abbreviated": ("DATABASE_URL", {"DB_URL", "LOG_LEVEL"}, "DB_URL"),
    "misspelled": ("REDIS_HOST", {"REDIS_HOTS", "PORT"}, "REDIS_HOTS"),
    "unrelated": ("SMTP_HOST", {"LOG_LEVEL", "PORT"}, None),
}


@pytest.mark.parametrize(("wanted", "candidates", "near"), NEAR.values(), ids=NEAR)
def test_a_missing_key_is_matched_to_the_key_it_was_likely_renamed_to(
    wanted: str, candidates: set[str], near: str | None
) -> None:
    assert near_name(wanted, candidates) == near
