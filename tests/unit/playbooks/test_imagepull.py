"""The ImagePullBackOff runbook, case by case: given these pods and kubelet events, the report
names this cause, with this evidence and this change.

Messages are the kubelet's and the runtimes' real texts (containerd 1.7 and CRI-O), with the
registries' own words (Docker Hub, GHCR, ECR, Artifact Registry, ACR, Harbor, Quay).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest

import kubeobjects
from helpers import SCENARIOS_DIR
from kubetriage.cli import main
from kubetriage.clients.snapshot import SnapshotReader
from kubetriage.diagnosis import Finding, Options, diagnose_problem, find_problems
from kubetriage.k8s.access import clip
from kubetriage.models import (
    Category,
    Evidence,
    EvidenceSource,
    Recommendation,
    Symptom,
    max_length,
)
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.imagepull.messages import classify, parse_image
from kubetriage.policy import Touch
from kubetriage.redact import redact

NS = "shop"
APP = "api"
CAPTURED = "2025-03-14T10:00:00Z"

CONTAINERD_NOT_FOUND = (
    'Failed to pull image "ghcr.io/acme/api:2.0.1": rpc error: code = NotFound desc = failed to '
    'pull and unpack image "ghcr.io/acme/api:2.0.1": failed to resolve reference '
    '"ghcr.io/acme/api:2.0.1": ghcr.io/acme/api:2.0.1: not found'
)
DOCKERD_HUB_DENIED = (
    'Failed to pull image "acme/api:2.0.1": Error response from daemon: pull access denied for '
    "acme/api, repository does not exist or may require 'docker login': denied: requested "
    "access to the resource is denied"
)
CONTAINERD_HUB_DENIED = (
    'Failed to pull image "acme/api:2.0.1": rpc error: code = Unknown desc = failed to pull and '
    'unpack image "docker.io/acme/api:2.0.1": failed to resolve reference '
    '"docker.io/acme/api:2.0.1": pull access denied, repository does not exist or may require '
    "authorization: server message: insufficient_scope: authorization failed"
)
CRIO_HARBOR_UNAUTHORIZED = (
    'Failed to pull image "harbor.acme.io/shop/api:2.0.1": rpc error: code = Unknown desc = '
    "initializing source docker://harbor.acme.io/shop/api:2.0.1: reading manifest 2.0.1 in "
    "harbor.acme.io/shop/api: unauthorized: unauthorized to access repository: shop/api, "
    "action: pull: unauthorized to access repository: shop/api, action: pull"
)
GHCR_401 = (
    'Failed to pull image "ghcr.io/acme/api:2.0.1": rpc error: code = Unknown desc = failed to '
    'pull and unpack image "ghcr.io/acme/api:2.0.1": failed to resolve reference '
    '"ghcr.io/acme/api:2.0.1": failed to authorize: failed to fetch anonymous token: unexpected '
    "status from GET request to https://ghcr.io/token?scope=repository%3Aacme%2Fapi%3Apull"
    "&service=ghcr.io: 401 Unauthorized"
)
ECR_403 = (
    'Failed to pull image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:2.0.1": rpc '
    "error: code = Unknown desc = failed to pull and unpack image "
    '"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:2.0.1": failed to resolve reference '
    '"123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:2.0.1": unexpected status from HEAD '
    "request to https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/shop/api/manifests/"
    "2.0.1: 403 Forbidden"
)
GAR_403 = (
    'Failed to pull image "europe-west1-docker.pkg.dev/acme/shop/api:2.0.1": rpc error: code = '
    'Unknown desc = failed to pull and unpack image "europe-west1-docker.pkg.dev/acme/shop/api:'
    '2.0.1": failed to resolve reference "europe-west1-docker.pkg.dev/acme/shop/api:2.0.1": '
    "failed to authorize: failed to fetch oauth token: unexpected status from GET request to "
    "https://europe-west1-docker.pkg.dev/v2/token?scope=repository%3Aacme%2Fshop%2Fapi%3Apull"
    "&service=europe-west1-docker.pkg.dev: 403 Forbidden"
)
CRIO_MANIFEST_UNKNOWN = (
    'Failed to pull image "quay.io/acme/api:2.0.1": rpc error: code = Unknown desc = '
    "initializing source docker://quay.io/acme/api:2.0.1: reading manifest 2.0.1 in "
    "quay.io/acme/api: manifest unknown"
)
ECR_NAME_UNKNOWN = (
    'Failed to pull image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/apii:2.0.1": rpc '
    "error: code = Unknown desc = Error response from daemon: name unknown: The repository with "
    "name 'shop/apii' does not exist in the registry with id '123456789012'"
)
CONTAINERD_TIMEOUT = (
    'Failed to pull image "registry.acme.internal/shop/api:2.0.1": rpc error: code = Unknown '
    'desc = failed to pull and unpack image "registry.acme.internal/shop/api:2.0.1": failed to '
    'resolve reference "registry.acme.internal/shop/api:2.0.1": failed to do request: Head '
    '"https://registry.acme.internal/v2/shop/api/manifests/2.0.1": dial tcp 10.20.0.15:443: '
    "i/o timeout"
)
CONTAINERD_X509 = (
    'Failed to pull image "registry.acme.internal/shop/api:2.0.1": rpc error: code = Unknown '
    'desc = failed to pull and unpack image "registry.acme.internal/shop/api:2.0.1": failed to '
    'resolve reference "registry.acme.internal/shop/api:2.0.1": failed to do request: Head '
    '"https://registry.acme.internal/v2/shop/api/manifests/2.0.1": tls: failed to verify '
    "certificate: x509: certificate signed by unknown authority"
)
CRIO_HTTP_REGISTRY = (
    'Failed to pull image "registry.local:5000/shop/api:2.0.1": rpc error: code = Unknown desc '
    '= pinging container registry registry.local:5000: Get "https://registry.local:5000/v2/": '
    "http: server gave HTTP response to HTTPS client"
)
CRIO_RATE_LIMIT = (
    'Failed to pull image "redis:7.2.5": rpc error: code = Unknown desc = reading manifest 7.2.5 '
    "in docker.io/library/redis: toomanyrequests: You have reached your pull rate limit. You may "
    "increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit"
)
BACK_OFF = 'Back-off pulling image "{image}"'
_EVENT_IDS = itertools.count(1)


# -- snapshot builders -----------------------------------------------------------------------


def app_container(image: str, pull_policy: str | None = None, name: str = APP) -> dict[str, Any]:
    """The api container, with an explicit imagePullPolicy when given."""
    fields = {"imagePullPolicy": pull_policy} if pull_policy else {}
    return kubeobjects.container(name, image, **fields)


def replica_set(
    revision: int,
    image: str,
    *,
    ready: int = 0,
    container: str = APP,
    pull_policy: str | None = None,
) -> dict[str, Any]:
    """A ReplicaSet of deployment/api at a revision; `ready` > 0 means it ran."""
    return kubeobjects.replica_set(
        f"{APP}-rev{revision}",
        namespace=NS,
        owner=kubeobjects.owner_reference("Deployment", APP),
        revision=revision,
        pod_spec={"containers": [app_container(image, pull_policy, container)]},
        status=kubeobjects.replica_counts(max(ready, 1), ready),
    )


def deployment(
    revision: int, image: str, *, pull_policy: str | None = None, replicas: int = 2
) -> dict[str, Any]:
    """deployment/api wanting `image` at `revision`."""
    return kubeobjects.deployment(
        APP,
        namespace=NS,
        uid="dep-uid",
        revision=revision,
        replicas=replicas,
        selector={"app": APP},
        pod_spec={"containers": [app_container(image, pull_policy)]},
        ready=None,
        unavailable=1,
    )


def pod(
    name: str,
    image: str,
    *,
    revision: int,
    reason: str = "ImagePullBackOff",
    message: str | None = None,
    pull_secrets: list[str] | None = None,
    init: bool = False,
    node: str | None = None,
    pull_policy: str | None = None,
) -> dict[str, Any]:
    """A pod of revision `revision` whose container waits on its image (on `node` when given)."""
    waiting = kubeobjects.waiting(
        reason, BACK_OFF.format(image=image) if message is None else message
    )
    field, status_field = (
        ("initContainers", "initContainerStatuses") if init else ("containers", "containerStatuses")
    )
    spec: dict[str, Any] = {
        field: [app_container(image, pull_policy)],
        "serviceAccountName": "default",
    }
    if node is not None:
        spec["nodeName"] = node
    if init:
        spec["containers"] = [kubeobjects.container("main", "busybox:1.36")]
    if pull_secrets is not None:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return kubeobjects.pod(
        name,
        namespace=NS,
        owner=kubeobjects.owner_reference("ReplicaSet", f"{APP}-rev{revision}"),
        spec=spec,
        status={
            "phase": "Pending",
            status_field: [kubeobjects.container_status(APP, waiting, image=image)],
        },
    )


def event(
    pod_name: str, reason: str, message: str, *, count: int = 1, minute: int = 50
) -> dict[str, Any]:
    """A kubelet event about a pod (legacy core/v1 shape, as the kubelet writes them)."""
    return kubeobjects.event(
        "Pod",
        pod_name,
        reason,
        message,
        namespace=NS,
        event_name=f"{pod_name}.{next(_EVENT_IDS):016x}",
        type="Normal" if reason == "BackOff" else "Warning",
        count=count,
        host="node-1",
        first=f"2025-03-14T09:{minute:02d}:00Z",
        last=f"2025-03-14T09:{minute:02d}:30Z",
    )


def pull_failure(
    pod_name: str, message: str, *, count: int = 4, minute: int = 50
) -> list[dict[str, Any]]:
    """What the kubelet writes for a failed pull: the error, then the reason echoes."""
    return [
        event(pod_name, "Failed", message, count=count, minute=minute),
        event(pod_name, "Failed", "Error: ErrImagePull", count=count, minute=minute),
        event(pod_name, "Failed", "Error: ImagePullBackOff", count=count * 3, minute=minute + 1),
    ]


def snapshot(*items: dict[str, Any]) -> SnapshotReader:
    """A snapshot of namespace shop holding `items`."""
    return kubeobjects.snapshot_reader(*items, namespace=NS, captured_at=CAPTURED)


def diagnose_image_pull(reader: SnapshotReader) -> Finding:
    """The ImagePullBackOff finding of the snapshot, through the real detect -> playbook path
    (only this symptom's playbook runs)."""
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.IMAGE_PULL_BACK_OFF]
    assert len(problems) == 1, problems
    return diagnose_problem(reader, problems[0], Options())


