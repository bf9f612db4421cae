"""What the kubelet says when it cannot build a container's configuration. Pure: a message in,
what it names out.

The kubelet writes these texts into the container's `state.waiting.message` (reason
`CreateContainerConfigError`) and, prefixed with `Error: `, into its `Failed` events:

- `secret "ledger-db" not found`, `configmap "indexer-settings" not found` (an env var,
  `envFrom` or a volume names an object the namespace does not have);
- `couldn't find key stripe-api-key in Secret checkout/checkout-secrets` (and `in ConfigMap`):
  the object exists, the key does not;
- `container has runAsNonRoot and image will run as root (pod: "...", container: nginx)`,
  `container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is
  non-root (pod: ..., container: ...)`, `container's runAsUser breaks non-root policy (...)`.

Anything else, including the runtime's own `CreateContainerError` texts (`failed to reserve
container name ...`, `context deadline exceeded`), is the runtime's message, quoted as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubetriage.models import Category

_MISSING_OBJECT = re.compile(
    r'\b(?P<kind>secret|configmap)s? "(?P<name>[^"]+)" not found', re.IGNORECASE
)
_MISSING_KEY = re.compile(
    r"couldn't find key (?P<key>\S+) in (?P<kind>Secret|ConfigMap) "
    r"(?P<namespace>[^/\s]+)/(?P<name>\S+)"
)
_NON_NUMERIC_USER = re.compile(r"image has non-numeric user \((?P<user>[^)]*)\)")
_NON_ROOT = re.compile(
    r"container has runAsNonRoot and image will run as root"
    r"|container has runAsNonRoot and image has non-numeric user"
    r"|container's runAsUser breaks non-root policy"
)
_KINDS = {"secret": "Secret", "configmap": "ConfigMap"}
ERROR_PREFIX = "Error: "


@dataclass(frozen=True)
class ConfigMessage:
    """One kubelet message about a container's configuration, read."""

    category: Category
    text: str  # the message without the events' `Error: ` prefix
    kind: str | None = None  # Secret | ConfigMap, for the missing-object and missing-key texts
    name: str | None = None
    key: str | None = None
    user: str | None = None  # the image's non-numeric user, when the kubelet named it

    @property
    def reference(self) -> str | None:
        """`Secret ledger-db` or `ConfigMap app key LOG_LEVEL`, when the message names one."""
        if self.kind is None or self.name is None:
            return None
        return f"{self.kind} {self.name}" + (f" key {self.key}" if self.key else "")


def read_message(message: str) -> ConfigMessage:
    """What one kubelet message (waiting message or `Failed` event) names."""
    text = message.strip().removeprefix(ERROR_PREFIX).strip()
    if match := _MISSING_KEY.search(text):
        category = Category.CONFIG_MISSING_KEY
        return ConfigMessage(category, text, match["kind"], match["name"], match["key"])
    if match := _MISSING_OBJECT.search(text):
        kind = _KINDS[match["kind"].lower()]
        category = (
            Category.CONFIG_MISSING_SECRET
            if kind == "Secret"
            else Category.CONFIG_MISSING_CONFIG_MAP
        )
        return ConfigMessage(category, text, kind, match["name"])
    if _NON_ROOT.search(text):
        user = _NON_NUMERIC_USER.search(text)
        return ConfigMessage(
            Category.CONFIG_RUN_AS_NON_ROOT, text, user=user["user"] if user else None
        )
    return ConfigMessage(Category.CONFIG_INVALID, text)
