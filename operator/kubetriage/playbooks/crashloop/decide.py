"""How the CrashLoopBackOff runbook decides: the cause each affected pod's own evidence points
at, then the one answer the pods agree on, how sure that makes us, the one-line summary that
names the facts, and the ranked alternatives. Pure rules over what `reads` gathered.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from kubetriage.k8s.access import as_dict
from kubetriage.k8s.owners import WorkloadRef
from kubetriage.models import Category, RootCause
from kubetriage.playbooks.base import cause
from kubetriage.playbooks.crashloop.messages import (
    Clue,
    Signal,
    credential_kind,
    credential_quote,
    headline,
    reads_as_error,
)
from kubetriage.playbooks.crashloop.reads import (
    Architectures,
    ConfigView,
    Crash,
    CredentialSource,
    DependencyCheck,
    probe_window,
)

C = Category
# When pods disagree, the most common cause wins; ties go to the more specific cause.
PRECEDENCE = (
    C.CRASHLOOP_COMMAND_NOT_FOUND,
    C.CRASHLOOP_PERMISSION_DENIED,
    C.CRASHLOOP_WRONG_ARCHITECTURE,
    C.CRASHLOOP_STARTUP_PROBE_FAILURE,
    C.CRASHLOOP_LIVENESS_PROBE_FAILURE,
    C.CRASHLOOP_MISSING_CONFIGURATION,
    C.CRASHLOOP_INVALID_CREDENTIALS,
    C.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
    C.CRASHLOOP_EXITED_IMMEDIATELY,
    C.CRASHLOOP_SEGFAULT,
    C.CRASHLOOP_APPLICATION_ERROR,
)
# Causes only a log can show: without any log they rest on less.
_LOG_BASED = frozenset(
    {
        C.CRASHLOOP_MISSING_CONFIGURATION,
        C.CRASHLOOP_INVALID_CREDENTIALS,
        C.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
        C.CRASHLOOP_APPLICATION_ERROR,
    }
)
_PROBE_KILLS = frozenset({C.CRASHLOOP_LIVENESS_PROBE_FAILURE, C.CRASHLOOP_STARTUP_PROBE_FAILURE})
_LISTED_PODS = 3
NO_LOG = "no previous log was available"
# What the pods' logs were, when there was none to read: absent, empty and gone are different.
LOG_STATES = {
    "absent": NO_LOG,
    "empty": "its previous log is empty: the process wrote nothing before it exited",
    "unretrievable": "the kubelet could not retrieve the previous log (the runtime removed it)",
}


def log_state(crashes: list[Crash]) -> str | None:
    """Why no affected pod has a log to quote (the most common reason), None when one has."""
    if any(c.log and c.log.strip() for c in crashes):
        return None
    states = [c.log_state for c in crashes] or ["absent"]
    return LOG_STATES.get(max(states, key=states.count), NO_LOG)


# --- each pod on its own ---------------------------------------------------------------------
# A missing file in one of these places, or of one of these types, is configuration.
_CONFIG_DIRS = (
    "/etc/",
    "/config",
    "/conf",
    "/secrets",
    "/run/secrets",
    "/var/run/secrets",
    "/vault/",
)
_CONFIG_EXTENSIONS = (".yaml", ".yml", ".json", ".toml", ".ini", ".conf", ".cfg", ".properties",
                      ".env", ".xml", ".crt", ".pem", ".key", ".cert")  # fmt: skip


def config_like(path: str, mounts: list[str]) -> bool:
    """Whether a missing file is configuration (rather than a file the image lacks)."""
    lowered = path.lower()
    return (
        lowered.startswith(_CONFIG_DIRS)
        or lowered.endswith(_CONFIG_EXTENSIONS)
        or any(
            word in lowered for word in ("config", "conf.", "secret", "cert", "tls", "credential")
        )
        or any(m and path.startswith(m.rstrip("/") + "/") for m in mounts)
        or not path.startswith("/")  # a bare name such as viper's Config File "config"
    )


def classify(
    crash: Crash,
    *,
    must_run: bool,
    probe: dict[str, Any],
    mounts: list[str],
    startup: dict[str, Any] | None = None,
) -> None:
    """The root cause this pod's own evidence points at, with how sure it makes us. `probe` is
    the container's livenessProbe, `startup` its startupProbe."""
    code, start = crash.exit_code, crash.start_failure

    def verdict(
        category: Category, confidence: float, clue: Clue | None = None, detail: str = ""
    ) -> None:
        crash.category, crash.confidence, crash.clue = category, confidence, clue
        crash.subject = clue.subject if clue else None
        crash.detail = detail or (clue.detail if clue else "")

    def last(*signals: Signal) -> Clue | None:
        return next((f for f in reversed(crash.clues) if f.signal in signals), None)

    if start is not None and start.signal in {
        Signal.COMMAND,
        Signal.PERMISSION,
        Signal.EXEC_FORMAT,
    }:
        category = {
            Signal.COMMAND: Category.CRASHLOOP_COMMAND_NOT_FOUND,
            Signal.PERMISSION: Category.CRASHLOOP_PERMISSION_DENIED,
            Signal.EXEC_FORMAT: Category.CRASHLOOP_WRONG_ARCHITECTURE,
        }[start.signal]
        return verdict(category, 0.95 if start.signal != Signal.EXEC_FORMAT else 0.9, start, "exec")
    if code == 127:
        found = last(Signal.COMMAND)
        return verdict(Category.CRASHLOOP_COMMAND_NOT_FOUND, 0.95 if found else 0.85, found)
    if code == 126:
        found = last(Signal.PERMISSION)
        return verdict(Category.CRASHLOOP_PERMISSION_DENIED, 0.95 if found else 0.85, found, "exec")
    if crash.kill_probe is not None:
        category = (
            Category.CRASHLOOP_STARTUP_PROBE_FAILURE
            if crash.kill_probe == "startup"
            else Category.CRASHLOOP_LIVENESS_PROBE_FAILURE
        )
        return verdict(category, 0.9, detail=_probe_kind(crash))
    if code in {137, 143} and crash.probe_failures:
        probes = {failure.probe for failure, _ in crash.probe_failures}
        category = (
            Category.CRASHLOOP_STARTUP_PROBE_FAILURE
            if probes == {"startup"}
            else Category.CRASHLOOP_LIVENESS_PROBE_FAILURE
        )
        return verdict(category, 0.75, detail=_probe_kind(crash))
    if code == 137 and startup and _within_kill_window(crash, startup):
        return verdict(Category.CRASHLOOP_STARTUP_PROBE_FAILURE, 0.6, detail="expired")
    if code == 137 and _within_kill_window(crash, probe):
        # Events expire after an hour: a SIGKILL right when the liveness probe would have given
        # up is the probe's doing even when its events are gone.
        return verdict(Category.CRASHLOOP_LIVENESS_PROBE_FAILURE, 0.6, detail="expired")
    if code == 139:
        return verdict(
            Category.CRASHLOOP_SEGFAULT,
            0.95 if last(Signal.SEGFAULT) else 0.9,
            last(Signal.SEGFAULT),
        )
    if code == 0 or crash.reason == "Completed":
        if must_run:
            return verdict(Category.CRASHLOOP_EXITED_IMMEDIATELY, 0.9)
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.5)
    actionable = [
        f for f in crash.clues
        if f.signal != Signal.CONFIG_FILE or config_like(str(f.subject), mounts)
    ]  # fmt: skip
    if code is not None:
        actionable = [f for f in actionable if f.signal != Signal.SEGFAULT]
    if actionable:
        found = actionable[-1]
        if found.signal in {Signal.DEPENDENCY, Signal.CREDENTIALS} and not found.subject:
            # "Caused by: java.net.ConnectException: Connection refused" names no host; the
            # line above it that does is the same failure, said better.
            found = next(
                (f for f in reversed(actionable) if f.signal == found.signal and
                 (f.subject or f.host_ip)),
                found,
            )  # fmt: skip
        category, confidence, detail = {
            Signal.COMMAND: (Category.CRASHLOOP_COMMAND_NOT_FOUND, 0.85, ""),
            Signal.PERMISSION: (
                Category.CRASHLOOP_PERMISSION_DENIED,
                0.85 if found.detail == "exec" else 0.8,
                "",
            ),
            Signal.EXEC_FORMAT: (Category.CRASHLOOP_WRONG_ARCHITECTURE, 0.9, ""),
            Signal.CONFIG_KEY: (Category.CRASHLOOP_MISSING_CONFIGURATION, 0.8, ""),
            Signal.CONFIG_FILE: (Category.CRASHLOOP_MISSING_CONFIGURATION, 0.75, ""),
            Signal.CREDENTIALS: (Category.CRASHLOOP_INVALID_CREDENTIALS, 0.85, ""),
            Signal.DEPENDENCY: (Category.CRASHLOOP_DEPENDENCY_UNAVAILABLE, 0.8, ""),
            Signal.SEGFAULT: (Category.CRASHLOOP_SEGFAULT, 0.7, ""),
            Signal.START_OTHER: (Category.CRASHLOOP_APPLICATION_ERROR, 0.7, ""),
        }[found.signal]
        return verdict(category, confidence, found, detail)
    if start is not None:
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.7, start)
    if code == 137:
        return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.55, detail="sigkill")
    return verdict(Category.CRASHLOOP_APPLICATION_ERROR, 0.75 if crash.log else 0.5)


