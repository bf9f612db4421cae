"""The CreateContainerConfigError decision: the kubelet's message names the category; the pod
spec and the object it names decide how firmly. Pure.

- `secret "x" not found` / `configmap "x" not found` -> MissingSecret / MissingConfigMap: 0.95
  when the container's spec references that object, 0.8 when only the message names it.
- `couldn't find key K in Secret|ConfigMap ns/x` -> MissingKey: 0.95 when the spec references
  that key, 0.8 otherwise; a ConfigMap's existing keys are named, a Secret's never (it is not
  read).
- runAsNonRoot and an image that runs as root (or as a user name that cannot be checked) ->
  RunAsNonRoot: 0.95 when the spec sets runAsNonRoot, 0.8 when only the message says so.
- anything else -> Invalid, the runtime's message quoted: 0.6 (the message is the diagnosis).
"""

from __future__ import annotations

from kubetriage.models import Category
from kubetriage.playbooks.base import Verdict, cause
from kubetriage.playbooks.containerconfig.messages import ConfigMessage
from kubetriage.playbooks.containerconfig.reads import ConfigFacts

_LISTED_KEYS = 8


def _waiting_text(facts: ConfigFacts) -> str:
    waiting, total = len(facts.waiting_pods), max(facts.all_pods, len(facts.waiting_pods))
    reasons = sorted({w.reason for w in facts.waiting})
    return f"{waiting} of {total} pods waiting in {'/'.join(reasons)}"


def _used_by(facts: ConfigFacts) -> str:
    users = sorted({ref.used_by for ref in facts.refs})
    return f", which {' and '.join(users)} {'uses' if len(users) == 1 else 'use'}" if users else ""


def keys_text(keys: set[str]) -> str:
    """The keys of a ConfigMap for a sentence: sorted, the first few."""
    listed = sorted(keys)
    more = f" and {len(listed) - _LISTED_KEYS} more" if len(listed) > _LISTED_KEYS else ""
    return ", ".join(listed[:_LISTED_KEYS]) + more if listed else "none"


def decide(facts: ConfigFacts) -> Verdict:
    """Apply the rules of this module's docstring."""
    who = f"Container {facts.container} of {facts.target.kind} {facts.target.name}"
    message = facts.message
    if message is None:
        summary = (
            f"{who} cannot be created ({_waiting_text(facts)}) and the kubelet left no message "
            "in the pod or its events"
        )
        return Verdict(cause(Category.CONFIG_INVALID, summary, 0.3))
    if message.category in {Category.CONFIG_MISSING_SECRET, Category.CONFIG_MISSING_CONFIG_MAP}:
        return _missing_object(facts, message, who)
    if message.category is Category.CONFIG_MISSING_KEY:
        return _missing_key(facts, message, who)
    if message.category is Category.CONFIG_RUN_AS_NON_ROOT:
        return _non_root(facts, message, who)
    summary = f"{who} cannot be created ({_waiting_text(facts)}): the runtime says {message.text!r}"
    return Verdict(cause(Category.CONFIG_INVALID, summary, 0.6))


def _missing_object(facts: ConfigFacts, message: ConfigMessage, who: str) -> Verdict:
    confidence = 0.95 if facts.refs else 0.8
    namespace = facts.target.namespace
    summary = (
        f"{who} cannot start: {message.kind} {message.name}{_used_by(facts)}, does not exist in "
        f"namespace {namespace} ({_waiting_text(facts)})"
    )
    if facts.running_pods:
        summary += (
            f"; {len(facts.running_pods)} pods that started earlier run: a container reads its "
            "configuration only when it starts"
        )
    return Verdict(cause(message.category, summary, confidence))


def _missing_key(facts: ConfigFacts, message: ConfigMessage, who: str) -> Verdict:
    confidence = 0.95 if facts.refs else 0.8
    summary = (
        f"{who} cannot start: {message.kind} {message.name} has no key {message.key}"
        f"{_used_by(facts)} ({_waiting_text(facts)})"
    )
    if message.kind == "ConfigMap" and facts.config_map_keys is not None:
        summary += f"; its keys are {keys_text(facts.config_map_keys)}"
    if facts.running_pods:
        summary += (
            f"; {len(facts.running_pods)} pods that started earlier run: the key was there, or "
            "the reference was different, when they started"
        )
    return Verdict(cause(Category.CONFIG_MISSING_KEY, summary, confidence))


def _non_root(facts: ConfigFacts, message: ConfigMessage, who: str) -> Verdict:
    security = facts.security
    set_in = security.non_root_from if security is not None and security.run_as_non_root else None
    confidence = 0.95 if set_in else 0.8
    image = security.image if security is not None else "its image"
    required = f"runAsNonRoot is set in {set_in}" if set_in else "the kubelet requires non-root"
    if message.user is not None:
        runs_as = f"the image {image} names its user {message.user!r}, not a number"
    elif security is not None and security.run_as_user == 0:
        runs_as = f"runAsUser is 0 (root) in {security.user_from}"
    elif security is not None and security.run_as_user is None:
        runs_as = f"the image {image} runs as root and no runAsUser is set"
    else:
        runs_as = f"the image {image} runs as root"
    summary = f"{who} cannot start: {required}, and {runs_as} ({_waiting_text(facts)})"
    return Verdict(cause(Category.CONFIG_RUN_AS_NON_ROOT, summary, confidence))
