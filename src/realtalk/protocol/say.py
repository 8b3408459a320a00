"""``say(text)`` over the Realtime protocol: one wording, built by the client, read by the server.

OpenAI has no "speak this text" event. The client asks for a response whose instructions tell
the model to repeat the text word for word (with ``input: []``, so nothing else distracts it). A
model follows that closely; the local server does better: it recognises the wording and speaks
the text itself, exactly, without asking its LLM. Both sides use this module, so the wording
cannot drift apart.
"""

from __future__ import annotations

__all__ = ["SAY_PREFIX", "parse_say_instructions", "say_instructions"]

#: The instructions of a say response are this prefix followed by the text, verbatim.
SAY_PREFIX = "Say exactly the following text, word for word, and nothing else: "


def say_instructions(text: str) -> str:
    """The ``response.instructions`` that make the model say ``text`` and nothing else."""
    if not isinstance(text, str):
        raise TypeError(f"say text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("say() needs some text")
    return SAY_PREFIX + text


def parse_say_instructions(instructions: object) -> str | None:
    """The text a say response must speak, or None if ``instructions`` are not a say."""
    if not isinstance(instructions, str) or not instructions.startswith(SAY_PREFIX):
        return None
    text = instructions[len(SAY_PREFIX) :]
    return text if text.strip() else None
