"""The ImagePullBackOff runbook: what did the registry say, and what ran before?

Decision rules (DESIGN.md section 3):
- The cause is read from the runtime's words: the kubelet's `Failed` events ("Failed to pull
  image ...", `InspectFailed`, `ErrImageNeverPull`) and the waiting message while it still holds
  the error (`ErrImagePull`, `InvalidImageName`). Several pods or messages may disagree (one node
  cannot resolve the registry, another can): the category seen most often, newest on a tie, wins,
  and the others become alternatives.
- Docker Hub answers "pull access denied ... repository does not exist or may require 'docker
  login'" for a private repository and for a missing one alike. We name Unauthorized (the words
  the registry used), and NotFound as the alternative, unless the revision history says more:
  when the last healthy revision pulled the same repository, it exists and Unauthorized is
  firmer; when this revision changed the repository name, a typo (NotFound) is the likelier
  story and leads.
- Since Kubernetes 1.32 the back-off waiting message keeps the last pull error
  (`Back-off pulling image "x": ErrImagePull: ...`, for every pull error by 1.36): it is read
  like the error itself. When events have aged out and only a bare `Back-off pulling image`
  remains, nothing names the cause: a missing pull secret (the kubelet's
  `FailedToRetrieveImagePullSecret`) makes it Unauthorized; otherwise a tag changed in this
  revision makes NotFound the likeliest, at low confidence, with the other categories as
  alternatives. The summary says the registry's words were missing.
- `ErrImageNeverPull` (imagePullPolicy Never, "Container image "x" is not present with pull
  policy of Never") is NeverPullMissing: the kubelet will not pull, so what matters is where the
  image is. The nodes' `status.images` say which nodes hold it (a list the kubelet caps at 50
  images by default), the pods' `spec.nodeName` where they wait, and a `Pulled` event whether a
  registry has it. A node that lists the image and still says "not present" either lost it to
  image garbage collection or, since 1.35, holds it under credentials the pod does not present.
- A tag without a variant for the node's platform (containerd "no match for platform in
  manifest", CRI-O "no image found in manifest list for architecture ...") is NotFound for that
  platform: the nodes' architectures and the pods that do run the image elsewhere are evidence.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from kubetriage.detect import IMAGE_PULL_REASONS
from kubetriage.k8s.access import (
    as_dict,
    container_spec,
    container_status,
    dicts,
    name_of,
    pod_template,
)
from kubetriage.k8s.events import event_count, event_time, events_about
from kubetriage.k8s.history import Revision, replica_sets_of, revision_of
from kubetriage.k8s.owners import controller_of
from kubetriage.k8s.time import EPOCH
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc
from kubetriage.playbooks.imagepull.advise import PullFacts, recommend
from kubetriage.playbooks.imagepull.decide import choose
from kubetriage.playbooks.imagepull.messages import (
    carries_cause,
    classify,
    invalid_reason,
    secrets_not_retrieved,
)
from kubetriage.playbooks.imagepull.reads import (
    IMAGE_LIST_CAP,
    Credentials,
    NodePlacement,
    PullMessage,
    PullReading,
    Revisions,
    neighbour_secret,
    read_placement,
    secret_names,
    template_image,
)

_PULL_EVENT_REASONS = {"Failed", "InspectFailed", "ErrImageNeverPull"}
# Waiting reasons whose message is a pull error: detection's, and the CRI errors the kubelet
# passes through (CRI-O's RegistryUnavailable, between two back-offs).
_PULL_WAITING_REASONS = IMAGE_PULL_REASONS | {"RegistryUnavailable"}

S_WAITING = "Read the waiting container"
S_EVENTS = "Read the kubelet's pull events"
S_CLASSIFY = "Classify the registry's answer"
S_REVISION = "Compare with the previous revision"
S_CREDENTIALS = "Check the pull credentials"
S_NODES = "Find the nodes the pods wait on"
S_FIX = "Choose the fix"


class ImagePullPlaybook(Playbook):
    """Names why the image cannot be pulled and the change that gets it running again."""

    symptom: ClassVar[Symptom] = Symptom.IMAGE_PULL_BACK_OFF
    title: ClassVar[str] = "ImagePullBackOff"
    description: ClassVar[str] = (
        "A container cannot start because its image cannot be pulled. The registry's own answer, "
        "as the kubelet and the container runtime (containerd or CRI-O) report it, names the "
        "cause: a tag or repository that does not exist, refused credentials, a registry the "
        "nodes cannot reach, a pull rate limit, a reference that does not parse, or, with "
        "imagePullPolicy Never, an image that is not on the node. The revision history names "
        "the image that last ran, the pull secrets of the pod and its ServiceAccount are "
        "checked by name (never by content), and the nodes say which of them hold the image "
        "and what platform they are."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = (
        StepDoc(
            S_WAITING,
            "status.containerStatuses[].state.waiting and the container's image "
            "in every affected pod",
            "The waiting reason (ErrImagePull, ImagePullBackOff, "
            "InvalidImageName, ErrImageNeverPull) and, while the pull error is fresh, its "
            "message are the first facts.",
        ),
        StepDoc(
            S_EVENTS,
            "the pods' Failed, InspectFailed, ErrImageNeverPull and "
            "FailedToRetrieveImagePullSecret events",
            "`kubectl describe pod` shows the "
            'runtime\'s full error ("Failed to pull image ..."); once the kubelet backs off, '
            'its events only say "Back-off pulling image" (since Kubernetes 1.32 the waiting '
            "message keeps the last error after it).",
        ),
        StepDoc(
            S_CLASSIFY,
            "the pull error texts",
            "The registry's words decide the category: "
            "manifest unknown / not found, unauthorized / denied, no such host / i/o timeout "
            "/ x509, toomanyrequests, invalid reference format, no match for platform in "
            'manifest, and the kubelet\'s own "not present with pull policy of Never".',
        ),
        StepDoc(
            S_REVISION,
            "the Deployment's ReplicaSets, newest revision first",
            "The image "
            "of the last revision that ran is the tag that last worked, and the safe value "
            "to set back.",
        ),
        StepDoc(
            S_CREDENTIALS,
            "the pod's and its ServiceAccount's imagePullSecrets, and whether each Secret exists",
            "Refused credentials are usually a missing, "
            "misnamed or expired pull secret; the Secret's data is never read.",
        ),
        StepDoc(
            S_NODES,
            "the affected pods' spec.nodeName, the nodes' status.images and kubernetes.io/arch, "
            "and the namespace's Pulled events",
            "With imagePullPolicy Never the kubelet runs only an image already on its node: "
            "the nodes that list it (the kubelet reports at most 50 images by default, largest "
            "first) are where the pods can run, and a kubelet that pulled it shows a registry "
            "has it. An image without a variant for a node's platform fails on that node's "
            "architecture only.",
        ),
        StepDoc(
            S_FIX,
            "the findings above",
            "Set the image back, fix or add the pull secret, "
            "fix the reference, mirror the image, pin the pods to the nodes that hold it or "
            "load it onto theirs; with a rollback and a validation.",
        ),
    )
    categories: ClassVar[tuple[Category, ...]] = (
        Category.IMAGEPULL_NOT_FOUND,
        Category.IMAGEPULL_UNAUTHORIZED,
        Category.IMAGEPULL_REGISTRY_UNREACHABLE,
        Category.IMAGEPULL_RATE_LIMITED,
        Category.IMAGEPULL_INVALID_REFERENCE,
        Category.IMAGEPULL_NEVER_PULL_MISSING,
    )

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods."""
        reading = _read_waiting(context, investigation)
        _read_events(context, investigation, reading)
        _classify(investigation, reading)
        revisions = _compare_revisions(context, investigation, reading)
        credentials = _check_credentials(context, investigation, reading)
        placement = _check_nodes(context, investigation, reading)
        return _decide(context, investigation, reading, revisions, credentials, placement=placement)


