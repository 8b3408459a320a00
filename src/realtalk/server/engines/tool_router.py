"""Decide whether a request calls one of the tools, by the words it shares with their descriptions.

SmolLM2-135M writes fine JSON arguments under a grammar but cannot choose a tool: asked to pick
among get_weather, set_timer and "reply" under a JSON grammar it chose the first listed option for
8 of 9 test requests, and asked yes/no per tool it said "no" to everything or "yes" to everything.
So the choice is made here, deterministically: a request calls the tool whose name (weight 3) and
description and parameter names (weight 1) share the most word stems with it, if the score reaches
`threshold`. A handful of related words (rain → weather) covers what voice assistants are asked
most. It is a heuristic for a toy model; a real LLM behind `--llm-url` decides for itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = ["pick_tool", "stems", "tool_score"]

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "get",
        "give",
        "go",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "now",
        "of",
        "on",
        "or",
        "please",
        "set",
        "show",
        "so",
        "some",
        "tell",
        "that",
        "the",
        "then",
        "this",
        "to",
        "up",
        "us",
        "was",
        "we",
        "what",
        "whats",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)
# Everyday words for a few common tool domains: stem -> stems it also stands for.
_RELATED: dict[str, tuple[str, ...]] = {
    "rain": ("weather", "forecast"),
    "sunny": ("weather", "forecast"),
    "snow": ("weather", "forecast"),
    "wind": ("weather",),
    "temperature": ("weather",),
    "hot": ("weather", "temperature"),
    "cold": ("weather", "temperature"),
    "forecast": ("weather",),
    "remind": ("reminder", "timer", "alarm"),
    "alarm": ("timer",),
    "clock": ("time",),
    "song": ("music", "play"),
    "music": ("song", "play"),
    # Spoken arithmetic ("seventeen times three": "times" stems to "tim", never "time").
    "tim": ("calculate", "arithmetic"),
    "plu": ("calculate", "arithmetic"),  # plus
    "minu": ("calculate", "arithmetic"),  # minus
    "multiply": ("calculate", "arithmetic"),
    "multipli": ("calculate", "arithmetic"),
    "divid": ("calculate", "arithmetic"),
    "sum": ("calculate", "arithmetic"),
}


def stems(text: str) -> set[str]:
    """Lower-case word stems of `text` without stop words ("It's raining" -> {"rain"})."""
    out = set()
    for word in _WORD.findall(text.lower().replace("_", " ").replace("'", "")):
        if word in _STOPWORDS or len(word) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        out.add(word)
        out.update(_RELATED.get(word, ()))
    return out


def _parameter_words(schema: Any) -> Iterable[str]:
    if isinstance(schema, dict):
        for name, sub in (schema.get("properties") or {}).items():
            yield str(name)
            if isinstance(sub, dict) and sub.get("description"):
                yield str(sub["description"])
            yield from _parameter_words(sub)


def tool_score(request: str, tool: dict[str, Any]) -> int:
    """How strongly `request` asks for `tool` (0: not at all)."""
    said = stems(request)
    name = stems(str(tool.get("name", "")))
    described = stems(str(tool.get("description", "")))
    described |= stems(" ".join(_parameter_words(tool.get("parameters"))))
    return 3 * len(said & name) + len(said & (described - name))


def pick_tool(
    request: str,
    tools: list[dict[str, Any]],
    tool_choice: str | dict[str, Any] = "auto",
    threshold: int = 2,
) -> dict[str, Any] | None:
    """The tool `request` should call, or None for a spoken reply; honours `tool_choice`."""
    functions = [t for t in tools if t.get("type", "function") == "function" and t.get("name")]
    if tool_choice == "none" or not functions:
        return None
    if isinstance(tool_choice, dict):
        named = next((t for t in functions if t["name"] == tool_choice.get("name")), None)
        if named is None:
            raise ValueError(f"tool_choice names {tool_choice.get('name')!r}, which is not a tool")
        return named
    scored = [(tool_score(request, t), -i, t) for i, t in enumerate(functions)]
    best_score, _, best = max(scored, key=lambda s: (s[0], s[1]))
    if tool_choice == "required" or best_score >= threshold:
        return best
    return None