def single_revision(
    image: str, message: str, *, pull_secrets: list[str] | None = None
) -> SnapshotReader:
    """deployment/api at revision 1, one pod failing to pull with `message`."""
    return snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, pull_secrets=pull_secrets),
        *pull_failure("api-rev1-a", message),
    )


def new_revision(old_image: str, new_image: str, message: str | None) -> SnapshotReader:
    """deployment/api rolled from revision 6 (`old_image`) to 7 (`new_image`), which cannot pull."""
    failing = pod("api-rev7-a", new_image, revision=7)
    return snapshot(
        deployment(7, new_image),
        replica_set(6, old_image, ready=2),
        replica_set(7, new_image),
        failing,
        *(
            pull_failure("api-rev7-a", message)
            if message
            else [event("api-rev7-a", "BackOff", BACK_OFF.format(image=new_image), count=40)]
        ),
    )


def evidence_text(finding: Finding) -> str:
    return "\n".join(
        f"{e.source.value}: {e.summary} {e.detail or ''}" for e in finding.investigation.evidence
    )


# -- the runbook, per category -----------------------------------------------------------------


CASES = [
    pytest.param(
        single_revision("acme/api:2.0.1", DOCKERD_HUB_DENIED),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.6,
        Category.IMAGEPULL_NOT_FOUND,
        "docker.io refused",
        id="docker-hub-dockerd-pull-access-denied-is-ambiguous",
    ),
    pytest.param(
        new_revision("acme/api:2.0.0", "acme/api:2.0.1", CONTAINERD_HUB_DENIED),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.7,
        Category.IMAGEPULL_NOT_FOUND,
        "revision 6 pulled the same repository, so it exists",
        id="docker-hub-containerd-denied-same-repo-pulled-before",
    ),
    pytest.param(
        new_revision(
            "acme/checkout:2.0.0",
            "acme/chekout:2.0.1",
            CONTAINERD_HUB_DENIED.replace("acme/api", "acme/chekout"),
        ),
        Category.IMAGEPULL_NOT_FOUND,
        0.55,
        Category.IMAGEPULL_UNAUTHORIZED,
        "revision 6 pulled docker.io/acme/checkout, this one asks for docker.io/acme/chekout",
        id="docker-hub-denied-after-repository-rename-reads-as-typo",
    ),
    pytest.param(
        single_revision("harbor.acme.io/shop/api:2.0.1", CRIO_HARBOR_UNAUTHORIZED),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.9,
        None,
        "neither the pod nor ServiceAccount default has imagePullSecrets",
        id="harbor-crio-unauthorized",
    ),
    pytest.param(
        single_revision("ghcr.io/acme/api:2.0.1", GHCR_401, pull_secrets=["ghcr-pull"]),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.9,
        None,
        "401 Unauthorized",
        id="ghcr-containerd-401",
    ),
    pytest.param(
        single_revision("123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:2.0.1", ECR_403),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.9,
        None,
        "403 Forbidden",
        id="ecr-containerd-403",
    ),
    pytest.param(
        single_revision("europe-west1-docker.pkg.dev/acme/shop/api:2.0.1", GAR_403),
        Category.IMAGEPULL_UNAUTHORIZED,
        0.9,
        None,
        "403 Forbidden",
        id="artifact-registry-oauth-403",
    ),
    pytest.param(
        new_revision("ghcr.io/acme/api:2.0.0", "ghcr.io/acme/api:2.0.1", CONTAINERD_NOT_FOUND),
        Category.IMAGEPULL_NOT_FOUND,
        0.9,
        None,
        "tag 2.0.0 (ghcr.io/acme/api:2.0.0) last ran in revision 6",
        id="containerd-not-found-names-the-tag-that-last-worked",
    ),
    pytest.param(
        single_revision("quay.io/acme/api:2.0.1", CRIO_MANIFEST_UNKNOWN),
        Category.IMAGEPULL_NOT_FOUND,
        0.9,
        None,
        "manifest unknown",
        id="crio-manifest-unknown",
    ),
    pytest.param(
        single_revision(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/apii:2.0.1", ECR_NAME_UNKNOWN
        ),
        Category.IMAGEPULL_NOT_FOUND,
        0.9,
        None,
        "name unknown",
        id="ecr-repository-does-not-exist",
    ),
    pytest.param(
        single_revision("registry.acme.internal/shop/api:2.0.1", CONTAINERD_TIMEOUT),
        Category.IMAGEPULL_REGISTRY_UNREACHABLE,
        0.9,
        None,
        "timed out",
        id="containerd-dial-i-o-timeout",
    ),
    pytest.param(
        single_revision("registry.acme.internal/shop/api:2.0.1", CONTAINERD_X509),
        Category.IMAGEPULL_REGISTRY_UNREACHABLE,
        0.9,
        None,
        "not trusted",
        id="containerd-x509-unknown-authority",
    ),
    pytest.param(
        single_revision("registry.local:5000/shop/api:2.0.1", CRIO_HTTP_REGISTRY),
        Category.IMAGEPULL_REGISTRY_UNREACHABLE,
        0.9,
        None,
        "plain HTTP",
        id="crio-http-registry-without-tls",
    ),
    pytest.param(
        single_revision("redis:7.2.5", CRIO_RATE_LIMIT),
        Category.IMAGEPULL_RATE_LIMITED,
        0.95,
        None,
        "docker.io rate-limits anonymous pulls",
        id="crio-docker-hub-rate-limit",
    ),
]


@pytest.mark.parametrize(("reader", "category", "confidence", "alternative", "in_summary"), CASES)
def test_the_registry_answer_names_the_category(
    reader: SnapshotReader,
    category: Category,
    confidence: float,
    alternative: Category | None,
    in_summary: str,
) -> None:
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category is category, root.summary
    assert root.confidence == pytest.approx(confidence)
    assert in_summary in root.summary
    assert [a.category for a in finding.conclusion.alternatives][:1] == (
        [alternative] if alternative else []
    )
    assert finding.conclusion.recommendation is not None
    assert [s.name for s in finding.investigation.steps] == [
        s.name for s in playbook_for(Symptom.IMAGE_PULL_BACK_OFF).steps
    ]


def recommended(finding: Finding) -> Recommendation:
    recommendation = finding.conclusion.recommendation
    assert recommendation is not None, "the diagnosis recommends nothing"
    return recommendation