def _probe_kind(crash: Crash) -> str:
    kinds = [failure.kind for failure, _ in crash.probe_failures]
    return max(kinds, key=kinds.count) if kinds else ""


def _within_kill_window(crash: Crash, probe: dict[str, Any]) -> bool:
    runtime = crash.runtime
    if not probe or runtime is None:
        return False
    window = probe_window(probe)[4]
    grace = 30 + 10  # the default termination grace period, and slack
    return window <= runtime <= window + grace


def near_name(wanted: str, candidates: set[str]) -> str | None:
    """The candidate most likely meant by `wanted`: the same words abbreviated (DB_URL for
    DATABASE_URL), or a close spelling."""
    words = _words(wanted)
    for candidate in sorted(candidates - {wanted}):
        theirs = _words(candidate)
        if len(theirs) == len(words) and all(
            _abbreviates(a, b) or _abbreviates(b, a) for a, b in zip(theirs, words, strict=True)
        ):
            return candidate
    close = difflib.get_close_matches(wanted, sorted(candidates - {wanted}), n=1, cutoff=0.75)
    return close[0] if close else None


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^A-Za-z0-9]+", name.lower()) if w]


def _abbreviates(short: str, long: str) -> bool:
    if not short or short[0] != long[0] or len(short) > len(long):
        return False
    rest = iter(long[1:])
    return all(char in rest for char in short[1:])


