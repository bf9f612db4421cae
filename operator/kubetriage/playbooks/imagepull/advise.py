"""The change an engineer makes for each ImagePull category, as a patch or a command.

Every recommendation says how to undo it and how to tell that it worked. Image changes are
strategic merge patches against the workload's pod template, keyed by container name; credential
changes name the Secret by name only (the operator never reads Secret data, and commands never
carry a password: the Secret is made from a docker config file).

With imagePullPolicy Never the fix follows where the image is: a registry that has it (a kubelet
pulled it) makes IfNotPresent right; an image that only other nodes hold is not fixed by a
policy no registry can serve, so the pods are pinned where it is (or it is loaded onto their
nodes); an image on no node must be loaded or pushed, and then IfNotPresent pulls it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubetriage.k8s.access import as_list
from kubetriage.k8s.owners import TEMPLATED_KINDS, WorkloadRef
from kubetriage.models import Category, Patch, Recommendation
from kubetriage.playbooks.base import recommendation, strategic_patch
from kubetriage.playbooks.imagepull.messages import (
    invalid_reason,
    parse_image,
    suggested_reference,
)
from kubetriage.playbooks.imagepull.reads import Credentials, NodePlacement, Revisions
from kubetriage.policy import ChangeScope, Touch


@dataclass(frozen=True)
class PullFacts:
    """Everything the recommendation is built from."""

    target: WorkloadRef
    container: str
    init_container: bool
    image: str
    meaning: str = ""
    platform: bool = False
    revisions: Revisions = field(default_factory=Revisions)
    credentials: Credentials = field(default_factory=Credentials)
    placement: NodePlacement = field(default_factory=NodePlacement)
    # The template's own required nodeSelectorTerms, which a pin must keep.
    node_terms: tuple[dict[str, Any], ...] = ()


def recommend(category: Category, facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    """The recommended change for a category, and what it touches."""
    builders = {
        Category.IMAGEPULL_NOT_FOUND: _not_found,
        Category.IMAGEPULL_UNAUTHORIZED: _unauthorized,
        Category.IMAGEPULL_REGISTRY_UNREACHABLE: _unreachable,
        Category.IMAGEPULL_RATE_LIMITED: _rate_limited,
        Category.IMAGEPULL_INVALID_REFERENCE: _invalid,
        Category.IMAGEPULL_NEVER_PULL_MISSING: _never_pull,
    }
    return builders.get(category, _not_found)(facts)


# -- per category ------------------------------------------------------------------------------


def _not_found(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    if facts.platform:
        return _no_platform_variant(facts)
    back = _image_back(facts, f"{facts.image} does not exist in its registry")
    if back is not None:
        return back
    ref = parse_image(facts.image)
    repo = ref.name if ref else facts.image
    return recommendation(
        summary=f"Push {facts.image} to the registry, or point container {facts.container} at a "
        f"tag that exists in {repo} (list them with `crane ls {repo}`).",
        command=_set_image(facts, f"{repo}:<existing tag>"),
        rollback=f"Set the image back with {_set_image(facts, facts.image)}.",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.IMAGE}))


def _no_platform_variant(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    placement = facts.placement
    failing = {platform for _, platform in placement.platforms}
    wanted = placement.platforms_text()
    back = _image_back(facts, f"{facts.image} has no variant for {wanted}")
    if back is not None:
        return back
    every = sorted(failing | {platform for _, _, platform in placement.runs_on})
    build = (
        f"docker buildx build --platform {','.join(every) or '<os/arch,...>'} "
        f"-t {facts.image} --push ."
    )
    runs = [r for r in placement.runs_on if failing and r[2] not in failing]
    if runs:
        pod, node, platform = runs[0]
        arch = platform.rsplit("/", 1)[-1]
        patch = _template_patch(facts, {"nodeSelector": {"kubernetes.io/arch": arch}})
        return recommendation(
            summary=f"{facts.image} has no variant for {wanted}: keep the pods on {arch} nodes "
            f"(nodeSelector kubernetes.io/arch={arch}), where pod {pod} runs it on {arch} "
            f"(node {node}), or publish it for every platform the nodes have: {build}",
            patch=patch,
            command=None if patch else build,
            rollback=f"kubectl patch {_kind_name(facts.target)} -n {facts.target.namespace} "
            '--type=json -p \'[{"op":"remove","path":"/spec/template/spec/nodeSelector/'
            "kubernetes.io~1arch\"}]'",
            validation=_validation(facts),
        ), ChangeScope(touches=frozenset({Touch.SCHEDULING}))
    return recommendation(
        summary=f"{facts.image} has no variant for {wanted}: publish it for that platform too "
        f"({build}), or keep the pods on nodes of a platform it has (nodeSelector "
        "kubernetes.io/arch); the command lists the platforms it has.",
        command=f"docker buildx imagetools inspect {facts.image}",
        rollback="Nothing to roll back: the inspection changes nothing.",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.IMAGE}))


def _never_pull(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    placement = facts.placement
    waiting = ", ".join(placement.failing_nodes) or "the nodes the pods run on"
    load = _load_hint(facts)
    validation = _validation(facts, reason="ErrImageNeverPull", what="ErrImageNeverPull event")
    policy = _container_patch(facts, {"imagePullPolicy": "IfNotPresent"})
    if_not_present = {
        "patch": policy,
        "command": None if policy else _set_policy_hint(facts),
        "rollback": f"Set imagePullPolicy of {facts.container} back to Never.",
        "validation": validation,
    }
    if placement.registry_pull:
        return recommendation(
            summary=f"Set imagePullPolicy of container {facts.container} to IfNotPresent: pod "
            f"{placement.registry_pull[0]} pulled {facts.image} from its registry, so the "
            f"kubelet on {waiting} can pull it too; with Never it runs only an image already "
            "on its node.",
            **if_not_present,
        ), ChangeScope(touches=frozenset({Touch.IMAGE}))
    if placement.failing_holders:
        node = placement.failing_holders[0]
        ref = parse_image(facts.image)
        return recommendation(
            summary=f"Node {node} lists {facts.image}, yet its kubelet reports it not present "
            "to this pod. Check that it is still there (image garbage collection removes "
            "unused images; then load it again: "
            f"{load}); if it is, give the pod the pull secret the image was pulled with "
            "(imagePullSecrets): since 1.35 the kubelet lets a pod use an image pulled with "
            "credentials only when it presents them.",
            command=f"kubectl debug node/{node} -it --image=busybox:1.36 -- chroot /host "
            f"crictl images {ref.name if ref else facts.image}",
            rollback="Nothing to roll back: the check changes nothing (delete the "
            f"node-debugger-{node}-* pod it leaves).",
            validation=validation,
        ), ChangeScope()
    if placement.elsewhere and facts.target.kind == "DaemonSet":
        # A DaemonSet runs on every node: pinning it would only drop the others.
        holders = ", ".join(placement.elsewhere)
        return recommendation(
            summary=f"Load {facts.image} onto {waiting}: node(s) {holders} hold it, the "
            "DaemonSet's pods on the others cannot start, and imagePullPolicy Never forbids "
            f"pulling it. {load}. Or push it to a registry the nodes can pull from and set "
            f"imagePullPolicy of container {facts.container} to IfNotPresent.",
            command=load,
            rollback="Nothing to roll back in the cluster: the load only adds an image to the "
            f"nodes (remove it with `crictl rmi {facts.image}` there).",
            validation=validation,
        ), ChangeScope(touches=frozenset({Touch.NODES}))
    if placement.elsewhere:
        holders = ", ".join(placement.elsewhere)
        patch = _template_patch(facts, {"affinity": _pin(facts.node_terms, placement.elsewhere)})
        undo = (
            f"kubectl rollout undo {_kind_name(facts.target)} -n {facts.target.namespace}"
            if facts.target.kind in {"Deployment", "StatefulSet", "DaemonSet"}
            else "Remove the nodeAffinity the patch added."
        )
        return recommendation(
            summary=f"Run the pods where the image is: node(s) {holders} hold {facts.image}; "
            f"the pods wait on {waiting}, where it is not, and imagePullPolicy Never forbids "
            f"pulling it. Pin them to {holders} (the patch), or load the image onto {waiting}: "
            f"{load}. IfNotPresent would help only if a registry had {facts.image}, and no "
            f"Pulled event in namespace {facts.target.namespace} shows a kubelet fetching it.",
            patch=patch,
            command=None if patch else load,
            rollback=undo,
            validation=validation,
        ), ChangeScope(touches=frozenset({Touch.SCHEDULING}))
    if placement.nodes_read:
        capped = ", ".join(name for name, _ in placement.capped)
        unlisted = (
            f" (node(s) {capped} list as many images as the kubelet reports, so check there "
            "first with `crictl images`)"
            if capped
            else ""
        )
        return recommendation(
            summary=f"No node lists {facts.image}{unlisted}: load it onto {waiting} ({load}), "
            "or push it to a registry the nodes can pull from and set imagePullPolicy of "
            f"container {facts.container} to IfNotPresent (the patch), so the kubelet pulls it "
            "wherever the pods land.",
            **if_not_present,
        ), ChangeScope(touches=frozenset({Touch.IMAGE}))
    ref = parse_image(facts.image)
    return recommendation(
        summary=f"Find the nodes that hold {facts.image} (the snapshot has no nodes), then pin "
        f"the pods to them or load it onto {waiting} ({load}); set imagePullPolicy "
        "IfNotPresent only if a registry has it: with Never the kubelet runs only an image "
        "already on its node.",
        command="kubectl get nodes -o custom-columns=NODE:.metadata.name,"
        f"IMAGES:.status.images[*].names | grep -F {ref.name if ref else facts.image}",
        rollback="Nothing to roll back: the command only reads.",
        validation=validation,
    ), ChangeScope()


def _unauthorized(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    creds = facts.credentials
    ref = parse_image(facts.image)
    server = ref.registry if ref else "<registry>"
    scope = ChangeScope(touches=frozenset({Touch.IMAGE_PULL_SECRETS}))
    hint = _registry_hint(server)
    if creds.missing:
        name = creds.missing[0]
        return recommendation(
            summary=f"Create the pull secret {name} in namespace {facts.target.namespace}: the pod "
            f"references it but it does not exist, so the kubelet pulled from {server} without "
            "credentials." + hint,
            command=_create_secret(name, facts.target.namespace, server),
            rollback=f"kubectl delete secret {name} -n {facts.target.namespace}",
            validation=_validation(facts, f"kubectl get secret {name} -n {facts.target.namespace}"),
        ), scope
    if not creds.configured:
        name = creds.neighbour_secret or f"{_secret_name(server)}-pull"
        origin = (
            f"{name}, which other pods in the namespace use for {server}"
            if creds.neighbour_secret
            else f"a new pull secret {name}"
        )
        patch = _template_patch(facts, {"imagePullSecrets": [{"name": name}]})
        make = (
            ""
            if creds.neighbour_secret
            else (f" Create it first: {_create_secret(name, facts.target.namespace, server)}.")
        )
        return recommendation(
            summary=f"Neither the pod nor ServiceAccount {creds.service_account} has "
            f"imagePullSecrets: add {origin} to the pod template.{make}{hint}",
            patch=patch,
            command=None if patch else _create_secret(name, facts.target.namespace, server),
            rollback=f"Remove imagePullSecrets from the pod template: kubectl patch "
            f"{_kind_name(facts.target)} -n {facts.target.namespace} --type=json -p "
            '\'[{"op":"remove","path":"/spec/template/spec/imagePullSecrets"}]\'',
            validation=_validation(facts),
        ), scope
    names = ", ".join(creds.configured)
    first = creds.configured[0]
    repository = ref.repository if ref else facts.image
    return recommendation(
        summary=f"The registry {server} refused the credentials in {names}: renew them (expired "
        f"or rotated token) and make sure that account may pull {repository}." + hint,
        command=_create_secret(first, facts.target.namespace, server, replace=True),
        rollback=f"Re-apply the previous {first} Secret from your secret store.",
        validation=_validation(facts),
    ), scope


def _unreachable(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    ref = parse_image(facts.image)
    previous = parse_image(facts.revisions.previous_image or "")
    if ref and previous and previous.registry != ref.registry and facts.revisions.previous_healthy:
        back = _image_back(
            facts,
            f"this revision moved the image to {ref.registry}, which the "
            f"nodes cannot reach ({facts.meaning}), from {previous.registry}",
        )
        if back is not None:
            return back
    host = ref.registry if ref else "<registry>"
    target = "registry-1.docker.io" if host == "docker.io" else host
    tls = "certificate" in facts.meaning or "TLS" in facts.meaning or "HTTP" in facts.meaning
    fix = (
        "install the registry's CA on the nodes (containerd: /etc/containerd/certs.d/"
        f"{host}/hosts.toml) or fix its certificate"
        if tls
        else "fix the DNS record, firewall or proxy between the nodes and the registry, or bring "
        "the registry back"
    )
    return recommendation(
        summary=f"The nodes cannot reach {host}: {facts.meaning}. Check from inside the cluster, "
        f"then {fix}; the kubelet retries the pull on its own.",
        command=f"kubectl run registry-check -n {facts.target.namespace} --rm -i --restart=Never "
        f"--image=curlimages/curl -- curl -sSv https://{target}/v2/",
        rollback="Nothing to roll back: the check pod deletes itself.",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.NODES}) if tls else frozenset())


def _rate_limited(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    ref = parse_image(facts.image)
    host = ref.registry if ref else "the registry"
    creds = facts.credentials
    if creds.configured:
        mirror = f"<your registry>/{ref.repository}:{ref.version}" if ref else "<mirror>"
        return recommendation(
            summary=f"{host} rate-limits even the account in {', '.join(creds.configured)}: "
            f"mirror {facts.image} into a registry you run (or a pull-through cache) and use it.",
            command=f"crane copy {facts.image} {mirror}",
            rollback=f"Keep pulling {facts.image} from {host}; the limit resets within hours.",
            validation=_validation(facts),
        ), ChangeScope(touches=frozenset({Touch.IMAGE}))
    name = f"{_secret_name(host)}-pull"
    patch = _template_patch(facts, {"imagePullSecrets": [{"name": name}]})
    return recommendation(
        summary=f"Anonymous pulls from {host} hit its rate limit: pull with an account "
        f"(pull secret {name}) or from a mirror. Create the secret: "
        f"{_create_secret(name, facts.target.namespace, host)}.",
        patch=patch,
        command=None if patch else _create_secret(name, facts.target.namespace, host),
        rollback=f"Remove imagePullSecrets {name} from the pod template.",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.IMAGE_PULL_SECRETS}))


def _invalid(facts: PullFacts) -> tuple[Recommendation, ChangeScope]:
    why = invalid_reason(facts.image)
    back = _image_back(facts, f"{facts.image!r} is not a valid image reference: {why}")
    if back is not None:
        return back
    fixed = suggested_reference(facts.image) or "<registry>/<repository>:<tag>"
    return recommendation(
        summary=f"Set a valid image on container {facts.container}: {facts.image!r} is rejected "
        f"because {why}.",
        command=_set_image(facts, fixed),
        rollback=f"Nothing to restore: the invalid reference never ran (`kubectl rollout undo "
        f"{_kind_name(facts.target)} -n {facts.target.namespace}` returns to it if needed).",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.IMAGE}))


# -- building blocks ---------------------------------------------------------------------------


def _image_back(facts: PullFacts, why: str) -> tuple[Recommendation, ChangeScope] | None:
    """Set the image back to the previous revision's, when that one is known to have run."""
    revisions = facts.revisions
    previous = revisions.previous_image
    if not previous or previous == facts.image or parse_image(previous) is None:
        return None
    ran = "which ran" if revisions.previous_healthy else "whose health is unknown"
    undo = ""
    if facts.target.kind == "Deployment" and revisions.previous is not None:
        undo = (
            f" Or roll the whole template back: kubectl rollout undo deployment/"
            f"{facts.target.name} -n {facts.target.namespace} --to-revision={revisions.previous}."
        )
    patch = _container_patch(facts, {"image": previous})
    return recommendation(
        summary=f"Set container {facts.container} back to {previous} (revision "
        f"{revisions.previous}, {ran}): {why}.{undo}",
        patch=patch,
        command=None if patch else _set_image(facts, previous),
        rollback=f"Once the image is fixed, {_set_image(facts, facts.image)}",
        validation=_validation(facts),
    ), ChangeScope(touches=frozenset({Touch.IMAGE}))


