# ruff: noqa: E501 (Go templates and jq programs read best unbroken)
"""Writes hack/kwok/cycle-stages.yaml: kwok Stages that play a failing pod's whole cycle as a
real kubelet does (issue 13), selected by the pod annotation `kwok.kubetriage.io/cycle: "true"`
next to the label `kwok.kubetriage.io/simulate` of hack/kwok/stages.yaml.

What the real kubelet shows (recorded from a real node: tests/fixtures/realnode/), and so the
Stages:
- a crashing container cycles running -> terminated (reason Error / Completed / OOMKilled, its
  exit code, no message) -> waiting: CrashLoopBackOff -> running, with restartCount + 1 at each
  start; the first death is restarted at once, then the back-off is 10 s doubling to 5 min. It
  stays `terminated` until the kubelet next syncs the pod: when a back-off of up to 40 s ends, or
  at its periodic sync about a minute after the death; `waiting: CrashLoopBackOff` from then to
  the restart. A young crash loop is thus almost always `terminated`, one at the 5 min back-off
  a fifth of the time. lastState.terminated is the termination before the current one (none at
  the first), and the latest one while waiting.
- a missing entrypoint (label value RunContainerError) never runs: waiting: RunContainerError
  with the runtime's message, lastState.terminated reason StartError, exit code 128, startedAt
  1970-01-01T00:00:00Z, and the message; restartCount grows as for a crash.
- image pulls alternate ErrImagePull (the runtime's message) <-> ImagePullBackOff ("Back-off
  pulling image ...: ErrImagePull: ..."), backing off 10 s doubling to 5 min. Non-NotFound errors
  (annotation kwok.kubetriage.io/pull-message) are the runtime's text, without `rpc error:`.
- events are aggregated, one per reason and message, with a count: Pulling, Pulled ("Successfully
  pulled image ..." once, then "Container image ... already present on machine and can be
  accessed by the pod" at every restart), Created and Started at every start, BackOff
  ("Back-off restarting failed container NAME in pod POD_NS(UID)") as the kubelet syncs a dead
  container; for pulls, Failed ("Failed to pull image ...", "Error: ErrImagePull", "Error:
  ImagePullBackOff") and BackOff ("Back-off pulling image ...", type Normal).

Time runs faster than the kubelet's: every delay is multiplied by the annotation
`kwok.kubetriage.io/time-scale` (default 0.1: back-offs of 1, 2, 4, 8, 16, 30 s). The messages
still say the kubelet's own durations ("back-off 40s ..."). Annotations (all optional):
`kwok.kubetriage.io/exit-code` (default 1), `kwok.kubetriage.io/run-seconds` (how long a crashing
container runs before it dies, default 1, before scaling), `kwok.kubetriage.io/container` (the
failing container, default the first), `kwok.kubetriage.io/pull-message`,
`kwok.kubetriage.io/start-message` (default: runc's "exec: "<command[0]>": stat ...: no such file
or directory"). The Stages keep the pull attempt count in the pod annotation
`kwok.kubetriage.io/pulls` (a real kubelet keeps it in memory).

    python hack/kwok/cycle_stages.py           # rewrite hack/kwok/cycle-stages.yaml
    python hack/kwok/cycle_stages.py --check   # exit 1 if the file is not what this writes
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "cycle-stages.yaml"
ANN = "(.metadata.annotations // {})"
# jq: the failing container's status (null before the pod has any).
TARGET = f'(({ANN}["kwok.kubetriage.io/container"] // .spec.containers[0].name) as $c | [(.status.containerStatuses // [])[] | select(.name == $c)][0])'
# jq: where that container is in its cycle.
POSITION = (
    f'{TARGET} as $s | if $s == null then "new" elif $s.state.running then "running" '
    'elif $s.state.terminated then "terminated" else ($s.state.waiting.reason // "waiting") end'
)
RESTARTS = f"({TARGET}.restartCount // 0) | tostring"
SCALE = f'(({ANN}["kwok.kubetriage.io/time-scale"] // "0.1") | tonumber)'
PULLS = f'(({ANN}["kwok.kubetriage.io/pulls"] // "1") | tonumber)'
RUN = f'(({ANN}["kwok.kubetriage.io/run-seconds"] // "1") | tonumber)'
CRASH = ["CrashLoopBackOff", "OOMKilled"]
START = ["RunContainerError"]
PULL = ["ErrImagePull", "ImagePullBackOff"]
PULLED_FIRST = 'printf "Successfully pulled image %q in 83ms (83ms including waiting). Image size: 1032234 bytes." $pulled'
PRESENT = (
    'printf "Container image %q already present on machine and can be accessed by the pod" $pulled'
)
BACKOFF_MSG = 'printf "Back-off restarting failed container %s in pod %s" $name $podDesc'
CLBO = 'printf "back-off %s restarting failed container=%s pod=%s" (index $backoffs (min 5 (sub $rc 1))) $name $podDesc'
STARTS = """{{- $to := ternary "waiting" "running" (eq $mode "RunContainerError") -}}
{{- $waitReason := ternary "RunContainerError" "" (eq $mode "RunContainerError") -}}
{{- $waitMsg := ternary $startMsg "" (eq $mode "RunContainerError") -}}"""
START_ERROR = '{{- $last = dict "containerID" (printf "containerd://%s" (sha256sum (printf "%s/%s/%d" .metadata.uid $name $newRc))) "exitCode" 128 "reason" "StartError" "message" $startMsg "startedAt" "1970-01-01T00:00:00Z" "finishedAt" $now -}}'
STARTED_OR_FAILED = """{{- $type := ternary "Warning" "Normal" (eq $mode "RunContainerError") -}}
{{- $reason := ternary "Failed" "Started" (eq $mode "RunContainerError") -}}
{{- $message := ternary (printf "Error: %s" $startMsg) "Container started" (eq $mode "RunContainerError") -}}
{{- $count := COUNT -}}"""


def backoff(count: str) -> str:
    """jq: the kubelet's back-off in seconds after `count` deaths (or pull attempts)."""
    return f"([10 * pow(2; ({count}) - 1), 300] | min)"


