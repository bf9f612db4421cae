"""The ImagePullBackOff runbook, case by case: given these pods and kubelet events, the report
names this cause, with this evidence and this change.

Messages are the kubelet's and the runtimes' real texts (containerd 1.7 and CRI-O), with the
registries' own words (Docker Hub, GHCR, ECR, Artifact Registry, ACR, Harbor, Quay).
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
from kubetriage.models import Category, EvidenceSource, Recommendation, Symptom
from kubetriage.playbooks import playbook_for
from kubetriage.playbooks.imagepull.messages import classify, parse_image
from kubetriage.policy import Touch

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


def replica_set(
    revision: int, image: str, *, ready: int = 0, container: str = APP
) -> dict[str, Any]:
    """A ReplicaSet of deployment/api at a revision; `ready` > 0 means it ran."""
    return kubeobjects.replica_set(
        f"{APP}-rev{revision}",
        namespace=NS,
        owner=kubeobjects.owner_reference("Deployment", APP),
        revision=revision,
        pod_spec={"containers": [kubeobjects.container(container, image)]},
        status=kubeobjects.replica_counts(max(ready, 1), ready),
    )


def deployment(revision: int, image: str) -> dict[str, Any]:
    """deployment/api wanting `image` at `revision`."""
    return kubeobjects.deployment(
        APP,
        namespace=NS,
        uid="dep-uid",
        revision=revision,
        replicas=2,
        selector={"app": APP},
        pod_spec={"containers": [kubeobjects.container(APP, image)]},
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
) -> dict[str, Any]:
    """A pod of revision `revision` whose container waits on its image."""
    waiting = kubeobjects.waiting(
        reason, BACK_OFF.format(image=image) if message is None else message
    )
    field, status_field = (
        ("initContainers", "initContainerStatuses") if init else ("containers", "containerStatuses")
    )
    spec: dict[str, Any] = {
        field: [kubeobjects.container(APP, image)],
        "serviceAccountName": "default",
    }
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
    assert "from the pod status; the events have aged out" in root.summary
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


def test_never_pull_policy_recommends_if_not_present() -> None:
    image = "shop/api:dev"
    message = 'Container image "shop/api:dev" is not present with pull policy of Never'
    reader = snapshot(
        deployment(1, image),
        replica_set(1, image),
        pod("api-rev1-a", image, revision=1, reason="ErrImageNeverPull", message=message),
        event("api-rev1-a", "ErrImageNeverPull", message, count=9),
    )
    finding = diagnose_image_pull(reader)
    assert finding.conclusion.root_cause.category is Category.IMAGEPULL_NOT_FOUND
    containers = patch_body(finding)["spec"]["template"]["spec"]["containers"]
    assert containers == [{"name": APP, "imagePullPolicy": "IfNotPresent"}]


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
