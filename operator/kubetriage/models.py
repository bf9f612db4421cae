"""The DiagnosisReport resource and the values a diagnosis is made of.

These pydantic models mirror `crds/diagnosisreports.kubetriage.io.yaml`, the one source of truth
for the API: field names are the CRD's camelCase names (through aliases), enums are the CRD's
enums, and `tests/unit/test_models_crd.py` walks both to keep them in step. Serialize with
`model_dump(mode="json", by_alias=True, exclude_none=True)` to get what the apiserver accepts.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

API_GROUP = "kubetriage.io"
API_VERSION = "v1alpha1"
KIND = "DiagnosisReport"
PLURAL = "diagnosisreports"


class Symptom(StrEnum):
    """What was observed on a workload, before any diagnosis (DESIGN.md section 2)."""

    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    OOM_KILLED = "OOMKilled"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    PENDING = "Pending"
    ROLLOUT_STUCK = "RolloutStuck"
    # Beyond the four kubelet states (DESIGN.md section 12).
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    NOT_READY = "NotReady"
    EVICTED = "Evicted"
    JOB_FAILED = "JobFailed"


class Category(StrEnum):
    """The root-cause taxonomy (DESIGN.md section 3). A stable API: alert rules key on it."""

    CRASHLOOP_COMMAND_NOT_FOUND = "CrashLoop.CommandNotFound"
    CRASHLOOP_PERMISSION_DENIED = "CrashLoop.PermissionDenied"
    CRASHLOOP_LIVENESS_PROBE_FAILURE = "CrashLoop.LivenessProbeFailure"
    CRASHLOOP_MISSING_CONFIGURATION = "CrashLoop.MissingConfiguration"
    CRASHLOOP_DEPENDENCY_UNAVAILABLE = "CrashLoop.DependencyUnavailable"
    CRASHLOOP_EXITED_IMMEDIATELY = "CrashLoop.ExitedImmediately"
    CRASHLOOP_SEGFAULT = "CrashLoop.Segfault"
    CRASHLOOP_STARTUP_PROBE_FAILURE = "CrashLoop.StartupProbeFailure"
    CRASHLOOP_WRONG_ARCHITECTURE = "CrashLoop.WrongArchitecture"
    CRASHLOOP_INVALID_CREDENTIALS = "CrashLoop.InvalidCredentials"
    CRASHLOOP_APPLICATION_ERROR = "CrashLoop.ApplicationError"
    OOM_LIMIT_TOO_LOW = "OOMKilled.LimitTooLow"
    OOM_MEMORY_LEAK = "OOMKilled.MemoryLeak"
    OOM_NODE_PRESSURE = "OOMKilled.NodePressure"
    IMAGEPULL_NOT_FOUND = "ImagePull.NotFound"
    IMAGEPULL_UNAUTHORIZED = "ImagePull.Unauthorized"
    IMAGEPULL_REGISTRY_UNREACHABLE = "ImagePull.RegistryUnreachable"
    IMAGEPULL_RATE_LIMITED = "ImagePull.RateLimited"
    IMAGEPULL_INVALID_REFERENCE = "ImagePull.InvalidReference"
    IMAGEPULL_NEVER_PULL_MISSING = "ImagePull.NeverPullMissing"
    PENDING_INSUFFICIENT_RESOURCES = "Pending.InsufficientResources"
    PENDING_REQUEST_EXCEEDS_NODE_CAPACITY = "Pending.RequestExceedsNodeCapacity"
    PENDING_NODE_SELECTOR_MISMATCH = "Pending.NodeSelectorMismatch"
    PENDING_UNTOLERATED_TAINT = "Pending.UntoleratedTaint"
    PENDING_UNBOUND_PVC = "Pending.UnboundPersistentVolumeClaim"
    PENDING_NO_NODES = "Pending.NoNodes"
    PENDING_HOST_PORT_CONFLICT = "Pending.HostPortConflict"
    PENDING_VOLUME_NODE_AFFINITY_CONFLICT = "Pending.VolumeNodeAffinityConflict"
    PENDING_TOPOLOGY_CONSTRAINT = "Pending.TopologyConstraint"
    PENDING_VOLUME_MOUNT_FAILURE = "Pending.VolumeMountFailure"
    ROLLOUT_QUOTA_EXCEEDED = "Rollout.QuotaExceeded"
    ROLLOUT_BAD_REVISION = "Rollout.BadRevision"
    ROLLOUT_ADMISSION_WEBHOOK_FAILURE = "Rollout.AdmissionWebhookFailure"
    ROLLOUT_ADMISSION_DENIED = "Rollout.AdmissionDenied"
    ROLLOUT_POD_SECURITY_VIOLATION = "Rollout.PodSecurityViolation"
    ROLLOUT_LIMIT_RANGE_VIOLATION = "Rollout.LimitRangeViolation"
    ROLLOUT_SERVICE_ACCOUNT_MISSING = "Rollout.ServiceAccountMissing"
    CONFIG_MISSING_SECRET = "ContainerConfig.MissingSecret"
    CONFIG_MISSING_CONFIG_MAP = "ContainerConfig.MissingConfigMap"
    CONFIG_MISSING_KEY = "ContainerConfig.MissingKey"
    CONFIG_RUN_AS_NON_ROOT = "ContainerConfig.RunAsNonRoot"
    CONFIG_INVALID = "ContainerConfig.Invalid"
    NOTREADY_READINESS_PROBE_FAILURE = "NotReady.ReadinessProbeFailure"
    NOTREADY_PROBE_MISCONFIGURED = "NotReady.ProbeMisconfigured"
    NOTREADY_DEPENDENCY_UNAVAILABLE = "NotReady.DependencyUnavailable"
    EVICTION_MEMORY_PRESSURE = "Eviction.MemoryPressure"
    EVICTION_PID_PRESSURE = "Eviction.PIDPressure"
    EVICTION_DISK_PRESSURE = "Eviction.DiskPressure"
    EVICTION_EPHEMERAL_STORAGE_LIMIT = "Eviction.EphemeralStorageLimit"
    EVICTION_NODE_NOT_READY = "Eviction.NodeNotReady"
    JOB_BACKOFF_LIMIT_EXCEEDED = "Job.BackoffLimitExceeded"
    JOB_DEADLINE_EXCEEDED = "Job.DeadlineExceeded"
    JOB_POD_FAILURE_POLICY = "Job.PodFailurePolicy"


class Phase(StrEnum):
    """Whether the problem a report describes is still there."""

    OPEN = "Open"
    RESOLVED = "Resolved"


class Severity(StrEnum):
    """How urgent a report is (DESIGN.md section 5); Linear's priority follows it."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class EscalationState(StrEnum):
    """Where a report's Linear issue stands. The report is the outbox: Pending until confirmed."""

    NOT_REQUIRED = "NotRequired"
    PENDING = "Pending"
    OPENED = "Opened"
    FAILED = "Failed"
    DECLINED = "Declined"  # a person canceled the issue: never reopened nor commented again
    # Needs a human, kept in the report (its Markdown in `markdown`), not sent: Linear is not
    # configured. Configuring it and restarting sends it.
    NOT_SENT = "NotSent"