def _container_patch(facts: PullFacts, fields: dict[str, str]) -> Patch | None:
    key = "initContainers" if facts.init_container else "containers"
    return _template_patch(facts, {key: [{"name": facts.container, **fields}]})


def _template_patch(facts: PullFacts, pod_spec: dict[str, object]) -> Patch | None:
    """A strategic merge patch of the pod spec (a Job's template is immutable: no patch)."""
    target = facts.target
    if target.kind in TEMPLATED_KINDS:
        body: dict[str, object] = {"spec": {"template": {"spec": pod_spec}}}
    elif target.kind == "Pod" and _only_images(pod_spec):
        body = {"spec": pod_spec}
    else:
        return None
    return strategic_patch(target, body)


def _only_images(pod_spec: dict[str, object]) -> bool:
    """A running pod's spec is immutable except its containers' images."""
    lists = [pod_spec.get(k) for k in pod_spec]
    return set(pod_spec) <= {"containers", "initContainers"} and all(
        isinstance(items, list) and all(set(c) <= {"name", "image"} for c in items)
        for items in lists
    )


def _pin(terms: tuple[dict[str, Any], ...], nodes: tuple[str, ...]) -> dict[str, Any]:
    """A required node affinity to `nodes` by name, ANDed into each of the template's own
    terms (a strategic merge replaces the list of terms, so it must carry them)."""
    field = {"key": "metadata.name", "operator": "In", "values": list(nodes)}
    pinned = [{**t, "matchFields": [*as_list(t.get("matchFields")), field]} for t in terms] or [
        {"matchFields": [field]}
    ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": pinned}
        }
    }


