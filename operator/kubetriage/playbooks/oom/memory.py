"""What a container's memory history says about an OOM kill. Pure: samples in, analysis out.

An extra module beside the playbook's roles, for a responsibility none of them covers: the
analysis of a time series is neither a read (`reads` fetches the series) nor a decision rule
(`decide` reads the shapes found here). `bytes_text` writes the amounts it finds for a sentence.

The input is `container_memory_working_set_bytes` as Prometheus (or a snapshot) gives it: one
series per pod, samples `(unix seconds, bytes)` that exist only while a container instance ran.
The series is cut into instances (one per container start: a restart starts over low, or after a
gap), and each instance gets a shape:

- `leak`: a steady, roughly linear climb lasting at least `leak_min_seconds` (by default
  `LEAK_MIN_CLIMB_SECONDS`; the `memory_leak_min_climb_seconds` setting) that reaches
  the limit and takes most of the instance's life (it does not sit at the limit for long);
- `plateau`: reaches the limit and stays near it (normal load needs more than the limit);
- `spike`: jumps to the limit within a sample or two (startup or a burst) and dies; without a
  limit, any burst to more than twice where the instance started;
- `below-limit`: ended without ever coming near the limit (someone else's memory ran out); a
  steady climb whose pace reaches the limit within one refresh of its last value came near it;
- `growing` / `flat`: still running (or no limit to compare with), growing steadily or not.

The workload's `Pattern` is the shape most killed instances share. Bad samples (NaN, infinite,
negative, absurd, duplicate timestamps) are dropped and counted, never fatal.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

from kubetriage.clients.kube import Sample
from kubetriage.k8s.quantities import format_bytes

NEAR_LIMIT = 0.9  # "at the limit": a 30 s scrape rarely catches the very last bytes before a kill
RESTART_DROP = 0.7  # a sample below 70% of the one before starts a new instance
GAP_FACTOR = 3.0  # a silence of 3 scrape intervals means the container was not running
LEAK_MIN_CLIMB_SECONDS = 1800.0  # a leak takes a while to fill the limit; startup does not
LEAK_MIN_R2 = 0.6  # how straight the climb must be
LEAK_MIN_RISE = 0.2  # of the limit (of the starting value without one): not a flat line
LEAK_MIN_CLIMB_SHARE = 0.6  # a leak spends its life climbing; a plateau lives at the limit
SURGE_FACTOR = 2.0  # without a limit: peaking at twice the starting usage is a burst
GROWING_MIN_RISE = 0.1
MAX_TIMESTAMP = 1e10  # unix seconds in the year 2286: anything later is a unit mix-up (ms, ns)
MAX_BYTES = float(2**60)  # an exbibyte of working set is a broken exporter, not a container


class Shape(StrEnum):
    """How one container instance used memory."""

    LEAK = "leak"
    PLATEAU = "plateau"
    SPIKE = "spike"
    BELOW_LIMIT = "below-limit"
    GROWING = "growing"
    FLAT = "flat"


class Pattern(StrEnum):
    """What the whole history says."""

    NO_DATA = "no-data"
    TOO_FEW_SAMPLES = "too-few-samples"
    LEAK = "leak"
    PLATEAU = "plateau"
    SPIKE = "spike"
    BELOW_LIMIT = "below-limit"
    GROWING = "growing"
    NO_LIMIT = "no-limit"
    INCONCLUSIVE = "inconclusive"


_AT_LIMIT = {Shape.LEAK, Shape.PLATEAU, Shape.SPIKE}


@dataclass(frozen=True)
class Instance:
    """One container instance (start to kill or to the end of the history) of one series."""

    series: str
    start: float
    end: float
    samples: int
    first: float
    peak: float
    last: float
    growth_per_hour: float  # least-squares slope, bytes per hour
    r_squared: float
    ended: bool  # a later instance of the same series followed: this one was killed/restarted
    seconds_to_near_limit: float | None
    near_limit_share: float | None
    shape: Shape

    @property
    def duration(self) -> float:
        """Seconds between its first and last sample."""
        return self.end - self.start

    def seconds_until(self, limit: float) -> float | None:
        """For a growing instance: how long until it reaches `limit` at its current rate."""
        if self.growth_per_hour <= 0 or self.last >= limit:
            return None
        return (limit - self.last) / self.growth_per_hour * 3600.0


@dataclass(frozen=True)
class MemoryAnalysis:
    """The memory history of one container across the affected pods, digested."""

    pattern: Pattern
    limit: float | None
    samples: int
    discarded: int
    peak: float | None
    p95: float | None
    p50: float | None
    instances: tuple[Instance, ...]

    def of_shape(self, *shapes: Shape) -> list[Instance]:
        """The instances with one of these shapes."""
        return [i for i in self.instances if i.shape in shapes]

    @property
    def leak_rate_per_hour(self) -> float | None:
        """Median growth of the leaking (else growing) instances, bytes per hour."""
        climbing = self.of_shape(Shape.LEAK) or self.of_shape(Shape.GROWING)
        return _median([i.growth_per_hour for i in climbing]) if climbing else None

    @property
    def seconds_to_limit(self) -> float | None:
        """Median time from a start to reaching the limit, over the instances that did."""
        times = [i.seconds_to_near_limit for i in self.of_shape(*_AT_LIMIT)]
        known = [t for t in times if t is not None]
        return _median(known) if known else None


def analyze_memory(
    samples: Iterable[Sample] | Mapping[str, Iterable[Sample]],
    limit_bytes: float | None,
    *,
    finished: Collection[str] = (),
    leak_min_seconds: float = LEAK_MIN_CLIMB_SECONDS,
) -> MemoryAnalysis:
    """Digest a working-set history: one series, or a mapping of series name (pod) to series.

    `limit_bytes` is the container's memory limit (None when it has none). `finished` names the
    series whose container is not running now, so their last instance ended too (a single
    series is named ""). A climb is steady (a leak, or growing) only when it lasts at least
    `leak_min_seconds`. Never raises.
    """
    series = dict(samples) if isinstance(samples, Mapping) else {"": samples}
    limit = limit_bytes if limit_bytes and limit_bytes > 0 and math.isfinite(limit_bytes) else None
    instances: list[Instance] = []
    values: list[float] = []
    discarded = 0
    for name, raw in sorted(series.items()):
        clean, dropped = _clean(raw)
        discarded += dropped
        values.extend(v for _, v in clean)
        instances.extend(
            _instances(name, clean, limit, finished=name in finished, min_climb=leak_min_seconds)
        )
    instances.sort(key=lambda i: (i.start, i.series))
    ordered = sorted(values)
    return MemoryAnalysis(
        pattern=_pattern(instances, len(values), limit),
        limit=limit,
        samples=len(values),
        discarded=discarded,
        peak=ordered[-1] if ordered else None,
        p95=_percentile(ordered, 95),
        p50=_percentile(ordered, 50),
        instances=tuple(instances),
    )


def _clean(raw: Iterable[Sample]) -> tuple[list[Sample], int]:
    """Valid samples in time order, one per timestamp (the highest), and how many were dropped."""
    best: dict[float, float] = {}
    dropped = 0
    for pair in raw if isinstance(raw, Iterable) else ():
        try:
            ts, value = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            dropped += 1
            continue
        if not (0 < ts < MAX_TIMESTAMP and 0 <= value < MAX_BYTES):
            dropped += 1
            continue
        if ts in best:
            dropped += 1
            value = max(value, best[ts])
        best[ts] = value
    return sorted(best.items()), dropped


def _instances(
    name: str, samples: list[Sample], limit: float | None, *, finished: bool, min_climb: float
) -> list[Instance]:
    if not samples:
        return []
    steps = [b[0] - a[0] for a, b in pairwise(samples)]
    interval = _median(steps) if steps else 0.0
    runs: list[list[Sample]] = [[samples[0]]]
    for previous, current in pairwise(samples):
        restarted = current[1] < RESTART_DROP * previous[1]
        silent = interval > 0 and current[0] - previous[0] > GAP_FACTOR * interval
        if restarted or silent:
            runs.append([])
        runs[-1].append(current)
    return [
        _instance(name, run, limit, ended=finished or i < len(runs) - 1, min_climb=min_climb)
        for i, run in enumerate(runs)
    ]


def _instance(
    name: str, run: list[Sample], limit: float | None, *, ended: bool, min_climb: float
) -> Instance:
    start, first = run[0]
    peak = max(v for _, v in run)
    slope, r2 = _fit(run)
    to_near: float | None = None
    share: float | None = None
    climb = run
    if limit is not None:
        near = [i for i, (_, v) in enumerate(run) if v >= NEAR_LIMIT * limit]
        if near:
            to_near = run[near[0]][0] - start
            climb = run[: near[0] + 1]
        elif ended:
            to_near = _reached_after_last_value(run, limit, (slope, r2), min_climb=min_climb)
        share = len(near) / len(run)
    shape = _shape(
        run, limit, climb=climb, fit=(slope, r2), to_near=to_near, ended=ended, min_climb=min_climb
    )
    return Instance(
        series=name,
        start=start,
        end=run[-1][0],
        samples=len(run),
        first=first,
        peak=peak,
        last=run[-1][1],
        growth_per_hour=slope * 3600.0,
        r_squared=r2,
        ended=ended,
        seconds_to_near_limit=to_near,
        near_limit_share=share,
        shape=shape,
    )


def _shape(
    run: list[Sample],
    limit: float | None,
    *,
    climb: list[Sample],
    fit: tuple[float, float],
    to_near: float | None,
    ended: bool,
    min_climb: float,
) -> Shape:
    slope, r2 = fit
    duration = run[-1][0] - run[0][0]
    first = run[0][1]
    if limit is None:
        rise_base = first if first > 0 else max(v for _, v in run)
        if _steady(
            slope, r2, duration, run[-1][1] - first, LEAK_MIN_RISE * rise_base, min_climb=min_climb
        ):
            return Shape.GROWING
        return Shape.SPIKE if max(v for _, v in run) >= SURGE_FACTOR * rise_base else Shape.FLAT
    if to_near is not None:
        climb_slope, climb_r2 = _fit(climb)
        rise = climb[-1][1] - first
        climbing_share = to_near / duration if duration > 0 else 0.0
        if (
            _steady(
                climb_slope, climb_r2, to_near, rise, LEAK_MIN_RISE * limit, min_climb=min_climb
            )
            and climbing_share >= LEAK_MIN_CLIMB_SHARE
        ):
            return Shape.LEAK
        near_samples = sum(1 for _, v in run if v >= NEAR_LIMIT * limit)
        return Shape.PLATEAU if near_samples >= 2 else Shape.SPIKE
    if ended:
        return Shape.BELOW_LIMIT
    steady = _steady(
        slope, r2, duration, run[-1][1] - first, GROWING_MIN_RISE * limit, min_climb=min_climb
    )
    return Shape.GROWING if steady else Shape.FLAT


def _reached_after_last_value(
    run: list[Sample], limit: float, fit: tuple[float, float], *, min_climb: float
) -> float | None:
    """When a killed instance that climbed steadily reached the limit after its last value:
    seconds from its start, or None. Prometheus only sees what cAdvisor last refreshed (every
    ~10 s on a kubelet, however often it scrapes): the kill can come a whole refresh after the
    last value, and a steady climb whose pace gets there within that time was killed at the
    limit, not below it."""
    slope, r2 = fit
    start, first = run[0]
    end, last = run[-1]
    if not _steady(
        slope, r2, end - start, last - first, LEAK_MIN_RISE * limit, min_climb=min_climb
    ):
        return None
    changes = [b[0] for a, b in pairwise(run) if b[1] != a[1]]
    steps = [b - a for a, b in pairwise(changes)] or [b[0] - a[0] for a, b in pairwise(run)]
    refresh = _median(steps) if steps else 0.0
    last_fresh = changes[-1] if changes else end
    if last + slope * refresh < NEAR_LIMIT * limit:
        return None
    return last_fresh - start + (NEAR_LIMIT * limit - last) / slope


def _steady(
    slope: float, r2: float, duration: float, rise: float, min_rise: float, *, min_climb: float
) -> bool:
    return slope > 0 and r2 >= LEAK_MIN_R2 and duration >= min_climb and rise >= min_rise


def _pattern(instances: list[Instance], samples: int, limit: float | None) -> Pattern:
    if samples == 0:
        return Pattern.NO_DATA
    if samples < 3:
        return Pattern.TOO_FEW_SAMPLES
    shapes = [i.shape for i in instances]
    if limit is None:
        grew_to_kill = any(i.shape is Shape.GROWING and i.ended for i in instances)
        return Pattern.LEAK if grew_to_kill else Pattern.NO_LIMIT
    leaks = shapes.count(Shape.LEAK)
    plateaus, spikes = shapes.count(Shape.PLATEAU), shapes.count(Shape.SPIKE)
    if leaks and leaks >= plateaus + spikes:
        return Pattern.LEAK
    if plateaus or spikes:
        return Pattern.PLATEAU if plateaus >= spikes else Pattern.SPIKE
    if Shape.BELOW_LIMIT in shapes:
        return Pattern.BELOW_LIMIT
    if Shape.GROWING in shapes:
        return Pattern.GROWING
    return Pattern.INCONCLUSIVE


def _fit(run: Sequence[Sample]) -> tuple[float, float]:
    """Least-squares slope (bytes per second) and r² of a run; (0, 0) when undefined."""
    n = len(run)
    if n < 2:
        return 0.0, 0.0
    t0 = run[0][0]
    xs = [t - t0 for t, _ in run]
    ys = [v for _, v in run]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    if sxx <= 0:
        return 0.0, 0.0
    slope = sxy / sxx
    # Tiny spreads underflow: sxx and syy above zero can still multiply to 0.0.
    spread = sxx * syy
    r2 = (sxy * sxy) / spread if spread > 0 else 0.0
    return slope, r2


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _percentile(ordered: Sequence[float], percent: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100.0 * len(ordered)))
    return ordered[rank - 1]


def bytes_text(value: float | Decimal | None) -> str:
    """Bytes for a sentence (`503.5Mi`), `none` for None. A float is read as it prints, so a
    sample rounds the way its value reads."""
    return "none" if value is None else format_bytes(Decimal(str(value)))