# --- the pods together ------------------------------------------------------------------------


@dataclass
class Picture:
    """Everything the runbook has established, across the affected pods."""

    target: WorkloadRef
    crashes: list[Crash] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)  # the crashing container's spec
    view: ConfigView = field(default_factory=ConfigView)
    dependency: DependencyCheck | None = None
    key_note: str | None = None  # what the config check found about the key the log names
    promoted: bool = False  # MissingConfiguration from pod-spec references alone
    total_pods: int = 0  # the workload's pods, crash-looping or not
    credentials: list[CredentialSource] = field(default_factory=list)
    arches: Architectures | None = None

    @property
    def has_logs(self) -> bool:
        """Whether any affected pod had a previous log."""
        return any(c.log for c in self.crashes)

    def agreeing(self, category: Category) -> list[Crash]:
        """The pods whose own evidence points at `category` (all of them when promoted)."""
        if self.promoted:
            return list(self.crashes)
        return [c for c in self.crashes if c.category == category]


def primary_of(picture: Picture) -> Category:
    """The cause most pods point at (the more specific one on a tie)."""
    if not picture.crashes:
        return C.CRASHLOOP_APPLICATION_ERROR
    counts = Counter(c.category for c in picture.crashes)
    return max(counts, key=lambda k: (counts[k], -PRECEDENCE.index(k)))


