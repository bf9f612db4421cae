"""The change that lets the kubelet create the container, per category.

- MissingSecret / MissingConfigMap: create the object with the keys the container references
  (names from the spec, values for a person to fill in); nothing in the workload changes.
- MissingKey: a ConfigMap key that differs from an existing one only in `-`/`_`/case is a
  misspelt reference: a patch of the workload points it at the existing key. Otherwise add the
  key to the object (a ConfigMap patch, or the Secret's `stringData`), values for a person.
- RunAsNonRoot: run as a numeric non-root user the image supports (securityContext.runAsUser)
  or use an image built for it; the user id is the image's, so no patch is guessed.
- Invalid: read the runtime's message where it was written; for a name the runtime still
  reserves, the node's container runtime is the place to look.
"""

from __future__ import annotations

import json
import re

from kubetriage.models import Category, Recommendation
from kubetriage.playbooks.base import INSPECT_ONLY, recommendation, strategic_patch
from kubetriage.playbooks.containerconfig.decide import keys_text
from kubetriage.playbooks.containerconfig.messages import ConfigMessage
from kubetriage.playbooks.containerconfig.reads import ConfigFacts
from kubetriage.policy import ChangeScope, Touch

Advice = tuple[Recommendation, ChangeScope]
_SHELL_SAFE = re.compile(r"^[-._a-zA-Z0-9]+$")
_RESERVED_NAME = "failed to reserve container name"


def _word(value: str | None, default: str = "KEY") -> str:
    return value if value and _SHELL_SAFE.match(value) else default


def _validation(facts: ConfigFacts) -> str:
    return (
        f"`kubectl get pods -n {facts.target.namespace}` shows {facts.container} of "
        f"{facts.target.name}'s pods Running (the kubelet retries on its own; a pod that still "
        "waits after a minute can be deleted to start over); kubetriage then marks the report "
        "Resolved"
    )


def recommend(facts: ConfigFacts, category: Category) -> Advice:
    """The recommendation for `category` and what it touches."""
    message = facts.message
    if message is None:
        return _describe(facts), ChangeScope()
    if category in {Category.CONFIG_MISSING_SECRET, Category.CONFIG_MISSING_CONFIG_MAP}:
        return _create(facts, message)
    if category is Category.CONFIG_MISSING_KEY:
        return _missing_key(facts, message)
    if category is Category.CONFIG_RUN_AS_NON_ROOT:
        return _non_root(facts), ChangeScope(frozenset({Touch.SECURITY_CONTEXT}))
    return _invalid(facts, message)


def _referenced_keys(facts: ConfigFacts) -> list[str]:
    return sorted({ref.key for ref in facts.refs if ref.key}) or ["KEY"]


def _create(facts: ConfigFacts, message: ConfigMessage) -> Advice:
    ns, name = facts.target.namespace, _word(message.name, "NAME")
    literals = " ".join(f"--from-literal={_word(key)}=<value>" for key in _referenced_keys(facts))
    if message.kind == "Secret":
        command = f"kubectl create secret generic {name} -n {ns} {literals}"
        rollback = f"kubectl delete secret {name} -n {ns}"
        touches = frozenset({Touch.SECRET})
    else:
        command = f"kubectl create configmap {name} -n {ns} {literals}"
        rollback = f"kubectl delete configmap {name} -n {ns}"
        touches = frozenset({Touch.ENV})
    users = ", ".join(sorted({ref.used_by for ref in facts.refs})) or "the container"
    proposal = recommendation(
        summary=(
            f"Create {message.kind} {message.name} in namespace {ns} with the keys {users} "
            f"reads ({', '.join(_referenced_keys(facts))}), from wherever the release keeps "
            "them (a Secret manager, the chart's values); the waiting pods then start by "
            "themselves. Nothing in the workload needs to change."
        ),
        command=command,
        rollback=rollback,
        validation=_validation(facts),
    )
    return proposal, ChangeScope(touches)


def _normalized(key: str) -> str:
    return key.replace("_", "-").replace(".", "-").lower()