def patch_body(finding: Finding) -> Any:
    patch = recommended(finding).patch
    assert patch is not None, "the recommendation has no patch"
    return json.loads(patch.content)


def command_of(finding: Finding) -> str:
    command = recommended(finding).command
    assert command is not None, "the recommendation has no command"
    return command


def test_not_found_recommends_setting_back_the_image_that_last_ran() -> None:
    finding = diagnose_image_pull(
        new_revision("ghcr.io/acme/api:2.0.0", "ghcr.io/acme/api:2.0.1", CONTAINERD_NOT_FOUND)
    )
    recommendation = recommended(finding)
    assert recommendation.patch is not None
    assert recommendation.patch.target.kind == "Deployment"
    assert patch_body(finding) == {
        "spec": {
            "template": {"spec": {"containers": [{"name": APP, "image": "ghcr.io/acme/api:2.0.0"}]}}
        }
    }
    assert "kubectl rollout undo deployment/api -n shop --to-revision=6" in recommendation.summary
    assert "api=ghcr.io/acme/api:2.0.1" in (recommendation.rollback or "")
    assert "rollout status deployment/api" in (recommendation.validation or "")
    assert finding.conclusion.scope.touches == {Touch.IMAGE}
    assert "revision 6 (api-rev6) ran with ready pods" in evidence_text(finding)


def test_not_found_for_an_image_that_ran_before_says_the_tag_was_deleted() -> None:
    image = "ghcr.io/acme/api:2.0.1"
    finding = diagnose_image_pull(new_revision(image, image, CONTAINERD_NOT_FOUND))
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NOT_FOUND
    assert "the same image ran in revision 6, so it was deleted" in root.summary
    assert command_of(finding) == (
        "kubectl set image deployment/api api=ghcr.io/acme/api:<existing tag> -n shop"
    )


ACR_IMAGE = "acmeprod.azurecr.io/billing/api:3.2.0"
NOT_RETRIEVED = (
    "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed."
)


def test_unauthorized_with_a_missing_pull_secret_says_create_it() -> None:
    reader = snapshot(
        deployment(1, ACR_IMAGE),
        replica_set(1, ACR_IMAGE),
        pod("api-rev1-a", ACR_IMAGE, revision=1, pull_secrets=["acr-pull"]),
        *pull_failure("api-rev1-a", GHCR_401.replace("ghcr.io/acme/api:2.0.1", ACR_IMAGE)),
        event("api-rev1-a", "FailedToRetrieveImagePullSecret", NOT_RETRIEVED.format("acr-pull")),
    )
    finding = diagnose_image_pull(reader)
    assert finding.conclusion.root_cause.category is Category.IMAGEPULL_UNAUTHORIZED
    assert "pull secret(s) acr-pull do not exist" in finding.conclusion.root_cause.summary
    assert command_of(finding).startswith("kubectl create secret generic acr-pull -n shop")
    assert "--docker-password" not in command_of(finding)
    assert "az aks update --attach-acr" in recommended(finding).summary
    assert finding.conclusion.scope.touches == {Touch.IMAGE_PULL_SECRETS}
    assert "could not read pull secret(s) acr-pull" in evidence_text(finding)


def test_unauthorized_with_existing_secrets_says_renew_them() -> None:
    account = kubeobjects.kube_object(
        "ServiceAccount", "default", namespace=NS, imagePullSecrets=[{"name": "ghcr-sa-pull"}]
    )
    secret = kubeobjects.kube_object("Secret", "ghcr-sa-pull", namespace=NS)
    reader = snapshot(
        account,
        secret,
        deployment(1, "ghcr.io/acme/api:2.0.1"),
        replica_set(1, "ghcr.io/acme/api:2.0.1"),
        pod("api-rev1-a", "ghcr.io/acme/api:2.0.1", revision=1),
        *pull_failure("api-rev1-a", GHCR_401),
    )
    finding = diagnose_image_pull(reader)
    assert "pull secret(s) ghcr-sa-pull were refused" in finding.conclusion.root_cause.summary
    assert "imagePullSecrets: ghcr-sa-pull; exist: ghcr-sa-pull" in evidence_text(finding)
    assert "ghcr-sa-pull" in command_of(finding)
    assert command_of(finding).endswith("| kubectl apply -f -")


def test_unauthorized_without_secrets_borrows_the_one_other_pods_use_for_that_registry() -> None:
    neighbour = pod(
        "web-1", "harbor.acme.io/shop/web:1.0", revision=1, pull_secrets=["harbor-robot"]
    )
    neighbour["metadata"]["ownerReferences"] = []
    neighbour["status"] = {"phase": "Running"}
    reader = snapshot(
        neighbour,
        deployment(1, "harbor.acme.io/shop/api:2.0.1"),
        replica_set(1, "harbor.acme.io/shop/api:2.0.1"),
        pod("api-rev1-a", "harbor.acme.io/shop/api:2.0.1", revision=1),
        *pull_failure("api-rev1-a", CRIO_HARBOR_UNAUTHORIZED),
    )
    finding = diagnose_image_pull(reader)
    assert patch_body(finding) == {
        "spec": {"template": {"spec": {"imagePullSecrets": [{"name": "harbor-robot"}]}}}
    }
    assert "harbor-robot, which other pods in the namespace use" in recommended(finding).summary


def test_rate_limit_recommends_an_authenticated_pull_secret() -> None:
    finding = diagnose_image_pull(single_revision("redis:7.2.5", CRIO_RATE_LIMIT))
    pod_spec = patch_body(finding)["spec"]["template"]["spec"]
    assert pod_spec == {"imagePullSecrets": [{"name": "dockerhub-pull"}]}
    assert "kubectl create secret generic dockerhub-pull" in recommended(finding).summary
    assert finding.conclusion.scope.touches == {Touch.IMAGE_PULL_SECRETS}


def test_tls_failure_points_at_the_nodes_trust_store() -> None:
    finding = diagnose_image_pull(
        single_revision("registry.acme.internal/shop/api:2.0.1", CONTAINERD_X509)
    )
    assert "curl -sSv https://registry.acme.internal/v2/" in command_of(finding)
    assert "certs.d/registry.acme.internal/hosts.toml" in recommended(finding).summary
    assert finding.conclusion.scope.touches == {Touch.NODES}


def test_unreachable_new_registry_recommends_the_previous_registry_image() -> None:
    old = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/api:2.0.0"
    finding = diagnose_image_pull(
        new_revision(old, "registry.acme.internal/shop/api:2.0.1", CONTAINERD_TIMEOUT)
    )
    containers = patch_body(finding)["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": APP, "image": old}]
    assert "moved the image to registry.acme.internal" in recommended(finding).summary


GITLAB_IMAGE = "registry.gitlab.com/acme/api:${CI_COMMIT_SHORT_SHA}"
UPPER_IMAGE = "ghcr.io/Acme/API:2.0.1"


@pytest.mark.parametrize(
    ("image", "message", "why", "fixed"),
    [
        pytest.param(
            GITLAB_IMAGE,
            f'Failed to apply default image tag "{GITLAB_IMAGE}": couldn\'t parse image name '
            f'"{GITLAB_IMAGE}": invalid reference format',
            "unexpanded variable CI_COMMIT_SHORT_SHA",
            "registry.gitlab.com/acme/api:<CI_COMMIT_SHORT_SHA>",
            id="unexpanded-ci-variable",
        ),
        pytest.param(
            UPPER_IMAGE,
            f'Failed to apply default image tag "{UPPER_IMAGE}": couldn\'t parse image reference '
            f'"{UPPER_IMAGE}": invalid reference format: repository name must be lowercase',
            "upper-case letters",
            "ghcr.io/acme/api:2.0.1",
            id="upper-case-repository",
        ),
    ],
)
def test_invalid_reference_says_why_and_how_to_write_it(
    image: str, message: str, why: str, fixed: str
) -> None:
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, reason="InvalidImageName", message=message),
        event("api-rev1-a", "InspectFailed", message, count=14),
        event("api-rev1-a", "Failed", "Error: InvalidImageName", count=14),
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_INVALID_REFERENCE
    assert root.confidence == pytest.approx(0.95)
    assert why in root.summary
    assert command_of(finding) == f"kubectl set image deployment/api {APP}={fixed} -n shop"
    assert finding.conclusion.scope.touches == {Touch.IMAGE}