def confidence_of(picture: Picture, primary: Category) -> float:
    """How sure the evidence makes the primary cause: each pod's own confidence, scaled by the
    share of pods that agree, raised when all fail the same way, and lowered for missing logs,
    missing status, and a dependency that turned out to be up."""
    crashes = picture.crashes
    if picture.promoted:
        # An optional reference is silently absent; a missing required one stops the next start
        # (CreateContainerConfigError), so it explains less of a crash loop.
        silent = any(r.silently_missing for r in picture.view.missing)
        return (0.75 if silent else 0.55) - (0.0 if picture.has_logs else 0.1)
    agreeing = picture.agreeing(primary)
    if not agreeing:
        return 0.3
    share = len(agreeing) / len(crashes)
    value = sum(c.confidence for c in agreeing) / len(agreeing) * (0.6 + 0.4 * share)
    if share == 1 and len(agreeing) > 1 and len({c.signature for c in agreeing}) == 1:
        value += 0.05
    if primary in _LOG_BASED and not picture.has_logs:
        value -= 0.15
    if all(c.exit_code is None and not c.reason for c in crashes):
        value -= 0.2
    dep = picture.dependency
    if primary == C.CRASHLOOP_DEPENDENCY_UNAVAILABLE and dep is not None:
        if dep.state in {"no-service", "no-ready-endpoints"}:
            value += 0.1
        elif dep.state == "ready":
            value -= 0.15
    if primary == C.CRASHLOOP_INVALID_CREDENTIALS and dep is not None and dep.state == "ready":
        value += 0.05  # the dependency is up: it answered, and said no
    if primary == C.CRASHLOOP_MISSING_CONFIGURATION and any(
        r.silently_missing for r in picture.view.missing
    ):
        value += 0.05
    return min(0.97, max(0.05, value))


def summary_of(picture: Picture, primary: Category) -> str:
    """One line naming the concrete facts: container, workload, pods, codes, subjects."""
    agreeing = picture.agreeing(primary)
    lead = agreeing[0] if agreeing else (picture.crashes[0] if picture.crashes else None)
    target = f"{picture.target.kind} {picture.target.name}"
    if lead is None:
        return f"{target} is crash-looping, but no affected pod's status could be read."
    count = len(agreeing) or len(picture.crashes)
    total = max(picture.total_pods, len(picture.crashes))
    who = f"{what(lead)} of {target} ({count} of {total} pod(s))"
    code = f"exit code {lead.exit_code}" if lead.exit_code is not None else "no exit code"
    runtime = median_of([c.runtime for c in agreeing])
    ran = f" after {runtime:.0f}s" if runtime is not None else ""
    said = headline(lead.log) if lead.log else None
    subject = lead.subject or "its command"
    reason = f", {lead.reason}" if lead.reason else ""
    if primary == C.CRASHLOOP_COMMAND_NOT_FOUND:
        text = f"{who} cannot start: {subject} is not found ({code}{reason})"
    elif primary == C.CRASHLOOP_PERMISSION_DENIED:
        text = f"{who} fails with permission denied on {subject} ({code})"
    elif primary == C.CRASHLOOP_LIVENESS_PROBE_FAILURE:
        text = _liveness(picture, who, lead, ran)
    elif primary == C.CRASHLOOP_STARTUP_PROBE_FAILURE:
        text = _startup(picture, who, lead, ran)
    elif primary == C.CRASHLOOP_WRONG_ARCHITECTURE:
        text = _architecture(picture, who, lead)
    elif primary == C.CRASHLOOP_MISSING_CONFIGURATION:
        text = _configuration(picture, who, lead, code)
    elif primary == C.CRASHLOOP_INVALID_CREDENTIALS:
        text = _credentials(picture, who, lead, code)
    elif primary == C.CRASHLOOP_DEPENDENCY_UNAVAILABLE:
        dep = picture.dependency
        reached = f"{dep.target}: {dep.sentence(pronoun=True)}" if dep else "a dependency"
        text = f"{who} exits ({code}) because it cannot reach {reached}"
    elif primary == C.CRASHLOOP_EXITED_IMMEDIATELY:
        text = (
            f"{who} exits with code 0 ({lead.reason or 'Completed'}){ran}, but a "
            f"{picture.target.kind} restarts it: it runs to completion instead of staying up"
        )
    elif primary == C.CRASHLOOP_SEGFAULT:
        text = f"{who} crashes with SIGSEGV ({code})" + (f": {said}" if said else "")
    else:
        text = f"{who} exits with {code}{ran}"
        if lead.detail == "sigkill":
            text += ", killed by SIGKILL without OOMKilled or liveness-probe events"
        if said:
            text += f": {said}" if reads_as_error(said) else f"; its log ends with: {said}"
    # A container the runtime could not start has no log by nature: its message stands in.
    missing = log_state(picture.crashes)
    if missing and lead.start_failure is None:
        text += f" ({missing})"
    return text


