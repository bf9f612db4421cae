"""The ImagePull decision: from pull errors, revision history and credentials to one cause.

The decision rules are in the package's docstring (`imagepull/__init__.py`). Confidence follows
how directly the words name the cause: the registry's own phrase (0.9, 0.95 where nothing else
reads alike), an answer two causes share (0.6, or firmer when the revision history settles it),
a guess from history when the words are gone (0.3-0.5). Disagreeing messages lower the winner in
proportion to the dissent.
"""

from __future__ import annotations

from collections import Counter

from kubetriage.models import Category, EvidenceSource, RootCause
from kubetriage.playbooks.base import cause
from kubetriage.playbooks.imagepull.messages import PullError, invalid_reason, parse_image
from kubetriage.playbooks.imagepull.reads import (
    Credentials,
    NodePlacement,
    PullMessage,
    PullReading,
    Revisions,
)


def choose(
    reading: PullReading,
    revisions: Revisions,
    creds: Credentials,
    placement: NodePlacement | None = None,
) -> tuple[RootCause, str, list[RootCause]]:
    """The root cause, what the runtime's words mean (for the recommendation), and ranked
    alternatives."""
    image, container = reading.image or "(unknown image)", reading.container or "?"
    placement = placement or NodePlacement()
    classified = [(m, m.error) for m in reading.messages if m.error is not None]
    if classified:
        return _from_messages(classified, reading, revisions, creds, placement)
    if "ErrImageNeverPull" in reading.reasons:
        # The kubelet sets this reason for one thing only: Never, and not usable on the node.
        meaning = "imagePullPolicy is Never and the image is not on the node"
        summary = _never_pull_summary(image, container, placement)
        return cause(Category.IMAGEPULL_NEVER_PULL_MISSING, summary, 0.9), meaning, []
    if "InvalidImageName" in reading.reasons or (reading.image and not parse_image(reading.image)):
        why = invalid_reason(reading.image)
        sure = 0.9 if "InvalidImageName" in reading.reasons else 0.6
        return (
            cause(
                Category.IMAGEPULL_INVALID_REFERENCE,
                f"image {image!r} of container {container} is not a valid reference: {why}",
                sure,
            ),
            why,
            [],
        )
    words = f" (the pull error: {reading.messages[0].text})" if reading.messages else ""
    lead = f"image {image} cannot be pulled and the registry's answer is not on record{words}"
    if creds.missing:
        return (
            cause(
                Category.IMAGEPULL_UNAUTHORIZED,
                f"{lead}; pull secret(s) {', '.join(creds.missing)} do not exist, so the "
                "pull ran without credentials",
                0.5,
            ),
            "pull secret missing",
            [cause(Category.IMAGEPULL_NOT_FOUND, f"{image} may not exist", 0.2)],
        )
    changed = revisions.previous_image and revisions.previous_image != reading.image
    guesses = [
        (
            Category.IMAGEPULL_NOT_FOUND,
            0.35 if changed else 0.3,
            f"{lead}; "
            + (
                f"revision {revisions.failing} changed it from "
                f"{revisions.previous_image}, and a tag that was never pushed is "
                "the commonest cause"
                if changed
                else "a missing tag is the commonest cause"
            ),
        ),
        (
            Category.IMAGEPULL_UNAUTHORIZED,
            0.25,
            f"the registry may refuse the pull "
            f"secret(s) {', '.join(creds.configured) or '(none configured)'}",
        ),
        (Category.IMAGEPULL_REGISTRY_UNREACHABLE, 0.2, "the nodes may not reach the registry"),
        (Category.IMAGEPULL_RATE_LIMITED, 0.1, "the registry may rate-limit anonymous pulls"),
    ]
    causes = [cause(c, s, p) for c, p, s in guesses]
    return causes[0], "the registry's answer is not on record", causes[1:]


def _from_messages(
    classified: list[tuple[PullMessage, PullError]],
    reading: PullReading,
    revisions: Revisions,
    creds: Credentials,
    placement: NodePlacement,
) -> tuple[RootCause, str, list[RootCause]]:
    weight: Counter[Category] = Counter()
    newest: dict[Category, tuple[PullMessage, PullError]] = {}
    for message, error in classified:
        weight[error.category] += message.count
        if error.category not in newest or message.when > newest[error.category][0].when:
            newest[error.category] = (message, error)
    ranked = sorted(weight, key=lambda c: (weight[c], newest[c][0].when), reverse=True)
    error = newest[ranked[0]][1]
    total = sum(weight.values())
    category, confidence = error.category, error.confidence
    alternatives: list[RootCause] = []
    note = ""
    if error.ambiguous:
        category, confidence, alternatives, note = _ambiguous(reading, revisions, error)
    summary = _summary(category, error, reading, revisions, creds, placement=placement)
    if note:
        summary += f"; {note}"
    if len(ranked) > 1:
        # Pods on different nodes may see different failures: the dissent lowers the winner.
        confidence *= 0.6 + 0.4 * weight[ranked[0]] / total
    for other in ranked[1:]:
        other_error = newest[other][1]
        alternatives.append(
            cause(
                other,
                f"{weight[other]} of {total} pull error(s) read: "
                f"{other_error.meaning} ({other_error.phrase})",
                other_error.confidence * weight[other] / total,
            )
        )
    if all(message.source is EvidenceSource.POD_STATUS for message, _ in classified):
        summary += " (read from the pod status: no event in the snapshot names it)"
    return cause(category, summary, confidence), error.meaning, alternatives