def delay(seconds: str) -> str:
    """jq: `seconds` (a jq number; $rc, $pulls are bound) scaled, as a Go duration."""
    return (
        f"({TARGET}.restartCount // 0) as $rc | {PULLS} as $pulls | {SCALE} as $scale"
        f' | ({seconds}) * $scale * 1000 | floor | "\\(.)ms"'
    )


HEADER = r"""{{- $now := dateInZone "2006-01-02T15:04:05Z" now "UTC" -}}
{{- $ann := or .metadata.annotations dict -}}
{{- $mode := index .metadata.labels "kwok.kubetriage.io/simulate" -}}
{{- $name := index $ann "kwok.kubetriage.io/container" | default (index .spec.containers 0).name -}}
{{- $spec := index .spec.containers 0 -}}
{{- range .spec.containers -}}{{- if eq .name $name -}}{{- $spec = . -}}{{- end -}}{{- end -}}
{{- $cs := dict -}}
{{- range (.status.containerStatuses | default list) -}}{{- if eq .name $name -}}{{- $cs = . -}}{{- end -}}{{- end -}}
{{- $state := get $cs "state" | default dict -}}
{{- $rc := int (get $cs "restartCount" | default 0) -}}
{{- $pulls := atoi (index $ann "kwok.kubetriage.io/pulls" | default "1") -}}
{{- $img := $spec.image -}}
{{- $segs := splitList "/" (first (splitList "@" $img)) -}}
{{- $domain := first $segs -}}
{{- $pulled := $img -}}
{{- if and (not (contains ":" (last $segs))) (not (contains "@" $img)) -}}{{- $pulled = printf "%s:latest" $img -}}{{- end -}}
{{- $ref := $pulled -}}{{- if eq (len $segs) 1 -}}{{- $ref = printf "docker.io/library/%s" $pulled -}}{{- else if not (or (contains "." $domain) (contains ":" $domain) (eq $domain "localhost")) -}}{{- $ref = printf "docker.io/%s" $pulled -}}{{- end -}}
{{- $pullMsg := index $ann "kwok.kubetriage.io/pull-message" | default (printf "rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found" $ref $ref $ref) -}}
{{- $cmd := first ($spec.command | default (list "/app/server")) -}}
{{- $startMsg := index $ann "kwok.kubetriage.io/start-message" | default (printf "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: %q: stat %s: no such file or directory: unknown" $cmd $cmd) -}}
{{- $exitCode := atoi (index $ann "kwok.kubetriage.io/exit-code" | default "1") -}}
{{- $termReason := "Error" -}}{{- if eq $mode "OOMKilled" -}}{{- $exitCode = 137 -}}{{- $termReason = "OOMKilled" -}}{{- else if eq $exitCode 0 -}}{{- $termReason = "Completed" -}}{{- end -}}
{{- $backoffs := list "10s" "20s" "40s" "1m20s" "2m40s" "5m0s" -}}
{{- $podDesc := printf "%s_%s(%s)" .metadata.name .metadata.namespace .metadata.uid -}}
{{- $field := printf "spec.containers{%s}" $name -}}
{{- $never := eq (.spec.restartPolicy | default "Always") "Never" -}}
"""