def _missing_key(facts: ConfigFacts, message: ConfigMessage) -> Advice:
    ns, key = facts.target.namespace, message.key or "KEY"
    name = _word(message.name, "NAME")
    existing = facts.config_map_keys or set()
    near = [k for k in sorted(existing) if _normalized(k) == _normalized(key)]
    variables = [r.used_by.removeprefix("env ") for r in facts.refs if r.used_by.startswith("env ")]
    if message.kind == "ConfigMap" and near and variables:
        body = {
            "spec": {"template": {"spec": {"containers": [{
                "name": facts.container,
                "env": [
                    {"name": v, "valueFrom": {"configMapKeyRef": {"name": message.name,
                                                                  "key": near[0]}}}
                    for v in variables
                ],
            }]}}}
        }  # fmt: skip
        proposal = recommendation(
            summary=(
                f"ConfigMap {message.name} has key {near[0]}, not {key}: point "
                f"{', '.join(variables)} at {near[0]}."
            ),
            patch=strategic_patch(facts.target, body),
            command=(
                f"kubectl patch {facts.target.kind.lower()} {facts.target.name} -n {ns} "
                f"--type strategic -p '{json.dumps(body, separators=(',', ':'))}'"
            ),
            rollback=(
                f"kubectl rollout undo {facts.target.kind.lower()}/{facts.target.name} -n {ns}"
            ),
            validation=_validation(facts),
        )
        return proposal, ChangeScope(frozenset({Touch.ENV}))
    if message.kind == "ConfigMap":
        data = json.dumps({"data": {_word(key): "<value>"}})
        remove = json.dumps([{"op": "remove", "path": f"/data/{_word(key)}"}])
        proposal = recommendation(
            summary=(
                f"ConfigMap {message.name} has no key {key} (its keys: "
                f"{keys_text(existing)}): add it with the value the app expects, or point "
                f"the reference at the key that holds it."
            ),
            command=f"kubectl patch configmap {name} -n {ns} --type merge -p '{data}'",
            rollback=f"kubectl patch configmap {name} -n {ns} --type json -p '{remove}'",
            validation=_validation(facts),
        )
        return proposal, ChangeScope(frozenset({Touch.ENV}))
    data = json.dumps({"stringData": {_word(key): "<value>"}})
    proposal = recommendation(
        summary=(
            f"Secret {message.name} has no key {key}. `kubectl describe secret {name} -n {ns}` "
            "lists its keys (names and sizes, never values): when the value is there under "
            "another name, fix the reference in the workload; otherwise add the key."
        ),
        command=f"kubectl patch secret {name} -n {ns} --type merge -p '{data}'",
        rollback=(
            f"kubectl patch secret {name} -n {ns} --type json -p "
            f"'{json.dumps([{'op': 'remove', 'path': f'/data/{_word(key)}'}])}'"
        ),
        validation=_validation(facts),
    )
    return proposal, ChangeScope(frozenset({Touch.SECRET}))


def _non_root(facts: ConfigFacts) -> Recommendation:
    image = facts.security.image if facts.security is not None else "the image"
    target = facts.target
    return recommendation(
        summary=(
            f"Run {facts.container} as a numeric non-root user that {image} supports: set "
            "securityContext.runAsUser (and runAsGroup) to it, or switch to a variant of the "
            "image built to run unprivileged (a numeric USER in its Dockerfile). Keep "
            "runAsNonRoot: it is the guard that caught this."
        ),
        command=f"kubectl get {target.kind.lower()} {target.name} -n {target.namespace} -o yaml",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )


def _invalid(facts: ConfigFacts, message: ConfigMessage) -> Advice:
    pod = facts.waiting_pods[0] if facts.waiting_pods else facts.target.name
    nodes = sorted({w.node for w in facts.waiting if w.node})
    ns = facts.target.namespace
    if _RESERVED_NAME in message.text and nodes:
        proposal = recommendation(
            summary=(
                "The container runtime still holds the name of a container it was asked to "
                "create earlier (a create that timed out: `context deadline exceeded`), so "
                f"every retry is refused. Look at the runtime on {', '.join(nodes)} (`crictl ps "
                "-a`, its log); deleting the pod lets it start elsewhere under a new name."
            ),
            command=f"kubectl delete pod {pod} -n {ns}",
            rollback="Nothing to undo: the ReplicaSet creates a new pod.",
            validation=_validation(facts),
        )
        return proposal, ChangeScope(frozenset({Touch.NODES}))
    return _describe(facts), ChangeScope()


def _describe(facts: ConfigFacts) -> Recommendation:
    pod = facts.waiting_pods[0] if facts.waiting_pods else facts.target.name
    return recommendation(
        summary=(
            "Read the runtime's full message in the pod's events and fix the part of the pod "
            "spec it names."
        ),
        command=f"kubectl describe pod {pod} -n {facts.target.namespace}",
        rollback=INSPECT_ONLY,
        validation=_validation(facts),
    )
