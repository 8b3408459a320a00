"""How far to favour a call over speech (`QwenLLM.call_bias`): typed questions, decided by the
model's first token, scored per bias.

Questions of the five kinds of ``bench answers`` (arithmetic, unit conversions, time and date
that need the example assistant's tools; knowledge and chit-chat that need none), none of them
among its questions, written as Whisper writes what it hears (digits for most numbers). Each is
asked as the first turn of the example assistant's session, after its greeting, as the local
server would ask it. From the model's first token under the call grammar comes how far the
likeliest plain-text call start is from the token chosen (natural log; above 0 the model calls
by itself); every question within the largest bias tried has its call written, as the server
would write it, and a call it was only nudged into counts only if the server would make it
(`grounding.lean_arguments`: its arguments taken from the question, or none needed and the
question all about the tool). Each bias then scores the share of tool questions that call the
right tool and of the others that call none, and the share of all questions that lean in vain
(their call written, then dropped as not grounded, and the reply spoken after all: ~0.5-1 s more
on that turn). The bias chosen is the one with the best mean of the two shares among those that
make at most `VAIN_BUDGET` of the questions lean in vain, the largest on a tie (a spoken
question's lean moves by tenths of a nat from its typed one's, so a tool question near the edge
is kept at no more cost than the budget). The baseline is no bias.

``BENCH_CALL_BIAS_MODEL`` picks the model (``qwen-0.5b`` by default, ``qwen-1.5b``).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from bench.common import Row, better_ratio, row

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

BIASES = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
#: At most one question in ten may pay for a call it then drops.
VAIN_BUDGET = 0.1
C, U, T = "calculate", "convert_units", "get_time"
#: (question, the tool it needs or None).
QUESTIONS: list[tuple[str, str | None]] = [
    *((q, C) for q in (
        "What is 23 times 4?", "What's 81 divided by 9?", "What is 650 plus 212?",
        "Can you work out 700 minus 258?", "What is the square root of 81?",
        "What is 11 squared?", "What is 20% of 300?", "How much is 9 times 9?",
        "What is 2 to the power of 10?", "What is 14 times 15?", "Add 340 to 980.",
        "What is 5000 divided by 25?", "What's 13 cubed?", "What is half of 370?",
        "Multiply 64 by 12.", "What is 101 times 7?", "What's 7 plus 8?",
        "How much is 1200 minus 450?", "What's 45 times 3?", "How much is 99 plus 1?",
        "What is 360 divided by 12?", "What's 2 plus 2?", "What is 8% of 50?",
        "What is 7 squared?", "What's 1000 minus 1?", "Can you add 15 and 27?",
    )),
    *((q, U) for q in (
        "How many miles is 20 kilometers?", "What is 30 degrees Celsius in Fahrenheit?",
        "How many grams are in 3 pounds?", "Convert 5 gallons to liters.",
        "How many centimeters are in 6 inches?",
        "What is 100 kilometers per hour in miles per hour?",
        "How many ounces are in 2 kilograms?", "How tall is 6 feet in meters?",
        "What's 72 Fahrenheit in Celsius?", "How many cups are in a liter?",
        "How many yards are in a mile?", "Convert 12 knots to kilometers per hour.",
        "How heavy is 150 pounds in kilograms?", "What is a marathon, 26 miles, in kilometers?",
        "How many feet is 100 meters?", "What's 5 miles in kilometers?",
        "How many liters is 2 gallons?", "What is 0 degrees Celsius in Fahrenheit?",
        "How many pounds are 3 kilograms?",
    )),
    *((q, T) for q in (
        "What's the time right now?", "What year is it?", "Is it Monday today?",
        "What is today's date?", "What time is it in London?",
        "Tell me the current time in New York.", "Which day is it today?", "What month is it?",
        "Do you know what day it is?", "What's the time in Sydney?", "What's today?",
        "Is it morning or evening where you are?", "What time is it now?", "What's the date?",
        "Is it the weekend yet?", "What day is tomorrow?", "What time is it in Paris?",
    )),
    *((q, None) for q in (
        "Who painted the Mona Lisa?", "What is the capital of Japan?",
        "How many legs does a spider have?", "What is the tallest mountain in the world?",
        "Who was the first person to walk on the moon?", "What gas do plants take in?",
        "What is the smallest planet in the solar system?",
        "What language do people speak in Mexico?", "How many continents are there?",
        "Who invented the telephone?", "What is the largest animal on Earth?",
        "In which country are the pyramids of Giza?", "How many hours are in a day?",
        "What is the boiling point of water?", "How many days are in a year?",
        "What is the capital of Italy?", "How many minutes are in an hour?",
        "What is water made of?", "Who wrote Harry Potter?",
        "How many sides does a triangle have?", "What's the biggest country in the world?",
        "When did World War Two end?", "What is the speed of light?",
        "How many planets are in the solar system?",
    )),
    *((q, None) for q in (
        "Hi there!", "How's it going?", "Tell me something funny.", "Thanks, that's all.",
        "What can you do?", "Goodbye!", "Can you sing me a song?",
        "I'm feeling a bit tired today.", "What's your favorite color?", "Nice to meet you.",
        "Do you like music?", "Tell me a fun fact.", "Good night!", "You're very helpful.",
        "Good evening!", "How are you doing today?", "What's up?", "Have a nice day!",
        "Can I ask you a question?", "That's great, thanks.", "I'm back.", "Are you a robot?",
        "Sorry, I didn't catch that.", "Okay, cool.",
    )),
]  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """What the model did with one question: how far its call start was from its first token,
    the tool it calls when it calls (None: no usable call), and whether the server would make
    that call where only the lean chose it."""

    question: str
    expected: str | None
    margin: float
    tool: str | None
    grounded: bool

    def called(self, bias: float) -> str | None:
        if self.margin > 0:
            return self.tool
        if self.margin + bias > 0 and self.grounded:
            return self.tool
        return None

    def in_vain(self, bias: float) -> bool:
        """Whether `bias` makes the call be written only to be dropped."""
        return self.margin <= 0 < self.margin + bias and not self.grounded


def score(choices: list[Choice], bias: float) -> tuple[float, float]:
    """The share of tool questions that call the right tool, and of the others that call none."""
    tool = [c.called(bias) == c.expected for c in choices if c.expected]
    none = [c.called(bias) is None for c in choices if not c.expected]
    return sum(tool) / len(tool), sum(none) / len(none)


def vain_share(choices: list[Choice], bias: float) -> float:
    """The share of the questions that lean in vain at `bias`."""
    return sum(c.in_vain(bias) for c in choices) / len(choices)


def best_bias(choices: list[Choice]) -> float:
    """The bias with the best mean of the two shares within `VAIN_BUDGET` (the largest on a
    tie)."""
    affordable = [b for b in BIASES if vain_share(choices, b) <= VAIN_BUDGET]
    return max(affordable, key=lambda b: (round(sum(score(choices, b)) / 2, 9), b))


async def _choices(model: str) -> list[Choice]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from examples.assistant import GREETING, INSTRUCTIONS, Assistant
    from realtalk.server.engines.base import ChatMessage
    from realtalk.server.engines.grounding import lean_arguments
    from realtalk.server.engines.qwen import QwenLLM
    from realtalk.server.engines.runtime import Completion
    from realtalk.server.engines.toolcalls import (
        call_grammar,
        call_lag,
        function_tools,
        parse_reply,
        starts_call,
    )

    tools = function_tools([t.to_openai() for t in Assistant().tools])
    llm = QwenLLM(model=model)
    await llm.prefill(INSTRUCTIONS, tools)
    start = [ChatMessage("system", INSTRUCTIONS), ChatMessage("assistant", GREETING)]
    choices = []
    for question, expected in QUESTIONS:
        messages = [*start, ChatMessage("user", question)]
        prompt = llm._fit(messages, tools, 160)
        first = Completion()
        with llm.runtime.lock:
            for _ in llm.runtime.complete(
                prompt, max_tokens=1, grammar=call_grammar(tools), usage=first, likeliest=20
            ):
                pass
        assert first.first is not None
        chosen = first.first
        if starts_call(chosen.text):
            margin = 1.0  # the model's own choice (its value does not matter, only its sign)
        else:
            margin = -min(call_lag(chosen.logprob, chosen.likeliest), 99.0)
        tool, grounded = None, False
        if margin + max(BIASES) > 0:
            with llm.runtime.lock:  # as the server writes a call (private: this is a probe)
                text, _ = llm._write_call(prompt, tools, Completion(), threading.Event())
            call = parse_reply(text, tools).call
            if call is not None:
                listed = next(t for t in tools if t["name"] == call.name)
                tool = call.name
                grounded = lean_arguments(call.arguments, listed, question) is not None
        choices.append(Choice(question, expected, margin, tool, grounded))
        print(f"  call_bias: {margin:+6.2f} {tool!s:14s} {question}", file=sys.stderr, flush=True)
    return choices


def run(quick: bool = False) -> list[Row]:
    model = os.environ.get("BENCH_CALL_BIAS_MODEL", "qwen-0.5b")
    choices = asyncio.run(_choices(model))
    chosen = best_bias(choices)
    tool0, none0 = score(choices, 0.0)
    tool, none = score(choices, chosen)
    grid = ", ".join(
        f"{b:g}: {score(choices, b)[0]:.2f}/{score(choices, b)[1]:.2f}/{vain_share(choices, b):.2f}"
        for b in BIASES
    )
    tools_n = sum(1 for c in choices if c.expected)
    return [
        row(
            f"call bias for {model} (natural log)",
            chosen,
            0.0,
            note=f"{len(choices)} typed questions ({tools_n} need a tool); "
            f"right tool / rightly none / leaning in vain by bias: {grid}",
        ),
        row(
            "typed questions decided rightly, mean of tool and no-tool shares",
            round((tool + none) / 2, 3),
            round((tool0 + none0) / 2, 3),
            ratio=better_ratio((tool + none) / 2, (tool0 + none0) / 2, lower_is_better=False),
            note=f"at the chosen bias: right tool {tool:.2f}, rightly none {none:.2f}; "
            f"no bias: {tool0:.2f}, {none0:.2f}",
        ),
    ]