# The pod status, from the variables a stage sets: $to (running | terminated | waiting),
# $waitReason, $waitMsg, $newRc, $last (a terminated dict or empty), $term (for terminated).
STATUS = r"""{{- $ready := eq $to "running" -}}
{{- $phase := "Running" -}}
{{- if or (eq $waitReason "ContainerCreating") (eq $waitReason "ErrImagePull") (eq $waitReason "ImagePullBackOff") -}}{{- $phase = "Pending" -}}{{- end -}}
{{- if and $never (eq $to "terminated") -}}{{- $phase = ternary "Succeeded" "Failed" (eq $exitCode 0) -}}{{- end -}}
{{- $cid := printf "containerd://%s" (sha256sum (printf "%s/%s/%d" .metadata.uid $name $newRc)) -}}
{{- $scheduled := dict "lastTransitionTime" $now -}}
{{- range (.status.conditions | default list) -}}{{- if eq .type "PodScheduled" -}}{{- $scheduled = . -}}{{- end -}}{{- end }}
phase: {{ $phase }}
startTime: {{ .status.startTime | default $now | Quote }}
conditions:
- type: PodReadyToStartContainers
  status: {{ ternary "False" "True" (eq $waitReason "ContainerCreating") | Quote }}
  lastTransitionTime: {{ $now | Quote }}
- type: Initialized
  status: "True"
  lastTransitionTime: {{ $scheduled.lastTransitionTime | Quote }}
{{- range list "Ready" "ContainersReady" }}
- type: {{ . }}
  status: {{ ternary "True" "False" $ready | Quote }}
  lastTransitionTime: {{ $now | Quote }}
{{- if not $ready }}
  reason: ContainersNotReady
  message: {{ printf "containers with unready status: [%s]" $name | Quote }}
{{- end }}
{{- end }}
- type: PodScheduled
  status: "True"
  lastTransitionTime: {{ $scheduled.lastTransitionTime | Quote }}
containerStatuses:
{{- range .spec.containers }}
{{- if eq .name $name }}
- name: {{ $name | Quote }}
  image: {{ $img | Quote }}
{{- $created := not (has $waitReason (list "ContainerCreating" "ErrImagePull" "ImagePullBackOff" "InvalidImageName")) }}
{{- $repo := $ref }}
{{- if contains ":" (last (splitList "/" $ref)) }}{{- $repo = trimSuffix (printf ":%s" (last (splitList ":" $ref))) $ref }}{{- end }}
  imageID: {{ ternary (printf "%s@sha256:%s" $repo (sha256sum $img)) "" $created | Quote }}
{{- if $created }}
  containerID: {{ $cid | Quote }}
{{- end }}
  restartCount: {{ $newRc }}
  ready: {{ $ready }}
  started: {{ $ready }}
  state:
{{- if eq $to "running" }}
    running:
      startedAt: {{ $now | Quote }}
{{- else if eq $to "terminated" }}
    terminated:
      containerID: {{ $cid | Quote }}
      exitCode: {{ $exitCode }}
      reason: {{ $termReason | Quote }}
      startedAt: {{ $term.startedAt | default $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{- else }}
    waiting:
      reason: {{ $waitReason | Quote }}
{{- if $waitMsg }}
      message: {{ $waitMsg | Quote }}
{{- end }}
{{- end }}
{{- if $last }}
  lastState:
    terminated: {{ toJson $last }}
{{- else }}
  lastState: {}
{{- end }}
{{- else }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  restartCount: 0
  ready: true
  started: true
  state:
    running:
      startedAt: {{ $scheduled.lastTransitionTime | Quote }}
{{- end }}
{{- end }}
{{- with NodeIPsWith .spec.nodeName }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{- range . }}
- ip: {{ . | Quote }}
{{- end }}
{{- end }}
{{- if not .status.podIP }}
{{- with PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{- range . }}
- ip: {{ . | Quote }}
{{- end }}
{{- end }}
{{- end }}
"""

