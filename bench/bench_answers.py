"""Spoken questions answered by the local server with the example assistant's tools: does the model
pick the right tool (or rightly none), and does the reply hold the right answer?

42 questions in five kinds (arithmetic said in words, unit conversions, time and date, general
knowledge, chit-chat that needs no tool) are spoken by Piper (en_US joe) and by espeak-ng in two
voices (en-us, en-gb), written to WAV files, and played through the real server (Silero VAD,
Whisper tiny.en, the LLM under test) by ``FilesTransport`` into an ``AgentSession`` running
``examples/assistant.py``'s agent and tools, one fresh session per question, asked after the
agent's greeting (as a user asks: the greeting is part of the conversation the model sees). The
same run measures the default LLM (Qwen2.5-Coder-0.5B) and the SmolLM2-135M baseline (which cannot
choose tools: a keyword router picks for it).

- right tool: the first call names the expected tool, or no call where none is expected;
- correct answer: the agent's reply holds one of the accepted answers (digits or words, case
  and punctuation ignored); time and date answers are checked against the clock at the moment
  of the question; a chit-chat reply is correct when it is non-empty and called no tool.

``--quick``: Piper only. The per-question details go to ``bench-answers.jsonl`` in the current
folder (``BENCH_ANSWERS_JSON`` overrides), one line per turn as it ends, for reading the misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from bench.common import Row, row

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

MODELS = tuple(os.environ.get("BENCH_ANSWERS_MODELS", "qwen-0.5b,smollm2").split(","))
TOOL_GOAL = 0.90
ANSWER_GOAL = 0.80

Answers = Callable[[], tuple[str, ...]]


@dataclass(frozen=True)
class Question:
    kind: str
    text: str
    tool: str | None
    answers: tuple[str, ...] | Answers = ()


def _clock(zone: str | None, what: str) -> Answers:
    """What the clock says now or said a minute ago: the tool read it seconds before the reply
    is judged, maybe in the minute before ("13:58" judged at 13:59:01 is right)."""

    def said(now: datetime) -> tuple[str, ...]:
        if what == "time":
            hour12 = now.hour % 12 or 12
            return (f"{now:%H:%M}", f"{now.hour}:{now:%M}", f"{hour12}:{now:%M}")
        if what == "weekday":
            return (f"{now:%A}",)
        if what == "month":
            return (f"{now:%B}",)
        return (f"{now:%B} {now.day}", f"{now.day} {now:%B}", f"{now.day}th", f"{now:%A}")

    def accepted() -> tuple[str, ...]:
        now = datetime.now(ZoneInfo(zone)) if zone else datetime.now().astimezone()
        return said(now) + said(now - timedelta(minutes=1))

    return accepted


def _n(*forms: str) -> tuple[str, ...]:
    return forms


QUESTIONS: list[Question] = [
    Question("arithmetic", "What is seventeen times three?", "calculate", _n("51", "fifty-one")),
    Question(
        "arithmetic",
        "What is the square root of one hundred forty four?",
        "calculate",
        _n("12", "twelve"),
    ),
    Question(
        "arithmetic",
        "What is one hundred twenty five divided by five?",
        "calculate",
        _n("25", "twenty-five"),
    ),
    Question(
        "arithmetic",
        "What is two hundred thirty four plus five hundred sixty seven?",
        "calculate",
        _n("801", "eight hundred one", "eight hundred and one"),
    ),
    Question(
        "arithmetic",
        "What is nine hundred minus three hundred forty five?",
        "calculate",
        _n("555", "five hundred fifty-five", "five hundred and fifty-five"),
    ),
    Question(
        "arithmetic",
        "What is twelve squared?",
        "calculate",
        _n("144", "one hundred forty-four", "one hundred and forty-four"),
    ),
    Question(
        "arithmetic", "What is fifteen percent of two hundred?", "calculate", _n("30", "thirty")
    ),
    Question("arithmetic", "How much is eight times seven?", "calculate", _n("56", "fifty-six")),
    Question(
        "arithmetic",
        "What is one thousand divided by eight?",
        "calculate",
        _n("125", "one hundred twenty-five", "one hundred and twenty-five"),
    ),
    Question(
        "arithmetic",
        "What is forty two plus fifty eight?",
        "calculate",
        _n("100", "one hundred", "a hundred"),
    ),
    Question(
        "arithmetic", "What is three to the power of four?", "calculate", _n("81", "eighty-one")
    ),
    Question(
        "arithmetic",
        "What is nineteen times twenty one?",
        "calculate",
        _n("399", "three hundred ninety-nine", "three hundred and ninety-nine"),
    ),
    Question(
        "conversion",
        "How many kilometers are in ten miles?",
        "convert_units",
        _n("16.09", "16.1", "sixteen point"),
    ),
    Question(
        "conversion",
        "Please convert twenty five degrees celsius to fahrenheit",
        "convert_units",
        _n("77", "seventy-seven"),
    ),
    Question(
        "conversion",
        "How many pounds is five kilograms?",
        "convert_units",
        _n("11.02", "11.0", "eleven"),
    ),
    Question(
        "conversion",
        "Convert one hundred degrees fahrenheit to celsius",
        "convert_units",
        _n("37.7", "37.8", "thirty-seven point"),
    ),
    Question(
        "conversion",
        "How many meters are in three miles?",
        "convert_units",
        _n("4828", "4,828", "four thousand eight hundred"),
    ),
    Question(
        "conversion",
        "What is sixty miles per hour in kilometers per hour?",
        "convert_units",
        _n("96.5", "96.6", "ninety-six point"),
    ),
    Question(
        "conversion",
        "Convert two liters to gallons",
        "convert_units",
        _n("0.52", "0.53", "zero point five"),
    ),
    Question(
        "conversion",
        "How many feet are in ten meters?",
        "convert_units",
        _n("32.8", "thirty-two point eight"),
    ),
    Question(
        "conversion",
        "Convert fifty kilograms to pounds",
        "convert_units",
        _n("110.2", "one hundred ten point"),
    ),
    Question(
        "conversion", "How many inches are in two feet?", "convert_units", _n("24", "twenty-four")
    ),
    Question("time", "What time is it?", "get_time", _clock(None, "time")),
    Question("time", "What's the date today?", "get_time", _clock(None, "date")),
    Question("time", "What day of the week is it?", "get_time", _clock(None, "weekday")),
    Question("time", "What time is it in Tokyo?", "get_time", _clock("Asia/Tokyo", "time")),
    Question(
        "time", "What is the time in London right now?", "get_time", _clock("Europe/London", "time")
    ),
    Question("time", "Which month are we in?", "get_time", _clock(None, "month")),
    Question("knowledge", "What is the capital of France?", None, _n("Paris")),
    Question("knowledge", "Who wrote Romeo and Juliet?", None, _n("Shakespeare")),
    Question("knowledge", "What is the largest planet in our solar system?", None, _n("Jupiter")),
    Question("knowledge", "What color is the sky on a clear day?", None, _n("blue")),
    Question("knowledge", "How many days are in a week?", None, _n("seven", "7")),
    Question("knowledge", "What is the chemical symbol for gold?", None, _n("Au")),
    Question("knowledge", "Which ocean is the largest?", None, _n("Pacific")),
    Question("knowledge", "What language is spoken in Brazil?", None, _n("Portuguese")),
    Question("chat", "Hello, how are you?", None),
    Question("chat", "Tell me a joke.", None),
    Question("chat", "Thank you very much!", None),
    Question("chat", "Good morning!", None),
    Question("chat", "What's your name?", None),
    Question("chat", "Can you help me with something?", None),
]

VOICES = ("piper", "espeak-en-us", "espeak-en-gb")
KINDS = ("arithmetic", "conversion", "time", "knowledge", "chat")


def _normal(text: str) -> str:
    text = text.lower().replace("-", " ").replace(",", "")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9.:\s]", " ", text)).strip()


def answer_ok(question: Question, reply: str, called: list[str]) -> bool:
    if not question.answers:
        return bool(reply.strip()) and not called
    accepted = question.answers() if callable(question.answers) else question.answers
    said = f" {_normal(reply)} "
    return any(f" {_normal(a)}" in said or _normal(a) in said.split() for a in accepted)


def tool_ok(question: Question, called: list[str]) -> bool:
    return called[:1] == [question.tool] if question.tool else not called


# -- speech ---------------------------------------------------------------------------------


def _write_wav(path: Path, pcm: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())


def speak_all(folder: Path, voices: tuple[str, ...]) -> dict[tuple[str, int], Path]:
    """Every question as a WAV file per voice."""
    out: dict[tuple[str, int], Path] = {}
    piper = None
    if "piper" in voices:
        from realtalk.server.engines.piper import PiperVoice

        piper = PiperVoice()
    espeak = shutil.which("espeak-ng")
    limit = int(os.environ.get("BENCH_ANSWERS_LIMIT", len(QUESTIONS)))  # for trying it out
    for i, q in enumerate(QUESTIONS[:limit]):
        for voice in voices:
            path = folder / f"{voice}-{i:02d}.wav"
            if voice == "piper":
                assert piper is not None
                pcm = np.concatenate(list(piper.synthesize(q.text)))
                _write_wav(path, pcm, piper.sample_rate)
            else:
                if espeak is None:
                    raise RuntimeError("espeak-ng is not installed (scripts/setup installs it)")
                name = voice.removeprefix("espeak-")
                subprocess.run(
                    [espeak, "-v", name, "-s", "160", "-w", str(path), q.text], check=True
                )
            out[(voice, i)] = path
    return out


# -- the server -----------------------------------------------------------------------------


async def _ask(base_url: str, wav: Path) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.assistant import Assistant
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.session import AgentSession
    from realtalk.transports.files import FilesTransport

    transport = FilesTransport([wav], start_timeout_s=60.0, turn_timeout_s=180.0)
    model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, api_key=None)
    session = AgentSession(agent=Assistant(), model=model)
    await session.start(transport)
    await asyncio.wait_for(session.wait_closed(), 300)
    report = transport.report or {}
    turns = [t for t in report.get("turns", []) if t.get("input")]
    turn = turns[0] if turns else {}
    return {
        "heard": _text(turn.get("user")),
        "reply": _text(turn.get("agent")),
        "calls": [c.get("name") for c in turn.get("function_calls", [])],
        "call_details": turn.get("function_calls", []),
        "error": turn.get("error"),
    }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else " ".join(value or [])


async def _run_all(
    wavs: dict[tuple[str, int], Path], log: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every question to every model, voice by voice, the models in turn on each question, so a
    run cut short still compares them on the same questions."""
    from realtalk.server import LocalServer

    results: dict[str, list[dict[str, Any]]] = {llm: [] for llm in MODELS}
    async with contextlib.AsyncExitStack() as stack:
        servers = {}
        for llm in MODELS:
            server = LocalServer(engine="local", voice="espeak", llm=llm, partial_transcripts=False)
            servers[llm] = await stack.enter_async_context(server)
        order = sorted(wavs, key=lambda key: (VOICES.index(key[0]), key[1]))
        for voice, i in order:
            q = QUESTIONS[i]
            for llm, server in servers.items():
                start = time.monotonic()
                got = await _ask(server.base_url, wavs[(voice, i)])
                got.update(
                    llm=llm,
                    voice=voice,
                    kind=q.kind,
                    question=q.text,
                    expected_tool=q.tool,
                    tool_ok=tool_ok(q, got["calls"]),
                    answer_ok=answer_ok(q, got["reply"], got["calls"]),
                    seconds=round(time.monotonic() - start, 2),
                )
                print(
                    f"[{llm} {voice}] {q.text!r} heard {got['heard']!r} calls {got['calls']} "
                    f"-> {got['reply']!r} tool={'ok' if got['tool_ok'] else 'NO'} "
                    f"answer={'ok' if got['answer_ok'] else 'NO'}",
                    file=sys.stderr,
                    flush=True,
                )
                results[llm].append(got)
                if log is not None:
                    with log.open("a") as f:
                        f.write(json.dumps(got, default=str) + "\n")
    return results


