"""The CreateContainerConfigError runbook: what does the kubelet say it cannot find or allow?

The kubelet builds a container's configuration (its env, envFrom, volumes, security context)
before it asks the runtime to create it; when a ConfigMap, a Secret or one of their keys is
missing, or runAsNonRoot meets an image that runs as root, the container waits with reason
`CreateContainerConfigError` and the kubelet says why in the waiting message and in `Failed`
events (DESIGN.md section 12). The message names the category (`messages.py`); the pod spec says
which of the container's references it concerns, the object the kubelet names says what is there
(a ConfigMap's keys; for a Secret only whether it exists, its data is never read: section 8), and
pods of the workload that still run say the change came after they started. `decide.py` holds
the rules and their confidences, `advise.py` the changes.
"""

from __future__ import annotations

from typing import ClassVar

from kubetriage.k8s.access import name_of
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import (
    Conclusion,
    Context,
    Investigation,
    Playbook,
    StepDoc,
    conclude,
)
from kubetriage.playbooks.containerconfig.advise import recommend
from kubetriage.playbooks.containerconfig.decide import decide, keys_text
from kubetriage.playbooks.containerconfig.reads import (
    ConfigFacts,
    chosen_message,
    failed_events,
    references,
    running_pods,
    security_context,
    waiting_containers,
)

S_WAITING = "Read the waiting containers"
S_EVENTS = "Read the kubelet's Failed events"
S_REFERENCES = "Find the container's reference"
S_OBJECT = "Look at the object the kubelet names"
S_SECURITY = "Read the security context"
S_RUNNING = "Count the pods that run"
S_FIX = "Choose the fix"