def probe_said(crashes: list[Crash], spec: dict[str, Any], probe: str | None = None) -> str | None:
    """What the failed probe (`probe`: liveness or startup; any when None) said, as the
    kubelet's `Unhealthy` event quotes it, the most common first; an exec probe that failed with
    no output says nothing after the colon, and that is said in words. None when no probe
    failure was read."""
    counts = Counter(
        f.detail for c in crashes for f, _ in c.probe_failures if probe in {None, f.probe}
    )
    # The most common first; a tie goes to the first in text order, whatever order the events
    # were read in.
    said = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:1]
    if not said:
        return None
    if said[0][0]:
        return said[0][0]
    killed_by = probe or next((c.kill_probe for c in crashes if c.kill_probe), "liveness")
    settings = as_dict(spec.get(f"{killed_by}Probe"))
    return "its exec command printed nothing" if settings.get("exec") is not None else "no output"


def had_started(picture: Picture, runtime: float | None) -> bool:
    """Whether the container was up before its liveness probe killed it: it passed a
    startupProbe (the liveness probe only runs after one), or it ran well past the time a
    liveness probe gives a container that never passes."""
    if picture.spec.get("startupProbe"):
        return True
    if runtime is None:
        return False
    _, _, period, _, window = probe_window(as_dict(picture.spec.get("livenessProbe")))
    return runtime > window + max(2 * period, 30)


def _liveness(picture: Picture, who: str, lead: Crash, ran: str) -> str:
    delay, timeout, period, threshold, window = probe_window(
        as_dict(picture.spec.get("livenessProbe"))
    )
    killed = [c for c in picture.crashes if c.category == C.CRASHLOOP_LIVENESS_PROBE_FAILURE]
    said = probe_said(killed or picture.crashes, picture.spec)
    why = f" ({said})" if said else ""
    if not said and lead.detail == "expired":
        why = " (their events have expired; the SIGKILL came when the probe would give up)"
    runtime = median_of([c.runtime for c in killed])
    text = (
        f"The kubelet kills {who} after failed liveness probes{why}{ran}; the liveness probe "
        f"allows {window}s (initialDelaySeconds {delay}, periodSeconds {period}, "
        f"failureThreshold {threshold}, timeoutSeconds {timeout})"
    )
    if had_started(picture, runtime):
        failed = (
            "its health check began to fail while it ran"
            if lead.detail == "status"
            else "stopped answering while it ran"
        )
        text += f"; it had passed its liveness probe before (it had started), and {failed}"
        stall = next((c.stall for c in killed if c.stall), None)
        if stall:
            text += f": the log reports {stall}"
    elif not picture.spec.get("startupProbe"):
        text += " and there is no startupProbe"
    return text