def summarize(path: Path) -> dict[str, dict[str, Any]]:
    """Rates per model from a details file (also for a run cut short): turns, tool, answer."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out: dict[str, dict[str, Any]] = {}
    for llm in MODELS:
        mine = [r for r in lines if r["llm"] == llm]
        out[llm] = {
            "turns": len(mine),
            "tool": _rate(mine, "tool_ok"),
            "answer": _rate(mine, "answer_ok"),
            **{f"{k}:tool": _rate(mine, "tool_ok", k) for k in KINDS},
            **{f"{k}:answer": _rate(mine, "answer_ok", k) for k in KINDS},
        }
    return out


def _rate(results: list[dict[str, Any]], key: str, kind: str | None = None) -> float | None:
    chosen = [r for r in results if kind is None or r["kind"] == kind]
    return sum(bool(r[key]) for r in chosen) / len(chosen) if chosen else None


def run(quick: bool = False) -> list[Row]:
    voices = ("piper",) if quick else VOICES
    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        wavs = speak_all(Path(tmp), voices)
        details = Path(os.environ.get("BENCH_ANSWERS_JSON", "bench-answers.jsonl"))
        details.write_text("")
        by_model = asyncio.run(_run_all(wavs, details))
    ours, base = by_model[MODELS[0]], by_model[MODELS[-1]]
    n = len(ours)
    note = f"{n // len(voices)} questions x {len(voices)} voices ({', '.join(voices)}) = {n} turns"
    rows = [
        _row(
            "right tool (or rightly none), share of turns", ours, base, "tool_ok", TOOL_GOAL, note
        ),
        _row(
            "correct answer in the reply, share of turns",
            ours,
            base,
            "answer_ok",
            ANSWER_GOAL,
            note,
        ),
    ]
    for kind in KINDS:
        for key, label in (("tool_ok", "right tool"), ("answer_ok", "correct answer")):
            rows.append(
                row(
                    f"{kind}: {label}",
                    _rate(ours, key, kind),
                    _rate(base, key, kind),
                    note="ours: Qwen2.5-Coder-0.5B; baseline: SmolLM2-135M + keyword router",
                )
            )
    return rows


def _row(
    figure: str,
    ours: list[dict[str, Any]],
    base: list[dict[str, Any]],
    key: str,
    goal: float,
    note: str,
) -> Row:
    value, baseline = _rate(ours, key), _rate(base, key)
    return row(
        figure,
        value,
        baseline,
        ratio=(value / baseline) if value is not None and baseline else None,
        goal=f"≥ {goal:.0%}",
        met=value is not None and value >= goal,
        note=note + "; ours: Qwen2.5-Coder-0.5B, baseline: SmolLM2-135M + keyword router",
    )