class EscalationClass(StrEnum):
    """Why a recommended change needs a human (DESIGN.md section 4)."""

    PRODUCTION = "production"
    COST = "cost"
    ACCESS = "access"
    DATA = "data"
    ROLLOUT = "rollout"
    AUTONOMOUS = "autonomous"


class EvidenceSource(StrEnum):
    """Where a piece of evidence was read, so a human can look at the same place."""

    POD_STATUS = "pod.status"
    POD_SPEC = "pod.spec"
    EVENTS = "events"
    LOGS = "logs"
    NODE = "node"
    SCHEDULER = "scheduler"
    PROMETHEUS = "prometheus"
    REPLICASET = "replicaset"
    WORKLOAD = "workload"
    PERSISTENT_VOLUME_CLAIM = "persistentvolumeclaim"
    PERSISTENT_VOLUME = "persistentvolume"
    STORAGE_CLASS = "storageclass"
    SERVICE = "service"
    ENDPOINTS = "endpoints"
    RESOURCE_QUOTA = "resourcequota"
    SERVICE_ACCOUNT = "serviceaccount"
    CONFIG_MAP = "configmap"
    SECRET = "secret"
    NAMESPACE = "namespace"


class DryRunResult(StrEnum):
    """Outcome of the server-side dry run (`dryRun=All`) of a recommended patch."""

    PASSED = "Passed"
    FAILED = "Failed"
    SKIPPED = "Skipped"