def _load_hint(facts: PullFacts) -> str:
    """How an image gets onto the nodes the pods wait on, without a registry."""
    placement, image = facts.placement, facts.image
    nodes = ",".join(placement.failing_nodes) or "<node>"
    if placement.tool == "kind":
        name = f" --name {placement.cluster}" if placement.cluster not in {None, "kind"} else ""
        return f"kind load docker-image {image}{name} --nodes {nodes}"
    if placement.tool == "minikube":
        profile = f" -p {placement.cluster}" if placement.cluster not in {None, "minikube"} else ""
        return f"minikube image load {image}{profile}"
    return (
        f"docker save {image} -o image.tar, then on each node `ctr -n k8s.io images import "
        "image.tar` (containerd) or `podman load -i image.tar` (CRI-O)"
    )


def _kind_name(target: WorkloadRef) -> str:
    return f"{target.kind.lower()}/{target.name}"


def _set_image(facts: PullFacts, image: str) -> str:
    return (
        f"kubectl set image {_kind_name(facts.target)} {facts.container}={image} "
        f"-n {facts.target.namespace}"
    )


def _set_policy_hint(facts: PullFacts) -> str:
    return (
        f"kubectl edit {_kind_name(facts.target)} -n {facts.target.namespace}  "
        f"# containers[{facts.container}].imagePullPolicy: IfNotPresent"
    )