# -- steps -------------------------------------------------------------------------------------


def _read_waiting(context: Context, investigation: Investigation) -> PullReading:
    sightings = [s for s in context.sightings if s.symptom is Symptom.IMAGE_PULL_BACK_OFF]
    container = context.container or next((s.container for s in sightings if s.container), "")
    init = any(s.init_container for s in sightings if s.container == container)
    pods = context.pods
    image = str(container_spec(pods[0], container or None).get("image") or "") if pods else ""
    reading = PullReading(container or "", init, image)
    for pod in pods:
        status = container_status(pod, container or None)
        waiting = as_dict(as_dict(status.get("state")).get("waiting"))
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        if reason:
            reading.reasons[reason] += 1
        if reason in _PULL_WAITING_REASONS and carries_cause(message):
            reading.messages.append(PullMessage(message, EvidenceSource.POD_STATUS, 1, context.now))
        if not reading.image:
            reading.image = str(status.get("image") or "")
    reasons = ", ".join(f"{r} on {n} pod(s)" for r, n in reading.reasons.most_common()) or "none"
    if not context.pods:
        investigation.step(
            S_WAITING,
            "No affected pod was readable: nothing to read the image or waiting state from.",
        )
        return reading
    investigation.add_evidence(
        EvidenceSource.POD_STATUS,
        f"container {reading.container or '?'} of {len(context.pods)} pod(s) waits "
        f"({reasons}) for image {reading.image or '(unknown)'}",
        "\n".join(list(dict.fromkeys(m.text for m in reading.messages))[:3]) or None,
    )
    investigation.step(
        S_WAITING,
        f"Container {reading.container or '?'} waits ({reasons}) for "
        f"image {reading.image or '(unknown)'}; "
        f"{len(reading.messages)} waiting message(s) carry the pull error.",
    )
    return reading