EVENT = r"""
apiVersion: v1
kind: Event
metadata:
  name: {{ printf "%s.%s" (trunc 200 .metadata.name) (trunc 16 (sha256sum (printf "%s/%s/%s/%s" .metadata.uid $field $reason $message))) | Quote }}
  namespace: {{ .metadata.namespace | Quote }}
involvedObject:
  apiVersion: v1
  kind: Pod
  name: {{ .metadata.name | Quote }}
  namespace: {{ .metadata.namespace | Quote }}
  uid: {{ .metadata.uid | Quote }}
  fieldPath: {{ $field | Quote }}
type: {{ $type }}
reason: {{ $reason }}
message: {{ $message | Quote }}
source:
  component: kubelet
  host: {{ .spec.nodeName | Quote }}
reportingComponent: kubelet
reportingInstance: {{ .spec.nodeName | Quote }}
firstTimestamp: {{ .status.startTime | default $now | Quote }}
lastTimestamp: {{ $now | Quote }}
count: {{ $count }}
"""


def header_for(body: str) -> str:
    """The HEADER lines that define the variables `body` uses (and those they use)."""
    lines = HEADER.strip("\n").splitlines()
    first: dict[str, int] = {}
    for index, line in enumerate(lines):
        match = re.search(r"\$(\w+) :=", line)
        if match and match.group(1) not in first:
            first[match.group(1)] = index
    wanted: set[int] = set()
    pending = set(re.findall(r"\$(\w+)", body))
    while pending:
        var = pending.pop()
        if var not in first:
            continue
        for index, line in enumerate(lines):
            if index >= first[var] and index not in wanted and re.search(rf"\${var} :?=", line):
                wanted.add(index)
                pending |= set(re.findall(r"\$(\w+)", line)) - {var}
    return "\n".join(lines[i] for i in sorted(wanted)) + "\n"


def _indent(text: str, spaces: int) -> str:
    return textwrap.indent(text, " " * spaces)


def status_step(assign: str) -> str:
    """A step that patches the pod status; `assign` sets $to, $waitReason, $waitMsg, $newRc,
    $term and $last."""
    tail = assign.strip("\n") + "\n" + STATUS
    return (
        # A JSON merge patch replaces the lists whole (kwok's default for pods, a strategic
        # merge, would keep a condition's old reason when it turns True).
        "  - patch:\n      type: merge\n      subresource: status\n      root: status\n"
        "      template: |\n" + _indent(header_for(tail) + tail, 8)
    )


def event_step(kind: str, reason: str, message: str, count: str) -> str:
    """A step that applies one aggregated Event (a Go template expression for the message and
    the count)."""
    assign = (
        f'{{{{- $type := "{kind}" -}}}}\n{{{{- $reason := "{reason}" -}}}}\n'
        f"{{{{- $message := {message} -}}}}\n{{{{- $count := {count} -}}}}\n"
    )
    return raw_event_step(assign)