# -- when the registry's words are gone ----------------------------------------------------------


def test_only_back_off_left_guesses_not_found_at_low_confidence() -> None:
    finding = diagnose_image_pull(
        new_revision("ghcr.io/acme/api:2.0.0", "ghcr.io/acme/api:2.0.1", None)
    )
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NOT_FOUND
    assert root.confidence <= 0.4
    assert "the registry's answer is not on record" in root.summary
    assert "changed it from ghcr.io/acme/api:2.0.0" in root.summary
    assert {a.category for a in finding.conclusion.alternatives} == {
        Category.IMAGEPULL_UNAUTHORIZED,
        Category.IMAGEPULL_REGISTRY_UNREACHABLE,
        Category.IMAGEPULL_RATE_LIMITED,
    }
    assert "Only back-off events remain" in finding.investigation.steps[1].outcome


def test_events_aged_out_but_err_image_pull_message_still_classifies() -> None:
    image = "quay.io/acme/api:2.0.1"
    message = CRIO_MANIFEST_UNKNOWN.split(": ", 1)[1]
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, reason="ErrImagePull", message=message),
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NOT_FOUND
    assert "read from the pod status: no event in the snapshot names it" in root.summary
    pod_status = [
        e for e in finding.investigation.evidence if e.source is EvidenceSource.POD_STATUS
    ]
    assert "manifest unknown" in (pod_status[0].detail or "")


def test_missing_pull_secret_decides_when_only_back_off_is_left() -> None:
    image = "harbor.acme.io/shop/api:2.0.1"
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, pull_secrets=["harbor-pull"]),
        event("api-rev1-a", "FailedToRetrieveImagePullSecret", NOT_RETRIEVED.format("harbor-pull")),
    )
    finding = diagnose_image_pull(reader)
    assert finding.conclusion.root_cause.category is Category.IMAGEPULL_UNAUTHORIZED
    assert finding.conclusion.root_cause.confidence == pytest.approx(0.5)
    assert command_of(finding).startswith("kubectl create secret generic harbor-pull")


def test_pods_that_disagree_lower_the_confidence_and_keep_the_other_cause() -> None:
    image = "ghcr.io/acme/api:2.0.1"
    timeout = CONTAINERD_TIMEOUT.replace("registry.acme.internal/shop/api:2.0.1", image)
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1),
        pod("api-rev1-b", image, revision=1),
        *pull_failure("api-rev1-a", CONTAINERD_NOT_FOUND, count=6),
        *pull_failure("api-rev1-b", timeout, count=2),
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NOT_FOUND
    assert root.confidence < 0.9
    alternatives = finding.conclusion.alternatives
    assert [a.category for a in alternatives] == [Category.IMAGEPULL_REGISTRY_UNREACHABLE]
    assert "2 of 8 pull error(s)" in alternatives[0].summary


def test_never_pull_without_nodes_in_the_snapshot_does_not_guess_the_policy() -> None:
    """Issue 16: this test pinned NotFound and "set IfNotPresent". Without the nodes nothing
    says where the image is or that a registry has it: the advice is to look, not to guess."""
    image = "shop/api:dev"
    message = 'Container image "shop/api:dev" is not present with pull policy of Never'
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, reason="ErrImageNeverPull", message=message),
        event("api-rev1-a", "ErrImageNeverPull", message, count=9),
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NEVER_PULL_MISSING
    assert "the snapshot holds no nodes, so which nodes hold it is unknown" in root.summary
    assert recommended(finding).patch is None
    assert "status.images[*].names | grep -F docker.io/shop/api" in command_of(finding)


def test_an_init_container_is_patched_as_an_init_container() -> None:
    reader = snapshot(
        deployment(7, "ghcr.io/acme/api:2.0.1"),
        replica_set(6, "ghcr.io/acme/api:2.0.0", ready=2),
        replica_set(7, "ghcr.io/acme/api:2.0.1"),
        pod("api-rev7-a", "ghcr.io/acme/api:2.0.1", revision=7, init=True),
        *pull_failure("api-rev7-a", CONTAINERD_NOT_FOUND),
    )
    assert patch_body(diagnose_image_pull(reader))["spec"]["template"]["spec"] == {
        "initContainers": [{"name": APP, "image": "ghcr.io/acme/api:2.0.0"}]
    }


def test_a_bare_pod_has_no_history_and_gets_a_set_image_command() -> None:
    bare = pod("debug", "ghcr.io/acme/api:2.0.1", revision=1)
    bare["metadata"]["ownerReferences"] = []
    finding = diagnose_image_pull(snapshot(bare, *pull_failure("debug", CONTAINERD_NOT_FOUND)))
    assert finding.target.kind == "Pod"
    assert "keeps no ReplicaSet history" in finding.investigation.steps[3].outcome
    expected = "kubectl set image pod/debug api=ghcr.io/acme/api:<existing tag> -n shop"
    assert command_of(finding) == expected


def test_malformed_objects_degrade_instead_of_failing() -> None:
    broken = pod("api-rev1-a", "ghcr.io/acme/api:2.0.1", revision=1)
    broken["spec"] = None
    broken_event = event("api-rev1-a", "Failed", CONTAINERD_NOT_FOUND)
    broken_event |= {"count": "many", "lastTimestamp": "yesterday"}
    no_history = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "api-rev1", "namespace": NS, "annotations": None},
        "status": "weird",
    }
    finding = diagnose_image_pull(snapshot(broken, broken_event, no_history))
    assert finding.conclusion.root_cause.category is Category.IMAGEPULL_NOT_FOUND
    assert recommended(finding).summary


def test_registry_words_are_redacted_before_they_reach_the_report() -> None:
    leaky = GHCR_401.replace("https://ghcr.io/token?", "https://bot:s3cr3tPassw0rd@ghcr.io/token?")
    finding = diagnose_image_pull(single_revision("ghcr.io/acme/api:2.0.1", leaky))
    assert "s3cr3tPassw0rd" not in evidence_text(finding)
    assert "s3cr3tPassw0rd" not in json.dumps([s.outcome for s in finding.investigation.steps])
    assert "s3cr3tPassw0rd" not in finding.conclusion.root_cause.summary


# -- the parsers on their own --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "parts"),
    [
        pytest.param("redis:7.2.5", ("docker.io", "library/redis", "7.2.5"), id="hub-official"),
        pytest.param("acme/api", ("docker.io", "acme/api", None), id="hub-no-tag"),
        pytest.param("registry.local:5000/a/b:1", ("registry.local:5000", "a/b", "1"), id="port"),
        pytest.param(
            "ghcr.io/acme/api@sha256:" + "a" * 64, ("ghcr.io", "acme/api", None), id="digest"
        ),
        pytest.param("ghcr.io/acme/api:${TAG}", None, id="unexpanded-variable"),
        pytest.param("ghcr.io/Acme/api:1", None, id="upper-case"),
        pytest.param(" ghcr.io/acme/api:1", None, id="whitespace"),
    ],
)
def test_parse_image(reference: str, parts: tuple[str, str, str | None] | None) -> None:
    parsed = parse_image(reference)
    assert (None if parsed is None else (parsed.registry, parsed.repository, parsed.tag)) == parts


TOKEN_TIMEOUT = (
    'failed to authorize: failed to fetch anonymous token: Get "https://auth.docker.io/token": '
    "dial tcp: lookup auth.docker.io: i/o timeout"
)
NO_BASIC_AUTH = (
    "pull access denied, repository does not exist or may require authorization: "
    "authorization failed: no basic auth credentials"
)


@pytest.mark.parametrize(
    ("message", "category", "ambiguous"),
    [
        pytest.param('Back-off pulling image "x"', None, False, id="back-off-carries-no-cause"),
        pytest.param(
            "unexpected status code 503 Service Unavailable",
            Category.IMAGEPULL_REGISTRY_UNREACHABLE,
            False,
            id="registry-5xx",
        ),
        pytest.param(
            TOKEN_TIMEOUT, Category.IMAGEPULL_REGISTRY_UNREACHABLE, False, id="token-timeout"
        ),
        pytest.param(NO_BASIC_AUTH, Category.IMAGEPULL_UNAUTHORIZED, False, id="no-basic-auth"),
        pytest.param(DOCKERD_HUB_DENIED, Category.IMAGEPULL_UNAUTHORIZED, True, id="hub-denied"),
        pytest.param("layer sha256:404a1b2c3d not ready", None, False, id="hex-404-is-not-http"),
    ],
)
def test_classify_edge_phrasings(message: str, category: Category | None, ambiguous: bool) -> None:
    found = classify(message)
    assert (found.category if found else None) is category
    assert (found.ambiguous if found else False) is ambiguous


