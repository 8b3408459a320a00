"""Voice to voice when the answer needs a tool: the example assistant on the local server.

One server (``--engine local``: Silero, Whisper tiny.en, Qwen, Piper; the client asks for
``semantic_vad`` as in ``bench v2v``) and the instructions and tools of ``examples/assistant.py``
(the client runs the tools). Timed as ``bench v2v`` times a turn: end of the speech in the
audio → first frame of the reply handed to the speaker. For a tool question that reply comes
after the model's call, the tool and the model's reading of its result.

- **One question per call**: each question is the first turn of a call of its own (the
  server's prompt cache holds the instructions and tools from the call before). The questions
  that need no tool, asked the same way in the same run, are the baseline: the ratio is what a
  tool adds to a turn.
- **In a conversation**: the same questions in one call, tool questions and questions that
  need none in turn, as a user would talk; the figures are how many tool questions called a tool
  and how many of the others did (each of those but the first follows a tool turn).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.bench_v2v import (
    OURS_TURNS,
    QUESTIONS,
    WARM_UP,
    Direct,
    Turn,
    _clips,
    _end_to_end,
    _totals,
)
from bench.common import Row, better_ratio, row
from bench.serve import ServerProcess

#: Each needs one call of the example's tools (calculate, convert_units, get_time).
TOOL_QUESTIONS = [
    "What is seventeen times three?",
    "How many kilometers are in ten miles?",
    "What time is it?",
    "What is one hundred twenty five divided by five?",
    "Convert thirty degrees celsius to fahrenheit.",
    "What is the square root of eighty one?",
]


#: Questions that need no tool: bench v2v's, but for "What is two plus two?" (which the assistant
#: may rightly calculate).
NO_TOOL_QUESTIONS = [q for q in QUESTIONS if q != "What is two plus two?"]


def _say(line: str) -> None:
    print(f"  tools: {line}", file=sys.stderr, flush=True)


def _p50(turns: list[Turn]) -> float:
    totals = _totals(turns)
    return statistics.median(totals) if totals else float("nan")


async def _one_per_call(base_url: str, clips: list[Any], agent: type) -> list[Turn]:
    turns: list[Turn] = []
    for clip in clips:
        turns += await _end_to_end(
            base_url, [clip], None, Direct(), OURS_TURNS, agent=agent(), warm_up=False
        )
    return turns


def run(quick: bool = False) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.assistant import Assistant

    n = 2 if quick else len(TOOL_QUESTIONS)
    tools, plain = TOOL_QUESTIONS[:n], NO_TOOL_QUESTIONS[:n]
    _say("synthesising the questions with Piper")
    clips = _clips([WARM_UP, *tools, *plain])
    talk = [WARM_UP]
    for tool_question, plain_question in zip(tools, plain, strict=True):
        talk += [plain_question, tool_question]
    conversation = _clips(talk)
    load = os.getloadavg()
    with ServerProcess("local", voice="piper", start_timeout_s=300) as server:
        url = server.base_url
        alone = asyncio.run(_one_per_call(url, clips, Assistant))[1:]  # the first warms up
        talked = asyncio.run(
            _end_to_end(url, conversation, None, Direct(), OURS_TURNS, agent=Assistant())
        )
    tool_turns, plain_turns = alone[:n], alone[n:]
    called = [t for t in tool_turns if t.calls]
    in_talk = talked[1::2]  # each tool question followed a plain one
    called_in_talk = sum(1 for t in in_talk if t.calls)
    plain_in_talk = talked[0::2]
    wrongly_in_talk = sum(1 for t in plain_in_talk if t.calls)
    wrongly_alone = sum(1 for t in plain_turns if t.calls)
    tool_p50, plain_p50 = _p50(called), _p50(plain_turns)
    load_note = f"load average {load[0]:.1f} at start (2 cores)"
    return [
        row(
            f"voice-to-voice when a tool answers (one question per call): p50 over "
            f"{len(called)} turns, ms",
            tool_p50,
            plain_p50,
            ratio=better_ratio(tool_p50, plain_p50, lower_is_better=True),
            goal="report",
            note=(
                f"baseline: questions that need no tool, asked the same way in the same run; "
                f"{len(called)} of {n} tool questions called a tool "
                f"({', '.join(sorted({c for t in called for c in t.calls}))}); {load_note}"
            ),
        ),
        row(
            "tool questions asked in a conversation (after an answer in words) that called a tool",
            called_in_talk / len(in_talk) if in_talk else float("nan"),
            len(called) / n,
            goal="report",
            note=(
                f"{called_in_talk} of {len(in_talk)}; baseline: the same questions, each the "
                f"first of its call ({len(called)} of {n})"
            ),
        ),
        row(
            f"voice-to-voice, questions that need no tool in that conversation: p50 over "
            f"{len(plain_in_talk)} turns, ms",
            _p50(plain_in_talk),
            plain_p50,
            ratio=better_ratio(_p50(plain_in_talk), plain_p50, lower_is_better=True),
            goal="report",
            note=(
                "baseline: the same questions, each the first of its call; in a conversation "
                "the local model first decides on the last turn alone whether to call a tool"
            ),
        ),
        row(
            "questions that need no tool asked in that conversation that called one",
            wrongly_in_talk / len(plain_in_talk) if plain_in_talk else float("nan"),
            wrongly_alone / len(plain_turns) if plain_turns else float("nan"),
            goal="report",
            note=(
                f"{wrongly_in_talk} of {len(plain_in_talk)}"
                + "".join(
                    f"; {t.transcript!r}: {', '.join(t.calls)}" for t in plain_in_talk if t.calls
                )
                + f"; baseline: the same questions, each the first of its call "
                f"({wrongly_alone} of {len(plain_turns)})"
            ),
        ),
    ]