def raw_event_step(assign: str) -> str:
    """As event_step, with `assign` setting $type, $reason, $message and $count."""
    tail = assign.strip("\n") + EVENT
    return "  - apply:\n      template: |\n" + _indent(header_for(tail) + tail, 8)


def pulls_step(expr: str) -> str:
    """A step that records the pull attempt count in the pod annotation."""
    body = (
        "{{- $ann := or .metadata.annotations dict -}}\n"
        '{{- $pulls := atoi (index $ann "kwok.kubetriage.io/pulls" | default "1") }}\n'
        "metadata:\n  annotations:\n"
        f"    kwok.kubetriage.io/pulls: {{{{ {expr} | toString | Quote }}}}\n"
    )
    return "  - patch:\n      type: merge\n      template: |\n" + _indent(body, 8)


def stage(
    name: str,
    comment: str,
    modes: list[str],
    position: str,
    steps: list[str],
    *,
    restarts: str | None = None,
    delay_seconds: str | None = None,
    never: bool | None = None,
) -> str:
    """One Stage for cycle pods of `modes` whose failing container is at `position`."""
    lines = [f"# {line}" for line in comment.strip().splitlines()]
    lines += [
        "apiVersion: kwok.x-k8s.io/v1alpha1",
        "kind: Stage",
        "metadata:",
        f"  name: {name}",
        "spec:",
        "  resourceRef:",
        "    apiGroup: v1",
        "    kind: Pod",
        "  selector:",
        "    matchExpressions:",
        "    - key: '.metadata.deletionTimestamp'",
        "      operator: 'DoesNotExist'",
        "    - key: '.spec.nodeName'",
        "      operator: 'Exists'",
        """    - key: '.metadata.annotations["kwok.kubetriage.io/cycle"]'""",
        "      operator: 'In'",
        "      values:",
        "      - 'true'",
        """    - key: '.metadata.labels["kwok.kubetriage.io/simulate"]'""",
        "      operator: 'In'",
        "      values:",
        *[f"      - '{mode}'" for mode in modes],
        f"    - key: '{POSITION}'",
        "      operator: 'In'",
        "      values:",
        f"      - '{position}'",
    ]
    if restarts is not None:
        operator, value = restarts.split()
        lines += [f"    - key: '{RESTARTS}'", f"      operator: '{operator}'", "      values:"]
        lines.append(f"      - '{value}'")
    if never is not None:
        lines += [
            "    - key: '.spec.restartPolicy'",
            f"      operator: '{'In' if never else 'NotIn'}'",
        ]
        lines += ["      values:", "      - 'Never'"]
    if delay_seconds is not None:
        lines += ["  delay:", "    durationMilliseconds: 0", "    durationFrom:", "      jq:"]
        lines.append(f"        expression: '{delay(delay_seconds)}'")
    lines.append("  steps:")
    return "\n".join(lines) + "\n" + "\n".join(steps) + "\n"


