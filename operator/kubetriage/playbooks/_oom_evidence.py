"""How the OOMKilled playbook words its evidence: kills, memory history, node signals."""

from __future__ import annotations

from datetime import UTC, datetime

from kubetriage.k8s.time import format_time
from kubetriage.models import EvidenceSource
from kubetriage.playbooks._oom_advice import human
from kubetriage.playbooks._oom_decide import duration
from kubetriage.playbooks._oom_facts import Kill, NodeSignal, Revision
from kubetriage.playbooks._oom_memory import NEAR_LIMIT, MemoryAnalysis, Shape

METRIC = "container_memory_working_set_bytes"
MAX_LISTED = 5
MAX_TABLE_ROWS = 40
_NEAR = f"{NEAR_LIMIT:.0%}"


def kill_text(kill: Kill, container: str, now: datetime) -> str:
    """One pod's OOM kill, with its timing."""
    when = format_time(kill.finished) if kill.finished else "an unknown time"
    code = kill.exit_code if kill.exit_code is not None else "unknown"
    text = f"pod {kill.pod}: container {container} OOMKilled (exit code {code}) at {when}"
    if kill.lifetime is not None:
        text += f" after running {duration(kill.lifetime)}"
    if kill.node:
        text += f" on node {kill.node}"
    if kill.restarts is not None:
        text += f"; {kill.restarts} restarts"
    every = kill.restart_interval(now)
    if every is not None:
        text += f" (one every {duration(every)} since the pod started)"
    return text


def revision_text(current: Revision, previous: Revision) -> str:
    """A revision that lowered the memory limit."""
    when = f" on {format_time(current.created)}" if current.created else ""
    same = " with the same image" if current.image and current.image == previous.image else ""
    return (
        f"revision {current.number} ({current.name}, created{when}) lowered limits.memory from "
        f"{previous.memory.limit_text} (revision {previous.number}, {previous.name}) to "
        f"{current.memory.limit_text}{same}"
    )


def history_items(
    analysis: MemoryAnalysis, container: str, empty: list[str]
) -> list[tuple[str, str | None]]:
    """Evidence (summary, detail) for a memory history: the numbers, the trend, what is missing."""
    limit, peak = analysis.limit, analysis.peak
    share = f" ({peak / limit:.0%} of the {human(limit)} limit)" if limit and peak else ""
    pods = len({i.series for i in analysis.instances})
    summary = (
        f"{METRIC} of {container} in {pods} pod(s): {analysis.samples} samples, "
        f"{len(analysis.instances)} container instances; peak {human(peak)}{share}, "
        f"p95 {human(analysis.p95)}, p50 {human(analysis.p50)}"
    )
    if analysis.discarded:
        summary += f"; {analysis.discarded} invalid or duplicate samples dropped"
    items: list[tuple[str, str | None]] = [(summary, instance_table(analysis))]
    trend = trend_text(analysis)
    if trend:
        items.append((trend, None))
    if empty:
        items.append((f"no {METRIC} series for pod(s) {', '.join(empty[:MAX_LISTED])}", None))
    return items


def trend_text(analysis: MemoryAnalysis) -> str | None:
    """Growth rates and time to the limit, per kind of instance."""
    parts: list[str] = []
    leaks = analysis.of_shape(Shape.LEAK)
    if leaks:
        low, high = min(i.growth_per_hour for i in leaks), max(i.growth_per_hour for i in leaks)
        parts.append(
            f"{len(leaks)} instance(s) grew steadily at {human(low)}-{human(high)}/h and reached "
            f"{_NEAR} of the limit after {duration(analysis.seconds_to_limit)} (median)"
        )
    hits = analysis.of_shape(Shape.PLATEAU, Shape.SPIKE)
    if hits and analysis.limit:
        times = [i.seconds_to_near_limit or 0.0 for i in hits]
        shares = sorted(i.near_limit_share or 0.0 for i in hits)
        parts.append(
            f"{len(hits)} instance(s) reached {_NEAR} of the limit {duration(min(times))}-"
            f"{duration(max(times))} after start and stayed there until the kill "
            f"({shares[len(shares) // 2]:.0%} of their samples, median)"
        )
    elif hits:
        parts.append(
            f"{len(hits)} instance(s) surged from ~{human(min(i.first for i in hits))} to up to "
            f"{human(max(i.peak for i in hits))}"
        )
    below = analysis.of_shape(Shape.BELOW_LIMIT)
    if below:
        parts.append(
            f"{len(below)} instance(s) ended below {_NEAR} of the limit "
            f"(peak {human(max(i.peak for i in below))})"
        )
    for instance in analysis.of_shape(Shape.GROWING)[:MAX_LISTED]:
        eta = instance.seconds_until(analysis.limit) if analysis.limit else None
        reach = f", reaching the limit in ~{duration(eta)}" if eta else ""
        state = "ended" if instance.ended else "running"
        rate = human(instance.growth_per_hour)
        parts.append(f"{state} instance in {instance.series} grows {rate}/h{reach}")
    return "; ".join(parts) if parts else None


def instance_table(analysis: MemoryAnalysis) -> str:
    """One line per container instance, for the evidence detail."""
    lines = [f"pod | start (UTC) | ran | first -> peak | growth/h | r2 | to {_NEAR} | shape"]
    for i in analysis.instances[:MAX_TABLE_ROWS]:
        start = format_time(datetime.fromtimestamp(i.start, tz=UTC))
        to_limit = "-" if i.seconds_to_near_limit is None else duration(i.seconds_to_near_limit)
        lines.append(
            f"{i.series} | {start} | {duration(i.duration)} | {human(i.first)} -> "
            f"{human(i.peak)} | {human(i.growth_per_hour)} | {i.r_squared:.2f} | {to_limit} | "
            f"{i.shape.value}"
        )
    if len(analysis.instances) > MAX_TABLE_ROWS:
        lines.append(f"... {len(analysis.instances) - MAX_TABLE_ROWS} more instances")
    return "\n".join(lines)


def history_outcome(analysis: MemoryAnalysis) -> str:
    """The history step's one-line outcome."""
    text = (
        f"{analysis.pattern.value}: {len(analysis.instances)} instances, peak "
        f"{human(analysis.peak)} against limit {human(analysis.limit)}"
    )
    if analysis.leak_rate_per_hour:
        text += f", growth {human(analysis.leak_rate_per_hour)}/h per instance"
    if analysis.seconds_to_limit is not None:
        text += f", limit reached after {duration(analysis.seconds_to_limit)}"
    return text


def signal_item(signal: NodeSignal, kills: list[Kill]) -> tuple[EvidenceSource, str]:
    """Evidence for one node signal, tied to the kill it happened next to."""
    when = f" at {format_time(signal.last)}" if signal.last else ""
    if signal.count > 1 and signal.first and signal.last and signal.first != signal.last:
        when = f" x{signal.count} ({format_time(signal.first)} to {format_time(signal.last)})"
    near = [k for k in kills if k.node == signal.node and signal.near(k.finished)]
    link = ""
    if near and near[0].finished and signal.last:
        gap = abs((near[0].finished - signal.last).total_seconds())
        link = f"; {duration(gap)} from the kill of {near[0].pod}"
    if signal.reason == "MemoryPressure":
        since = f" since {format_time(signal.last)}" if signal.last else ""
        return (
            EvidenceSource.NODE,
            f"node {signal.node}: MemoryPressure=True{since}: {signal.message}",
        )
    source = EvidenceSource.POD_STATUS if signal.origin == "pod" else EvidenceSource.EVENTS
    return source, f"node {signal.node}: {signal.reason}{when}: {signal.message}{link}"
