"""Run the benchmarks and print one table: ``.venv/bin/python -m bench [FIGURE ...] [--quick]``.

Every figure is measured against a baseline in the same run, so ratios hold on a noisy machine.
``--quick`` shortens every figure for a CI smoke run (the numbers are then rough); ``--json PATH``
also writes the rows; ``--markdown`` prints the table as Markdown (for docs/benchmarks.md).
Everything is loopback only and stops by itself (each figure has a time bound). When several
figures run, each runs in a fresh interpreter (``--in-process`` to share this one).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Row, machine, table

#: name → (module, what it measures). Cheap ones first.
FIGURES: dict[str, tuple[str, str]] = {
    "uplink": ("bench.bench_uplink", "uplink cost and quality (48k stereo → 24k mono → JSON)"),
    "downlink": ("bench.bench_downlink", "downlink cost per audio delta, parsing share"),
    "bargein": ("bench.bench_bargein", "speech_started arrival → output silent"),
    "truncation": ("bench.bench_truncation", "sent audio_end_ms vs really played"),
    "handoff": ("bench.bench_handoff", "a handoff turn vs a tool turn; MCP call and start"),
    "v2v": ("bench.bench_v2v", "voice-to-voice latency on the local server, real engines"),
    "tools": ("bench.bench_tools", "voice-to-voice when a tool answers, local server"),
    "answers": ("bench.bench_answers", "spoken questions: right tool and right answer, local LLMs"),
    "call_bias": ("bench.bench_call_bias", "typed questions: how far to favour a call (Qwen)"),
    "memory": ("bench.bench_memory", "local server memory with models loaded and after 50 turns"),
    "browser": ("bench.bench_browser", "the user's wait measured in a real browser (WebRTC)"),
    "ws": ("bench.bench_concurrency_ws", "concurrent sessions, WebSocket path"),
    "webrtc": ("bench.bench_concurrency_webrtc", "concurrent sessions, WebRTC path"),
    "phone": ("bench.bench_phone", "Twilio/SIP CPU per call vs WebRTC, phone turn latency"),
    "isolation": ("bench.bench_isolation", "one session's round trip while another attacks"),
    "scale": ("bench.bench_scale", "sessions per machine with workers; gateway dispatch"),
    "peers": ("bench.bench_peers", "uplink end to end vs LiveKit's OpenAI plugin and the seed"),
}
#: The figures that need no models and take seconds in --quick mode (the smoke test runs them).
CHEAP = ("uplink", "downlink")


def run_figure(name: str, *, quick: bool) -> list[Row]:
    """Import and run one figure here; a failure becomes a row that says so, never a crash."""
    module_name, _ = FIGURES[name]
    try:
        module = importlib.import_module(module_name)
        run = module.run
        takes_quick = "quick" in inspect.signature(run).parameters
        rows: list[Row] = run(quick=quick) if takes_quick else run()
    except Exception as exc:  # one broken figure must not hide the others
        logging.getLogger("bench").exception("figure %s failed", name)
        return [_failed(name, f"{type(exc).__name__}: {exc}")]
    return [_with_goal(name, r) for r in rows]


def run_isolated(name: str, *, quick: bool, timeout_s: float = 900.0) -> list[Row]:
    """Run one figure in a fresh interpreter, so no figure inherits another's memory, threads
    or loaded models (memory per session is measured as the growth of a process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        command = [sys.executable, "-m", "bench", name, "--json", str(out)]
        if quick:
            command.append("--quick")
        try:
            subprocess.run(command, stdout=subprocess.DEVNULL, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return [_failed(name, f"no result within {timeout_s:.0f} s")]
        if not out.exists():
            return [_failed(name, "the figure's process ended without rows")]
        rows: list[Row] = json.loads(out.read_text())["rows"]
        return rows


def _failed(name: str, why: str) -> Row:
    return {
        "figure": f"{name}: FAILED ({why})",
        "ours": None,
        "baseline": None,
        "ratio": None,
        "goal": "",
        "met": False,
        "note": "",
    }


def _with_goal(name: str, r: Row) -> Row:
    """Rows from bench_uplink carry no ``met``: judge them by the issue's goals."""
    r = {"met": None, "note": "", **r}
    if name != "uplink" or r["met"] is not None:
        return r
    figure = str(r["figure"])
    if "cost" in figure:
        r["goal"] = "≤ 1/3 of the seed's CPU time (ratio ≥ 3)"
        r["met"] = r["ratio"] is not None and r["ratio"] >= 3
    elif "SNR" in figure:
        value = r["ours"]
        r["met"] = value is not None and (math.isinf(value) or value >= 100)
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "figures",
        nargs="*",
        metavar="FIGURE",
        help=f"figures to run (default: all): {', '.join(FIGURES)}; 'cheap' = {', '.join(CHEAP)}",
    )
    parser.add_argument("--quick", action="store_true", help="short runs for CI smoke use")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--list", action="store_true", help="list the figures and exit")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every figure in this process (default: each in its own when several run)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)

    if args.list:
        for name, (_, what) in FIGURES.items():
            print(f"{name:<11} {what}")
        return 0
    names: list[str] = []
    for name in args.figures or list(FIGURES):
        expanded = list(CHEAP) if name == "cheap" else [name]
        for n in expanded:
            if n not in FIGURES:
                parser.error(f"unknown figure {n!r} (choose from {', '.join(FIGURES)}, cheap)")
            if n not in names:
                names.append(n)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )

    rows: list[Row] = []
    timings: dict[str, float] = {}
    loads: dict[str, float] = {}
    for name in names:
        if len(names) == 1 or args.in_process:
            print(f"running {name}{' (quick)' if args.quick else ''}…", file=sys.stderr, flush=True)
        loads[name] = os.getloadavg()[0]  # how busy the machine was (other processes included)
        start = time.monotonic()
        if len(names) > 1 and not args.in_process:
            rows += run_isolated(name, quick=args.quick)
        else:
            rows += run_figure(name, quick=args.quick)
        timings[name] = time.monotonic() - start
    print(f"machine: {machine()}")
    print(
        "figures (seconds, load average at start): "
        + ", ".join(f"{n} {t:.0f} s (load {loads[n]:.1f})" for n, t in timings.items())
    )
    print(table(rows, markdown=args.markdown))
    notes = [(r["figure"], r["note"]) for r in rows if r.get("note")]
    if notes:
        print("\nnotes:")
        for figure, note in notes:
            print(f"- {figure}: {note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"machine": machine(), "quick": args.quick, "rows": rows},
                f,
                indent=1,
                default=_jsonable,
            )
    return 0


def _jsonable(value: Any) -> Any:
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