def _read_events(context: Context, investigation: Investigation, reading: PullReading) -> None:
    names = {name_of(p) for p in context.pods}
    events = events_about(context.reader, context.namespace, "Pod", names) if names else []
    pulls = 0
    for event in events:
        reason = str(event.get("reason") or "")
        message = str(event.get("message") or "")
        if reason == "FailedToRetrieveImagePullSecret":
            for secret in secrets_not_retrieved(message):
                if secret not in reading.unretrieved_secrets:
                    reading.unretrieved_secrets.append(secret)
            continue
        if reason not in _PULL_EVENT_REASONS or not carries_cause(message):
            continue
        if reading.image and '"' in message and f'"{reading.image}"' not in message:
            continue  # another container's image
        pulls += 1
        when = event_time(event) or EPOCH
        reading.messages.append(
            PullMessage(message, EvidenceSource.EVENTS, event_count(event), when)
        )
    newest = next((m for m in reading.messages if m.source is EvidenceSource.EVENTS), None)
    if newest is not None:
        investigation.add_evidence(EvidenceSource.EVENTS, f"kubelet: {newest.text}")
    if reading.unretrieved_secrets:
        investigation.add_evidence(
            EvidenceSource.EVENTS,
            "kubelet FailedToRetrieveImagePullSecret: could not read pull secret(s) "
            + ", ".join(reading.unretrieved_secrets),
        )
    if pulls:
        outcome = f"{pulls} pull error event(s); the newest reads: {newest.text if newest else ''}"
    elif events:
        outcome = (
            'Only back-off events remain ("Back-off pulling image"): the runtime\'s error '
            "has aged out of the events."
        )
    else:
        outcome = "No events about the pods remain (they expire an hour after their last update)."
    investigation.step(S_EVENTS, outcome)


def _classify(investigation: Investigation, reading: PullReading) -> None:
    for message in reading.messages:
        message.error = classify(message.text)
    classified = [m for m in reading.messages if m.error]
    if classified:
        tally = Counter(m.error.category for m in classified if m.error)
        seen = ", ".join(f"{c.value} ({n})" for c, n in tally.most_common())
        investigation.step(S_CLASSIFY, f"The pull errors name: {seen}.")
    elif reading.messages:
        investigation.step(
            S_CLASSIFY, f"The pull error names none of the known causes: {reading.messages[0].text}"
        )
    elif "InvalidImageName" in reading.reasons:
        investigation.step(
            S_CLASSIFY,
            "The waiting reason InvalidImageName says the reference "
            f"does not parse: {invalid_reason(reading.image)}.",
        )
    else:
        investigation.step(
            S_CLASSIFY,
            "No message with the registry's words remains (only "
            "back-off): the cause is inferred below at lower confidence.",
        )


