"""Settings, from environment variables with the prefix `KUBETRIAGE_` (DESIGN.md section 11).

The Helm chart's values map onto these one to one; `kubetriage run --help` lists them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from kubetriage.k8s.selectors import Selector, parse_selector
from kubetriage.models import Symptom
from kubetriage.namespaces import NamespaceSelection

# Where a pod finds its own namespace when the Downward API does not set POD_NAMESPACE.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# How long a symptom must persist before it is diagnosed. A crash loop needs a few restarts to
# be a loop; an image pull retries quickly; scheduling often clears once an autoscaler adds a
# node; a rollout already waited out its progressDeadlineSeconds.
DEFAULT_GRACE_SECONDS: dict[Symptom, float] = {
    Symptom.CRASH_LOOP_BACK_OFF: 60.0,
    Symptom.OOM_KILLED: 0.0,
    Symptom.IMAGE_PULL_BACK_OFF: 60.0,
    Symptom.PENDING: 120.0,
    Symptom.ROLLOUT_STUCK: 0.0,
    # The kubelet retries a missing Secret or ConfigMap every sync: one created a moment after
    # its pod is normal in a Helm install. A pod that is not Ready must have missed more than a
    # rollout's worth of readiness checks before it is a problem.
    Symptom.CREATE_CONTAINER_CONFIG_ERROR: 60.0,
    Symptom.NOT_READY: 120.0,
    Symptom.EVICTED: 0.0,
    Symptom.JOB_FAILED: 0.0,
}


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of the operator, with its environment variable."""

    model_config = SettingsConfigDict(env_prefix="KUBETRIAGE_", extra="ignore")

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="comma-separated namespaces (or kopf globs: team-a-*, !kube-system) to "
        "watch; empty means all",
    )
    cluster_name: str = Field("default", description="the cluster's name in reports and issues")
    production_selector: str = Field(
        "kubetriage.io/environment=production",
        description="label selector that marks a namespace as production, as kubectl -l takes "
        "it (env=prod, env!=dev, env in (prod,production), !legacy); empty: none is",
    )
    grace_seconds: float | None = Field(
        None,
        ge=0,
        description="how long a symptom must persist before a diagnosis, for every symptom; "
        "unset: the per-symptom defaults",
    )
    grace_seconds_crashloopbackoff: float | None = Field(
        None, ge=0, description="grace for CrashLoopBackOff; unset: 60"
    )
    grace_seconds_oomkilled: float | None = Field(
        None, ge=0, description="grace for OOMKilled; unset: 0"
    )
    grace_seconds_imagepullbackoff: float | None = Field(
        None, ge=0, description="grace for ImagePullBackOff; unset: 60"
    )
    grace_seconds_pending: float | None = Field(
        None, ge=0, description="grace for Pending; unset: 120"
    )
    grace_seconds_rolloutstuck: float | None = Field(
        None, ge=0, description="grace for RolloutStuck; unset: 0"
    )
    grace_seconds_createcontainerconfigerror: float | None = Field(
        None, ge=0, description="grace for CreateContainerConfigError; unset: 60"
    )
    grace_seconds_notready: float | None = Field(
        None, ge=0, description="grace for NotReady; unset: 120"
    )
    grace_seconds_evicted: float | None = Field(
        None, ge=0, description="grace for Evicted; unset: 0"
    )
    grace_seconds_jobfailed: float | None = Field(
        None, ge=0, description="grace for JobFailed; unset: 0"
    )
    resolve_after_seconds: float = Field(
        300.0, ge=0, description="how long a workload must be healthy before its report is Resolved"
    )
    max_concurrent_diagnoses: int = Field(16, ge=1, description="diagnoses run at the same time")
    dry_run: bool = Field(
        True,
        description="check each recommended patch with dryRun=All (needs patch RBAC on workloads)",
    )
    linear_api_url: str = Field(
        "https://api.linear.app/graphql", description="Linear GraphQL endpoint"
    )
    linear_api_key: SecretStr | None = Field(
        None, description="Linear API key (from a Secret); unset: escalations stay in reports"
    )
    linear_team_id: str | None = Field(None, description="team that issues are opened in")
    linear_label_ids: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated label ids added to every issue"
    )
    linear_timeout_seconds: float = Field(10.0, gt=0, description="timeout of one Linear request")
    linear_reopen_within_seconds: float = Field(
        604800.0,
        ge=0,
        description="a relapse within this long of a person completing the issue reopens it; "
        "after it, a new issue related to the old one is opened",
    )
    linear_resolved_state: str | None = Field(
        None,
        description="Linear state (name or id) a resolved report's issue moves to; unset: it "
        "stays where it is",
    )
    linear_retry_base_seconds: float = Field(
        5.0, gt=0, description="first wait before a Linear request is tried again"
    )
    linear_retry_max_seconds: float = Field(
        300.0, gt=0, description="longest wait between two tries of a Linear request"
    )
    linear_failed_retry_seconds: float = Field(
        3600.0,
        gt=0,
        description="how often an escalation Linear refused (key, team) is tried again",
    )
    prometheus_url: str | None = Field(
        None, description="Prometheus base URL for memory history; unset: no history"
    )
    prometheus_timeout_seconds: float = Field(5.0, gt=0, description="timeout of one query")
    prometheus_window_seconds: float = Field(
        21600.0, gt=0, description="how far back memory history is read"
    )
    prometheus_step_seconds: float = Field(
        15.0, gt=0, description="finest step of a memory history: Prometheus' scrape interval"
    )
    memory_leak_min_climb_seconds: float | None = Field(
        None,
        gt=0,
        description="how long a steady climb to the memory limit must last to be a leak; "
        "unset: 1800",
    )
    metrics_port: int = Field(9090, ge=0, le=65535, description="port of /metrics (0: off)")
    health_port: int = Field(8080, ge=0, le=65535, description="port of the liveness endpoint")
    log_format: str = Field("json", pattern="^(json|console)$", description="json or console")
    leader_election: bool = Field(
        False, description="run as one of several replicas: only the holder of a Lease diagnoses"
    )
    leader_election_namespace: str | None = Field(
        None,
        description="namespace of the Lease; unset: $POD_NAMESPACE, else the pod's own namespace",
    )
    leader_election_lease_name: str = Field("kubetriage", description="name of the Lease")
    leader_election_lease_seconds: float = Field(
        15.0, gt=0, description="how long a Lease holder that stopped renewing is waited for"
    )
    leader_election_renew_deadline_seconds: float = Field(
        10.0, gt=0, description="how long the leader may fail to renew before it stops"
    )
    leader_election_retry_seconds: float = Field(
        2.0, gt=0, description="how often the Lease is renewed, or tried by a follower"
    )

    _split_lists = field_validator("namespaces", "linear_label_ids", mode="before")(_split)

    @field_validator("production_selector")
    @classmethod
    def _parsable_selector(cls, value: str) -> str:
        parse_selector(value)  # raises SelectorError (a ValueError) naming the bad part
        return value

    @model_validator(mode="after")
    def _election_timing(self) -> Self:
        # As client-go checks: the leader must give up before a follower may take over, and
        # retry more than once within its deadline.
        if self.leader_election_renew_deadline_seconds >= self.leader_election_lease_seconds:
            raise ValueError(
                "KUBETRIAGE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS must be less than "
                "KUBETRIAGE_LEADER_ELECTION_LEASE_SECONDS"
            )
        if self.leader_election_retry_seconds >= self.leader_election_renew_deadline_seconds:
            raise ValueError(
                "KUBETRIAGE_LEADER_ELECTION_RETRY_SECONDS must be less than "
                "KUBETRIAGE_LEADER_ELECTION_RENEW_DEADLINE_SECONDS"
            )
        return self

    def namespace_selection(self) -> NamespaceSelection:
        """The namespaces this instance serves (every path that lists or writes uses it)."""
        return NamespaceSelection.of(self.namespaces)

    def election_namespace(self) -> str:
        """The Lease's namespace: the setting, else $POD_NAMESPACE, else the namespace of the
        pod's ServiceAccount, else `default`."""
        if self.leader_election_namespace:
            return self.leader_election_namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        try:
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
        except OSError:
            return "default"

    def grace_for(self, symptom: Symptom) -> float:
        """The grace period of one symptom: its own override, else the global one, else default."""
        own = getattr(self, f"grace_seconds_{symptom.value.lower()}")
        if own is not None:
            return float(own)
        if self.grace_seconds is not None:
            return self.grace_seconds
        return DEFAULT_GRACE_SECONDS[symptom]

    def production(self) -> Selector:
        """The selector of production namespaces (validated when the settings were read)."""
        return parse_selector(self.production_selector)


def invalid_settings(error: ValidationError) -> str:
    """A settings error as one line naming each variable: what the commands print on exit."""
    parts = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        parts.append(f"KUBETRIAGE_{field.upper()}: {message}")
    return "invalid setting " + "; ".join(parts)


def describe_settings() -> str:
    """The environment variables, for `kubetriage run --help`."""
    lines = []
    for name, field in Settings.model_fields.items():
        variable = f"KUBETRIAGE_{name.upper()}"
        default = field.get_default(call_default_factory=True)
        shown = (
            "unset"
            if default is None
            else (",".join(default) if isinstance(default, list) else default)
        )
        shown = "empty" if shown == "" else shown
        lines.append(f"  {variable:<42} {field.description or ''} (default: {shown})")
    return "\n".join(lines)


def election_identity() -> str:
    """Who this replica is in the Lease: $POD_NAME (set by the Downward API in the chart), else
    `<hostname>_<pid>`, unique per process."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"