# -- the shared scenarios -----------------------------------------------------------------------

EXPECTED = json.loads((SCENARIOS_DIR / "expected.json").read_text())
SCENARIOS = sorted(name for name in EXPECTED if name.startswith("imagepull-"))


def test_there_are_image_pull_scenarios() -> None:
    assert len(SCENARIOS) >= 5


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_names_the_expected_category(name: str) -> None:
    expected = next(e for e in EXPECTED[name] if e["symptom"] == "ImagePullBackOff")
    finding = diagnose_image_pull(SnapshotReader.from_file(SCENARIOS_DIR / name))
    target = (finding.target.namespace, finding.target.kind, finding.target.name)
    assert target == (expected["namespace"], expected["targetKind"], expected["targetName"])
    assert finding.conclusion.root_cause.category.value == expected["category"]
    assert finding.investigation.evidence
    assert recommended(finding).summary


def test_the_not_found_scenario_names_the_tag_that_last_worked() -> None:
    finding = diagnose_image_pull(
        SnapshotReader.from_file(SCENARIOS_DIR / "imagepull-not-found.json")
    )
    assert "tag v2.14.0" in finding.conclusion.root_cause.summary
    containers = patch_body(finding)["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": "web", "image": "ghcr.io/acme/storefront-web:v2.14.0"}]


# -- imagePullPolicy: Never (ImagePull.NeverPullMissing) -----------------------------------------

# The kubelet's own words (pkg/kubelet/images/image_manager.go): the Event (reason
# ErrImageNeverPull) and the waiting message are the same text.
NEVER_PULL = 'Container image "{image}" is not present with pull policy of Never'
DEV_IMAGE = "shop/api:dev"
NEVER = "ImagePull.NeverPullMissing"


def node(
    name: str,
    *images: list[str],
    arch: str = "amd64",
    provider: str | None = None,
) -> dict[str, Any]:
    """A Ready node of `arch` whose kubelet reports `images` (each a list of names) in
    status.images, as `kubectl get node -o json` shows it."""
    labels = {
        "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    built = kubeobjects.node(
        name,
        labels=labels,
        spec={"providerID": provider} if provider else None,
        allocatable={"cpu": "4", "memory": "16Gi", "pods": "110"},
        conditions=[kubeobjects.condition("Ready", "True", reason="KubeletReady")],
    )
    built["status"]["nodeInfo"] = {
        "architecture": arch,
        "operatingSystem": "linux",
        "containerRuntimeVersion": "containerd://1.7.24",
        "kubeletVersion": "v1.31.4",
    }
    built["status"]["images"] = [
        {"names": names, "sizeBytes": 50_000_000 - 1000 * i} for i, names in enumerate(images)
    ]
    return built


SYSTEM_IMAGES = [
    ["registry.k8s.io/kube-proxy@sha256:" + "1" * 64, "registry.k8s.io/kube-proxy:v1.31.4"],
    ["registry.k8s.io/pause@sha256:" + "2" * 64, "registry.k8s.io/pause:3.10"],
]
DEV_ON_NODE = ["docker.io/shop/api@sha256:" + "d" * 64, "docker.io/shop/api:dev"]


def never_pull(
    *items: dict[str, Any], on: tuple[str, ...] = ("worker-2", "worker-3")
) -> SnapshotReader:
    """deployment/api (imagePullPolicy Never, image shop/api:dev) whose pods wait on nodes `on`
    with ErrImageNeverPull, beside `items` (nodes, other pods)."""
    message = NEVER_PULL.format(image=DEV_IMAGE)
    pods = [
        pod(
            f"api-rev1-{letter}",
            DEV_IMAGE,
            revision=1,
            reason="ErrImageNeverPull",
            message=message,
            node=where,
            pull_policy="Never",
        )
        for letter, where in zip("abcdef", on, strict=False)
    ]
    events = [
        e
        for p in pods
        for e in (
            event(p["metadata"]["name"], "ErrImageNeverPull", message, count=12),
            event(p["metadata"]["name"], "Failed", "Error: ErrImageNeverPull", count=12),
        )
    ]
    return snapshot(
        *items,
        deployment(1, DEV_IMAGE, pull_policy="Never", replicas=len(on)),
        replica_set(1, DEV_IMAGE, pull_policy="Never"),
        *pods,
        *events,
    )


def test_never_pull_of_an_image_that_only_another_node_holds_pins_the_pods_there() -> None:
    """The class of issue 16: ErrImageNeverPull got "set IfNotPresent" for an image that only
    exists on another node; no registry has a locally built shop/api:dev, so that would fail
    with a pull error. The pods belong where the image is."""
    reader = never_pull(
        node("worker-1", *SYSTEM_IMAGES, DEV_ON_NODE),
        node("worker-2", *SYSTEM_IMAGES),
        node("worker-3", *SYSTEM_IMAGES),
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category.value == NEVER, root.summary
    assert root.confidence >= 0.9
    assert "not on node(s) worker-2, worker-3 where 2 pod(s) wait" in root.summary
    assert "node(s) worker-1 list it in status.images" in root.summary
    recommendation = recommended(finding)
    assert "IfNotPresent" not in (recommendation.patch.content if recommendation.patch else "")
    affinity = patch_body(finding)["spec"]["template"]["spec"]["affinity"]
    assert affinity == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["worker-1"]}
                        ]
                    }
                ]
            }
        }
    }
    assert "load the image onto worker-2, worker-3" in recommendation.summary
    assert finding.conclusion.scope.touches == {Touch.SCHEDULING}
    assert "rollout status deployment/api" in (recommendation.validation or "")


def test_never_pull_on_kind_says_kind_load_for_the_nodes_the_pods_wait_on() -> None:
    reader = never_pull(
        node("kind-worker", *SYSTEM_IMAGES, DEV_ON_NODE, provider="kind://docker/kind/kind-worker"),
        node("kind-worker2", *SYSTEM_IMAGES, provider="kind://docker/kind/kind-worker2"),
        on=("kind-worker2",),
    )
    finding = diagnose_image_pull(reader)
    assert finding.conclusion.root_cause.category.value == NEVER
    assert (
        f"kind load docker-image {DEV_IMAGE} --nodes kind-worker2" in recommended(finding).summary
    )


def test_never_pull_of_an_image_no_node_holds_says_load_it_or_pull_it() -> None:
    reader = never_pull(node("worker-2", *SYSTEM_IMAGES), node("worker-3", *SYSTEM_IMAGES))
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category.value == NEVER
    assert "no node of 2 lists it in status.images" in root.summary
    recommendation = recommended(finding)
    # On no node at all: the image must come from somewhere, a load or a registry.
    assert patch_body(finding)["spec"]["template"]["spec"]["containers"] == [
        {"name": APP, "imagePullPolicy": "IfNotPresent"}
    ]
    assert "push it to a registry the nodes can pull from" in recommendation.summary
    assert "load it onto" in recommendation.summary


def test_never_pull_of_an_image_the_registry_has_sets_if_not_present() -> None:
    """Another pod pulled the same image from its registry: the registry has it, and the
    policy is what keeps the kubelet from fetching it."""
    other = pod("job-seed", DEV_IMAGE, revision=1, node="worker-1", pull_policy="IfNotPresent")
    other["metadata"]["ownerReferences"] = []
    other["status"] = {"phase": "Succeeded"}
    pulled = event(
        "job-seed",
        "Pulled",
        f'Successfully pulled image "{DEV_IMAGE}" in 2.113s (2.113s '
        "including waiting). Image size: 48213044 bytes.",
    )
    pulled["type"] = "Normal"
    reader = never_pull(
        node("worker-1", *SYSTEM_IMAGES, DEV_ON_NODE),
        node("worker-2", *SYSTEM_IMAGES),
        node("worker-3", *SYSTEM_IMAGES),
        other,
        pulled,
    )
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category.value == NEVER
    assert "pod job-seed pulled it from its registry" in root.summary
    assert patch_body(finding)["spec"]["template"]["spec"]["containers"] == [
        {"name": APP, "imagePullPolicy": "IfNotPresent"}
    ]
    assert finding.conclusion.scope.touches == {Touch.IMAGE}


