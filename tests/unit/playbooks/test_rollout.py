"""The RolloutStuck runbook, case by case: given this Deployment, its ReplicaSets, their pods and
the controllers' events, the report names this cause, with this evidence and this change.

Messages are the controllers' real texts: the quota admission plugin's "exceeded quota: ...,
requested: ..., used: ..., limited: ...", the LimitRanger's, the deployment controller's
"ReplicaSet \"x\" has timed out progressing.".
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

import kubeobjects
from helpers import SCENARIOS_DIR
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.models import Category, Recommendation, Symptom
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.rollout.messages import parse_failure, parse_refusal
from kubetriage.policy import Touch
from kubetriage.reports.build import build_report

NS = "shop"
APP = "pricing"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/pricing"
CAPTURED = "2025-03-14T16:00:00Z"
_IDS = itertools.count(1)

QUOTA_REFUSAL = (
    'pods "{pod}" is forbidden: exceeded quota: compute-resources, requested: '
    "limits.memory=2Gi, used: limits.memory=12Gi, limited: limits.memory=12Gi"
)
TWO_RESOURCE_REFUSAL = (
    'pods "{pod}" is forbidden: exceeded quota: team-quota, requested: '
    "limits.memory=1Gi,requests.memory=512Mi, used: limits.memory=8Gi,requests.memory=4Gi, "
    "limited: limits.memory=8Gi,requests.memory=4Gi"
)
MUST_SPECIFY = (
    'pods "{pod}" is forbidden: failed quota: compute-resources: must specify limits.cpu for: '
    "pricing; limits.memory for: pricing"
)
LIMIT_RANGE = (
    'pods "{pod}" is forbidden: maximum memory usage per Container is 1Gi, but limit is 2Gi'
)
NO_ACCOUNT = (
    'pods "{pod}" is forbidden: error looking up service account shop/pricing-reader: '
    'serviceaccount "pricing-reader" not found'
)


# -- snapshot builders -----------------------------------------------------------------------


def pod_spec(
    tag: str,
    *,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    memory: str = "512Mi",
    readiness_path: str = "/readyz",
    account: str | None = None,
) -> dict[str, Any]:
    """The pod template of one revision."""
    container = kubeobjects.container(
        APP,
        f"{IMAGE}:{tag}",
        command=["/app/pricing"],
        args=args or ["--addr=:8080"],
        env=[{"name": k, "value": v} for k, v in (env or {"GOMEMLIMIT": "450MiB"}).items()],
        resources={"limits": {"memory": memory}, "requests": {"cpu": "200m", "memory": "256Mi"}},
        readinessProbe={"httpGet": {"path": readiness_path, "port": 8080}, "periodSeconds": 5},
    )
    spec: dict[str, Any] = {"containers": [container]}
    if account:
        spec["serviceAccountName"] = account
    return spec


def deployment(
    revision: int,
    spec: dict[str, Any],
    *,
    replicas: int = 3,
    failure: str | None = None,
    paused: bool = False,
) -> dict[str, Any]:
    """deployment/pricing at `revision`: its rollout timed out, or a ReplicaSet cannot create
    pods (`failure` is the ReplicaFailure message)."""
    if failure is None:
        condition = kubeobjects.condition(
            "Progressing",
            "False",
            reason="ProgressDeadlineExceeded",
            message=f'ReplicaSet "{APP}-rev{revision}" has timed out progressing.',
            last_transition="2025-03-14T15:13:19Z",
        )
    else:
        condition = kubeobjects.condition(
            "ReplicaFailure",
            "True",
            reason="FailedCreate",
            message=failure,
            last_transition="2025-03-14T15:13:19Z",
        )
    return kubeobjects.deployment(
        APP,
        namespace=NS,
        uid="dep-uid",
        revision=revision,
        replicas=replicas,
        paused=paused,
        selector={"app": APP},
        pod_spec=spec,
        status_replicas=replicas + 1,  # one surge pod of the new revision
        ready=replicas,
        conditions=[condition],
    )


def replica_set(
    revision: int, spec: dict[str, Any], *, replicas: int, ready: int | None
) -> dict[str, Any]:
    """A ReplicaSet of the Deployment; `ready=None` leaves its status unrecorded."""
    return kubeobjects.replica_set(
        f"{APP}-rev{revision}",
        namespace=NS,
        owner=kubeobjects.owner_reference("Deployment", APP),
        revision=revision,
        pod_spec=spec,
        replicas=replicas,
        status={} if ready is None else kubeobjects.replica_counts(replicas, ready),
    )


def pod(
    revision: int, spec: dict[str, Any], state: str = "running", index: int = 0
) -> dict[str, Any]:
    """Pod `pricing-rev<revision>-<index>`, in one of the states a rollout meets."""
    image = spec["containers"][0]["image"]
    status: dict[str, Any] | None = kubeobjects.container_status(
        APP,
        kubeobjects.running("2025-02-27T15:27:55Z"),
        image=image,
        ready=state == "running",
    )
    phase = "Running"
    conditions = [kubeobjects.condition("Ready", "True" if state == "running" else "False")]
    if state == "crashloop":
        status = kubeobjects.container_status(
            APP,
            kubeobjects.crash_loop_back_off(APP),
            image=image,
            restart_count=9,
            last_state=kubeobjects.terminated(1, "Error", finished="2025-03-14T15:55:00Z"),
        )
    elif state == "imagepull":
        status = kubeobjects.container_status(
            APP,
            kubeobjects.waiting("ImagePullBackOff", f'Back-off pulling image "{image}"'),
            image=image,
        )
        phase = "Pending"
    elif state == "pending":
        status = None
        phase = "Pending"
        conditions = [
            kubeobjects.condition(
                "PodScheduled",
                "False",
                reason="Unschedulable",
                message="0/3 nodes are available: 3 Insufficient memory. preemption: "
                "0/3 nodes are available: 3 No preemption victims found for incoming pod.",
                last_transition="2025-03-14T15:03:19Z",
            )
        ]
    return kubeobjects.pod(
        f"{APP}-rev{revision}-{index}",
        namespace=NS,
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-rev{revision}"),
        spec=spec,
        status={
            "phase": phase,
            "conditions": conditions,
            **({"containerStatuses": [status]} if status else {}),
        },
    )


def event(kind: str, name: str, reason: str, message: str, *, count: int = 1) -> dict[str, Any]:
    """A legacy core/v1 event, as the kubelet and the controllers write them."""
    return kubeobjects.event(
        kind,
        name,
        reason,
        message,
        namespace=NS,
        event_name=f"{name}.{next(_IDS):016x}",
        count=count,
        component=None,
        first="2025-03-14T15:40:00Z",
        last="2025-03-14T15:50:00Z",
    )


def log(pod_name: str, text: str) -> dict[str, Any]:
    return kubeobjects.container_log(pod_name, APP, text, namespace=NS)


def quota(name: str, used: dict[str, str], hard: dict[str, str]) -> dict[str, Any]:
    return kubeobjects.kube_object(
        "ResourceQuota",
        name,
        namespace=NS,
        spec={"hard": hard},
        status={"hard": hard, "used": used},
    )


def snapshot(*items: dict[str, Any], labels: dict[str, str] | None = None) -> SnapshotReader:
    """Namespace shop (with `labels`) holding `items`."""
    namespace = kubeobjects.kube_object("Namespace", NS, labels=labels)
    return kubeobjects.snapshot_reader(namespace, *items, captured_at=CAPTURED)


def diagnose_rollout(reader: SnapshotReader) -> Finding:
    """The RolloutStuck finding, through the real detect -> playbook path (only this symptom's
    playbook runs, so the pod-level reports of the same snapshot do not matter here)."""
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.ROLLOUT_STUCK]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


def recommended(finding: Finding) -> Recommendation:
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None, "the diagnosis recommends nothing"
    return recommendation


def command_of(finding: Finding) -> str:
    command = recommended(finding).command
    assert command is not None, "the recommendation has no command"
    return command


def report_text(finding: Finding) -> str:
    """Everything of the finding that reaches a report, as one string."""
    conclusion = finding.conclusion
    parts = [conclusion.root_cause.model_dump_json(), recommended(finding).model_dump_json()]
    parts += [e.model_dump_json() for e in finding.investigation.evidence]
    parts += [s.model_dump_json() for s in finding.investigation.steps]
    return "\n".join(parts)


def rolled(
    new_state: str | None,
    *,
    new: dict[str, Any] | None = None,
    old_ready: int | None = 3,
    extra: tuple[dict[str, Any], ...] = (),
    paused: bool = False,
    labels: dict[str, str] | None = None,
) -> SnapshotReader:
    """deployment/pricing rolled from revision 4 (3 pods, `old_ready` ready) to revision 5,
    whose one pod `pricing-rev5-0` is in `new_state` (None: no pod of it exists)."""
    old_spec = pod_spec("4.3.2")
    new_spec = new or pod_spec("4.4.0", args=["--addr=:8080", "--metrics-port=9102"])
    old_pods = [pod(4, old_spec, "running" if old_ready else "crashloop", i) for i in range(3)]
    new_pods = [pod(5, new_spec, new_state)] if new_state else []
    return snapshot(
        deployment(5, new_spec, paused=paused),
        replica_set(4, old_spec, replicas=3, ready=old_ready),
        replica_set(5, new_spec, replicas=1, ready=0),
        *(old_pods if old_ready is not None else []),
        *new_pods,
        *extra,
        labels=labels,
    )


# -- a bad revision ----------------------------------------------------------------------------


BAD_REVISION_CASES = [
    pytest.param(
        rolled("crashloop"),
        0.9,
        [
            "show CrashLoopBackOff",
            "exit code 1",
            "9 restarts",
            "revision 4 runs 3/3 ready",
            "args: +--metrics-port=9102",
        ],
        id="new-pods-crash-previous-ran",
    ),
    pytest.param(
        rolled("imagepull"),
        0.9,
        ["show ImagePullBackOff", "Back-off pulling image", "image: pricing 4.3.2 -> 4.4.0"],
        id="new-pods-cannot-pull",
    ),
    pytest.param(
        rolled(
            "notready",
            new=pod_spec("4.4.0", readiness_path="/health/ready"),
            extra=(
                event(
                    "Pod",
                    f"{APP}-rev5-0",
                    "Unhealthy",
                    "Readiness probe failed: HTTP probe failed with statuscode: 404",
                    count=80,
                ),
            ),
        ),
        0.9,
        ["never become Ready", "statuscode: 404", "readinessProbe"],
        id="new-pods-never-ready-after-probe-change",
    ),
    pytest.param(
        rolled("pending", new=pod_spec("4.4.0", memory="64Gi")),
        0.55,
        ["show Pending", "Insufficient memory", "resources.limits.memory: 512Mi -> 64Gi"],
        id="new-pods-cannot-be-scheduled",
    ),
    pytest.param(
        rolled("crashloop", old_ready=None),
        0.6,
        ["revision 4 has no health on record"],
        id="previous-revision-health-unknown",
    ),
    pytest.param(
        rolled("crashloop", old_ready=0),
        0.45,
        ["revision 4 was failing too"],
        id="previous-revision-was-failing-too",
    ),
]


@pytest.mark.parametrize(("reader", "confidence", "in_summary"), BAD_REVISION_CASES)
def test_failing_new_revision_is_a_bad_revision_and_rolls_back(
    reader: SnapshotReader, confidence: float, in_summary: list[str]
) -> None:
    finding = diagnose_rollout(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_BAD_REVISION
    assert root.confidence == pytest.approx(confidence)
    for text in in_summary:
        assert text in root.summary
    assert command_of(finding) == "kubectl rollout undo deployment/pricing -n shop --to-revision=4"
    assert finding.conclusion.scope.touches == {Touch.ROLLBACK}
    steps = [s.name for s in finding.investigation.steps]
    assert steps == [s.name for s in playbook_for(Symptom.ROLLOUT_STUCK).steps]


def test_the_rollback_says_how_to_undo_it_and_how_to_validate() -> None:
    finding = diagnose_rollout(rolled("crashloop"))
    recommendation = recommended(finding)
    assert "kubectl rollout undo deployment/pricing -n shop --to-revision=5" in (
        recommendation.rollback or ""
    )
    validation = recommendation.validation or ""
    assert "kubectl rollout status deployment/pricing -n shop" in validation
    assert "kubectl get rs -n shop -l app=pricing" in validation


def test_the_previous_log_line_is_evidence() -> None:
    text = "flag provided but not defined: -metrics-port\nUsage of /app/pricing:\n  -addr string\n"
    finding = diagnose_rollout(rolled("crashloop", extra=(log(f"{APP}-rev5-0", text),)))
    assert (
        "log: flag provided but not defined: -metrics-port" in finding.conclusion.root_cause.summary
    )
    logs = [e for e in finding.investigation.evidence if e.source.value == "logs"]
    assert logs
    assert "Usage of /app/pricing" in (logs[0].detail or "")


def test_env_values_never_reach_the_report_only_their_names() -> None:
    new = pod_spec("4.4.0", env={"GOMEMLIMIT": "450MiB", "STRIPE_KEY": "rk_live_51HcY2uLkq9"})
    finding = diagnose_rollout(rolled("crashloop", new=new))
    text = report_text(finding)
    assert "env (names): +STRIPE_KEY" in text
    assert "rk_live_51HcY2uLkq9" not in text
    assert "450MiB" not in text


def test_no_previous_revision_means_no_rollback() -> None:
    spec = pod_spec("1.0.0")
    reader = snapshot(
        deployment(1, spec), replica_set(1, spec, replicas=1, ready=0), pod(1, spec, "crashloop")
    )
    finding = diagnose_rollout(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_BAD_REVISION
    assert root.confidence == pytest.approx(0.4)
    assert "No earlier revision" in recommended(finding).summary
    assert "rollout undo" not in command_of(finding)
    assert finding.conclusion.scope.touches == frozenset()


def test_unreadable_replica_sets_point_at_the_rollout_history() -> None:
    finding = diagnose_rollout(snapshot(deployment(5, pod_spec("4.4.0"))))
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_BAD_REVISION
    assert root.confidence <= 0.3
    assert command_of(finding) == "kubectl rollout history deployment/pricing -n shop"
    assert "No ReplicaSet of the Deployment is readable" in finding.investigation.steps[1].outcome


def test_healthy_new_pods_leave_a_weak_answer() -> None:
    finding = diagnose_rollout(rolled("running"))
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_BAD_REVISION
    assert root.confidence <= 0.3
    assert "no pod-level failure is visible" in root.summary


def test_a_paused_deployment_is_resumed_before_the_rollback() -> None:
    assert command_of(diagnose_rollout(rolled("crashloop", paused=True))).startswith(
        "kubectl rollout resume deployment/pricing -n shop && kubectl rollout undo"
    )


def test_a_huge_webhook_refusal_stays_within_the_report_limits() -> None:
    denial = (
        'admission webhook "validate.kyverno.svc-fail" denied the request: '
        + "policy require-labels/check-team: validation error: label team is required. " * 200
    )
    refusal = event("ReplicaSet", f"{APP}-rev5", "FailedCreate", f"Error creating: {denial}")
    finding = diagnose_rollout(rolled(None, extra=(refusal,)))
    assert finding.conclusion.root_cause.category is Category.ROLLOUT_ADMISSION_DENIED
    assert 'admission webhook "validate.kyverno.svc-fail" denies them: policy require-labels' in (
        finding.conclusion.root_cause.summary
    )
    assert len(finding.conclusion.root_cause.summary) <= 1024
    assert len(recommended(finding).summary) <= 1024
    assert command_of(finding) == "kubectl get deployment pricing -n shop -o yaml"


def test_malformed_objects_degrade_instead_of_failing() -> None:
    spec = pod_spec("4.4.0")
    broken_rs = replica_set(5, spec, replicas=1, ready=0)
    broken_rs["spec"] = {"template": None}
    broken_rs["status"] = ["not", "a", "dict"]
    dep = deployment(5, spec)
    dep["status"]["conditions"].append("garbage")
    finding = diagnose_rollout(snapshot(dep, broken_rs, pod(5, spec, "crashloop")))
    assert finding.conclusion.root_cause.category is Category.ROLLOUT_BAD_REVISION
    assert recommended(finding).summary


# -- admission refuses the pods: quota -------------------------------------------------------


def quota_refused(
    message: str,
    *,
    with_events: bool = True,
    objects: tuple[dict[str, Any], ...] = (),
    desired: int = 8,
    running: int = 5,
) -> SnapshotReader:
    """deployment/pricing scaled to `desired` pods, `running` exist, the rest are refused."""
    spec = pod_spec("4.4.0", memory="2Gi")
    spec["containers"][0]["resources"]["requests"]["memory"] = "1Gi"
    refused = message.format(pod=f"{APP}-rev5-zb6k9")
    rs = replica_set(5, spec, replicas=desired, ready=running)
    rs["status"]["replicas"] = running
    events = [
        event("ReplicaSet", f"{APP}-rev5", "FailedCreate", f"Error creating: {refused}", count=9)
    ]
    return snapshot(
        deployment(5, spec, replicas=desired, failure=refused),
        rs,
        *(pod(5, spec, "running", i) for i in range(running)),
        *(events if with_events else []),
        *objects,
    )


COMPUTE_QUOTA = quota(
    "compute-resources",
    used={"limits.memory": "12Gi", "requests.memory": "6Gi", "pods": "7"},
    hard={"limits.memory": "12Gi", "requests.memory": "8Gi", "pods": "40"},
)

QUOTA_CASES = [
    pytest.param(
        quota_refused(QUOTA_REFUSAL, objects=(COMPUTE_QUOTA,)),
        0.95,
        "limits.memory used 12Gi of 12Gi, requests.memory used 6Gi of 8Gi",
        '{"spec":{"hard":{"limits.memory":"18Gi","requests.memory":"9Gi"}}}',
        id="quota-read-every-blocking-resource-raised",
    ),
    pytest.param(
        quota_refused(QUOTA_REFUSAL, with_events=False),
        0.85,
        "limits.memory used 12Gi of 12Gi",
        '{"spec":{"hard":{"limits.memory":"18Gi"}}}',
        id="events-aged-out-quota-unreadable-numbers-from-condition",
    ),
    pytest.param(
        quota_refused(TWO_RESOURCE_REFUSAL, desired=4, running=2),
        0.85,
        "limits.memory used 8Gi of 8Gi, requests.memory used 4Gi of 4Gi",
        '{"spec":{"hard":{"limits.memory":"10Gi","requests.memory":"5Gi"}}}',
        id="two-resources-in-one-refusal",
    ),
]


@pytest.mark.parametrize(("reader", "confidence", "numbers", "patch"), QUOTA_CASES)
def test_exceeded_quota_names_used_and_hard_and_the_value_that_fits(
    reader: SnapshotReader, confidence: float, numbers: str, patch: str
) -> None:
    finding = diagnose_rollout(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_QUOTA_EXCEEDED
    assert root.confidence == pytest.approx(confidence)
    assert numbers in root.summary
    name = "team-quota" if "team-quota" in root.summary else "compute-resources"
    # A patch of the quota, which the apiserver can check (dryRun=All), not a command.
    quota_patch = recommended(finding).patch
    assert quota_patch is not None
    assert (quota_patch.target.kind, quota_patch.target.name) == ("ResourceQuota", name)
    assert quota_patch.target.namespace == "shop"
    assert quota_patch.type.value == "merge"
    assert quota_patch.content == patch
    assert recommended(finding).command is None
    assert (recommended(finding).rollback or "").startswith(f"kubectl patch resourcequota {name}")
    assert finding.conclusion.scope.touches == {Touch.QUOTA}


def test_quota_recommendation_offers_the_per_pod_limit_that_would_fit() -> None:
    finding = diagnose_rollout(quota_refused(QUOTA_REFUSAL, objects=(COMPUTE_QUOTA,)))
    # 12Gi minus the 2Gi other pods use, shared by 8 replicas; requests 8Gi minus 1Gi by 8.
    assert (
        "limits.memory to 1280Mi and requests.memory to 896Mi per pod"
        in recommended(finding).summary
    )


@pytest.mark.parametrize(
    ("message", "category", "confidence", "command", "touch"),
    [
        pytest.param(
            MUST_SPECIFY,
            Category.ROLLOUT_QUOTA_EXCEEDED,
            0.9,
            "kubectl set resources deployment/pricing -n shop -c pricing "
            "--requests=cpu=<cpu>,memory=<memory>",
            Touch.RESOURCES,
            id="quota-must-specify",
        ),
        pytest.param(
            LIMIT_RANGE,
            Category.ROLLOUT_LIMIT_RANGE_VIOLATION,
            0.9,
            "kubectl set resources deployment/pricing -n shop -c pricing --limits=memory=1Gi",
            Touch.RESOURCES,
            id="limit-range-maximum",
        ),
    ],
)
def test_admission_policies_on_resources_name_the_resource_change(
    message: str, category: Category, confidence: float, command: str, touch: Touch
) -> None:
    finding = diagnose_rollout(quota_refused(message))
    root = finding.conclusion.root_cause
    assert root.category is category
    assert root.confidence == pytest.approx(confidence)
    assert command_of(finding).startswith(command)
    assert finding.conclusion.scope.touches == {touch}


def test_quota_refusal_with_a_failing_new_revision_keeps_bad_revision_as_alternative() -> None:
    reader = rolled(
        "crashloop",
        extra=(
            event(
                "ReplicaSet",
                f"{APP}-rev5",
                "FailedCreate",
                "Error creating: " + QUOTA_REFUSAL.format(pod=f"{APP}-rev5-q7hqk"),
            ),
        ),
    )
    finding = diagnose_rollout(reader)
    assert finding.conclusion.root_cause.category is Category.ROLLOUT_QUOTA_EXCEEDED
    assert [a.category for a in finding.conclusion.alternatives] == [Category.ROLLOUT_BAD_REVISION]


@pytest.mark.parametrize(
    ("message", "kind", "quota_name"),
    [
        pytest.param(QUOTA_REFUSAL.format(pod="x"), "exceeded", "compute-resources", id="exceeded"),
        pytest.param(
            MUST_SPECIFY.format(pod="x"), "must-specify", "compute-resources", id="specify"
        ),
        pytest.param(LIMIT_RANGE.format(pod="x"), "limit-range", "LimitRange", id="limit-range"),
        pytest.param(NO_ACCOUNT.format(pod="x"), None, None, id="not-a-resource-policy"),
    ],
)
def test_parse_failure(message: str, kind: str | None, quota_name: str | None) -> None:
    parsed = parse_failure(message)
    found = (parsed.kind, parsed.quota) if parsed else (None, None)
    assert found == (kind, quota_name)


# -- refusals by other admission steps (DESIGN.md section 12) ------------------------------------

WEBHOOK_NO_ENDPOINTS = (
    'Internal error occurred: failed calling webhook "mpod.kb.io": failed to call webhook: Post '
    '"https://webhook-service.system.svc:443/mutate?timeout=10s": no endpoints available for '
    'service "webhook-service"'
)
WEBHOOK_TIMEOUT = (
    'Internal error occurred: failed calling webhook "validate.kyverno.svc-fail": failed to call '
    'webhook: Post "https://kyverno-svc.kyverno.svc:443/validate/fail?timeout=10s": context '
    "deadline exceeded"
)
WEBHOOK_DENIED = (
    'admission webhook "validation.gatekeeper.sh" denied the request: [container-must-have-limits] '
    "container <pricing> has no resource limits"
)
POLICY_DENIED = (
    "pods \"{pod}\" is forbidden: ValidatingAdmissionPolicy 'require-team-label' with binding "
    "'require-team-label-prod' denied request: failed expression: "
    "has(object.metadata.labels.team)"
)
POD_SECURITY = (
    'pods "{pod}" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation '
    '!= false (container "pricing" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "pricing" must set '
    'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
    '"pricing" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container '
    '"pricing" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
)


@pytest.mark.parametrize(
    ("message", "category", "component"),
    [
        pytest.param(WEBHOOK_NO_ENDPOINTS, Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE,
                     'webhook "mpod.kb.io"', id="webhook-no-endpoints"),
        pytest.param(WEBHOOK_TIMEOUT, Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE,
                     'webhook "validate.kyverno.svc-fail"', id="webhook-timeout"),
        pytest.param(WEBHOOK_DENIED, Category.ROLLOUT_ADMISSION_DENIED,
                     'webhook "validation.gatekeeper.sh"', id="webhook-denied"),
        pytest.param(POLICY_DENIED.format(pod="x"), Category.ROLLOUT_ADMISSION_DENIED,
                     'ValidatingAdmissionPolicy "require-team-label"', id="policy-denied"),
        pytest.param(POD_SECURITY.format(pod="x"), Category.ROLLOUT_POD_SECURITY_VIOLATION,
                     "PodSecurity", id="pod-security"),
        pytest.param(NO_ACCOUNT.format(pod="x"), Category.ROLLOUT_SERVICE_ACCOUNT_MISSING,
                     "ServiceAccount admission", id="service-account"),
        pytest.param(QUOTA_REFUSAL.format(pod="x"), None, None, id="quota-is-not-one"),
        pytest.param(LIMIT_RANGE.format(pod="x"), None, None, id="limitrange-is-not-one"),
    ],
)  # fmt: skip
def test_the_component_that_refused_names_the_category(
    message: str, category: Category | None, component: str | None
) -> None:
    refusal = parse_refusal(f"Error creating: {message}")
    found = (refusal.category, refusal.component) if refusal else (None, None)
    assert found == (category, component)


def test_a_webhook_that_enforces_pod_security_rules_is_the_webhook_not_pod_security() -> None:
    message = (
        'admission webhook "validate.kyverno.svc-fail" denied the request: policy '
        "Deployment/shop/pricing for resource violation: disallow-privilege-escalation: "
        'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
    )
    refusal = parse_refusal(message)
    assert refusal is not None
    assert refusal.category is Category.ROLLOUT_ADMISSION_DENIED


def refused(
    message: str, *objects: dict[str, Any], labels: dict[str, str] | None = None
) -> Finding:
    """deployment/pricing whose revision-5 ReplicaSet cannot create its pod: `message`; its
    namespace labelled `labels`."""
    refusal = event(
        "ReplicaSet",
        f"{APP}-rev5",
        "FailedCreate",
        f"Error creating: {message.format(pod=f'{APP}-rev5-k8q2d')}",
        count=18,
    )
    return diagnose_rollout(rolled(None, extra=(refusal, *objects), labels=labels))


def test_a_webhook_whose_service_has_no_endpoints_is_its_backend_to_bring_back() -> None:
    service = kubeobjects.kube_object(
        "Service",
        "webhook-service",
        namespace="system",
        spec={"selector": {"app": "pod-defaulter"}, "clusterIP": "10.96.8.1",
              "ports": [{"port": 443}]},
    )  # fmt: skip
    slice_ = kubeobjects.kube_object(
        "EndpointSlice",
        "webhook-service-87s9s",
        namespace="system",
        api_version="discovery.k8s.io/v1",
        labels={"kubernetes.io/service-name": "webhook-service"},
        endpoints=[],
    )
    finding = refused(WEBHOOK_NO_ENDPOINTS, kubeobjects.namespace("system"), service, slice_)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_ADMISSION_WEBHOOK_FAILURE
    assert root.confidence == 0.95
    assert (
        'cannot call admission webhook "mpod.kb.io" (no endpoints available for its Service)'
        in (root.summary)
    )
    assert "Service webhook-service in namespace system exists but has no ready endpoints" in (
        root.summary
    )
    assert command_of(finding) == (
        "kubectl get endpointslices -n system -l kubernetes.io/service-name=webhook-service -o wide"
    )
    assert finding.conclusion.scope.touches == frozenset()


def test_pod_security_names_the_enforced_level_and_patches_exactly_what_it_asks() -> None:
    enforced = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    finding = refused(POD_SECURITY, labels=enforced)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_POD_SECURITY_VIOLATION
    assert root.confidence == 0.95
    assert "namespace shop enforces pod-security level restricted" in root.summary
    assert "allowPrivilegeEscalation != false, unrestricted capabilities" in root.summary
    patch = recommended(finding).patch
    assert patch is not None
    (container,) = json.loads(patch.content)["spec"]["template"]["spec"]["containers"]
    assert container == {
        "name": APP,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    assert finding.conclusion.scope.touches == {Touch.SECURITY_CONTEXT}


def test_a_missing_service_account_is_created_or_repointed() -> None:
    finding = refused(NO_ACCOUNT)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_SERVICE_ACCOUNT_MISSING
    assert "ServiceAccount pricing-reader does not exist in namespace shop" in root.summary
    assert command_of(finding) == "kubectl create serviceaccount pricing-reader -n shop"
    assert finding.conclusion.scope.touches == {Touch.SERVICE_ACCOUNT}


def test_a_denial_quotes_the_policy_and_changes_nothing_itself() -> None:
    finding = refused(POLICY_DENIED)
    root = finding.conclusion.root_cause
    assert root.category is Category.ROLLOUT_ADMISSION_DENIED
    assert (
        'admission ValidatingAdmissionPolicy "require-team-label" denies them: failed '
        "expression: has(object.metadata.labels.team)"
    ) in root.summary
    assert recommended(finding).patch is None


# -- the shared scenarios -----------------------------------------------------------------------

EXPECTED = json.loads((SCENARIOS_DIR / "expected.json").read_text())
SCENARIOS = sorted(
    name
    for name, reports in EXPECTED.items()
    if any(r["symptom"] == "RolloutStuck" for r in reports or [])
)


def test_there_are_rollout_scenarios() -> None:
    assert {"rollout-bad-revision.json", "rollout-quota-exceeded.json"} <= set(SCENARIOS)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_names_the_expected_category(name: str) -> None:
    expected = next(e for e in EXPECTED[name] if e["symptom"] == "RolloutStuck")
    finding = diagnose_rollout(SnapshotReader.from_file(SCENARIOS_DIR / name))
    target = (finding.target.namespace, finding.target.kind, finding.target.name)
    assert target == (expected["namespace"], expected["targetKind"], expected["targetName"])
    assert finding.conclusion.root_cause.category.value == expected["category"]
    assert finding.investigation.evidence
    assert recommended(finding).summary


def test_bad_revision_scenario_rolls_back_to_revision_7() -> None:
    finding = diagnose_rollout(
        SnapshotReader.from_file(SCENARIOS_DIR / "rollout-bad-revision.json")
    )
    assert command_of(finding) == "kubectl rollout undo deployment/pricing -n shop --to-revision=7"
    assert "CrashLoopBackOff" in finding.conclusion.root_cause.summary
    assert "args: +--metrics-port=9102" in finding.conclusion.root_cause.summary


def test_quota_scenario_puts_the_quota_numbers_in_the_summary() -> None:
    finding = diagnose_rollout(
        SnapshotReader.from_file(SCENARIOS_DIR / "rollout-quota-exceeded.json")
    )
    assert "limits.memory used 12Gi of 12Gi" in finding.conclusion.root_cause.summary
    quota_patch = recommended(finding).patch
    assert quota_patch is not None
    assert '"limits.memory":"18Gi"' in quota_patch.content
    report = build_report(finding)
    assert report.status is not None
    assert report.status.recommendation is not None
    assert report.status.recommendation.dry_run is not None
    assert report.status.recommendation.dry_run.message == "not dry-run: offline diagnosis"