class PatchType(StrEnum):
    """How a recommended patch is applied, as `kubectl patch --type` names it."""

    STRATEGIC = "strategic"
    MERGE = "merge"
    JSON = "json"


def max_length(model: type[BaseModel], field: str) -> int:
    """The CRD's length limit of a text field, as the model declares it: what every writer
    clips to, so that the bound lives in one place."""
    for constraint in model.model_fields[field].metadata:
        limit = getattr(constraint, "max_length", None)
        if isinstance(limit, int):
            return limit
    raise KeyError(f"{model.__name__}.{field} declares no max_length")


class ApiModel(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_api(self) -> dict[str, Any]:
        """The object as the Kubernetes API expects it: camelCase, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Target(ApiModel):
    """The workload a report is about: the top-level owner of the failing pods."""

    api_version: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=253)
    uid: str | None = None


class Spec(ApiModel):
    """What the report is about, and what a human may set."""

    target: Target
    symptom: Symptom
    container: str | None = None
    acknowledged: bool = False


class RootCause(ApiModel):
    """One named cause with the confidence the evidence gives it."""

    category: Category
    summary: str = Field(min_length=1, max_length=1024)
    confidence: float = Field(ge=0.0, le=1.0)
    # The pod-level cause beneath the mechanism `category` names (a Job that hit its backoff
    # limit because its pods crashed on a dependency: CrashLoop.DependencyUnavailable).
    underlying: Category | None = None


class Evidence(ApiModel):
    """One observation that supports (or rules out) a cause. Always redacted text."""

    source: EvidenceSource
    summary: str = Field(min_length=1, max_length=1024)
    detail: str | None = Field(default=None, max_length=16384)


class Step(ApiModel):
    """One step of a playbook: what it looked at and what it concluded."""

    name: str = Field(min_length=1, max_length=256)
    outcome: str = Field(max_length=2048)


class PatchTarget(ApiModel):
    """The object a recommended patch applies to."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


class Patch(ApiModel):
    """A recommended change, as text `kubectl patch --type TYPE -p CONTENT` accepts."""

    type: PatchType
    target: PatchTarget
    content: str = Field(min_length=2, max_length=16384)


class DryRun(ApiModel):
    """What the apiserver said of the patch under `dryRun=All`."""

    result: DryRunResult
    message: str | None = Field(default=None, max_length=2048)


class CostImpact(ApiModel):
    """How a change moves the workload's total requests/limits across its replicas."""

    summary: str = Field(max_length=1024)
    percent: float | None = None


class Recommendation(ApiModel):
    """A concrete change, how to undo it, how to tell it worked, and who must approve it."""

    summary: str = Field(min_length=1, max_length=1024)
    patch: Patch | None = None
    command: str | None = Field(default=None, max_length=2048)
    rollback: str | None = Field(default=None, max_length=2048)
    validation: str | None = Field(default=None, max_length=2048)
    dry_run: DryRun | None = None
    cost_impact: CostImpact | None = None
    classes: list[EscalationClass] = Field(default_factory=list, max_length=6)
    escalation_reason: str | None = Field(default=None, max_length=1024)


class CommentKind(StrEnum):
    """Why the issue is owed a comment."""

    RELAPSE = "relapse"
    RESOLUTION = "resolution"
    LINKED = "linked"


class CommentState(StrEnum):
    """Whether Linear has confirmed a comment."""

    PENDING = "Pending"
    SENT = "Sent"


class OwedComment(ApiModel):
    """A comment the issue is owed, kept in the report until Linear confirms it. The key
    derives its id, so a retry after a lost answer lands once."""

    key: str = Field(min_length=1, max_length=253)
    kind: CommentKind
    state: CommentState = CommentState.PENDING
    body: str | None = Field(default=None, max_length=16384)
    sent_at: datetime | None = None


class Escalation(ApiModel):
    """The report's outbox entry for its Linear issue."""

    state: EscalationState
    reason: str | None = Field(default=None, max_length=1024)
    issue_id: str | None = None
    identifier: str | None = None
    url: str | None = None
    attempts: int = Field(default=0, ge=0)
    last_error: str | None = Field(default=None, max_length=2048)
    last_attempt: datetime | None = None
    markdown: str | None = Field(default=None, max_length=65536)
    episode: int = Field(default=1, ge=1)
    previous_issue_id: str | None = None
    linked_report: str | None = None
    next_attempt: datetime | None = None
    failed_with: str | None = None
    attachment_synced: str | None = None
    attachment_wanted: str | None = None
    comments: list[OwedComment] = Field(default_factory=list, max_length=20)


class TemplateChange(ApiModel):
    """One difference between the failing and the healthy pod template."""

    field: str
    before: str | None = Field(default=None, max_length=2048)
    after: str | None = Field(default=None, max_length=2048)


class FailingRevision(ApiModel):
    """The pod template the failing pods ran, as the report last saw it: what its resolution
    is compared with."""

    revision: str | None = None
    replica_set: str | None = None
    generation: int | None = Field(default=None, ge=0)


class Resolution(ApiModel):
    """What fixed it: the template diff, the revision, and who changed it."""

    summary: str = Field(max_length=1024)
    changes: list[TemplateChange] = Field(default_factory=list, max_length=50)
    revision: str | None = None
    changed_by: str | None = None


class Condition(ApiModel):
    """A standard metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(min_length=1, max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class Status(ApiModel):
    """What the operator observed and concluded."""

    phase: Phase
    severity: Severity
    # None only while no diagnosis of the report has succeeded (a playbook failed).
    root_cause: RootCause | None = None
    alternatives: list[RootCause] = Field(default_factory=list, max_length=10)
    evidence: list[Evidence] = Field(default_factory=list, max_length=50)
    steps: list[Step] = Field(default_factory=list, max_length=50)
    recommendation: Recommendation | None = None
    escalation: Escalation | None = None
    affected_pods: list[str] = Field(default_factory=list, max_length=50)
    occurrences: int = Field(default=1, ge=1)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    resolved_at: datetime | None = None
    failing_revision: FailingRevision | None = None
    resolution: Resolution | None = None
    conditions: list[Condition] = Field(default_factory=list, max_length=16)


class ObjectMeta(ApiModel):
    """The subset of metav1.ObjectMeta that the operator sets."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str
    # Set by the apiserver; read back, never written (an issue id derives from it).
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)


class DiagnosisReport(ApiModel):
    """A DiagnosisReport object, exactly as it is written to the cluster."""

    api_version: Literal["kubetriage.io/v1alpha1"] = "kubetriage.io/v1alpha1"
    kind: Literal["DiagnosisReport"] = "DiagnosisReport"
    metadata: ObjectMeta
    spec: Spec
    status: Status | None = None

    @classmethod
    def read(cls, stored: dict[str, Any]) -> DiagnosisReport:
        """A report as the cluster holds it. Read leniently: a newer (or older) replica may
        have written fields this version does not know, and they must not stop it from
        delivering or resolving the report. Only what the operator writes is strict."""
        return cls.model_validate(stored, extra="ignore")
