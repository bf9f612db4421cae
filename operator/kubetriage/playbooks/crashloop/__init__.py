"""The CrashLoopBackOff runbook (DESIGN.md section 3).

What an on-call engineer does with a crash-looping container: read how it last ended (exit code,
the runtime's message), the kubelet's events about it (probe kills, start failures), and its
last log; then check what the log blames (a ConfigMap key, a Service, a credential), what
changed since the revision that worked, the architecture of the nodes it fails and runs on, and
whether the affected pods agree, before naming one cause.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, ClassVar

from kubetriage.detect import BACKOFF_RESET
from kubetriage.k8s.access import (
    as_dict,
    container_spec,
    containers,
    dicts,
    name_of,
    pod_template,
    text,
)
from kubetriage.k8s.events import events_about, involved_name
from kubetriage.k8s.owners import pods_of
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc, cause
from kubetriage.playbooks.crashloop.advise import CrashLoopFacts, recommend
from kubetriage.playbooks.crashloop.decide import (
    PRECEDENCE,
    Picture,
    alternatives_of,
    and_list,
    classify,
    confidence_of,
    had_started,
    log_state,
    logged_keys,
    median_of,
    names,
    near_name,
    primary_of,
    probe_said,
    summary_of,
    what,
)
from kubetriage.playbooks.crashloop.messages import (
    Clue,
    Signal,
    credential_kind,
    credential_quote,
    credential_words,
    error_lines,
    headline,
)
from kubetriage.playbooks.crashloop.reads import (
    ConfigRef,
    Crash,
    DependencyCheck,
    RevisionChange,
    architectures,
    check_dependency,
    config_view,
    credential_sources,
    previous_revision,
    probe_window,
    read_events,
    read_log,
    read_status,
)
from kubetriage.redact import excerpt

C = Category
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_ADDRESS = re.compile(r"URL|URI|HOST|ADDR|DSN|ENDPOINT|SERVER", re.IGNORECASE)
# Logs are read for this many pods at most: forty replicas crash the same way ten do.
_MAX_LOG_PODS = 10
_LONG_RUNNING = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"})

STEPS = (
    StepDoc(
        "Read the last termination",
        "each affected pod's container status: `lastState.terminated` exit code, reason, "
        "message, start and finish times, and the restart count",
        "The exit code and the runtime's message classify most crashes: 127 command not found, "
        "126 not executable, 137 SIGKILL, 139 SIGSEGV, 0 finished, and StartError or "
        "ContainerCannotRun carry the runtime's own words.",
    ),
    StepDoc(
        "Read the pod events",
        "the pods' `Killing`, `Unhealthy` and `Failed` events about the container",
        "A liveness-probe kill and a start failure show only there; events expire after an "
        "hour, so the pod status stands in when they are gone.",
    ),
    StepDoc(
        "Read the previous logs",
        "the log of the run that ended, for up to "
        f"{_MAX_LOG_PODS} affected pods: `kubectl logs --previous`, or `kubectl logs` while the "
        "container is still terminated",
        "The last lines before the crash name the missing command, file, setting, host or the "
        "credential a server refused; the line quoted is the one that says what failed, not a "
        "stack frame. An empty log, a missing one and one the kubelet could no longer retrieve "
        "are told apart.",
    ),
    StepDoc(
        "Check the probes",
        "the container's livenessProbe and startupProbe",
        "When the kubelet killed the container, the probe that did it and its budget "
        "(initialDelaySeconds + failureThreshold \u00d7 periodSeconds, timeoutSeconds) against "
        "how long the container ran tell a start slower than the startupProbe allows "
        "(CrashLoop.StartupProbeFailure: raise the startup budget, never the liveness probe) "
        "from an app that had started and then stalled, or a probe aimed at a path the app "
        "does not serve.",
    ),
    StepDoc(
        "Check configuration references",
        "ConfigMaps (keys only) and Secrets (existence only) referenced by env, envFrom and "
        "volumes, and the configuration file a flag or a mounted ConfigMap gives the container",
        "A setting the log says is missing is either not referenced, referenced under another "
        "name, or refers to a key or object that does not exist; one named as a file or a flag "
        "names it (client-id) belongs in the file the app reads, not in an env var. A ConfigMap "
        "a snapshot did not capture is said to be unknown, not missing.",
    ),
    StepDoc(
        "Check the dependency",
        "the Service of the host the log could not reach (an IP is mapped to the Service whose "
        "ClusterIP it is, or to its pod), its EndpointSlices (Endpoints where only those were "
        "captured), the pods its selector matches and the workload behind them; for a refused "
        "credential, the Secret and key that feed it (names only)",
        "A refused connection to a Service without ready endpoints is the dependency's outage, "
        "not this workload's bug, and why it has none (its selector matches no pod, or its pods "
        "are not ready) says where to act; a host with no Service is a wrong address; a "
        "dependency that answered and refused the credentials (password authentication failed, "
        "Access denied, WRONGPASS, SASL, HTTP 401/403) is up, and the Secret is wrong "
        "(CrashLoop.InvalidCredentials).",
    ),
    StepDoc(
        "Compare with the previous revision",
        "the Deployment's ReplicaSets: the failing newest revision against the last one with "
        "ready pods",
        "When only the new revision crashes, what changed (image, command, args, env names) is "
        "the likely cause, and a rollback the fastest fix.",
    ),
    StepDoc(
        "Check the nodes",
        "the `kubernetes.io/arch` label of the nodes the failing pods run on, and of those "
        "where the workload's other pods run",
        "`exec format error` means the binary is not built for the node's CPU: the nodes that "
        "fail and those that do not say which architecture the image lacks "
        "(CrashLoop.WrongArchitecture).",
    ),
    StepDoc(
        "Compare the pods and conclude",
        "the cause each pod's own evidence points at, against all of the workload's pods",
        "All affected pods failing the same way raises confidence; a split lowers it and ranks "
        "the minority's causes as alternatives.",
    ),
)


class CrashLoopPlaybook(Playbook):
    """Diagnoses a container the kubelet keeps restarting (CrashLoopBackOff)."""

    symptom: ClassVar[Symptom] = Symptom.CRASH_LOOP_BACK_OFF
    title: ClassVar[str] = "CrashLoopBackOff"
    description: ClassVar[str] = (
        "A container (or init container) keeps exiting and the kubelet restarts it with growing "
        "back-off. The runbook reads how it last ended, the kubelet's events and the last log "
        "of every affected pod, follows what the log blames (a command, a file, a setting, a "
        "Service or an IP, a credential a server refused) into the cluster, weighs the probe "
        "that killed it against how long it ran, compares the failing revision with the one "
        "that worked and the nodes it fails on with those it runs on, and names the cause the "
        "affected pods agree on."
    )
    steps: ClassVar[tuple[StepDoc, ...]] = STEPS
    categories: ClassVar[tuple[Category, ...]] = PRECEDENCE

    def run(self, context: Context, investigation: Investigation) -> Conclusion:
        """Follow the steps over the affected pods."""
        return _Run(context, investigation).conclude()


class _Run:
    """One pass of the runbook: one method per documented step, called in order."""

    def __init__(self, context: Context, investigation: Investigation) -> None:
        self.ctx, self.inv = context, investigation
        self.ns = context.namespace
        self.picture = Picture(target=context.target)
        self.near_key: tuple[str, str] | None = None
        self.revision: RevisionChange | None = None
        self.workload_pods: list[dict[str, Any]] = []
        self.keys: list[str] = []  # every setting the log says is missing
        self.uncaptured: list[ConfigRef] = []  # the key's source, not in the snapshot

    @property
    def crashes(self) -> list[Crash]:
        """The affected pods' crash-looping containers, as read so far."""
        return self.picture.crashes

    def conclude(self) -> Conclusion:
        """Run every step and name the cause."""
        self.read_termination()
        self.read_events()
        self.read_logs()
        primary = primary_of(self.picture)
        self.check_probes(primary)
        self.check_config(primary)
        if primary == C.CRASHLOOP_APPLICATION_ERROR and self.picture.view.missing:
            primary, self.picture.promoted = C.CRASHLOOP_MISSING_CONFIGURATION, True
        self.check_dependency(primary)
        self.compare_revision()
        self.check_nodes(primary)
        confidence = confidence_of(self.picture, primary)
        agreeing = self.picture.agreeing(primary)
        same = len(agreeing) > 1 and len({c.signature for c in agreeing}) == 1
        total = max(self.picture.total_pods, len(self.crashes))
        self.inv.step(
            STEPS[8].name,
            f"{len(agreeing)} of the {len(self.crashes)} crash-looping pod(s) point at "
            f"{primary.value}"
            + (" and fail the same way" if same else "")
            + f"; the workload has {total} pod(s); confidence {confidence:.2f}.",
        )
        recommendation, scope = recommend(self._facts(primary, agreeing))
        return Conclusion(
            root_cause=cause(primary, summary_of(self.picture, primary), confidence),
            alternatives=alternatives_of(self.picture, primary, confidence),
            recommendation=recommendation,
            scope=scope,
        )

    # -- 1 ---------------------------------------------------------------------------------------
    def read_termination(self) -> None:
        """Step 1: each affected pod's last termination, grouped by exit code and reason."""
        focus = self.ctx.container
        pods = {name_of(p): p for p in self.ctx.pods}
        others: Counter[str] = Counter()
        for sighting in self.ctx.sightings:
            pod = pods.get(sighting.object_name)
            if pod is None or sighting.symptom != Symptom.CRASH_LOOP_BACK_OFF:
                continue
            if focus and sighting.container != focus:
                others[str(sighting.container)] += 1
            elif all(c.pod_name != sighting.object_name for c in self.crashes):
                container = focus or _first_container(pod)
                self.crashes.append(read_status(pod, container, sighting.init_container))
        if not self.crashes:
            self.crashes.extend(
                read_status(p, focus or _first_container(p), False) for p in self.ctx.pods
            )
        workload_pods = pods_of(self.ctx.reader, self.ctx.target)
        self.workload_pods = workload_pods
        self._also_crashing(workload_pods, focus)
        self.picture.total_pods = len(
            {name_of(p) for p in workload_pods} | {c.pod_name for c in self.crashes}
        )
        self.picture.spec = self._container_spec()
        groups: dict[tuple[int | None, str], list[Crash]] = {}
        for crash in self.crashes:
            groups.setdefault((crash.exit_code, crash.reason), []).append(crash)
        for (code, reason), group in groups.items():
            self.inv.add_evidence(
                EvidenceSource.POD_STATUS,
                _termination(group, code, reason),
                next((c.message for c in group if c.message), None),
            )
        if not self.crashes:
            self.inv.step(STEPS[0].name, "No affected pod could be read.")
            return
        codes = ", ".join(f"{code} in {len(g)} pod(s)" for (code, _), g in groups.items())
        first = what(self.crashes[0])
        outcome = (
            f"{len(self.crashes)} pod(s) with {first} crash-looping; last exit codes: {codes}."
        )
        if others:
            also = ", ".join(f"{name} in {n} pod(s)" for name, n in others.items())
            outcome += f" Also crash-looping: {also}."
        self.inv.step(STEPS[0].name, outcome)

    def _also_crashing(self, pods: list[dict[str, Any]], focus: str | None) -> None:
        """Pods of the workload that crashed the same container and are not in the loop's
        sightings yet: one that just crashed for the first time (terminated, not restarted),
        or one that runs again after a crash the kubelet still backs off from."""
        if not self.crashes:
            return
        container = focus or self.crashes[0].container
        init = self.crashes[0].init
        seen = {c.pod_name for c in self.crashes}
        now = self.ctx.now
        for pod in pods:
            if name_of(pod) in seen:
                continue
            crash = read_status(pod, container, init)
            if crash.exit_code in {None, 0} or crash.reason == "OOMKilled":
                continue
            if crash.finished is None or now - crash.finished > BACKOFF_RESET:
                continue
            self.crashes.append(crash)

    def _container_spec(self) -> dict[str, Any]:
        if not self.crashes:
            return {}
        first = self.crashes[0]
        found = container_spec(first.pod, first.container) if first.container else {}
        if found:
            return found
        template = containers(pod_template(self.ctx.workload))
        return next((c for c in template if c.get("name") == first.container), {})

    # -- 2 ---------------------------------------------------------------------------------------
    def read_events(self) -> None:
        """Step 2: the kubelet's probe kills, probe failures and start failures."""
        pod_names = {c.pod_name for c in self.crashes}
        events = events_about(self.ctx.reader, self.ns, "Pod", pod_names) if pod_names else []
        shown: Counter[tuple[str, str]] = Counter()
        for crash in self.crashes:
            own = [e for e in events if involved_name(e) == crash.pod_name]
            for event in read_events(crash, own):
                shown[(str(event.get("reason")), str(event.get("message") or ""))] += 1
        for (reason, message), pods in shown.most_common(6):
            self.inv.add_evidence(EvidenceSource.EVENTS, f"{reason} in {pods} pod(s): {message}")
        if not events:
            outcome = (
                "No events about these pods (they expire after an hour): the pod status stands in."
            )
        else:
            kills = sum(1 for c in self.crashes if c.kill_probe)
            starts = sum(1 for c in self.crashes if c.start_failure is not None)
            outcome = (
                f"{len(events)} events; a probe kill ended the last run in {kills} pod(s), a "
                f"start failure in {starts}."
            )
        self.inv.step(STEPS[1].name, outcome)

    # -- 3 ---------------------------------------------------------------------------------------
    def read_logs(self) -> None:
        """Step 3: the previous logs; then what each pod's own evidence points at."""
        for crash in self.crashes[:_MAX_LOG_PODS]:
            read_log(crash, self.ctx.reader, self.ns)
        with_log = [c for c in self.crashes if c.log]
        by_message: dict[str, list[Crash]] = {}
        for crash in with_log:
            # Timestamps and counters differ from pod to pod; the message is what is compared.
            by_message.setdefault(re.sub(r"\d+", "#", headline(crash.log) or ""), []).append(crash)
        for group in list(by_message.values())[:4]:
            last = headline(group[0].log) or (error_lines(group[0].log) or ["(empty)"])[-1]
            # A container terminated now: its log is the current one, of the run that ended.
            which = "log of the run that ended" if group[0].current else "previous log"
            self.inv.add_evidence(
                EvidenceSource.LOGS,
                f"{which} of {len(group)} pod(s) ({names(group)}): {last}",
                excerpt(group[0].log or "", max_lines=20, max_bytes=4096).text,
            )
        read = min(len(self.crashes), _MAX_LOG_PODS)
        missing = log_state(self.crashes[:_MAX_LOG_PODS])
        if with_log:
            outcome = (
                f"Previous logs of {len(with_log)} of {read} pod(s), "
                f"{len(by_message)} distinct last error(s)."
            )
        else:
            outcome = f"For the {read} pod(s) read, {missing}; status and events only."
        self.inv.step(STEPS[2].name, outcome)
        self._classify()

    def _classify(self) -> None:
        spec = self.picture.spec
        pod_spec = as_dict(self.crashes[0].pod.get("spec")) if self.crashes else {}
        must_run = self.ctx.target.kind in _LONG_RUNNING or text(pod_spec.get("restartPolicy")) in {
            "",  # unset: Always, the default
            "Always",
        }
        mounts = [str(m.get("mountPath") or "") for m in dicts(spec.get("volumeMounts"))]
        probe = as_dict(spec.get("livenessProbe"))
        startup = as_dict(spec.get("startupProbe"))
        for crash in self.crashes:
            classify(crash, must_run=must_run, probe=probe, mounts=mounts, startup=startup)

    # -- 4 ---------------------------------------------------------------------------------------
    def check_probes(self, primary: Category) -> None:
        """Step 4: the probe settings against how long the container ran."""
        spec = self.picture.spec
        probe_kills = {C.CRASHLOOP_LIVENESS_PROBE_FAILURE, C.CRASHLOOP_STARTUP_PROBE_FAILURE}
        killed = [c for c in self.crashes if c.category in probe_kills]
        if not killed and primary not in probe_kills:
            has = (
                "a livenessProbe is set" if spec.get("livenessProbe") else "no livenessProbe is set"
            )
            self.inv.step(STEPS[3].name, f"Not the cause: no probe killed the container ({has}).")
            return
        for name in ("livenessProbe", "startupProbe"):
            probe = as_dict(spec.get(name))
            if probe:
                delay, timeout, period, threshold, window = probe_window(probe)
                self.inv.add_evidence(
                    EvidenceSource.POD_SPEC,
                    f"{name} of {spec.get('name')}: {_handler(probe)}, initialDelaySeconds "
                    f"{delay}, timeoutSeconds {timeout}, periodSeconds {period}, failureThreshold "
                    f"{threshold}: a container that never passes is killed {window}s after start",
                )
        runtime = median_of([c.runtime for c in killed])
        which = "startup" if primary == C.CRASHLOOP_STARTUP_PROBE_FAILURE else "liveness"
        said = probe_said(killed, spec, probe=which)
        outcome = (
            f"The kubelet killed the container in {len(killed)} pod(s) after failed {which} "
            "probes"
            + (f" ({said})" if said else "")
            + (f", {runtime:.0f}s after it started" if runtime is not None else "")
        )
        if which == "startup":
            window = probe_window(as_dict(spec.get("startupProbe")))[4]
            outcome += f"; the startupProbe gives it {window}s to start"
        elif had_started(self.picture, runtime):
            outcome += "; it had passed the liveness probe before: not a slow start"
        elif not spec.get("startupProbe"):
            outcome += "; no startupProbe is set"
        self.inv.step(STEPS[3].name, outcome + ".")

    # -- 5 ---------------------------------------------------------------------------------------
    def check_config(self, primary: Category) -> None:
        """Step 5: the ConfigMap/Secret references, and the key the log says is missing."""
        pod_spec = (
            as_dict(self.crashes[0].pod.get("spec"))
            if self.crashes
            else pod_template(self.ctx.workload)
        )
        view = self.picture.view = config_view(
            self.ctx.reader, self.ns, pod_spec, self.picture.spec
        )
        for ref in view.refs:
            if ref.state != "ok":
                source = (
                    EvidenceSource.CONFIG_MAP if ref.kind == "ConfigMap" else EvidenceSource.SECRET
                )
                self.inv.add_evidence(source, ref.describe())
        missing = "; ".join(r.describe() for r in view.missing[:3])
        outcome = f"{len(view.refs)} ConfigMap/Secret reference(s), {len(view.missing)} missing" + (
            f" ({missing})" if missing else ""
        )
        key = self._logged_key(primary)
        if key:
            outcome += "; " + self._explain_key(key)
        self.inv.step(STEPS[4].name, outcome + ".")

    def _logged_key(self, primary: Category) -> str | None:
        if primary != C.CRASHLOOP_MISSING_CONFIGURATION:
            return None
        lead = next((c for c in self.crashes if c.category == primary and c.clue), None)
        found = lead.clue if lead else None
        if not found or found.signal != Signal.CONFIG_KEY or lead is None:
            return None
        self.keys = logged_keys(lead)
        return found.subject

    def _explain_key(self, key: str) -> str:
        view = self.picture.view
        keys = self.keys or [key]
        source = next((r for r in view.refs if r.used_by == f"env {key}" and r.missing), None)
        uncaptured = next(
            (r for r in view.refs if r.used_by == f"env {key}" and r.state == "not-captured"),
            None,
        )
        file_like = not all(_ENV_NAME.fullmatch(k) for k in keys)
        if source is not None:
            unset = "the variable is left unset" if source.optional else "the kubelet cannot set it"
            text = f"{key} comes from {source.describe()}, so {unset}"
        elif uncaptured is not None:
            text = (
                f"{key} comes from {uncaptured.kind} {uncaptured.name}"
                + (f" key {uncaptured.key}" if uncaptured.key else "")
                + ", which this snapshot did not capture (not captured: whether it exists and "
                "has the key is unknown)"
            )
            self.uncaptured = [uncaptured]
        elif file_like and view.files:
            files = "; ".join(f.describe() for f in view.files[:2])
            text = (
                f"{and_list(keys)} {'is a setting' if len(keys) == 1 else 'are settings'} of its "
                f"configuration file, not env vars: the app reads its settings from {files}"
            )
        elif file_like:
            text = (
                f"{and_list(keys)} {'is' if len(keys) == 1 else 'are'} named as a configuration "
                "file or a flag names a setting, not as an env var, and no configuration file is "
                "given to the container"
            )
        elif key.lower() in {name.lower() for name in view.env}:
            text = f"{key} is set by the pod spec, so it may be empty or malformed"
        else:
            text = f"{key} is set neither by env nor by envFrom"
            for config_map, cm_keys in sorted(view.config_map_keys.items()):
                near = near_name(key, cm_keys)
                if near:
                    self.near_key = (config_map, near)
                    text += f"; ConfigMap {config_map} has {near}"
                    break
            if view.opaque_sources:
                sources = ", ".join(view.opaque_sources)
                text += f" (unless {sources} holds it: Secret keys are not read)"
        listed = "; ".join(
            f"ConfigMap {n}: {', '.join(sorted(k)) or 'no keys'}"
            for n, k in sorted(view.config_map_keys.items())
        )
        self.inv.add_evidence(
            EvidenceSource.POD_SPEC,
            text,
            f"env var names: {', '.join(sorted(view.env)) or 'none'}. Keys: {listed or 'none'}.",
        )
        self.picture.key_note = text
        return text

    # -- 6 ---------------------------------------------------------------------------------------
    def check_dependency(self, primary: Category) -> None:
        """Step 6: the Service and endpoints behind the host the log could not reach, or that
        refused the credentials; and for a refused credential, where it comes from."""
        refused = [f for c in self.crashes for f in c.clues if f.signal == Signal.CREDENTIALS]
        use_refused = bool(refused) and (
            primary == C.CRASHLOOP_INVALID_CREDENTIALS
            or not any(f.signal == Signal.DEPENDENCY for c in self.crashes for f in c.clues)
        )
        wanted = Signal.CREDENTIALS if use_refused else Signal.DEPENDENCY
        found = [f for c in self.crashes for f in c.clues if f.signal == wanted]
        if not found:
            self.inv.step(STEPS[5].name, "Not needed: no log shows a failed connection.")
            return
        named = [f for f in found if f.subject or f.host_ip] or found
        (host, ip, port), _ = Counter((f.subject, f.host_ip, f.port) for f in named).most_common(1)[
            0
        ]
        dep = self.picture.dependency = check_dependency(self.ctx.reader, self.ns, host, ip, port)
        if wanted == Signal.CREDENTIALS:
            self._credentials(found, dep if dep.scope != "unknown" else None)
            return
        failure = Counter(f.detail for f in found).most_common(1)[0][0]
        reachable = dep.state in {"ready", "no-ready-endpoints"} or dep.scope == "pod"
        source = EvidenceSource.ENDPOINTS if reachable else EvidenceSource.SERVICE
        self.inv.add_evidence(source, f"{dep.target} ({failure}): {dep.sentence()}")
        for line in dep.backing:
            self.inv.add_evidence(EvidenceSource.WORKLOAD, f"behind Service {dep.service}: {line}")
        self.inv.step(
            STEPS[5].name,
            f"The log could not reach {dep.target} ({failure}); {dep.sentence(pronoun=True)}.",
        )

    def _credentials(self, found: list[Clue], dep: DependencyCheck | None) -> None:
        """Where the refused credential comes from (names only), and whether the server that
        refused it is up."""
        line = found[-1].line
        said = credential_quote(line) or credential_kind(line)
        pod_spec = as_dict(self.crashes[0].pod.get("spec")) if self.crashes else {}
        hints = credential_words(line)
        if dep is not None and dep.host:
            hints |= {w for w in re.split(r"[^a-z0-9]+", dep.host.lower()) if len(w) > 2}
        sources = credential_sources(pod_spec, self.picture.spec, hints)
        self.picture.credentials = sources
        peer = dep.target if dep is not None else f"its {credential_kind(line)}"
        outcome = f"The log shows {peer} answered and refused the credentials ({said})"
        if dep is not None:
            sentence = dep.sentence(pronoun=True)
            source = EvidenceSource.ENDPOINTS if dep.state == "ready" else EvidenceSource.SERVICE
            self.inv.add_evidence(
                source, f"{dep.target} (refused the credentials): {dep.sentence()}"
            )
            outcome += f"; {sentence}"
        for item in sources[:1]:
            self.inv.add_evidence(
                EvidenceSource.SECRET, f"the credential may come from {item.describe()}"
            )
        outcome += (
            f"; the credential likely comes from {sources[0].describe()}"
            if sources
            else "; no env var or Secret of the container looks like it holds it"
        )
        self.inv.step(STEPS[5].name, outcome + ".")

    # -- 7 ---------------------------------------------------------------------------------------
    def compare_revision(self) -> None:
        """Step 7: the failing revision against the one that last had ready pods."""
        pods = [c.pod for c in self.crashes]
        rev = self.revision = previous_revision(self.ctx.reader, self.ctx.target, pods)
        if rev is None:
            why = (
                "not a Deployment"
                if self.ctx.target.kind != "Deployment"
                else "no older revision, or the failing pods are not all in the newest one"
            )
            self.inv.step(STEPS[6].name, f"No rollback candidate ({why}).")
            return
        changes = "; ".join(rev.changes) or "nothing in the pod template"
        self.inv.add_evidence(
            EvidenceSource.REPLICASET,
            f"revision {rev.failing_revision} fails; revision {rev.good_revision} "
            f"({rev.good_replica_set}) has {rev.good_ready} ready pod(s); changed: {changes}",
        )
        self.inv.step(
            STEPS[6].name,
            f"Only the newest revision {rev.failing_revision} fails; changed since revision "
            f"{rev.good_revision}: {changes}.",
        )

    # -- 8 ---------------------------------------------------------------------------------------
    def check_nodes(self, primary: Category) -> None:
        """Step 8: the architecture of the nodes the failing pods run on, and the others'."""
        if primary != C.CRASHLOOP_WRONG_ARCHITECTURE:
            self.inv.step(STEPS[7].name, "Not needed: no exec format error.")
            return
        failing = [c.pod for c in self.crashes if c.category == primary]
        arches = self.picture.arches = architectures(self.ctx.reader, failing, self.workload_pods)
        for by_node, by_arch, verb in (
            (arches.failing_pods, arches.failing, "failing"),
            (arches.running_pods, arches.running, "running"),
        ):
            for node, pods in by_node.items():
                arch = next((a for a, n in by_arch.items() if node in n), "unknown")
                self.inv.add_evidence(
                    EvidenceSource.NODE,
                    f"{node}: kubernetes.io/arch={arch}; pods {verb} there: {', '.join(pods)}",
                )
        failing_text = ", ".join(
            f"{a} ({len(n)} node(s))" for a, n in sorted(arches.failing.items())
        )
        running_text = ", ".join(
            f"{a} ({len(n)} node(s))" for a, n in sorted(arches.running.items())
        )
        self.inv.step(
            STEPS[7].name,
            f"exec format error on {failing_text or 'nodes of unknown architecture'}; the "
            f"workload's ready pods run on {running_text or 'no node'}.",
        )

    def _facts(self, primary: Category, agreeing: list[Crash]) -> CrashLoopFacts:
        lead = agreeing[0] if agreeing else (self.crashes[0] if self.crashes else None)
        probe_kills = {C.CRASHLOOP_LIVENESS_PROBE_FAILURE, C.CRASHLOOP_STARTUP_PROBE_FAILURE}
        killed = [c for c in self.crashes if c.category in probe_kills]
        spec = self.picture.spec
        runtime = median_of([c.runtime for c in (killed or agreeing)])
        which = "startup" if primary == C.CRASHLOOP_STARTUP_PROBE_FAILURE else "liveness"
        clue = lead.clue if lead else None
        refused = clue.line if clue is not None and clue.signal == Signal.CREDENTIALS else ""
        return CrashLoopFacts(
            target=self.ctx.target,
            container=lead.container if lead else (self.ctx.container or "app"),
            init=lead.init if lead else False,
            category=primary,
            image=str(spec.get("image") or "") or None,
            subject=lead.subject if lead and not self.picture.promoted else None,
            detail=lead.detail if lead else "",
            exit_code=lead.exit_code if lead else None,
            headline=headline(lead.log) if lead and lead.log else None,
            pod=lead.pod_name if lead else None,
            container_spec=spec,
            runtime_seconds=runtime,
            startup_probe_kill=any(c.kill_probe == "startup" for c in killed),
            revision=self.revision,
            dependency=self.picture.dependency,
            missing_refs=self.picture.view.missing,
            near_key=self.near_key,
            keys=self.keys,
            config_files=self.picture.view.files,
            uncaptured_refs=self.uncaptured,
            credentials=self.picture.credentials,
            credential_quote=credential_quote(refused) if refused else None,
            credential_kind=credential_kind(refused) if refused else "API",
            arches=self.picture.arches,
            probe_said=probe_said(killed, spec, probe=which) if killed else None,
            had_started=primary == C.CRASHLOOP_LIVENESS_PROBE_FAILURE
            and had_started(self.picture, runtime),
            stall=next((c.stall for c in killed if c.stall), None),
            address_sources=self._address_sources(),
        )

    def _address_sources(self) -> list[str]:
        """The env vars whose names say they hold an address (DATABASE_URL, DB_HOST), with the
        object they come from: where a hard-coded pod IP likely lives."""
        found: list[str] = []
        for var in dicts(self.picture.spec.get("env")):
            name = str(var.get("name") or "")
            if not _ADDRESS.search(name):
                continue
            ref = next((r for r in self.picture.view.refs if r.used_by == f"env {name}"), None)
            found.append(
                f"env {name} ({ref.kind} {ref.name} key {ref.key})" if ref else f"env {name}"
            )
        return found[:3]


def _first_container(pod: dict[str, Any]) -> str:
    found = containers(as_dict(pod.get("spec")), init=False)
    return str(found[0].get("name") or "") if found else ""


def _termination(group: list[Crash], code: int | None, reason: str) -> str:
    runtime = median_of([c.runtime for c in group])
    restarts = [c.restarts for c in group if c.restarts is not None]
    return (
        f"{len(group)} pod(s) ({names(group)}): {what(group[0])} last terminated with "
        + (f"exit code {code}" if code is not None else "no recorded exit code")
        + (f" ({reason})" if reason else "")
        + (f" after {runtime:.0f}s" if runtime is not None else "")
        + (f"; restarted {max(restarts)} times" if restarts else "")
    )


def _handler(probe: dict[str, Any]) -> str:
    http = as_dict(probe.get("httpGet"))
    if http:
        return f"httpGet {http.get('path') or '/'} port {http.get('port')}"
    tcp = as_dict(probe.get("tcpSocket"))
    if tcp:
        return f"tcpSocket port {tcp.get('port')}"
    if probe.get("grpc") is not None:
        return f"grpc port {as_dict(probe.get('grpc')).get('port')}"
    return "exec command" if probe.get("exec") is not None else "no handler"