def _compare_revisions(
    context: Context, investigation: Investigation, reading: PullReading
) -> Revisions:
    owner = controller_of(context.pods[0]) if context.pods else None
    if context.target.kind != "Deployment":
        investigation.step(
            S_REVISION,
            f"{context.target.kind} {context.target.name} keeps no "
            "ReplicaSet history to compare with.",
        )
        return Revisions()
    replica_sets = replica_sets_of(context.target, context.reader)
    owner_name = (owner or {}).get("name")
    failing_rs = next((rs for rs in replica_sets if name_of(rs) == owner_name), None)
    failing = revision_of(failing_rs) if failing_rs else None
    if failing is None:
        investigation.step(
            S_REVISION,
            f"The pods' ReplicaSet {owner_name or '(none)'} or its revision is not readable: "
            "no earlier image to compare with.",
        )
        return Revisions()
    older = [rs for rs in replica_sets if (revision_of(rs) or 0) < failing]
    if not older:
        investigation.step(
            S_REVISION,
            f"Revision {failing} is the oldest ReplicaSet left: no earlier image to compare with.",
        )
        return Revisions(failing=failing)
    # The ReplicaSet's own ready/available counts: an older revision's pods are gone.
    healthy = next((rs for rs in older if Revision(rs, pods=[]).healthy()), None)
    chosen = healthy or older[0]
    image = template_image(chosen, reading.container)
    revisions = Revisions(failing, revision_of(chosen), image, True if healthy else None)
    state = "ran with ready pods" if healthy else "has no ready pods on record"
    same = "the same image" if image == reading.image else f"image {image}"
    summary = (
        f"revision {revisions.previous} ({name_of(chosen)}) {state}, with {same}; "
        f"revision {failing} wants {reading.image}"
    )
    investigation.add_evidence(EvidenceSource.REPLICASET, summary)
    investigation.step(S_REVISION, summary[0].upper() + summary[1:] + ".")
    return revisions


def _check_credentials(
    context: Context, investigation: Investigation, reading: PullReading
) -> Credentials:
    # A pod's own spec, even an empty one, is what the kubelet pulls with; the template only
    # stands in when no pod is readable.
    spec = as_dict(context.pods[0].get("spec")) if context.pods else pod_template(context.workload)
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    pod_secrets = secret_names(spec.get("imagePullSecrets"))
    sa = context.reader.service_account(context.namespace, account)
    sa_secrets = secret_names((sa or {}).get("imagePullSecrets"))
    missing: list[str] = list(reading.unretrieved_secrets)
    present: list[str] = []
    for name in dict.fromkeys((*pod_secrets, *sa_secrets)):
        exists = context.reader.secret_exists(context.namespace, name)
        if exists is False and name not in missing:
            missing.append(name)
        elif exists is True and name not in missing:
            present.append(name)
    neighbour = None if pod_secrets or sa_secrets else neighbour_secret(context, reading.image)
    creds = Credentials(account, pod_secrets, sa_secrets, tuple(missing), tuple(present), neighbour)

    def listed(names: tuple[str, ...]) -> str:
        return ", ".join(names) if names else "none"

    unknown = [n for n in creds.configured if n not in missing and n not in present]
    parts = [
        f"pod imagePullSecrets: {listed(pod_secrets)}",
        f"ServiceAccount {account}"
        + (" (not readable)" if sa is None else f" imagePullSecrets: {listed(sa_secrets)}"),
    ]
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if present:
        parts.append(f"exist: {', '.join(present)}")
    if unknown:
        parts.append(f"existence unknown: {', '.join(unknown)}")
    if neighbour:
        parts.append(f"other pods here pull from the same registry with {neighbour}")
    summary = "; ".join(parts)
    investigation.add_evidence(
        EvidenceSource.SERVICE_ACCOUNT if sa else EvidenceSource.POD_SPEC,
        f"pull credentials: {summary}",
    )
    investigation.step(S_CREDENTIALS, summary[0].upper() + summary[1:] + ".")
    return creds