def _startup(picture: Picture, who: str, lead: Crash, ran: str) -> str:
    delay, timeout, period, threshold, window = probe_window(
        as_dict(picture.spec.get("startupProbe"))
    )
    killed = [c for c in picture.crashes if c.category == C.CRASHLOOP_STARTUP_PROBE_FAILURE]
    said = probe_said(killed or picture.crashes, picture.spec, probe="startup")
    why = f" ({said})" if said else ""
    if not said and lead.detail == "expired":
        why = " (their events have expired; the SIGKILL came when the probe would give up)"
    return (
        f"The kubelet kills {who} after failed startup probes{why}{ran}: the startupProbe "
        f"allows {window}s to start (initialDelaySeconds {delay} + failureThreshold {threshold} "
        f"\u00d7 periodSeconds {period}, timeoutSeconds {timeout}), and the app did not pass it in "
        "that time"
    )


def _architecture(picture: Picture, who: str, lead: Crash) -> str:
    arches = picture.arches or Architectures()
    binary = f"{lead.subject}: " if lead.subject else ""
    failing = sorted(arches.failing)
    text = f"{who} cannot execute its binary ({binary}exec format error)"
    if failing:
        text += " on " + " and ".join(f"{a} nodes" for a in failing)
        places = "; ".join(f"{', '.join(n)} ({a})" for a, n in sorted(arches.failing.items()))
        text += f": it fails on {places}"
    running = {a: n for a, n in arches.running.items() if a not in arches.failing}
    if running:
        places = "; ".join(f"{', '.join(n)} ({a})" for a, n in sorted(running.items()))
        text += f", and runs on {places}"
    image = picture.spec.get("image")
    built = f"image {image}" if image else "the image"
    if failing and running:
        text += f": {built} has no working {' or '.join(failing)} build"
    else:
        text += f": {built} is built for another CPU architecture (or the file is no executable)"
    return text


def logged_keys(crash: Crash) -> list[str]:
    """Every setting the log says is missing, once each, in the order the log names them."""
    keys: list[str] = []
    for clue in crash.clues:
        if clue.signal == Signal.CONFIG_KEY and clue.subject and clue.subject not in keys:
            keys.append(clue.subject)
    return keys


