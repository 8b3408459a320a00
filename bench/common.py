"""What every benchmark shares: the row shape, statistics, process accounting, the table.

A benchmark module exposes ``run(quick: bool = False) -> list[dict]``. Each dict is one row:

- ``figure``: what was measured, with its unit
- ``ours``: our figure; ``baseline``: the same quantity for the baseline, measured in the same
  run (so a noisy machine moves both); ``ratio``: how many times better ours is than the
  baseline (above 1: better), or None where a ratio means nothing
- ``goal``: the issue's goal in words; ``met``: True/False when the goal is checkable, else None
- ``note``: context (percentiles, shares, what bounds the figure)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

Row = dict[str, Any]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def row(
    figure: str,
    ours: float | None,
    baseline: float | None = None,
    *,
    ratio: float | None = None,
    goal: str = "",
    met: bool | None = None,
    note: str = "",
) -> Row:
    return {
        "figure": figure,
        "ours": ours,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "met": met,
        "note": note,
    }


def better_ratio(
    ours: float | None, baseline: float | None, *, lower_is_better: bool
) -> float | None:
    """How many times better ours is than the baseline (above 1: ours is better)."""
    if ours is None or baseline is None or ours <= 0 or baseline <= 0:
        return None
    if math.isinf(ours) or math.isinf(baseline):
        return None
    return baseline / ours if lower_is_better else ours / baseline


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    if len(data) == 1:
        return float(data[0])
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def summary_ms(values_s: Sequence[float]) -> str:
    """p50/p90/p99/max of durations given in seconds, as a short text in ms."""
    if not values_s:
        return "no samples"
    ms = [v * 1000 for v in values_s]
    return (
        f"n={len(ms)} p50={percentile(ms, 50):.1f} p90={percentile(ms, 90):.1f} "
        f"p99={percentile(ms, 99):.1f} max={max(ms):.1f} ms"
    )


def proc_cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) used so far by a process (default: this one)."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def proc_rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process in MiB."""
    with open(f"/proc/{pid or 'self'}/statm") as f:
        resident = int(f.read().split()[1])
    return resident * PAGE_SIZE / (1024 * 1024)


def machine() -> str:
    """One line about this machine: CPU model, cores, memory, Python."""
    import platform

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PHYS_PAGES") * PAGE_SIZE / 1024**3
    return (
        f"{model}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def table(rows: Sequence[Row], *, markdown: bool = False) -> str:
    """The rows as a fixed-width text table, or as a Markdown table."""
    header = ["figure", "ours", "baseline", "ratio", "met", "goal"]
    cells = [
        [
            r["figure"],
            fmt(r["ours"]),
            fmt(r["baseline"]),
            fmt(r["ratio"]),
            fmt(r.get("met")),
            r.get("goal", ""),
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in cells]
        return "\n".join(lines)
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    for line in cells:
        parts = [line[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(line[1:5], widths[1:5], strict=True)]
        parts.append(line[5])
        out.append("  ".join(parts))
    return "\n".join(out)


class ChildProcess:
    """A bench helper (``python -m bench.X``) in its own process, so it has a CPU loop of its own.

    The child prints ``READY <address>`` once serving, answers each command line on its stdin with
    one JSON line (:func:`commands` is its side), and exits when its stdin closes: a crashed
    parent never leaves it behind.
    """

    def __init__(self, args: list[str], what: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"the {what} process did not start")
        self.address = line.split()[1]  # what it serves on (a URL or a port)

    async def command(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        reply = await asyncio.get_running_loop().run_in_executor(None, self.proc.stdout.readline)
        answer: dict[str, Any] = json.loads(reply)
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def commands(max_seconds: float) -> AsyncIterator[str]:
    """The child's side of :class:`ChildProcess`: command lines from stdin until it closes or
    ``max_seconds`` pass."""
    loop = asyncio.get_running_loop()
    end = loop.time() + max_seconds
    while loop.time() < end:
        try:
            line = await asyncio.wait_for(
                loop.run_in_executor(None, sys.stdin.readline), end - loop.time()
            )
        except TimeoutError:
            return
        if not line:
            return
        yield line.strip()
