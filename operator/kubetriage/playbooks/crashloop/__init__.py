"""The CrashLoopBackOff runbook (DESIGN.md section 3).

What an on-call engineer does with a crash-looping container: read how it last ended (exit code,
the runtime's message), the kubelet's events about it (probe kills, start failures), and its
previous log; then check what the log blames (a ConfigMap key, a Service), what changed since
the revision that worked, and whether the affected pods agree, before naming one cause.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, ClassVar

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
from kubetriage.models import Category, EvidenceSource, Symptom
from kubetriage.playbooks.base import Conclusion, Context, Investigation, Playbook, StepDoc, cause
from kubetriage.playbooks.crashloop.advise import CrashLoopFacts, recommend
from kubetriage.playbooks.crashloop.decide import (
    NO_LOG,
    PRECEDENCE,
    Picture,
    alternatives_of,
    classify,
    confidence_of,
    median_of,
    names,
    near_name,
    primary_of,
    probe_said,
    summary_of,
    what,
)
from kubetriage.playbooks.crashloop.messages import Signal, error_lines, headline
from kubetriage.playbooks.crashloop.reads import (
    Crash,
    RevisionChange,
    check_dependency,
    config_view,
    previous_revision,
    probe_window,
    read_events,
    read_log,
    read_status,
)
from kubetriage.redact import excerpt

C = Category
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
        f"`kubectl logs --previous` of the container, for up to {_MAX_LOG_PODS} affected pods",
        "The last lines before the crash name the missing command, file, setting or host.",
    ),
    StepDoc(
        "Check the probes",
        "the container's livenessProbe and startupProbe",
        "When the kubelet killed the container, initialDelaySeconds, timeoutSeconds, "
        "periodSeconds and failureThreshold against how long it ran tell whether start-up "
        "simply takes longer than the probe allows.",
    ),
    StepDoc(
        "Check configuration references",
        "ConfigMaps (keys only) and Secrets (existence only) referenced by env, envFrom and "
        "volumes",
        "A setting the log says is missing is either not referenced, referenced under another "
        "name, or refers to a key or object that does not exist.",
    ),
    StepDoc(
        "Check the dependency",
        "the Service and Endpoints of the host the log could not reach, and the workload "
        "behind that Service",
        "A refused connection to a Service without ready endpoints is the dependency's outage, "
        "not this workload's bug; a host with no Service is a wrong address.",
    ),
    StepDoc(
        "Compare with the previous revision",
        "the Deployment's ReplicaSets: the failing newest revision against the last one with "
        "ready pods",
        "When only the new revision crashes, what changed (image, command, args, env names) is "
        "the likely cause, and a rollback the fastest fix.",
    ),
    StepDoc(
        "Compare the pods and conclude",
        "the cause each pod's own evidence points at",
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
        "back-off. The runbook reads how it last ended, the kubelet's events and the previous "
        "log of every affected pod, follows what the log blames (a command, a file, a setting, "
        "a Service) into the cluster, compares the failing revision with the one that worked, "
        "and names the cause the affected pods agree on."
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
        self.check_dependency()
        self.compare_revision()
        confidence = confidence_of(self.picture, primary)
        agreeing = self.picture.agreeing(primary)
        same = len(agreeing) > 1 and len({c.signature for c in agreeing}) == 1
        self.inv.step(
            STEPS[7].name,
            f"{len(agreeing)} of {len(self.crashes)} pod(s) point at {primary.value}"
            + (" and fail the same way" if same else "")
            + f"; confidence {confidence:.2f}.",
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
            self.inv.add_evidence(
                EvidenceSource.LOGS,
                f"previous log of {len(group)} pod(s) ({names(group)}): {last}",
                excerpt(group[0].log or "", max_lines=20, max_bytes=4096).text,
            )
        read = min(len(self.crashes), _MAX_LOG_PODS)
        if with_log:
            outcome = (
                f"Previous logs of {len(with_log)} of {read} pod(s), "
                f"{len(by_message)} distinct last error(s)."
            )
        else:
            outcome = f"{NO_LOG.capitalize()} for the {read} pod(s) read: status and events only."
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
        for crash in self.crashes:
            classify(crash, must_run=must_run, probe=probe, mounts=mounts)

    # -- 4 ---------------------------------------------------------------------------------------
    def check_probes(self, primary: Category) -> None:
        """Step 4: the probe settings against how long the container ran."""
        spec = self.picture.spec
        killed = [c for c in self.crashes if c.category == C.CRASHLOOP_LIVENESS_PROBE_FAILURE]
        if not killed and primary != C.CRASHLOOP_LIVENESS_PROBE_FAILURE:
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
        said = probe_said(killed, spec)
        self.inv.step(
            STEPS[3].name,
            f"The kubelet killed the container in {len(killed)} pod(s) after failed probes"
            + (f" ({said})" if said else "")
            + (f", {runtime:.0f}s after it started" if runtime is not None else "")
            + ("" if spec.get("startupProbe") else "; no startupProbe is set")
            + ".",
        )

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
        found = next((c.clue for c in self.crashes if c.category == primary and c.clue), None)
        return found.subject if found and found.signal == Signal.CONFIG_KEY else None

    def _explain_key(self, key: str) -> str:
        view = self.picture.view
        source = next((r for r in view.missing if r.used_by == f"env {key}"), None)
        if source is not None:
            unset = "the variable is left unset" if source.optional else "the kubelet cannot set it"
            text = f"{key} comes from {source.describe()}, so {unset}"
        elif key.lower() in {name.lower() for name in view.env}:
            text = f"{key} is set by the pod spec, so it may be empty or malformed"
        else:
            text = f"{key} is set neither by env nor by envFrom"
            for config_map, keys in sorted(view.config_map_keys.items()):
                near = near_name(key, keys)
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
    def check_dependency(self) -> None:
        """Step 6: the Service and endpoints behind the host the log could not reach."""
        found = [f for c in self.crashes for f in c.clues if f.signal == Signal.DEPENDENCY]
        if not found:
            self.inv.step(STEPS[5].name, "Not needed: no log shows a failed connection.")
            return
        (host, ip, port), _ = Counter((f.subject, f.host_ip, f.port) for f in found).most_common(1)[
            0
        ]
        dep = self.picture.dependency = check_dependency(self.ctx.reader, self.ns, host, ip, port)
        failure = Counter(f.detail for f in found).most_common(1)[0][0]
        reachable = dep.state in {"ready", "no-ready-endpoints"}
        source = EvidenceSource.ENDPOINTS if reachable else EvidenceSource.SERVICE
        self.inv.add_evidence(source, f"{dep.target} ({failure}): {dep.sentence()}")
        for line in dep.backing:
            self.inv.add_evidence(EvidenceSource.WORKLOAD, f"behind Service {dep.service}: {line}")
        self.inv.step(
            STEPS[5].name, f"The log could not reach {dep.target} ({failure}); {dep.sentence()}."
        )

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

    def _facts(self, primary: Category, agreeing: list[Crash]) -> CrashLoopFacts:
        lead = agreeing[0] if agreeing else (self.crashes[0] if self.crashes else None)
        killed = [c for c in self.crashes if c.category == C.CRASHLOOP_LIVENESS_PROBE_FAILURE]
        spec = self.picture.spec
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
            runtime_seconds=median_of([c.runtime for c in (killed or agreeing)]),
            startup_probe_kill=any(c.kill_probe == "startup" for c in killed),
            revision=self.revision,
            dependency=self.picture.dependency,
            missing_refs=self.picture.view.missing,
            near_key=self.near_key,
        )


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