class ContainerConfigPlaybook(Playbook):
    """Names what the kubelet cannot find or allow, and the change that lets it start."""

    symptom: ClassVar[Symptom] = Symptom.CREATE_CONTAINER_CONFIG_ERROR
    title: ClassVar[str] = "CreateContainerConfigError"
    description: ClassVar[str] = (
        "A container is never created: the kubelet cannot build its configuration. The "
        "kubelet's own message names the cause: a Secret or ConfigMap the container's env, "
        "envFrom or volumes reference does not exist, one of their keys does not, or "
        "runAsNonRoot is required of an image that runs as root (or names its user so that it "
        "cannot be checked). The pod spec says which reference it is, a ConfigMap's keys say "
        "what is there (a Secret is checked only for existence, never read), and pods of the "
        "workload that still run show when the configuration changed. Anything else is the "
        "runtime's message (CreateContainerError), quoted."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_WAITING,
            "status.containerStatuses[].state.waiting of every affected pod",
            "The waiting reason (CreateContainerConfigError, CreateContainerError) and its "
            "message are what the kubelet says now.",
        ),
        StepDoc(
            S_EVENTS,
            "the pods' Failed events for the container, with their counts",
            'They carry the same message ("Error: secret \\"x\\" not found") and how often the '
            "kubelet has retried; they stand in when the pods' status carries no message.",
        ),
        StepDoc(
            S_REFERENCES,
            "the container's env, envFrom and the pod's volumes",
            "Which variable or mount needs the object or key the kubelet names, so the fix "
            "names what the app reads there.",
        ),
        StepDoc(
            S_OBJECT,
            "the ConfigMap's keys, or whether the Secret exists",
            "A missing key next to one spelt differently is a typo in the reference; a "
            "Secret's data is never read (DESIGN.md section 8).",
        ),
        StepDoc(
            S_SECURITY,
            "runAsNonRoot and runAsUser of the container and the pod, and the image",
            "The container's own setting wins over the pod's: which one requires non-root, "
            "and which user the image would run as.",
        ),
        StepDoc(
            S_RUNNING,
            "the workload's pods whose container runs",
            "A container reads its configuration only when it starts: pods that run started "
            "before the object or key went away.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "Create the object or add the key (values for a person to fill in), point the "
            "reference at the key that exists, or run as a non-root user; with a rollback and "
            "a validation.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.CONFIG_MISSING_SECRET,
        Category.CONFIG_MISSING_CONFIG_MAP,
        Category.CONFIG_MISSING_KEY,
        Category.CONFIG_RUN_AS_NON_ROOT,
        Category.CONFIG_INVALID,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods."""
        facts = _read_waiting(context, investigation)
        _read_events(context, investigation, facts)
        _find_references(context, investigation, facts)
        _look_at_object(context, investigation, facts)
        _read_security(context, investigation, facts)
        _count_running(context, investigation, facts)
        verdict = decide(facts)
        return conclude(investigation, S_FIX, verdict, recommend(facts, verdict.root.category))


# -- steps -------------------------------------------------------------------------------------


def _read_waiting(context: Context, investigation: Investigation) -> ConfigFacts:
    waiting = waiting_containers(context.pods, context.container)
    container = context.container or (waiting[0].container if waiting else "")
    facts = ConfigFacts(context.target, container, waiting)
    if not waiting:
        investigation.step(S_WAITING, "No affected pod's container waits to be created any more.")
        return facts
    texts = list(dict.fromkeys(w.message.text for w in waiting if w.message is not None))
    reasons = "/".join(sorted({w.reason for w in waiting}))
    summary = f"container {container} of {len(facts.waiting_pods)} pod(s) waits in {reasons}"
    investigation.add_evidence(
        EvidenceSource.POD_STATUS,
        summary + (f": {texts[0]}" if texts else " with no message"),
        "\n".join(texts[1:4]) or None,
    )
    investigation.step(
        S_WAITING,
        summary[0].upper()
        + summary[1:]
        + (f"; the kubelet says: {texts[0]}." if texts else "; the kubelet left no message."),
    )
    return facts


def _read_events(context: Context, investigation: Investigation, facts: ConfigFacts) -> None:
    pods = facts.waiting_pods or [name_of(p) for p in context.pods]
    if pods and facts.container:
        facts.event_messages = failed_events(
            context.reader, context.namespace, pods, facts.container
        )
    facts.message = chosen_message(facts)
    if not facts.event_messages:
        investigation.step(
            S_EVENTS,
            "No Failed events about the container remain (they expire an hour after their "
            "last update).",
        )
        return
    message, count = facts.event_messages.most_common(1)[0]
    investigation.add_evidence(EvidenceSource.EVENTS, f"kubelet Failed (x{count}): {message}")
    investigation.step(
        S_EVENTS,
        f"{sum(facts.event_messages.values())} Failed event(s); the most frequent reads: {message}",
    )


def _find_references(context: Context, investigation: Investigation, facts: ConfigFacts) -> None:
    message = facts.message
    if message is None or message.reference is None or not context.pods:
        investigation.step(S_REFERENCES, "The kubelet names no ConfigMap or Secret.")
        return
    pod = next((p for p in context.pods if name_of(p) in facts.waiting_pods), context.pods[0])
    facts.refs = references(context.reader, context.namespace, pod, facts.container, message)
    if not facts.refs:
        investigation.step(
            S_REFERENCES,
            f"The container's spec does not reference {message.reference} directly (another "
            "container of the pod, or a projected volume, may).",
        )
        return
    users = ", ".join(sorted({ref.used_by for ref in facts.refs}))
    optional = [ref for ref in facts.refs if ref.optional]
    summary = f"container {facts.container} reads {message.reference} as {users}"
    if optional:
        summary += " (marked optional)"
    investigation.add_evidence(EvidenceSource.POD_SPEC, summary)
    investigation.step(S_REFERENCES, summary[0].upper() + summary[1:] + ".")


def _look_at_object(context: Context, investigation: Investigation, facts: ConfigFacts) -> None:
    message = facts.message
    if message is None or message.kind is None or message.name is None:
        investigation.step(S_OBJECT, "No object to look at: the message names none.")
        return
    ns, name = context.namespace, message.name
    if message.kind == "ConfigMap":
        facts.config_map_keys = context.reader.config_map_keys(ns, name)
        if facts.config_map_keys is None:
            exists = context.reader.config_map_exists(ns, name)
            found = (
                f"ConfigMap {name} does not exist in namespace {ns}"
                if exists is False
                else f"ConfigMap {name} was not readable"
            )
        else:
            found = f"ConfigMap {name} exists with keys {keys_text(facts.config_map_keys)}"
        investigation.add_evidence(EvidenceSource.CONFIG_MAP, found)
    else:
        facts.secret_exists = context.reader.secret_exists(ns, name)
        if facts.secret_exists is None and message.key is not None:
            found = (
                f"Secret {name} exists in namespace {ns}: the kubelet read it and found no key "
                f"{message.key} (kubetriage reads no Secret)"
            )
        elif facts.secret_exists is None:
            found = (
                f"Secret {name} is not in namespace {ns}, as the kubelet says (kubetriage reads "
                "no Secret to confirm it)"
            )
        elif facts.secret_exists:
            found = f"Secret {name} exists in namespace {ns} (its data is not read)"
        else:
            found = f"Secret {name} does not exist in namespace {ns}"
        investigation.add_evidence(EvidenceSource.SECRET, found)
    investigation.step(S_OBJECT, found[0].upper() + found[1:] + ".")


def _read_security(context: Context, investigation: Investigation, facts: ConfigFacts) -> None:
    if facts.message is None or facts.message.category is not Category.CONFIG_RUN_AS_NON_ROOT:
        investigation.step(S_SECURITY, "Not needed: the message is not about the user it runs as.")
        return
    pod = next((p for p in context.pods if name_of(p) in facts.waiting_pods), None)
    if pod is None:
        investigation.step(S_SECURITY, "No waiting pod to read the security context from.")
        return
    facts.security = security = security_context(pod, facts.container)
    parts = [
        f"runAsNonRoot: {str(security.run_as_non_root).lower()} in {security.non_root_from}"
        if security.non_root_from
        else "runAsNonRoot is not set in the pod spec",
        f"runAsUser: {security.run_as_user} in {security.user_from}"
        if security.user_from
        else "no runAsUser is set",
        f"image {security.image}",
    ]
    summary = "; ".join(parts)
    investigation.add_evidence(EvidenceSource.POD_SPEC, summary)
    investigation.step(S_SECURITY, summary[0].upper() + summary[1:] + ".")


def _count_running(context: Context, investigation: Investigation, facts: ConfigFacts) -> None:
    if not facts.container:
        investigation.step(S_RUNNING, "No container to count.")
        return
    facts.running_pods, facts.all_pods = running_pods(context.reader, facts.target, facts.container)
    if not facts.running_pods:
        investigation.step(
            S_RUNNING,
            f"None of the workload's {facts.all_pods} pod(s) runs {facts.container}.",
        )
        return
    oldest_pod, started = facts.running_pods[0]
    summary = (
        f"{len(facts.running_pods)} of {facts.all_pods} pods run {facts.container}; the "
        f"earliest, {oldest_pod}, started at {started}"
    )
    investigation.add_evidence(EvidenceSource.WORKLOAD, summary)
    investigation.step(S_RUNNING, summary + ".")