def _create_secret(name: str, namespace: str, server: str, *, replace: bool = False) -> str:
    command = (
        f"kubectl create secret generic {name} -n {namespace} "
        "--type=kubernetes.io/dockerconfigjson "
        f"--from-file=.dockerconfigjson=<docker config.json with a login to {server}>"
    )
    return command + (" --dry-run=client -o yaml | kubectl apply -f -" if replace else "")


def _secret_name(host: str) -> str:
    first = (
        "dockerhub"
        if host == "docker.io"
        else host.split(":", maxsplit=1)[0].split(".", maxsplit=1)[0]
    )
    return re.sub(r"[^a-z0-9-]", "-", first.lower()).strip("-") or "registry"


def _registry_hint(host: str) -> str:
    if ".dkr.ecr." in host:
        return (
            " ECR usually authorizes through the node's IAM role: it needs "
            "ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on this repository."
        )
    if host.endswith("gcr.io") or host.endswith("-docker.pkg.dev"):
        return (
            " GCR/Artifact Registry authorize the node's service account: it needs "
            "roles/artifactregistry.reader on the repository's project."
        )
    if host.endswith(".azurecr.io"):
        return (
            " On AKS, `az aks update --attach-acr` grants the cluster's kubelet identity "
            "AcrPull instead of a secret."
        )
    return ""


def _validation(
    facts: PullFacts,
    first: str | None = None,
    *,
    reason: str = "Failed",
    what: str = "'Failed to pull image'",
) -> str:
    target = facts.target
    steps = [first] if first else []
    if target.kind in {"Deployment", "StatefulSet", "DaemonSet"}:
        steps.append(
            f"kubectl rollout status {_kind_name(target)} -n {target.namespace} --timeout=10m"
        )
    steps.append(
        f"kubectl get events -n {target.namespace} --field-selector "
        f"reason={reason} --sort-by=.lastTimestamp shows no new {what} "
        f"for {facts.image}; the pods' {facts.container} container is Running"
    )
    return "; then ".join(steps)
