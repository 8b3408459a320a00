"""A bounded ramp of concurrent sessions, and the playout-lateness recorder it judges by.

The ramp adds sessions in steps, lets each step settle, then measures for a fixed window: the
p99 lateness of output frames (how late each 20 ms frame left ``next_frame`` against its ideal
deadline), the measured process's CPU (cores busy = CPU seconds / wall seconds) and memory. It
stops at the first step whose p99 passes the limit in two windows running (one stall of a shared
machine does not end it), or when its time budget is spent, so a run always ends by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench.common import percentile

FRAME_S = 0.02
MAX_LAG_S = 0.1  # AudioOutput's default: beyond this the schedule is re-anchored


class Lateness:
    """Per-frame lateness of paced consumers, recorded only while ``recording``."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.recording = False

    def consumer(self) -> LatenessClock:
        return LatenessClock(self)


class LatenessClock:
    """One consumer's lateness against the AudioOutput's own schedule, mirrored: frame n is due
    at t0 + n x 20 ms; a call more than 100 ms behind its deadline re-anchors the schedule at the
    call (the frame that did so is recorded as late as it was)."""

    __slots__ = ("_n", "_sink", "_t0")

    def __init__(self, sink: Lateness) -> None:
        self._sink = sink
        self._t0: float | None = None
        self._n = 0

    def frame(self, called: float, returned: float) -> None:
        """One ``next_frame`` call: when it was made and when it returned (loop.time())."""
        if self._t0 is None:
            self._t0, self._n = called, 0
        deadline = self._t0 + self._n * FRAME_S
        late = returned - deadline
        if called - deadline > MAX_LAG_S:
            self._t0, self._n = called, 0
        if self._sink.recording:
            self._sink.values.append(max(late, 0.0))
        self._n += 1


@dataclass
class Step:
    sessions: int
    p50_ms: float
    p99_ms: float
    frames: int
    cores: float  # the measured process
    rss_mb: float
    other_cores: float  # the server process(es)

    @property
    def per_core(self) -> float:
        return self.sessions / self.cores if self.cores > 0 else float("nan")

    @property
    def cpu_ms_per_session_s(self) -> float:
        """CPU milliseconds the measured process spends per session per second."""
        return 1000 * self.cores / self.sessions if self.sessions else float("nan")

    def text(self) -> str:
        return (
            f"{self.sessions} sessions: p99 {self.p99_ms:.1f} ms (p50 {self.p50_ms:.1f}), "
            f"client {self.cores:.2f} cores ({self.cpu_ms_per_session_s:.1f} ms/s a session), "
            f"{self.rss_mb:.0f} MiB, others {self.other_cores:.2f} cores"
        )


@dataclass
class Probe:
    """How to read the measured process: CPU seconds, RSS MiB, and the other processes' CPU."""

    cpu_s: Callable[[], float]
    rss_mb: Callable[[], float]
    other_cpu_s: Callable[[], float]
    #: Start/stop recording lateness and return the values (they may live in another process).
    start_recording: Callable[[], Awaitable[None]]
    stop_recording: Callable[[], Awaitable[list[float]]]


async def ramp(
    add: Callable[[int], Awaitable[int]],
    probe: Probe,
    steps: Sequence[int],
    *,
    limit_ms: float,
    window_s: float,
    settle_s: float,
    budget_s: float,
    log: Callable[[str], None] = lambda line: None,
) -> list[Step]:
    """Raise the session count through ``steps`` (``add(n)`` brings it to n, returns how many
    really run) until p99 lateness exceeds ``limit_ms`` (in two windows running) or
    ``budget_s`` is spent."""
    start = time.monotonic()
    results: list[Step] = []
    for target in steps:
        if time.monotonic() - start + settle_s + window_s > budget_s:
            log(f"time budget spent before {target} sessions")
            break
        running = await add(target)
        await asyncio.sleep(settle_s)
        step = await _measure(running, probe, window_s)
        log(step.text())
        if step.frames and step.p99_ms > limit_ms and running == target:
            # Another process on a shared machine can stall us for one window: measure once
            # more before calling the step a failure (both windows are reported).
            results.append(step)
            step = await _measure(running, probe, window_s)
            log("again: " + step.text())
        results.append(step)
        if running < target or not step.frames or step.p99_ms > limit_ms:
            break
    return results


async def _measure(running: int, probe: Probe, window_s: float) -> Step:
    await probe.start_recording()
    cpu0, other0, t0 = probe.cpu_s(), probe.other_cpu_s(), time.monotonic()
    await asyncio.sleep(window_s)
    cpu1, other1, t1 = probe.cpu_s(), probe.other_cpu_s(), time.monotonic()
    ms = [v * 1000 for v in await probe.stop_recording()]
    return Step(
        sessions=running,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        frames=len(ms),
        cores=(cpu1 - cpu0) / (t1 - t0),
        rss_mb=probe.rss_mb(),
        other_cores=(other1 - other0) / (t1 - t0),
    )


def passing(steps: Sequence[Step], limit_ms: float) -> Step | None:
    """The largest step that held the lateness limit."""
    ok = [s for s in steps if s.frames and s.p99_ms <= limit_ms]
    return max(ok, key=lambda s: s.sessions) if ok else None


def failed(steps: Sequence[Step], limit_ms: float) -> Step | None:
    """The first session count at which no window held the limit."""
    for step in steps:
        same = [s for s in steps if s.sessions == step.sessions]
        if all(not s.frames or s.p99_ms > limit_ms for s in same):
            return step
    return None


def at(steps: Sequence[Step], sessions: int) -> Step | None:
    """The (last) window measured with this many sessions."""
    same = [s for s in steps if s.sessions == sessions]
    return same[-1] if same else None