def stages() -> list[str]:
    """Every cycle Stage, in the order of the cycle."""
    start_error_last = START_ERROR
    return [
        stage(
            "kubetriage-cycle-create",
            "A bound pod's first status: ContainerCreating while the image is pulled.",
            CRASH + START + PULL,
            "new",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "ContainerCreating" -}}{{- $waitMsg := "" -}}{{- $newRc := 0 -}}{{- $last := dict -}}{{- $term := dict -}}'
                ),
                event_step("Normal", "Pulling", 'printf "Pulling image %q" $pulled', "$pulls"),
            ],
        ),
        stage(
            "kubetriage-cycle-first-start",
            "The image is there: a crashing container runs; a missing entrypoint fails to start.",
            CRASH + START,
            "ContainerCreating",
            [
                status_step(
                    STARTS
                    + "\n{{- $newRc := 0 -}}{{- $term := dict -}}{{- $last := dict -}}\n"
                    + '{{- if eq $mode "RunContainerError" -}}'
                    + start_error_last
                    + "{{- end -}}"
                ),
                event_step("Normal", "Pulled", PULLED_FIRST, "1"),
                event_step("Normal", "Created", '"Container created"', "1"),
                raw_event_step(STARTED_OR_FAILED.replace("COUNT", "1")),
            ],
            delay_seconds="1.5",
        ),
        stage(
            "kubetriage-cycle-exit",
            """The container exits after kwok.kubetriage.io/run-seconds: terminated, restartCount
unchanged, lastState the termination before. With restarts ahead, the kubelet's sync right
after the death already records BackOff.""",
            CRASH,
            "running",
            [
                status_step(
                    '{{- $to := "terminated" -}}{{- $waitReason := "" -}}{{- $waitMsg := "" -}}{{- $newRc := $rc -}}\n'
                    '{{- $term := get $state "running" | default dict -}}\n'
                    '{{- $last := get (get $cs "lastState" | default dict) "terminated" | default dict -}}'
                ),
                event_step("Warning", "BackOff", BACKOFF_MSG, "(max 1 (sub (mul 2 $rc) 1))"),
            ],
            delay_seconds=RUN,
        ),
        stage(
            "kubetriage-cycle-restart-at-once",
            "The first death is restarted at once (no back-off yet).",
            CRASH,
            "terminated",
            [
                status_step(
                    '{{- $to := "running" -}}{{- $waitReason := "" -}}{{- $waitMsg := "" -}}{{- $newRc := add $rc 1 -}}\n'
                    '{{- $term := dict -}}\n{{- $last := get $state "terminated" | default dict -}}'
                ),
                event_step("Normal", "Pulled", PRESENT, "(add $rc 1)"),
                event_step("Normal", "Created", '"Container created"', "(add $rc 2)"),
                event_step("Normal", "Started", '"Container started"', "(add $rc 2)"),
            ],
            restarts="In 0",
            delay_seconds="0.3",
            never=False,
        ),
        stage(
            "kubetriage-cycle-backoff",
            """Then it stays terminated until the kubelet's next sync of the pod: the back-off's end, or
its periodic sync (syncFrequency, 1 min) when the back-off is longer; waiting: CrashLoopBackOff
from then until the restart.""",
            CRASH,
            "terminated",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "CrashLoopBackOff" -}}'
                    f"{{{{- $waitMsg := {CLBO} -}}}}"
                    "{{- $newRc := $rc -}}\n"
                    '{{- $term := dict -}}\n{{- $last := get $state "terminated" | default dict -}}'
                ),
            ],
            restarts="NotIn 0",
            delay_seconds=f"[{backoff('$rc')} * 0.95, 60] | min",
            never=False,
        ),
        stage(
            "kubetriage-cycle-restart",
            "The back-off is over: the container runs again (restartCount + 1), or fails to start again.",
            CRASH + START,
            "CrashLoopBackOff",
            [
                status_step(
                    STARTS + "\n{{- $newRc := add $rc 1 -}}{{- $term := dict -}}\n"
                    '{{- $last := get (get $cs "lastState" | default dict) "terminated" | default dict -}}\n'
                    '{{- if eq $mode "RunContainerError" -}}' + start_error_last + "{{- end -}}"
                ),
                event_step("Normal", "Pulled", PRESENT, "(add $rc 1)"),
                event_step("Normal", "Created", '"Container created"', "(add $rc 2)"),
                raw_event_step(STARTED_OR_FAILED.replace("COUNT", "add $rc 2")),
            ],
            delay_seconds=f"[{backoff('$rc')} - ([{backoff('$rc')} * 0.95, 60] | min), 0.2] | max",
        ),
        stage(
            "kubetriage-cycle-start-error-retry",
            "A container that failed to start is retried at once the first time.",
            START,
            "RunContainerError",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "RunContainerError" -}}{{- $waitMsg := $startMsg -}}{{- $newRc := 1 -}}\n'
                    "{{- $term := dict -}}{{- $last := dict -}}\n" + start_error_last
                ),
                event_step("Normal", "Pulled", PRESENT, "1"),
                event_step("Normal", "Created", '"Container created"', "2"),
                event_step("Warning", "Failed", 'printf "Error: %s" $startMsg', "2"),
            ],
            restarts="In 0",
            delay_seconds="1.3",
        ),
        stage(
            "kubetriage-cycle-start-error-backoff",
            """Then it waits in RunContainerError until the kubelet's next sync (as a crash stays
terminated), in CrashLoopBackOff for the rest; lastState keeps the StartError.""",
            START,
            "RunContainerError",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "CrashLoopBackOff" -}}'
                    f"{{{{- $waitMsg := {CLBO} -}}}}"
                    "{{- $newRc := $rc -}}\n"
                    '{{- $term := dict -}}\n{{- $last := get (get $cs "lastState" | default dict) "terminated" | default dict -}}'
                ),
                event_step("Warning", "BackOff", BACKOFF_MSG, "$rc"),
            ],
            restarts="NotIn 0",
            delay_seconds=f"[{backoff('$rc')} * 0.95, 60] | min",
        ),
        stage(
            "kubetriage-cycle-pull-failed",
            "The first pull fails: ErrImagePull with the runtime's message.",
            PULL,
            "ContainerCreating",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "ErrImagePull" -}}{{- $waitMsg := $pullMsg -}}{{- $newRc := 0 -}}{{- $last := dict -}}{{- $term := dict -}}'
                ),
                event_step(
                    "Warning",
                    "Failed",
                    'printf "Failed to pull image %q: %s" $pulled $pullMsg',
                    "$pulls",
                ),
                event_step("Warning", "Failed", '"Error: ErrImagePull"', "$pulls"),
            ],
            delay_seconds="1.5",
        ),
        stage(
            "kubetriage-cycle-pull-backoff",
            "ErrImagePull lasts until the kubelet's next sync of the pod (about 12 s), then ImagePullBackOff.",
            PULL,
            "ErrImagePull",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "ImagePullBackOff" -}}{{- $waitMsg := printf "Back-off pulling image %q: ErrImagePull: %s" $pulled $pullMsg -}}{{- $newRc := 0 -}}{{- $last := dict -}}{{- $term := dict -}}'
                ),
                event_step(
                    "Normal",
                    "BackOff",
                    'printf "Back-off pulling image %q" $pulled',
                    "(sub (mul 2 $pulls) 1)",
                ),
                event_step(
                    "Warning", "Failed", '"Error: ImagePullBackOff"', "(sub (mul 2 $pulls) 1)"
                ),
            ],
            delay_seconds="12",
        ),
        stage(
            "kubetriage-cycle-pull-retry",
            "ImagePullBackOff for the pull back-off (at least one sync, 12 s); the next attempt fails again.",
            PULL,
            "ImagePullBackOff",
            [
                status_step(
                    '{{- $to := "waiting" -}}{{- $waitReason := "ErrImagePull" -}}{{- $waitMsg := $pullMsg -}}{{- $newRc := 0 -}}{{- $last := dict -}}{{- $term := dict -}}'
                ),
                pulls_step("add $pulls 1"),
                event_step(
                    "Normal", "Pulling", 'printf "Pulling image %q" $pulled', "(add $pulls 1)"
                ),
                event_step(
                    "Warning",
                    "Failed",
                    'printf "Failed to pull image %q: %s" $pulled $pullMsg',
                    "(add $pulls 1)",
                ),
                event_step("Warning", "Failed", '"Error: ErrImagePull"', "(add $pulls 1)"),
            ],
            delay_seconds=f"[{backoff('$pulls')}, 12] | max",
        ),
    ]


def render() -> str:
    """The whole file."""
    head = (
        "# Generated by hack/kwok/cycle_stages.py (its docstring says what and why); do not edit:\n"
        "# change the generator and run it. kwok v0.8.0 Stages, loaded next to stages.yaml.\n"
    )
    return head + "---\n".join(stages())


def main(argv: list[str] | None = None) -> int:
    """Write the file, or with --check say whether it is current."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python hack/kwok/cycle_stages.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