def test_never_pull_of_an_image_the_failing_node_lists_names_gc_or_credentials() -> None:
    """Since Kubernetes 1.35 (KubeletEnsureSecretPulledImages, on by default) the kubelet says
    "not present" also when the image is there but was pulled with credentials the pod does
    not present: setting IfNotPresent or pinning would not help."""
    reader = never_pull(node("worker-2", *SYSTEM_IMAGES, DEV_ON_NODE), on=("worker-2",))
    finding = diagnose_image_pull(reader)
    root = finding.conclusion.root_cause
    assert root.category.value == NEVER
    assert "node(s) worker-2 list it in status.images" in root.summary
    assert "KubeletEnsureSecretPulledImages" in root.summary
    recommendation = recommended(finding)
    assert recommendation.patch is None
    assert "crictl images" in (recommendation.command or "")


def test_never_pull_with_a_capped_image_list_says_the_image_may_be_unlisted() -> None:
    many = [[f"registry.acme.io/tools/t{i}:1.0"] for i in range(50)]
    reader = never_pull(node("worker-1", *many), node("worker-2", *SYSTEM_IMAGES), on=("worker-2",))
    finding = diagnose_image_pull(reader)
    text = evidence_text(finding)
    assert "node worker-1 lists 50 images, the kubelet's default cap" in text


def test_never_pull_reason_alone_names_the_category() -> None:
    """The waiting reason ErrImageNeverPull says it all even when no message is kept."""
    image = DEV_IMAGE
    reader = snapshot(
        deployment(1, image, pull_policy="Never"),
        replica_set(1, image, pull_policy="Never"),
        pod("api-rev1-a", image, revision=1, reason="ErrImageNeverPull", message="", node="w-1"),
    )
    assert diagnose_image_pull(reader).conclusion.root_cause.category.value == NEVER


# -- real runtime texts ------------------------------------------------------------------------

REALNODE = Path(__file__).resolve().parents[2] / "fixtures" / "realnode"


def recorded_pull(failure: str, *, events: bool) -> Finding:
    """The pod a real node recorded (kubelet 1.36, containerd 1.6, a local registry) at its last
    sample, with its real events or, as in a `kubectl get pods -o json` capture or once the
    events expired, without them."""
    document = json.loads((REALNODE / f"{failure}.json").read_text())
    (recorded,) = document["pods"]
    sample = recorded["statuses"][-1]
    replica_set_name = recorded["name"].rsplit("-", 1)[0]
    items: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": recorded["name"],
                "namespace": "realnode",
                "ownerReferences": [
                    {"kind": "ReplicaSet", "name": replica_set_name, "controller": True}
                ],
            },
            "spec": {"nodeName": recorded["node"], "containers": [document["container"]]},
            "status": {k: v for k, v in sample.items() if k != "t"},
        }
    ]
    for index, item in enumerate(recorded["events"] if events else []):
        items.append(
            kubeobjects.event(
                "Pod",
                recorded["name"],
                item["reason"],
                item["message"],
                namespace="realnode",
                event_name=f"{recorded['name']}.{index}",
                type=item["type"],
                count=item.get("count"),
                component=item.get("source"),
                first=item.get("firstTimestamp"),
                last=item.get("lastTimestamp"),
            )
        )
    return diagnose_image_pull(SnapshotReader.from_document({"kind": "List", "items": items}))


@pytest.mark.parametrize(
    ("failure", "category", "phrase"),
    [
        pytest.param("image-unauthorized", "ImagePull.Unauthorized", "401 Unauthorized", id="401"),
        pytest.param("image-not-found", "ImagePull.NotFound", "not found", id="not-found"),
    ],
)
def test_the_back_off_message_of_a_real_kubelet_carries_the_pull_error(
    failure: str, category: str, phrase: str
) -> None:
    """The real kubelet (1.36) keeps the last pull error in the back-off message (`Back-off
    pulling image "x": ErrImagePull: <the runtime's error>`, since 1.32 for CRI errors): with
    the events gone, the pod status still names the cause, and "not on record" is false."""
    finding = recorded_pull(failure, events=False)
    root = finding.conclusion.root_cause
    assert root.category.value == category, root.summary
    assert root.confidence >= 0.85
    assert phrase.lower() in root.summary.lower()
    assert "not on record" not in root.summary
    assert recorded_pull(failure, events=True).conclusion.root_cause.category.value == category


CRIO_UNAVAILABLE_IMAGE = "registry.acme.internal/shop/api:2.0.1"
CRIO_REGISTRY_UNAVAILABLE = (
    f"image pull failed for {CRIO_UNAVAILABLE_IMAGE} because the registry is unavailable: "
    'pinging container registry registry.acme.internal: Get "https://registry.acme.internal/v2/"'
    ": dial tcp 10.20.0.15:443: connect: connection refused"
)


def test_crio_registry_unavailable_in_the_back_off_message_is_unreachable() -> None:
    """CRI-O returns RegistryUnavailable for a refused connection; the kubelet words it "image
    pull failed for x because the registry is unavailable" and keeps it in the back-off."""
    image = CRIO_UNAVAILABLE_IMAGE
    message = f'Back-off pulling image "{image}": RegistryUnavailable: {CRIO_REGISTRY_UNAVAILABLE}'
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, message=message),
        pod(
            "api-rev1-b",
            image,
            revision=1,
            reason="RegistryUnavailable",
            message=CRIO_REGISTRY_UNAVAILABLE,
        ),
    )
    root = diagnose_image_pull(reader).conclusion.root_cause
    assert root.category is Category.IMAGEPULL_REGISTRY_UNREACHABLE, root.summary
    assert "refused the connection" in root.summary


ARM_IMAGE = "ghcr.io/acme/api:2.0.1"
CONTAINERD_NO_PLATFORM = (
    f'Failed to pull image "{ARM_IMAGE}": rpc error: code = NotFound desc = failed to pull and '
    f'unpack image "{ARM_IMAGE}": no match for platform in manifest: not found'
)
CRIO_NO_PLATFORM = (
    f'Failed to pull image "{ARM_IMAGE}": choosing an image from manifest list '
    f'docker://{ARM_IMAGE}: no image found in manifest list for architecture "arm64", '
    'variant "v8", OS "linux"'
)


def mixed_arch(message: str) -> SnapshotReader:
    """deployment/api: one pod runs on an amd64 node, the other cannot pull on an arm64 one."""
    running = pod("api-rev1-a", ARM_IMAGE, revision=1, node="worker-amd-1")
    running["status"] = {
        "phase": "Running",
        "containerStatuses": [
            kubeobjects.container_status(
                APP, kubeobjects.running("2025-03-14T09:00:00Z"), image=ARM_IMAGE, ready=True
            )
        ],
    }
    return snapshot(
        node("worker-amd-1", *SYSTEM_IMAGES),
        node("worker-arm-1", *SYSTEM_IMAGES, arch="arm64"),
        deployment(1, ARM_IMAGE),
        replica_set(1, ARM_IMAGE, ready=1),
        running,
        pod("api-rev1-b", ARM_IMAGE, revision=1, node="worker-arm-1"),
        *pull_failure("api-rev1-b", message),
    )


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(CONTAINERD_NO_PLATFORM, id="containerd"),
        pytest.param(CRIO_NO_PLATFORM, id="crio"),
    ],
)
def test_an_image_without_a_variant_for_the_nodes_platform_is_said_so(message: str) -> None:
    """The tag exists; it has no linux/arm64 variant. "Not found in the registry" and "the
    registry's answer is not on record" are both false; the arm64 node is the one that fails."""
    finding = diagnose_image_pull(mixed_arch(message))
    root = finding.conclusion.root_cause
    assert root.category is Category.IMAGEPULL_NOT_FOUND, root.summary
    assert root.confidence >= 0.85
    assert "has no variant for linux/arm64 (node worker-arm-1)" in root.summary
    assert "was not found in" not in root.summary
    assert "not on record" not in root.summary
    assert patch_body(finding)["spec"]["template"]["spec"] == {
        "nodeSelector": {"kubernetes.io/arch": "amd64"}
    }
    assert "pod api-rev1-a runs it on amd64" in recommended(finding).summary
    assert "--platform linux/amd64,linux/arm64" in recommended(finding).summary
    assert finding.conclusion.scope.touches == {Touch.SCHEDULING}


# -- every evidence sentence, checked against the object it describes (issue 15) ------------------

OWN_SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios" / "imagepull"


