"""The OOMKilled decision rules: what the steps found in, one cause with its confidence out. Pure.

In order (the first that applies wins):
1. No memory limit -> NodePressure: only the node's OOM killer can kill such a container.
   0.9 with a node signal (MemoryPressure, SystemOOM, memory eviction), else 0.8; 0.1 less
   without memory history. A history that grows to every kill makes MemoryLeak an alternative.
2. History shows the kills came below 90% of the limit -> NodePressure: 0.85 with a node signal
   around a kill, 0.75 with any node signal, else 0.5 (then a burst between two scrapes is
   nearly as likely: LimitTooLow at 0.4).
3. History shows instances climbing steadily for a long time to the limit -> MemoryLeak: 0.9
   with three or more such instances, 0.85 with two, 0.7 with one.
4. History shows the limit reached and held (plateau) or hit at once (spike) -> LimitTooLow:
   0.85 (plateau) / 0.75 (spike) with two or more instances, 0.1 less with one; 0.05 more when
   the running revision lowered the limit.
5. History shows only a running instance growing steadily -> MemoryLeak 0.55.
6. No usable history (none, too few samples, inconclusive): kill timing decides, lower:
   a node signal around a kill -> NodePressure 0.55; the running revision lowered the limit ->
   LimitTooLow 0.6; instances killed within 30 minutes of starting -> LimitTooLow 0.5; after an
   hour or more, repeatedly -> MemoryLeak 0.45; in between -> LimitTooLow 0.4; unknown timing ->
   LimitTooLow 0.35.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from statistics import median

from kubetriage.k8s.time import format_duration
from kubetriage.models import Category, RootCause
from kubetriage.playbooks.base import cause
from kubetriage.playbooks.oom.memory import MemoryAnalysis, Pattern, Shape, bytes_text
from kubetriage.playbooks.oom.messages import NODE
from kubetriage.playbooks.oom.reads import Kill, Memory, MemoryRevision, NodeSignal

QUICK_KILL = timedelta(minutes=30)
SLOW_KILL = timedelta(hours=1)
_USABLE = {Pattern.LEAK, Pattern.PLATEAU, Pattern.SPIKE, Pattern.BELOW_LIMIT, Pattern.GROWING,
           Pattern.NO_LIMIT}  # fmt: skip
LIMIT_TOO_LOW = Category.OOM_LIMIT_TOO_LOW
MEMORY_LEAK = Category.OOM_MEMORY_LEAK
NODE_PRESSURE = Category.OOM_NODE_PRESSURE


@dataclass(frozen=True)
class Findings:
    """Everything the steps found, as the decision reads it."""

    container: str
    workload: str
    memory: Memory
    kills: list[Kill]
    analysis: MemoryAnalysis | None
    history_gap: str | None
    signals: list[NodeSignal] = field(default_factory=list)
    # (the running revision, the one before) when the running one lowered the limit
    lowered: tuple[MemoryRevision, MemoryRevision] | None = None
    # Earlier kills, seen as instance ends in the memory history: for matching node signals.
    past_kills: list[Kill] = field(default_factory=list)

    @property
    def node_signals(self) -> list[NodeSignal]:
        """Signs that a node (not a container's cgroup) ran out of memory."""
        return [s for s in self.signals if s.scope == NODE]

    @property
    def kill_signals(self) -> list[NodeSignal]:
        """Node signals on a killed pod's node around its kill (or pressure that is still on)."""
        return [
            s
            for s in self.node_signals
            if any(
                s.node == k.node and (s.near(k.finished) or s.reason == "MemoryPressure")
                for k in self.kills + self.past_kills
            )
        ]

    @property
    def lifetime(self) -> timedelta | None:
        """Median time the killed instances ran (kill timing from the container status)."""
        lives = [k.lifetime.total_seconds() for k in self.kills if k.lifetime is not None]
        return timedelta(seconds=median(lives)) if lives else None

    @property
    def restarts(self) -> int:
        """Restarts across the affected pods."""
        return sum(k.restarts or 0 for k in self.kills)


@dataclass(frozen=True)
class Verdict:
    """The cause, the rule that named it, and the runners-up."""

    root: RootCause
    rule: str
    alternatives: tuple[RootCause, ...] = ()


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _pressure(signals: list[NodeSignal]) -> str:
    texts = dict.fromkeys(f"{s.reason} on {s.node}" for s in signals)
    return ", ".join(list(texts)[:4])


def _verdict(category: Category, summary: str, confidence: float, rule: str,
             *alternatives: RootCause) -> Verdict:  # fmt: skip
    ranked = sorted(alternatives, key=lambda c: c.confidence, reverse=True)
    return Verdict(cause(category, summary, confidence), rule, tuple(ranked))


def decide(f: Findings) -> Verdict:
    """Apply the rules of this module's docstring, in order."""
    a = f.analysis if f.analysis is not None and f.analysis.pattern in _USABLE else None
    who = f"Container {f.container} of {f.workload}"
    if f.memory.limit is None and not f.memory.limit_unreadable:
        return _no_limit(f, a, who)
    if f.memory.limit is not None:
        limit = bytes_text(f.memory.limit)
    else:
        limit = f"unreadable ({f.memory.limit_text})"
    if a is not None and a.pattern is Pattern.BELOW_LIMIT:
        return _below_limit(f, a, who, limit)
    if a is not None and a.pattern is Pattern.LEAK:
        return _leak(f, a, who, limit)
    if a is not None and a.pattern in {Pattern.PLATEAU, Pattern.SPIKE}:
        return _at_limit(f, a, who, limit)
    if a is not None and a.pattern is Pattern.GROWING:
        etas = [i.seconds_until(a.limit) for i in a.of_shape(Shape.GROWING) if a.limit]
        eta = min((e for e in etas if e is not None), default=None)
        summary = (
            f"{who} grows steadily at ~{bytes_text(a.leak_rate_per_hour)}/h in its running "
            f"instance and would reach its {limit} limit in ~{format_duration(eta)}; the history "
            "holds no kill yet"
        )
        level_off = cause(LIMIT_TOO_LOW, f"{who} may level off above its {limit} limit", 0.35)
        return _verdict(MEMORY_LEAK, summary, 0.55, "rule 5: a running instance grows", level_off)
    return _from_timing(f, who, limit)


def _no_limit(f: Findings, a: MemoryAnalysis | None, who: str) -> Verdict:
    signals = f.kill_signals or f.node_signals
    confidence = (0.9 if signals else 0.8) - (0.1 if a is None else 0.0)
    where = f" ({_pressure(signals)})" if signals else ""
    own = ""
    if a is not None and a.peak is not None:
        own = (f"; its own working set peaked at {bytes_text(a.peak)} against a "
               f"{bytes_text(f.memory.request)} request")  # fmt: skip
    summary = (
        f"{who} has no memory limit, so the node's OOM killer killed it when the node ran out "
        f"of memory{where}{own}"
    )
    alternatives = []
    if a is not None and a.pattern is Pattern.LEAK:
        rate = bytes_text(a.leak_rate_per_hour)
        leak = f"{who} grows ~{rate}/h until each kill: it fills any node"
        alternatives.append(cause(MEMORY_LEAK, leak, 0.5))
    return _verdict(NODE_PRESSURE, summary, confidence, "rule 1: no memory limit", *alternatives)


def _below_limit(f: Findings, a: MemoryAnalysis, who: str, limit: str) -> Verdict:
    peak = max(i.peak for i in a.of_shape(Shape.BELOW_LIMIT))
    share = f"{peak / (a.limit or 1):.0%}"
    signals = f.kill_signals or f.node_signals
    confidence = 0.85 if f.kill_signals else 0.75 if signals else 0.5
    where = f" while the node showed {_pressure(signals)}" if signals else ""
    summary = (
        f"{who} was killed with its working set at most {bytes_text(peak)} ({share} of its {limit} "
        f"limit){where}: the node ran out of memory, not the container's limit"
    )
    alternatives = []
    if not signals:
        burst = f"{who} may have allocated past its {limit} limit between two scrapes"
        alternatives.append(cause(LIMIT_TOO_LOW, burst, 0.4))
    rule = "rule 2: killed below the limit"
    return _verdict(NODE_PRESSURE, summary, confidence, rule, *alternatives)


def _leak(f: Findings, a: MemoryAnalysis, who: str, limit: str) -> Verdict:
    # Without a readable limit the analysis can only see growth that ends in a restart.
    leaks = a.of_shape(Shape.LEAK) or [i for i in a.of_shape(Shape.GROWING) if i.ended]
    if not leaks:
        return _from_timing(f, who, limit)
    confidence = 0.9 if len(leaks) >= 3 else 0.85 if len(leaks) == 2 else 0.7
    start = median(i.first for i in leaks)
    r2 = math.floor(min(i.r_squared for i in leaks) * 100) / 100
    pods = len({i.series for i in leaks})
    summary = (
        f"{who} leaks memory: in each of {_plural(len(leaks), 'instance')} "
        f"({_plural(pods, 'pod')}) the working set grows steadily at "
        f"~{bytes_text(a.leak_rate_per_hour)}/h (r² ≥ {r2:.2f}) from ~{bytes_text(start)} to "
        f"its {limit} limit in ~{format_duration(a.seconds_to_limit)} and is OOM-killed; raising "
        "the limit only delays the next kill"
    )
    cache = cause(LIMIT_TOO_LOW, f"{who} may be filling a cache that levels off above {limit}", 0.3)
    alternatives = [cache]
    if f.kill_signals:
        pressure = f"node memory pressure around the kills ({_pressure(f.kill_signals)})"
        alternatives.append(cause(NODE_PRESSURE, pressure, 0.2))
    rule = "rule 3: a steady climb to the limit in every instance"
    return _verdict(MEMORY_LEAK, summary, confidence, rule, *alternatives)


def _lowered_text(f: Findings) -> str:
    if f.lowered is None:
        return ""
    current, previous = f.lowered
    return (f"; revision {current.number} lowered it from {bytes_text(previous.memory.limit)} "
            f"(revision {previous.number})")  # fmt: skip


def _at_limit(f: Findings, a: MemoryAnalysis, who: str, limit: str) -> Verdict:
    hits = a.of_shape(Shape.PLATEAU, Shape.SPIKE)
    plateau = a.pattern is Pattern.PLATEAU
    confidence = (0.85 if plateau else 0.75) - (0.1 if len(hits) < 2 else 0.0)
    confidence += 0.05 if f.lowered else 0.0
    pods = len({i.series for i in hits})
    how = "and stays there until the kill" if plateau else "at once (a spike) and dies"
    share = f"{(a.peak or 0) / (a.limit or 1):.0%}"
    summary = (
        f"{who} is killed at its {limit} memory limit: the working set reaches "
        f"{bytes_text(a.peak)} ({share} of the limit) within "
        f"~{format_duration(a.seconds_to_limit)} of each start {how} "
        f"({_plural(len(hits), 'instance')}, {_plural(pods, 'pod')}, "
        f"{_plural(f.restarts, 'restart')}){_lowered_text(f)}"
    )
    alternatives = []
    if a.of_shape(Shape.LEAK):
        slow = f"some instances of {f.container} climb slowly to the limit"
        alternatives.append(cause(MEMORY_LEAK, slow, 0.25))
    if f.kill_signals:
        pressure = f"node memory pressure around the kills ({_pressure(f.kill_signals)})"
        alternatives.append(cause(NODE_PRESSURE, pressure, 0.3))
    rule = "rule 4: the limit reached and held" if plateau else "rule 4: the limit hit at once"
    return _verdict(LIMIT_TOO_LOW, summary, confidence, rule, *alternatives)


def _from_timing(f: Findings, who: str, limit: str) -> Verdict:
    life, restarts = f.lifetime, f.restarts
    base = (
        f"{who} ({limit} limit; {_plural(restarts, 'restart')}, killed instances lived "
        f"{format_duration(life)} (median)); "
        f"{f.history_gap or 'the memory history was inconclusive'}, so "
    )
    pressure = []
    if f.node_signals:
        pressure.append(
            cause(NODE_PRESSURE, f"node memory pressure ({_pressure(f.node_signals)})", 0.25)
        )
    if f.kill_signals:
        summary = base + f"the node signals around the kills decide: {_pressure(f.kill_signals)}"
        reached = cause(LIMIT_TOO_LOW, f"{who} may have reached its {limit} limit", 0.3)
        return _verdict(NODE_PRESSURE, summary, 0.55, "rule 6: a node signal at a kill", reached)
    leak_maybe = cause(MEMORY_LEAK, f"{who} may leak", 0.3 if life is not None else 0.25)
    if f.lowered is not None:
        summary = base + f"the limit change decides{_lowered_text(f)} and the kills followed"
        return _verdict(LIMIT_TOO_LOW, summary, 0.6, "rule 6: the limit was lowered", leak_maybe,
                        *pressure)  # fmt: skip
    if life is not None and life < QUICK_KILL:
        summary = base + "a kill this soon after every start points at a limit below normal load"
        fast = cause(MEMORY_LEAK, f"{who} may leak fast", 0.2)
        return _verdict(LIMIT_TOO_LOW, summary, 0.5, "rule 6: quick kills", fast, *pressure)
    if life is not None and life >= SLOW_KILL and (restarts >= 2 or len(f.kills) >= 2):
        summary = base + "kills after hours of running, again and again, look like a leak"
        peak = cause(LIMIT_TOO_LOW, f"{who} may meet a periodic load peak above {limit}", 0.35)
        return _verdict(MEMORY_LEAK, summary, 0.45, "rule 6: slow repeated kills", peak, *pressure)
    confidence = 0.4 if life is not None else 0.35
    summary = (
        base + f"the kill at the {limit} limit is the one fact: the limit is the likeliest cause"
    )
    return _verdict(LIMIT_TOO_LOW, summary, confidence, "rule 6: undecided", leak_maybe, *pressure)