def _ambiguous(
    reading: PullReading, revisions: Revisions, error: PullError
) -> tuple[Category, float, list[RootCause], str]:
    """Private or missing? The registry will not say; the revision history may."""
    now, before = parse_image(reading.image), parse_image(revisions.previous_image or "")
    alike = "this registry answers alike for a private and a missing repository"
    missing = cause(
        Category.IMAGEPULL_NOT_FOUND,
        f"{alike}: check that {reading.image} is spelled right and was pushed",
        0.45,
    )
    if now and before and now.name != before.name:
        denied = cause(
            Category.IMAGEPULL_UNAUTHORIZED,
            f"{alike}: {now.name} may be private and need a pull secret",
            0.45,
        )
        note = (
            f"revision {revisions.previous} pulled {before.name}, this one asks for {now.name} "
            f"and {alike}: a misspelt repository is the likelier story"
        )
        return Category.IMAGEPULL_NOT_FOUND, 0.55, [denied], note
    if now and before and revisions.previous_healthy:
        note = (
            f"revision {revisions.previous} pulled the same repository, so it exists: the "
            "credentials are what the registry refuses"
        )
        return (
            Category.IMAGEPULL_UNAUTHORIZED,
            0.7,
            [missing.model_copy(update={"confidence": 0.3})],
            note,
        )
    return Category.IMAGEPULL_UNAUTHORIZED, error.confidence, [missing], alike


def _summary(
    category: Category,
    error: PullError,
    reading: PullReading,
    revisions: Revisions,
    creds: Credentials,
    *,
    placement: NodePlacement,
) -> str:
    image, container = reading.image or "(unknown image)", reading.container or "?"
    ref = parse_image(reading.image)
    host = ref.registry if ref else "the registry"
    said = f"the runtime says {error.phrase!r}"
    if category is Category.IMAGEPULL_NEVER_PULL_MISSING:
        return f"{_never_pull_summary(image, container, placement)} ({said})"
    if category is Category.IMAGEPULL_NOT_FOUND and error.platform:
        text = f"image {image} of container {container} has no variant for "
        text += f"{placement.platforms_text()} ({said})"
        if placement.runs_on:
            pod, node, platform = placement.runs_on[0]
            text += f"; pod {pod} runs it on node {node} ({platform})"
        if revisions.previous_image and revisions.previous_image != reading.image:
            text += f"; revision {revisions.previous} set {revisions.previous_image}"
        return text
    if category is Category.IMAGEPULL_NOT_FOUND:
        text = f"image {image} of container {container} was not found in {host} ({said})"
        if revisions.previous_image and revisions.previous_image != reading.image:
            last = parse_image(revisions.previous_image)
            tag = last.version if last else revisions.previous_image
            ran = "last ran" if revisions.previous_healthy else "was set"
            text += (
                f"; tag {tag} ({revisions.previous_image}) {ran} in revision {revisions.previous}"
            )
        elif revisions.previous_image == reading.image and revisions.previous_healthy:
            text += (
                f"; the same image ran in revision {revisions.previous}, so it was deleted from "
                "the registry since (nodes that cached it still run it)"
            )
        return text
    if category is Category.IMAGEPULL_UNAUTHORIZED:
        if creds.missing:
            secrets = f"pull secret(s) {', '.join(creds.missing)} do not exist"
        elif creds.configured:
            secrets = f"pull secret(s) {', '.join(creds.configured)} were refused"
        else:
            secrets = (
                f"neither the pod nor ServiceAccount {creds.service_account} has imagePullSecrets"
            )
        return f"{host} refused to serve {image} to container {container} ({said}); {secrets}"
    if category is Category.IMAGEPULL_REGISTRY_UNREACHABLE:
        return f"the nodes cannot pull {image} from {host}: {error.meaning} ({said})"
    if category is Category.IMAGEPULL_RATE_LIMITED:
        who = (
            "anonymous pulls"
            if not creds.configured
            else f"pulls with {', '.join(creds.configured)}"
        )
        return f"{host} rate-limits {who}: {image} for container {container} refused ({said})"
    return (
        f"image {image!r} of container {container} is not a valid reference: "
        f"{invalid_reason(reading.image)} ({said})"
    )


def _never_pull_summary(image: str, container: str, placement: NodePlacement) -> str:
    """Where the pods wait, and which nodes list the image (DESIGN.md section 3)."""
    waiting = sum(count for _, count in placement.waiting_on)
    where = ", ".join(placement.failing_nodes)
    if placement.failing_holders:
        text = (
            f"the kubelet on node(s) {where} reports image {image} of container {container} "
            f"not present ({waiting} pod(s) wait) and imagePullPolicy Never forbids pulling it; "
            f"yet node(s) {', '.join(placement.failing_holders)} list it in status.images: it "
            "was removed since (image garbage collection), or it was pulled with credentials "
            "this pod does not present, which the kubelet checks since Kubernetes 1.35 "
            "(KubeletEnsureSecretPulledImages) and answers alike"
        )
    else:
        on = f"node(s) {where} where {waiting} pod(s) wait" if where else "the pods' node"
        text = (
            f"image {image} of container {container} is not on {on}, and imagePullPolicy "
            "Never forbids pulling it"
        )
        if placement.elsewhere:
            text += f"; node(s) {', '.join(placement.elsewhere)} list it in status.images"
        elif placement.nodes_read:
            text += f"; no node of {placement.nodes_read} lists it in status.images"
            if placement.capped:
                names = ", ".join(name for name, _ in placement.capped)
                text += (
                    f" (node(s) {names} list as many images as the kubelet reports by "
                    "default, and may hold it unlisted)"
                )
        else:
            text += "; the snapshot holds no nodes, so which nodes hold it is unknown"
    if placement.registry_pull:
        pulled_by = placement.registry_pull[0]
        text += f"; pod {pulled_by} pulled it from its registry, so the registry has it"
    return text