def and_list(items: list[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _configuration(picture: Picture, who: str, lead: Crash, code: str) -> str:
    missing = picture.view.missing
    keys = logged_keys(lead) if lead.clue and lead.clue.signal == Signal.CONFIG_KEY else []
    if len(keys) > 1 and not picture.promoted:
        reason = picture.key_note or "the log names them"
        return f"{who} exits ({code}) because {and_list(keys)} are missing: {reason}"
    if lead.subject and not picture.promoted:
        reason = picture.key_note or f"the log says {lead.subject} is missing"
        return f"{who} exits ({code}) because {lead.subject} is missing: {reason}"
    ref = missing[0] if missing else None
    subject = (ref.key or ref.name) if ref else "a setting"
    described = ref.describe() if ref else "a referenced setting is missing"
    return f"{who} exits ({code}) with {subject} unavailable: {described}"


def _credentials(picture: Picture, who: str, lead: Crash, code: str) -> str:
    clue = lead.clue
    line = clue.line if clue else ""
    kind = credential_kind(line)
    dep = picture.dependency
    peer = dep.target if dep is not None and (dep.host or dep.ip) else f"its {kind}"
    quote = credential_quote(line)
    text = f"{who} exits ({code}) because {peer} refused its credentials"
    if quote:
        text += f" ({quote})"
    if dep is not None and dep.scope == "service" and dep.state == "ready":
        text += f": it answered ({dep.sentence(pronoun=True)})"
    source = picture.credentials[0] if picture.credentials else None
    if source is not None:
        text += f"; the credential comes from {source.describe()}"
    else:
        text += "; no env var, envFrom Secret or Secret volume of the container looks like it"
        text += " holds that credential"
    return text


def alternatives_of(
    picture: Picture, primary: Category, confidence: float
) -> tuple[RootCause, ...]:
    """Other causes the evidence leaves open, most likely first."""
    found: dict[Category, RootCause] = {}
    total = len(picture.crashes) or 1
    for category, count in Counter(c.category for c in picture.crashes).items():
        if category == primary or (picture.promoted and category == C.CRASHLOOP_APPLICATION_ERROR):
            continue
        members = [c for c in picture.crashes if c.category == category]
        subject = f": {members[0].subject}" if members[0].subject else ""
        found[category] = cause(
            category,
            f"{count} of {total} pod(s) ({names(members)}) point at this instead{subject}",
            min(confidence, members[0].confidence * count / total),
        )
    dep = picture.dependency
    if primary == C.CRASHLOOP_DEPENDENCY_UNAVAILABLE and dep is not None and dep.state == "ready":
        found.setdefault(C.CRASHLOOP_APPLICATION_ERROR, cause(
            C.CRASHLOOP_APPLICATION_ERROR,
            f"Service {dep.service} has ready endpoints: the connection settings (port, TLS, "
            "address) may be wrong rather than the dependency down", 0.35))  # fmt: skip
    if primary in _PROBE_KILLS:
        wanted = {
            Signal.DEPENDENCY: C.CRASHLOOP_DEPENDENCY_UNAVAILABLE,
            Signal.CONFIG_KEY: C.CRASHLOOP_MISSING_CONFIGURATION,
            Signal.CREDENTIALS: C.CRASHLOOP_INVALID_CREDENTIALS,
        }
        logged = next((f for c in picture.crashes for f in c.clues if f.signal in wanted), None)
        if logged is not None:
            category = wanted[logged.signal]
            found.setdefault(
                category, cause(category, f"the log also shows: {logged.line[:200]}", 0.3)
            )
        text = (
            "the health endpoint may fail for good, not only during start-up: check it once the "
            "app has had time to start"
            if primary == C.CRASHLOOP_LIVENESS_PROBE_FAILURE
            else "the app may never start (an error before it listens), not merely start slowly: "
            "its log says which"
        )
        found.setdefault(
            C.CRASHLOOP_APPLICATION_ERROR, cause(C.CRASHLOOP_APPLICATION_ERROR, text, 0.2)
        )
    if primary == C.CRASHLOOP_WRONG_ARCHITECTURE:
        found.setdefault(C.CRASHLOOP_APPLICATION_ERROR, cause(
            C.CRASHLOOP_APPLICATION_ERROR,
            "a script without a #! line, or a file that is no Linux executable, fails with the "
            "same exec format error on every architecture", 0.2))  # fmt: skip
    if primary == C.CRASHLOOP_INVALID_CREDENTIALS:
        found.setdefault(C.CRASHLOOP_APPLICATION_ERROR, cause(
            C.CRASHLOOP_APPLICATION_ERROR,
            "the credential may be right while the user may not log in from this client (a "
            "pg_hba.conf rule, a MySQL host grant, a Redis ACL)", 0.2))  # fmt: skip
    if primary == C.CRASHLOOP_APPLICATION_ERROR and any(
        c.exit_code == 137 for c in picture.crashes
    ):
        found.setdefault(C.CRASHLOOP_LIVENESS_PROBE_FAILURE, cause(
            C.CRASHLOOP_LIVENESS_PROBE_FAILURE,
            "exit code 137 is a SIGKILL: liveness-probe events may have expired", 0.3))  # fmt: skip
    if picture.promoted:
        found.setdefault(C.CRASHLOOP_APPLICATION_ERROR, cause(
            C.CRASHLOOP_APPLICATION_ERROR,
            "the missing reference may be unrelated: the log does not name it", 0.3))  # fmt: skip
    return tuple(sorted(found.values(), key=lambda r: r.confidence, reverse=True)[:4])


def what(crash: Crash) -> str:
    """ "container X" or "init container X"."""
    return f"{'init container' if crash.init else 'container'} {crash.container}"


def names(crashes: list[Crash]) -> str:
    """The first few pod names, and how many more."""
    listed = ", ".join(c.pod_name for c in crashes[:_LISTED_PODS])
    more = len(crashes) - _LISTED_PODS
    return listed + (f" and {more} more" if more > 0 else "")


def median_of(values: list[float | None]) -> float | None:
    """The median of the known values, None when none is known."""
    known = [v for v in values if v is not None]
    return median(known) if known else None