def _never_pull(reading: PullReading) -> bool:
    return "ErrImageNeverPull" in reading.reasons or any(
        m.error is not None and m.error.category is Category.IMAGEPULL_NEVER_PULL_MISSING
        for m in reading.messages
    )


def _no_platform_variant(reading: PullReading) -> bool:
    return any(m.error is not None and m.error.platform for m in reading.messages)


def _check_nodes(
    context: Context, investigation: Investigation, reading: PullReading
) -> NodePlacement:
    never, platform = _never_pull(reading), _no_platform_variant(reading)
    placement = read_placement(context, reading.image, images=never, platforms=platform)
    image = reading.image or "(unknown image)"
    found: list[str] = []
    if placement.waiting_on:
        where = ", ".join(f"{node} ({count})" for node, count in placement.waiting_on)
        found.append(f"{sum(c for _, c in placement.waiting_on)} pod(s) wait on node(s) {where}")
    if placement.unscheduled:
        found.append(f"{placement.unscheduled} pod(s) are bound to no node")
    if never:
        if not placement.nodes_read:
            found.append(f"the snapshot holds no nodes: which of them hold {image} is unknown")
        elif placement.holders:
            found.append(f"node(s) {', '.join(placement.holders)} list {image} in status.images")
        else:
            found.append(
                f"none of the {placement.nodes_read} node(s) lists {image} in status.images"
            )
        found += [
            f"node {node} lists {count} images, the kubelet's default cap "
            f"({IMAGE_LIST_CAP}, nodeStatusMaxImages): {image} may be on it unlisted"
            for node, count in placement.capped
        ]
        for item in found:
            investigation.add_evidence(EvidenceSource.NODE, item)
        if placement.registry_pull:
            pod, message = placement.registry_pull
            investigation.add_evidence(
                EvidenceSource.EVENTS, f"kubelet, about pod {pod}: {message}"
            )
            found.append(f"the kubelet pulled it for pod {pod} from its registry")
    elif platform:
        platforms = [f"node {node} is {platform}" for node, platform in placement.platforms]
        runs = [
            f"pod {pod} runs {image} on node {node} ({platform})"
            for pod, node, platform in placement.runs_on[:3]
        ]
        for item in (*found, *platforms, *runs):
            investigation.add_evidence(EvidenceSource.NODE, item)
        found += platforms + runs
    else:
        found.append(
            "a pull from the registry failed, so which nodes cache the image does not decide "
            "the cause"
        )
    outcome = "; ".join(found) or "No affected pod is bound to a node"
    investigation.step(S_NODES, outcome[0].upper() + outcome[1:] + ".")
    return placement


def _decide(
    context: Context,
    investigation: Investigation,
    reading: PullReading,
    revisions: Revisions,
    credentials: Credentials,
    *,
    placement: NodePlacement,
) -> Conclusion:
    primary, meaning, alternatives = choose(reading, revisions, credentials, placement)
    template = pod_template(context.workload)
    affinity = as_dict(as_dict(template.get("affinity")).get("nodeAffinity"))
    required = as_dict(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    facts = PullFacts(
        context.target,
        reading.container,
        reading.init_container,
        reading.image,
        meaning,
        _no_platform_variant(reading),
        revisions,
        credentials,
        placement,
        tuple(dicts(required.get("nodeSelectorTerms"))),
    )
    recommendation, scope = recommend(primary.category, facts)
    investigation.step(
        S_FIX, f"{primary.category.value} ({primary.confidence:.2f}): {recommendation.summary}"
    )
    return Conclusion(primary, tuple(alternatives), recommendation, scope)
