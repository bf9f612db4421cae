"""What a registry's refusal means: the kubelet's and the runtime's pull errors, classified.

The kubelet writes the runtime's error into a `Failed` event ("Failed to pull image \"x\": ...")
and into the container's waiting message while the reason is `ErrImagePull`. containerd phrases
it as `rpc error: code = ... desc = failed to pull and unpack image ...: failed to resolve
reference ...`, CRI-O as `initializing source docker://...` / `reading manifest ... in ...`, and the
registry's own words (Docker Hub, ECR, GCR/Artifact Registry, ACR, GHCR, Harbor, Quay) come last.
Once the kubelet backs off, its `BackOff` event only says `Back-off pulling image "x"`, which
carries no cause; since Kubernetes 1.32 the waiting message keeps the last pull error after it
(`Back-off pulling image "x": RegistryUnavailable: ...`; kubelet 1.36, recorded on a real node,
does so for ErrImagePull too: `Back-off pulling image "x": ErrImagePull: <the runtime's error>`),
so a pod status alone still names the cause. Recent kubelets strip the gRPC `rpc error: code =
Unknown desc =` prefix (1.36 does, and keeps other codes: `code = NotFound`), and word CRI-O's
`RegistryUnavailable` as "image pull failed for x because the registry is unavailable: ...".

Order matters where phrasings overlap: a rate-limit answer also says "authenticating", and a
token fetch that times out also says "failed to authorize", so those are tested first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubetriage.models import Category

# Docker Hub answers a private repository and a missing one alike (`pull access denied ...
# repository does not exist or may require 'docker login'` / `insufficient_scope`), and Artifact
# Registry adds "(or it may not exist)". The playbook decides between NotFound and Unauthorized
# with the revision history (see decide.py); the classifier only marks them ambiguous.
_AMBIGUOUS = (
    "may require 'docker login'",
    "may require authorization",
    "pull access denied",
    "or it may not exist",
    "insufficient_scope",
)

_INVALID = (
    "invalid reference format",
    "couldn't parse image reference",
    "couldn't parse image name",
    "failed to apply default image tag",
    "repository name must be lowercase",
    "invalid image name",
    "parsing image reference",
    "error parsing reference",
)
# The kubelet's words (pkg/kubelet/images/image_manager.go). Since 1.35 it says the same when
# the image is on the node but was pulled with credentials the pod does not present
# (KubeletEnsureSecretPulledImages), so as not to reveal it; 1.33-1.34 said the second phrase.
_NEVER_PULL = (
    (
        "is not present with pull policy of never",
        "imagePullPolicy is Never and the image is not on the node",
    ),
    (
        "is present with pull policy of never but does not have the proper auth",
        "imagePullPolicy is Never and the image on the node was pulled with credentials the "
        "pod does not present",
    ),
)
# The tag exists but has no variant for the node's platform: containerd and CRI-O
# (containers/image, "manifest list" or, newer, "image index").
_PLATFORM = re.compile(
    r"no match for platform in manifest|no image found in (?:manifest list|image index) for "
    r"architecture"
)
_RATE = (
    "toomanyrequests",
    "too many requests",
    "pull rate limit",
    "rate limit exceeded",
    "ratelimit",
)
# (phrase, what it means): network and TLS failures before any HTTP status was read.
_NETWORK = (
    ("no such host", "the registry's name does not resolve in DNS"),
    ("server misbehaving", "the DNS server failed to resolve the registry"),
    ("temporary failure in name resolution", "the registry's name does not resolve in DNS"),
    ("i/o timeout", "the connection to the registry timed out"),
    ("tls handshake timeout", "the TLS handshake with the registry timed out"),
    ("context deadline exceeded", "the pull timed out before the registry answered"),
    ("connection refused", "the registry host refused the connection"),
    ("connection reset by peer", "the connection to the registry was reset"),
    ("network is unreachable", "the node has no route to the registry's network"),
    ("no route to host", "the node has no route to the registry host"),
    ("x509:", "the registry's TLS certificate is not trusted by the node"),
    ("tls: failed to verify certificate", "the registry's TLS certificate is not trusted"),
    ("certificate signed by unknown authority", "the registry's CA is not trusted by the node"),
    ("server gave http response to https client", "the registry speaks plain HTTP"),
    ("proxyconnect tcp", "the node's HTTP proxy could not reach the registry"),
    # CRI-O's RegistryUnavailable, worded by the kubelet: the specific phrases above come first.
    ("because the registry is unavailable", "the runtime found the registry unavailable"),
)
_UNAUTHORIZED = (
    "401 unauthorized",
    "403 forbidden",
    "unauthorized",
    "authentication required",
    "no basic auth credentials",
    "failed to authorize",
    "not authorized",
    "requested access to the resource is denied",
    "access denied",
    'permission "artifactregistry',
    "forbidden",
)
_DENIED = re.compile(r"\bdenied\b")
_NOT_FOUND = (
    "manifest unknown",
    "name unknown",
    "repository does not exist",
    "code = notfound",
    "requested image not found",
    "no such image",
    "not found",
)
_HTTP_404 = re.compile(r"\b404\b")
_SERVER = re.compile(
    r"\b(?:500 internal server error|502 bad gateway|503 service unavailable|"
    r"504 gateway timeout|unexpected status(?: code)?:? 5\d\d)"
)

# An echo without a cause: the BackOff event, an old kubelet's back-off message, or the kubelet's
# `Error: ErrImagePull` Failed event. A back-off message with text after the image carries one.
_BACKOFF = re.compile(
    r'^\s*(?:back-off pulling image\s+(?:"[^"]*"|\S+)\s*$|error: [a-z]+\s*$)', re.IGNORECASE
)


@dataclass(frozen=True)
class PullError:
    """One classified pull error: the category, how sure the words make it, and why."""

    category: Category
    confidence: float
    phrase: str
    meaning: str
    ambiguous: bool = False
    platform: bool = False


def carries_cause(message: str) -> bool:
    """Whether a message holds the runtime's or registry's words (not a back-off echo)."""
    return bool(message.strip()) and not _BACKOFF.match(message)


def classify(message: str) -> PullError | None:
    """The category a pull error names, or None when it names none of them. The phrase is
    returned as the message wrote it."""
    found = _classify(message.lower())
    if found is None:
        return None
    start = message.lower().find(found.phrase)
    if start >= 0:
        phrase = message[start : start + len(found.phrase)]
        found = PullError(
            found.category,
            found.confidence,
            phrase,
            found.meaning,
            found.ambiguous,
            found.platform,
        )
    return found


def _classify(text: str) -> PullError | None:
    for phrase in _INVALID:
        if phrase in text:
            return PullError(
                Category.IMAGEPULL_INVALID_REFERENCE,
                0.95,
                phrase,
                "the image reference cannot be parsed",
            )
    for phrase, meaning in _NEVER_PULL:
        if phrase in text:
            return PullError(Category.IMAGEPULL_NEVER_PULL_MISSING, 0.95, phrase, meaning)
    platform = _PLATFORM.search(text)
    if platform:
        return PullError(
            Category.IMAGEPULL_NOT_FOUND,
            0.9,
            platform.group(0),
            "the image has no variant for the node's platform",
            platform=True,
        )
    for phrase in _RATE:
        if phrase in text:
            return PullError(
                Category.IMAGEPULL_RATE_LIMITED,
                0.95,
                phrase,
                "the registry refused more pulls from this client for now",
            )
    for phrase, meaning in _NETWORK:
        if phrase in text:
            return PullError(Category.IMAGEPULL_REGISTRY_UNREACHABLE, 0.9, phrase, meaning)
    if "no basic auth credentials" in text:
        # Said when nothing was sent to a registry that wants a login (ECR, private registries):
        # whatever else the message says, the missing credentials are the cause.
        return PullError(
            Category.IMAGEPULL_UNAUTHORIZED,
            0.9,
            "no basic auth credentials",
            "the node sent no credentials for this registry",
        )
    docker_hub_denied = "requested access to the resource is denied" in text and "docker.io" in text
    for phrase in (
        *_AMBIGUOUS,
        *(("requested access to the resource is denied",) if docker_hub_denied else ()),
    ):
        if phrase in text:
            return PullError(
                Category.IMAGEPULL_UNAUTHORIZED,
                0.6,
                phrase,
                "the registry refused access: the repository is private or does "
                "not exist (this registry does not say which)",
                ambiguous=True,
            )
    for phrase in _UNAUTHORIZED:
        if phrase in text:
            return PullError(
                Category.IMAGEPULL_UNAUTHORIZED,
                0.9,
                phrase,
                "the registry refused the node's credentials (or their absence)",
            )
    if _DENIED.search(text):
        return PullError(
            Category.IMAGEPULL_UNAUTHORIZED, 0.85, "denied", "the registry denied access"
        )
    for phrase in _NOT_FOUND:
        if phrase in text:
            return PullError(
                Category.IMAGEPULL_NOT_FOUND,
                0.9,
                phrase,
                "the registry has no such repository or tag",
            )
    if _HTTP_404.search(text):
        return PullError(
            Category.IMAGEPULL_NOT_FOUND,
            0.8,
            "404",
            "the registry answered 404: no such repository or tag",
        )
    server = _SERVER.search(text)
    if server:
        return PullError(
            Category.IMAGEPULL_REGISTRY_UNREACHABLE,
            0.6,
            server.group(0),
            "the registry answered with a server error",
        )
    return None


@dataclass(frozen=True)
class ImageRef:
    """An image reference split as the runtime reads it (docker.io and library/ filled in)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """registry/repository, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def version(self) -> str:
        """The tag (or digest) as a person names the version."""
        return self.tag or (self.digest or "latest")


_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(?::\d+)?$")


def parse_image(reference: str) -> ImageRef | None:
    """The parts of a valid image reference, or None when the runtime would reject it."""
    ref = reference
    if not ref or ref != ref.strip():
        return None
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
        if not re.fullmatch(r"[a-z0-9]+:[a-fA-F0-9]{32,}", digest):
            return None
    tag = None
    slash = ref.rfind("/")
    if ":" in ref[slash + 1 :]:
        ref, tag = ref.rsplit(":", 1)
        if not _TAG.match(tag):
            return None
    parts = ref.split("/")
    registry = "docker.io"
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        registry = parts.pop(0)
        if not _HOST.match(registry):
            return None
    if not parts or not all(_COMPONENT.match(p) for p in parts):
        return None
    if registry == "docker.io" and len(parts) == 1:
        parts.insert(0, "library")
    return ImageRef(registry, "/".join(parts), tag, digest)


def same_image(name: str, reference: str) -> bool:
    """Whether a name a node lists in status.images is the image a container asks for: the
    same registry and repository (docker.io and library/ filled in) and the same digest, or
    the same tag when the reference has no digest (`latest` when it has neither)."""
    wanted, listed = parse_image(reference), parse_image(name)
    if wanted is None or listed is None or wanted.name != listed.name:
        return False
    if wanted.digest:
        return listed.digest == wanted.digest
    return listed.digest is None and (listed.tag or "latest") == (wanted.tag or "latest")


def invalid_reason(reference: str) -> str:
    """Why the runtime rejects an image reference, in words an engineer acts on."""
    if re.search(r"\$\{?\(?[A-Za-z_]", reference):
        variable = re.search(r"\$\{?\(?([A-Za-z_][A-Za-z0-9_]*)", reference)
        name = variable.group(1) if variable else "a variable"
        return f"it holds the unexpanded variable {name}: the deploy pipeline did not substitute it"
    if reference != reference.strip() or any(c.isspace() for c in reference):
        return "it contains whitespace"
    if not reference:
        return "it is empty"
    if "://" in reference:
        return "it includes a URL scheme, which image references do not take"
    path = reference.split("@", 1)[0]
    if path.endswith(":"):
        return "it ends in ':' with no tag"
    host, _, rest = path.partition("/")
    repository = rest if rest and ("." in host or ":" in host) else path
    if repository.rsplit(":", 1)[0] != repository.rsplit(":", 1)[0].lower():
        return "the repository name has upper-case letters (it must be lower case)"
    return "it is not a valid reference ([registry/]repository[:tag][@digest])"


def suggested_reference(reference: str) -> str | None:
    """A corrected reference when the mistake is mechanical, else None."""
    fixed = re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: f"<{m.group(1) or m.group(2)}>",
        reference.strip(),
    )
    if fixed != reference.strip():
        return fixed
    if parse_image(reference.strip()) is not None:
        return reference.strip()
    host, sep, rest = reference.strip().partition("/")
    if sep and ("." in host or ":" in host):
        candidate = f"{host}/{_lower_repository(rest)}"
    else:
        candidate = _lower_repository(reference.strip())
    return candidate if parse_image(candidate) is not None else None


def _lower_repository(path: str) -> str:
    name, sep, tag = path.rpartition(":")
    if sep and "/" not in tag:
        return f"{name.lower()}:{tag}"
    return path.lower()


_SECRETS_IN_EVENT = re.compile(r"image pull secrets \(([^)]*)\)")


def secrets_not_retrieved(message: str) -> list[str]:
    """Pull secret names the kubelet says it could not read (`FailedToRetrieveImagePullSecret`)."""
    found = _SECRETS_IN_EVENT.search(message)
    if not found:
        return []
    return [name.strip() for name in found.group(1).split(",") if name.strip()]
