"""Split reply text into sentences, so a voice can speak before the whole reply is rendered.

The first audio chunk is only as early as the first sentence is short, so overlong sentences are
also cut at clause punctuation (commas, semicolons, colons, dashes) once they pass `max_chars`.
"""

from __future__ import annotations

import re

__all__ = ["split_sentences"]

# End of sentence: . ! ? … (optionally followed by closing quotes/brackets), then whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|\n+")
# A clause ends after , ; : or a spaced dash; the mark stays with its clause (nothing is lost).
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s[–—-])\s+")


def split_sentences(text: str, max_chars: int = 160) -> list[str]:
    """Sentences of `text`, stripped and non-empty; long ones cut at clause boundaries."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        if len(sentence) <= max_chars:
            out.append(sentence)
            continue
        piece = ""
        for clause in _CLAUSE_END.split(sentence):
            clause = clause.strip()
            if not clause:
                continue
            if piece and len(piece) + 1 + len(clause) > max_chars:
                out.append(piece)
                piece = clause
            else:
                piece = f"{piece} {clause}" if piece else clause
        if piece:
            out.append(piece)
    return out
