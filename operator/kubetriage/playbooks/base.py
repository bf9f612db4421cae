"""What every playbook is made of.

A playbook is the runbook an engineer follows for one symptom, as an ordered list of named steps
(`Playbook.steps`, which `kubetriage playbooks` prints). Running it fills an `Investigation`: the
trace of each step's outcome and the evidence read, already redacted. It ends in a `Conclusion`:
one root cause with its confidence, ranked alternatives, and a recommendation.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from kubetriage.clients.kube import ClusterReader
from kubetriage.detect import DetectedSymptom
from kubetriage.k8s.access import KubeObject, clip
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import (
    Category,
    Evidence,
    EvidenceSource,
    Patch,
    PatchTarget,
    PatchType,
    Recommendation,
    RootCause,
    Step,
    Symptom,
    max_length,
)
from kubetriage.policy import ChangeScope
from kubetriage.redact import redact

MAX_EVIDENCE = 50
MAX_STEPS = 50
_SUMMARY_LIMIT = max_length(Evidence, "summary")
_DETAIL_LIMIT = max_length(Evidence, "detail")
_OUTCOME_LIMIT = max_length(Step, "outcome")
_CAUSE_LIMIT = max_length(RootCause, "summary")


@dataclass(frozen=True)
class StepDoc:
    """One documented step: what it reads, and why an engineer looks there."""

    name: str
    reads: str
    why: str


@dataclass
class Context:
    """What a playbook is given: the workload, the symptom seen on it, and a reader."""

    reader: ClusterReader
    target: WorkloadRef
    symptom: Symptom
    sightings: list[DetectedSymptom]
    pods: list[KubeObject]
    workload: KubeObject | None
    now: datetime
    # How long a climb to the memory limit must last to be a leak; None: the analysis' default.
    leak_min_climb_seconds: float | None = None

    @property
    def namespace(self) -> str:
        """The workload's namespace."""
        return self.target.namespace

    @property
    def container(self) -> str | None:
        """The container most sightings name (the first when tied)."""
        names = [s.container for s in self.sightings if s.container]
        return max(names, key=names.count) if names else None


@dataclass
class Investigation:
    """The trace a playbook leaves: steps in order, and evidence (always redacted)."""

    steps: list[Step] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)

    def step(self, name: str, outcome: str) -> None:
        """Record that a step ran and what it concluded."""
        if len(self.steps) < MAX_STEPS:
            self.steps.append(Step(name=name, outcome=clip(redact(outcome), _OUTCOME_LIMIT)))

    def add_evidence(self, source: EvidenceSource, summary: str, detail: str | None = None) -> None:
        """Record one observation; text from the cluster is redacted here, once for all."""
        if len(self.evidence) >= MAX_EVIDENCE or not summary.strip():
            return
        item = Evidence(
            source=source,
            summary=clip(redact(summary), _SUMMARY_LIMIT),
            detail=clip(redact(detail), _DETAIL_LIMIT) if detail else None,
        )
        if item not in self.evidence:
            self.evidence.append(item)


@dataclass(frozen=True)
class Conclusion:
    """A playbook's answer. `scope` says what the recommended change touches, so that the
    escalation policy, not the playbook, decides who must approve it."""

    root_cause: RootCause
    alternatives: tuple[RootCause, ...] = ()
    recommendation: Recommendation | None = None
    scope: ChangeScope = field(default_factory=ChangeScope)


@dataclass(frozen=True)
class Verdict:
    """What a playbook's decision names: the cause and the runners-up."""

    root: RootCause
    alternatives: tuple[RootCause, ...] = ()


def conclude(
    investigation: Investigation,
    step: str,
    verdict: Verdict,
    advice: tuple[Recommendation, ChangeScope],
) -> Conclusion:
    """Record the last step (the cause and the change chosen) and give the playbook's answer."""
    recommendation, scope = advice
    root = verdict.root
    investigation.step(
        step, f"{root.category.value} ({root.confidence:.2f}): {recommendation.summary}"
    )
    return Conclusion(root, verdict.alternatives, recommendation, scope)


# The rollback of a recommendation whose command changes nothing.
INSPECT_ONLY = "Nothing to undo: the command only reads."
_RECOMMENDATION_TEXTS = ("summary", "command", "rollback", "validation")
PATCH_LIMIT = max_length(Patch, "content")


def recommendation(**fields: Any) -> Recommendation:
    """A Recommendation with every text redacted and clipped to the CRD's limits: text built
    from the cluster (images, refusal messages) can be any length and carry anything. The one
    way every playbook builds its recommendations."""
    for key in _RECOMMENDATION_TEXTS:
        value = fields.get(key)
        if isinstance(value, str):
            fields[key] = clip(redact(value), max_length(Recommendation, key))
    return Recommendation(**fields)


def strategic_patch(target: WorkloadRef, body: dict[str, Any]) -> Patch | None:
    """A strategic merge patch of the target, or None when it cannot be shown as it is: too
    long for a report, or carrying something redaction would change (a patch must apply as
    written, so a redacted one is worse than none)."""
    return object_patch(
        PatchTarget(
            api_version=target.api_version,
            kind=target.kind,
            name=target.name,
            namespace=target.namespace,
        ),
        body,
        PatchType.STRATEGIC,
    )


def object_patch(target: PatchTarget, body: dict[str, Any], kind: PatchType) -> Patch | None:
    """A patch of any object (a ResourceQuota, say), as `strategic_patch` makes one of a
    workload; None when it cannot be shown as it is."""
    content = json.dumps(body, separators=(",", ":"))
    if len(content) > PATCH_LIMIT or redact(content) != content:
        return None
    return Patch(type=kind, target=target, content=content)


def cause(category: Category, summary: str, confidence: float) -> RootCause:
    """A RootCause with a redacted, bounded summary."""
    return RootCause(
        category=category,
        summary=clip(redact(summary), _CAUSE_LIMIT),
        confidence=round(min(1.0, max(0.0, confidence)), 2),
    )


class Playbook(ABC):
    """The runbook for one symptom."""

    symptom: ClassVar[Symptom]
    title: ClassVar[str]
    description: ClassVar[str]
    steps: ClassVar[tuple[StepDoc, ...]]
    categories: ClassVar[tuple[Category, ...]]

    @abstractmethod
    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over `context`, recording into `investigation`."""

    def to_markdown(self) -> str:
        """This playbook as a section of docs/playbooks.md."""
        lines = [f"## {self.title}", "", self.description.strip(), "", "Steps:", ""]
        lines += [
            f"{i}. **{s.name}** — reads {s.reads}. {s.why}" for i, s in enumerate(self.steps, 1)
        ]
        lines += ["", "Root causes it can name:", ""]
        lines += [f"- `{c.value}`" for c in self.categories]
        return "\n".join(lines) + "\n"
