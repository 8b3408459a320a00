"""Whether a tool call takes its arguments from what the user said.

A call the local model was only nudged into (`toolcalls.leans_to_call`) must take all of them
from the user's words, and have one at least: on questions that need no tool such calls made
their arguments up ("I'm feeling a bit tired today." -> `calculate("10 - 5")`, "How many hours
are in a day?" -> 1 mile in kilometers, "Good morning." -> `get_time("America/New_York")`), or
had none to show ("What is the capital of France?" -> `get_time()`, told to "Use get_time.").
A call the model chose by itself may rightly use what the user did not say ("twelve squared" ->
"12 ** 2"), but not in an optional argument: those it filled in unasked are left out, so the
tool's default applies ("What time is it?" -> `get_time("UTC")`, for a user anywhere; "leave it
out for the user's own time", its description says).

Each argument that holds numbers or words must hold one the user said: a number (in digits, as
Whisper writes most, or as a number word up to "thousand"; "a" and "an" count as one), or a
word, matched on its first four letters ("mile" and "miles", "liter" and "liters"). An
argument with neither (`true`, `{}`) is not counted either way.

Some questions give a tool nothing to take: "Which month are we in?" leans towards `get_time`
with a made-up time zone, and "Good morning." the same way. What tells them apart is what the
user's words are about: every content word of the first is one `get_time`'s name or description
uses ("month"), while "good" and "morning" are not. So a call only the lean made that shows no
argument stands when the user's words are all about that tool (`lean_arguments`), and an
optional argument the user never said is left out only when their words hold nothing beyond
the tool's purpose it could come from: "What time is it?" -> `get_time()`, but "What time is it
in France?" keeps "Europe/Paris".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = [
    "is_about",
    "lean_arguments",
    "leave_out_unsaid",
    "made_up_so_far",
    "takes_arguments_from",
]

_BETWEEN = re.compile(r"[\s,]*")
_COLON = re.compile(r"\s*:\s*")
_TERMS = re.compile(r"\d[\d,]*(?:\.\d+)?|[a-z]{3,}")
_NUMBER_WORDS = {
    word: float(n)
    for n, word in enumerate([
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen", "twenty",
    ])
} | {
    "thirty": 30.0, "forty": 40.0, "fifty": 50.0, "sixty": 60.0, "seventy": 70.0,
    "eighty": 80.0, "ninety": 90.0, "hundred": 100.0, "thousand": 1000.0, "a": 1.0, "an": 1.0,
}  # fmt: skip
#: Words that carry no content a tool or its arguments could be about.
_FUNCTION_WORDS = frozenset({
    "about", "and", "any", "are", "but", "can", "could", "did", "does", "for", "from", "had",
    "has", "have", "her", "his", "how", "its", "just", "let", "may", "might", "must", "not",
    "now", "our", "out", "own", "please", "right", "she", "shall", "should", "tell", "than",
    "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "was",
    "were", "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with",
    "would", "yet", "you", "your", "yes", "okay",
})  # fmt: skip
_WORDS = re.compile(r"[a-z]{3,}")


def takes_arguments_from(arguments: str, words: str) -> bool:
    """Whether a call's `arguments` (JSON) hold a number or a word, and each argument that
    holds any holds one the user said in `words`; see the module docstring."""
    try:
        values = json.loads(arguments)
    except json.JSONDecodeError:
        return False
    shown = any(_terms(leaf) for leaf in _leaves(values))
    return shown and _holds_said(values, _said(words))


def made_up_so_far(partial: str, words: str) -> bool:
    """Whether a call still being written (`partial`: its text so far, in Qwen's layout)
    already holds a whole argument with no number or word the user said in `words`: a call
    that must pass `takes_arguments_from` need not be written on (each token ~40 ms on 2 cores;
    "What color is the sky?" -> `convert_units` gives itself away at `"value": 10,`)."""
    start = partial.find('"arguments"')
    pos = partial.find("{", start) + 1 if start >= 0 else 0
    if pos <= 0:
        return False
    said = _said(words)
    decoder = json.JSONDecoder()
    while True:
        try:
            _, pos = decoder.raw_decode(partial, _after(_BETWEEN, partial, pos))  # its name
            value, pos = decoder.raw_decode(partial, _after(_COLON, partial, pos))
        except ValueError:
            return False  # not written that far yet
        if pos >= len(partial):
            return False  # a number may go on ("10" of "100")
        if not _holds_said(value, said):
            return True


def _after(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where `pattern`, matched at `pos` of `text`, ends (ValueError if it does not match)."""
    found = pattern.match(text, pos)
    if found is None:
        raise ValueError(pattern.pattern)
    return found.end()


def is_about(words: str, tool: Mapping[str, Any]) -> bool:
    """Whether `words` hold a content word, and only ones the `tool`'s name or description
    uses (on their first four letters: "week" and "weekday")."""
    content = _content(words)
    return bool(content) and not content - _content(_purpose(tool))


def lean_arguments(arguments: str | None, tool: Mapping[str, Any], words: str) -> str | None:
    """The arguments a call of `tool` that only the lean made may be made with, the user's last
    turn being `words`: its own (`arguments`, None where it was cut off) if it takes them from
    those words; none ("{}") if the tool requires none and the words are about it; else None,
    and the reply is spoken instead."""
    if arguments is not None and takes_arguments_from(arguments, words):
        return arguments
    return "{}" if not _required(tool) and is_about(words, tool) else None


def leave_out_unsaid(arguments: str, tool: Mapping[str, Any], said: str, asked: str) -> str:
    """`arguments` (a call's JSON object) without the optional ones (not `required` by the
    `tool`'s parameters) that hold a number or a word the user never `said` (all their turns),
    where their last turn (`asked`) is all about the tool: nothing in it they could come from."""
    try:
        values = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments
    if not isinstance(values, dict) or not is_about(asked, tool):
        return arguments
    required = _required(tool)
    said_terms = _said(said)
    kept = {k: v for k, v in values.items() if k in required or _holds_said(v, said_terms)}
    return arguments if len(kept) == len(values) else json.dumps(kept, ensure_ascii=False)


def _said(words: str) -> set[float | str]:
    """The numbers and words of what the user said, number words as numbers too."""
    return _terms(words) | {
        _NUMBER_WORDS[w] for w in re.findall(r"[a-z]+", words.lower()) if w in _NUMBER_WORDS
    }


def _required(tool: Mapping[str, Any]) -> set[str]:
    """The names of the arguments a tool requires."""
    return set((tool.get("parameters") or {}).get("required") or ())


def _content(words: str) -> set[str]:
    """The content words of `words` (their first four letters)."""
    return {w[:4] for w in _WORDS.findall(words.lower()) if w not in _FUNCTION_WORDS}


def _purpose(tool: Mapping[str, Any]) -> str:
    """What a tool is for, in words: its name and description."""
    return f"{str(tool.get('name', '')).replace('_', ' ')} {tool.get('description') or ''}"


def _holds_said(value: Any, said: set[float | str]) -> bool:
    """Whether each number or string in `value` that holds terms holds one of `said`."""
    return all(not terms or terms & said for terms in map(_terms, _leaves(value)))


def _terms(text: str) -> set[float | str]:
    """The numbers and the words (their first four letters) of `text`."""
    found: set[float | str] = set()
    for term in _TERMS.findall(text.lower()):
        if term[0].isdigit():
            found.add(float(term.replace(",", "")))
        else:
            found.add(term[:4])
    return found


def _leaves(value: Any) -> Iterator[str]:
    """The numbers and strings of a JSON value, as text (booleans and nulls left out)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield repr(value)