def _shown(value: str) -> str:
    """A text from the cluster as evidence shows it: redacted, and cut to the summary's limit."""
    return clip(redact(value), max_length(Evidence, "summary"))


def _listed(value: str) -> list[str]:
    return [] if value == "none" else value.split(", ")


def _pods(reader: SnapshotReader, finding: Finding) -> list[dict[str, Any]]:
    wanted = set(finding.affected_pods)
    return [p for p in reader.pods(finding.target.namespace) if p["metadata"]["name"] in wanted]


def _container(pod_object: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = pod_object.get("spec") or {}
    status = pod_object.get("status") or {}
    specs = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    statuses = [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]
    found: dict[str, Any] = next((c for c in specs if c.get("name") == name), {})
    state: dict[str, Any] = next((s for s in statuses if s.get("name") == name), {})
    return found, state


def _node_lists(node_object: dict[str, Any], image: str) -> bool:
    names = [n for i in (node_object.get("status") or {}).get("images") or [] for n in i["names"]]
    return any(n == image or n.endswith("/" + image) for n in names)


def _check_waiting(reader: SnapshotReader, finding: Finding, m: re.Match[str], detail: str) -> None:
    pods = _pods(reader, finding)
    assert int(m["n"]) == len(pods)
    for part in m["reasons"].split(", "):
        reason, count = re.fullmatch(r"(\S+) on (\d+) pod\(s\)", part).groups()  # type: ignore[union-attr]
        waiting = [
            p
            for p in pods
            if ((_container(p, m["c"])[1].get("state") or {}).get("waiting") or {}).get("reason")
            == reason
        ]
        assert len(waiting) == int(count), part
    assert all(_container(p, m["c"])[0].get("image") == m["image"] for p in pods[:1])
    messages = {
        ((_container(p, m["c"])[1].get("state") or {}).get("waiting") or {}).get("message")
        for p in pods
    }
    for line in filter(None, detail.splitlines()):
        assert any(redact(t or "").startswith(line.rstrip("…")) for t in messages), line


def _events(reader: SnapshotReader, finding: Finding) -> list[dict[str, Any]]:
    return reader.events(finding.target.namespace)


def _check_event(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    pods = set(finding.affected_pods)
    assert any(
        e["involvedObject"]["name"] in pods and _shown(f"kubelet: {e.get('message')}") == m.string
        for e in _events(reader, finding)
    ), m.string


def _check_event_about(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    assert any(
        e["involvedObject"]["name"] == m["pod"]
        and _shown(f"kubelet, about pod {m['pod']}: {e.get('message')}") == m.string
        for e in _events(reader, finding)
    )


def _check_unretrieved(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    texts = [
        e.get("message") or ""
        for e in _events(reader, finding)
        if e.get("reason") == "FailedToRetrieveImagePullSecret"
    ]
    assert all(any(name in t for t in texts) for name in _listed(m["names"]))


def _check_revision(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    sets = {
        r["metadata"]["name"]: r for r in reader.workloads("ReplicaSet", finding.target.namespace)
    }
    chosen = sets[m["rs"]]
    assert chosen["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == m["p"]
    ready = (chosen.get("status") or {}).get("readyReplicas") or 0
    assert (ready > 0) is (m["state"] == "ran with ready pods")
    images = [c["image"] for c in chosen["spec"]["template"]["spec"]["containers"]]
    assert (m["img"] or m["want"]) in images
    failing = [
        r
        for r in sets.values()
        if r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == m["f"]
    ]
    assert any(
        m["want"] in [c["image"] for c in r["spec"]["template"]["spec"]["containers"]]
        for r in failing
    )


def _check_credentials(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    namespace = finding.target.namespace
    (first, *_rest) = _pods(reader, finding)
    for part in m["parts"].split("; "):
        if found := re.fullmatch(r"pod imagePullSecrets: (.*)", part):
            own = [s["name"] for s in first["spec"].get("imagePullSecrets") or []]
            assert own == _listed(found[1]), part
        elif found := re.fullmatch(r"ServiceAccount (\S+) \(not readable\)", part):
            assert reader.service_account(namespace, found[1]) is None
        elif found := re.fullmatch(r"ServiceAccount (\S+) imagePullSecrets: (.*)", part):
            account = reader.service_account(namespace, found[1]) or {}
            names = [s["name"] for s in account.get("imagePullSecrets") or []]
            assert names == _listed(found[2]), part
        elif found := re.fullmatch(r"missing: (.*)", part):
            unretrieved = " ".join(
                e.get("message") or ""
                for e in _events(reader, finding)
                if e.get("reason") == "FailedToRetrieveImagePullSecret"
            )
            for name in _listed(found[1]):
                assert reader.secret_exists(namespace, name) is False or name in unretrieved
        elif found := re.fullmatch(r"exist: (.*)", part):
            assert all(reader.secret_exists(namespace, n) for n in _listed(found[1]))
        elif found := re.fullmatch(r"existence unknown: (.*)", part):
            assert all(reader.secret_exists(namespace, n) is None for n in _listed(found[1]))
        elif found := re.fullmatch(r"other pods here pull from the same registry with (\S+)", part):
            assert any(
                found[1] in [s["name"] for s in p["spec"].get("imagePullSecrets") or []]
                for p in reader.pods(namespace)
            )
        else:
            pytest.fail(f"a credentials clause no check knows: {part!r}")


def _check_waiting_on(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    pods = _pods(reader, finding)
    total = 0
    for part in m["nodes"].split(", "):
        name, count = re.fullmatch(r"(\S+) \((\d+)\)", part).groups()  # type: ignore[union-attr]
        assert sum(p["spec"].get("nodeName") == name for p in pods) == int(count), part
        total += int(count)
    assert total == int(m["n"])


def _check_unbound(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    assert sum(not p["spec"].get("nodeName") for p in _pods(reader, finding)) == int(m["n"])


def _nodes(reader: SnapshotReader) -> dict[str, dict[str, Any]]:
    return {n["metadata"]["name"]: n for n in reader.nodes()}


def _check_holders(reader: SnapshotReader, _: Finding, m: re.Match[str], __: str) -> None:
    nodes = _nodes(reader)
    assert all(_node_lists(nodes[name], m["image"]) for name in m["nodes"].split(", "))


def _check_no_holder(reader: SnapshotReader, _: Finding, m: re.Match[str], __: str) -> None:
    nodes = _nodes(reader)
    assert len(nodes) == int(m["n"])
    assert not any(_node_lists(n, m["image"]) for n in nodes.values())


def _check_capped(reader: SnapshotReader, _: Finding, m: re.Match[str], __: str) -> None:
    node_object = _nodes(reader)[m["node"]]
    assert len(node_object["status"]["images"]) == int(m["n"]) >= 50
    assert not _node_lists(node_object, m["image"])


def _check_platform(reader: SnapshotReader, _: Finding, m: re.Match[str], __: str) -> None:
    labels = _nodes(reader)[m["node"]]["metadata"]["labels"]
    assert f"{labels['kubernetes.io/os']}/{labels['kubernetes.io/arch']}" == m["platform"]


def _check_runs(reader: SnapshotReader, finding: Finding, m: re.Match[str], _: str) -> None:
    running = next(
        p for p in reader.pods(finding.target.namespace) if p["metadata"]["name"] == m["pod"]
    )
    assert running["status"]["phase"] == "Running"
    assert running["spec"]["nodeName"] == m["node"]
    assert any(c["image"] == m["image"] for c in running["spec"]["containers"])
    _check_platform(reader, finding, m, "")


def _check_no_nodes(reader: SnapshotReader, _: Finding, __: re.Match[str], ___: str) -> None:
    assert reader.nodes() == []


CHECKS: list[tuple[EvidenceSource, str, Any]] = [
    (
        EvidenceSource.POD_STATUS,
        r"container (?P<c>\S+) of (?P<n>\d+) pod\(s\) waits \((?P<reasons>.+)\) for image "
        r"(?P<image>.+)",
        _check_waiting,
    ),
    (EvidenceSource.EVENTS, r"kubelet: (?P<message>.+)", _check_event),
    (
        EvidenceSource.EVENTS,
        r"kubelet, about pod (?P<pod>\S+): (?P<message>.+)",
        _check_event_about,
    ),
    (
        EvidenceSource.EVENTS,
        r"kubelet FailedToRetrieveImagePullSecret: could not read pull secret\(s\) (?P<names>.+)",
        _check_unretrieved,
    ),
    (
        EvidenceSource.REPLICASET,
        r"revision (?P<p>\d+) \((?P<rs>\S+)\) (?P<state>ran with ready pods|has no ready pods on "
        r"record), with (?:the same image|image (?P<img>\S+)); revision (?P<f>\d+) wants "
        r"(?P<want>\S+)",
        _check_revision,
    ),
    (EvidenceSource.SERVICE_ACCOUNT, r"pull credentials: (?P<parts>.+)", _check_credentials),
    (EvidenceSource.POD_SPEC, r"pull credentials: (?P<parts>.+)", _check_credentials),
    (
        EvidenceSource.NODE,
        r"(?P<n>\d+) pod\(s\) wait on node\(s\) (?P<nodes>.+)",
        _check_waiting_on,
    ),
    (EvidenceSource.NODE, r"(?P<n>\d+) pod\(s\) are bound to no node", _check_unbound),
    (
        EvidenceSource.NODE,
        r"node\(s\) (?P<nodes>.+) list (?P<image>\S+) in status\.images",
        _check_holders,
    ),
    (
        EvidenceSource.NODE,
        r"none of the (?P<n>\d+) node\(s\) lists (?P<image>\S+) in status\.images",
        _check_no_holder,
    ),
    (
        EvidenceSource.NODE,
        r"node (?P<node>\S+) lists (?P<n>\d+) images, the kubelet's default cap \(50, "
        r"nodeStatusMaxImages\): (?P<image>\S+) may be on it unlisted",
        _check_capped,
    ),
    (EvidenceSource.NODE, r"node (?P<node>\S+) is (?P<platform>\S+)", _check_platform),
    (
        EvidenceSource.NODE,
        r"pod (?P<pod>\S+) runs (?P<image>\S+) on node (?P<node>\S+) \((?P<platform>\S+)\)",
        _check_runs,
    ),
    (
        EvidenceSource.NODE,
        r"the snapshot holds no nodes: which of them hold \S+ is unknown",
        _check_no_nodes,
    ),
]


def assert_evidence_is_true(reader: SnapshotReader, finding: Finding) -> None:
    """Each evidence sentence matches one known form, and what it states holds in the objects
    it names; a new form of sentence fails here until it has its check."""
    assert finding.investigation.evidence
    for item in finding.investigation.evidence:
        for source, pattern, check in CHECKS:
            matched = re.fullmatch(pattern, item.summary) if item.source is source else None
            if matched:
                check(reader, finding, matched, item.detail or "")
                break
        else:
            pytest.fail(f"an evidence sentence no check knows: {item.source.value}: {item.summary}")


def _readers() -> list[Any]:
    own = sorted(OWN_SCENARIOS.glob("*.json"))
    shared = sorted(SCENARIOS_DIR.glob("imagepull-*.json"))
    return [
        *(pytest.param(case.values[0], id=f"case-{case.id}") for case in CASES),
        pytest.param(
            never_pull(
                node("worker-1", *SYSTEM_IMAGES, DEV_ON_NODE), node("worker-2", *SYSTEM_IMAGES)
            ),
            id="never-pull-elsewhere",
        ),
        pytest.param(never_pull(node("worker-2", *SYSTEM_IMAGES)), id="never-pull-nowhere"),
        pytest.param(
            never_pull(node("worker-2", *SYSTEM_IMAGES, DEV_ON_NODE), on=("worker-2",)),
            id="never-pull-on-the-node",
        ),
        pytest.param(
            never_pull(
                node("worker-1", *[[f"registry.acme.io/t/t{i}:1"] for i in range(50)]),
                node("worker-2", *SYSTEM_IMAGES),
                on=("worker-2",),
            ),
            id="never-pull-capped",
        ),
        pytest.param(never_pull(), id="never-pull-no-nodes"),
        pytest.param(mixed_arch(CONTAINERD_NO_PLATFORM), id="platform-containerd"),
        pytest.param(mixed_arch(CRIO_NO_PLATFORM), id="platform-crio"),
        *(
            pytest.param(SnapshotReader.from_file(path), id=f"scenario-{path.stem}")
            for path in (*shared, *own)
            if path.name != "expected.json"
        ),
    ]


@pytest.mark.parametrize("reader", _readers())
def test_every_evidence_sentence_is_true_of_its_object(reader: SnapshotReader) -> None:
    problems = [p for p in find_problems(reader) if p.symptom is Symptom.IMAGE_PULL_BACK_OFF]
    for problem in problems:
        assert_evidence_is_true(reader, diagnose_problem(reader, problem, Options()))


@pytest.mark.parametrize(
    ("false", "source"),
    [
        pytest.param(
            "node(s) worker-2 list shop/api:dev in status.images", EvidenceSource.NODE, id="holder"
        ),
        pytest.param("2 pod(s) wait on node(s) worker-1 (2)", EvidenceSource.NODE, id="placement"),
        pytest.param(
            "none of the 3 node(s) lists shop/api:dev in status.images",
            EvidenceSource.NODE,
            id="count",
        ),
        pytest.param(
            "pull credentials: pod imagePullSecrets: ghcr-pull",
            EvidenceSource.POD_SPEC,
            id="secret",
        ),
        pytest.param("node worker-2 is linux/arm64", EvidenceSource.NODE, id="platform"),
        pytest.param("the nodes are fine", EvidenceSource.NODE, id="unknown-form"),
    ],
)
def test_the_evidence_check_catches_a_false_sentence(false: str, source: EvidenceSource) -> None:
    reader = never_pull(
        node("worker-1", *SYSTEM_IMAGES, DEV_ON_NODE), node("worker-2", *SYSTEM_IMAGES)
    )
    finding = diagnose_image_pull(reader)
    finding.investigation.evidence.append(Evidence(source=source, summary=false))
    with pytest.raises((AssertionError, pytest.fail.Exception)):
        assert_evidence_is_true(reader, finding)


@pytest.mark.parametrize(
    "name",
    [
        "no-variant-for-the-node-platform-containerd.json",
        "no-variant-for-the-node-platform-crio.json",
    ],
)
def test_the_pull_secret_of_a_scenario_never_reaches_the_report(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The snapshot carries the pull secret's data on purpose (DESIGN.md section 8): the
    report names the Secret, never what it holds."""
    path = OWN_SCENARIOS / name
    secret = next(
        item for item in json.loads(path.read_text())["items"] if item["kind"] == "Secret"
    )
    data = secret["data"][".dockerconfigjson"]
    decoded = base64.b64decode(data).decode()
    token = base64.b64decode(json.loads(decoded)["auths"]["ghcr.io"]["auth"]).decode()
    for fmt in ("json", "yaml", "table"):
        assert main(["diagnose", "--snapshot", str(path), "-o", fmt]) == 0
        out = capsys.readouterr().out
        assert "search-api" in out
        for leaked in (data, token, token.split(":")[1]):
            assert leaked not in out


def test_never_pull_of_a_daemon_set_loads_the_image_rather_than_pinning_it() -> None:
    """A DaemonSet belongs on every node: pinning it to the node that holds the image would
    only drop it from the others."""
    spec = {"containers": [app_container(DEV_IMAGE, "Never")]}
    daemon_set = kubeobjects.kube_object(
        "DaemonSet",
        APP,
        namespace=NS,
        spec={"selector": {"matchLabels": {"app": APP}}, "template": {"spec": spec}},
        status={"desiredNumberScheduled": 2, "numberReady": 1, "numberUnavailable": 1},
    )
    failing = pod(
        "api-x7k2p",
        DEV_IMAGE,
        revision=1,
        reason="ErrImageNeverPull",
        message=NEVER_PULL.format(image=DEV_IMAGE),
        node="worker-2",
        pull_policy="Never",
    )
    failing["metadata"]["ownerReferences"] = [kubeobjects.owner_reference("DaemonSet", APP)]
    reader = snapshot(
        node("worker-1", *SYSTEM_IMAGES, DEV_ON_NODE),
        node("worker-2", *SYSTEM_IMAGES),
        daemon_set,
        failing,
    )
    finding = diagnose_image_pull(reader)
    assert finding.target.kind == "DaemonSet"
    assert finding.conclusion.root_cause.category is Category.IMAGEPULL_NEVER_PULL_MISSING
    recommendation = recommended(finding)
    assert recommendation.patch is None
    assert recommendation.summary.startswith(f"Load {DEV_IMAGE} onto worker-2")
    assert finding.conclusion.scope.touches == {Touch.NODES}
