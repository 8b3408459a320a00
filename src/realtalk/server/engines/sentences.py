"""Split reply text into sentences, so a voice can speak before the whole reply is rendered.

The first audio chunk is only as early as the first sentence is short, so overlong sentences are
also cut at clause punctuation (commas, semicolons, colons, dashes) once they pass `max_chars`.
"""

from __future__ import annotations

import re

__all__ = [
    "FIRST_CLAUSE_MIN_WORDS",
    "FIRST_PIECE_MAX_WORDS",
    "PieceCutter",
    "complete_sentences_end",
    "ends_sentence",
    "first_piece_end",
    "first_piece_ready",
    "repeats_itself",
    "split_sentences",
]

# End of sentence: . ! ? … (optionally followed by closing quotes/brackets), then whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)\]])\s+|\n+")
# A clause ends after , ; : or a spaced dash; the mark stays with its clause (nothing is lost).
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+|(?<=\s[–—-])\s+")

# Before anything is voiced, a first clause of this many words is spoken without waiting for the
# rest of its sentence: the first audio is only as early as the first piece of text is short.
FIRST_CLAUSE_MIN_WORDS = 3
#: ...and with no clause mark, the first this many words are spoken on their own: each word is a
#: token or two of the LLM (~35 ms each on 2 cores) and ~20 ms of Piper before the first audio.
FIRST_PIECE_MAX_WORDS = 4
_FIRST_CLAUSE_END = re.compile(r"[,;:]\s")
# A sentence's end mark, with any closing quotes or brackets after it.
_END_MARK = r"[.!?…][\"'”’)\]]*"
# A complete sentence in streamed text: its end mark, then whitespace (more may follow).
_STREAMED_SENTENCE_END = re.compile(_END_MARK + r"\s")
_LAST_STREAMED_SENTENCE_END = re.compile(r".*" + _END_MARK + r"\s", re.S)
_ENDS_SENTENCE = re.compile(_END_MARK + r"\s*$")
_WORD_END = re.compile(r"\S\s+")


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


def first_piece_end(text: str) -> int | None:
    """Where the first piece of a reply ends in its streamed ``text``: after a first clause of
    ``FIRST_CLAUSE_MIN_WORDS`` or more words (its mark and the space that follows), or after
    ``FIRST_PIECE_MAX_WORDS`` words if no such clause ends before them; None while ``text``
    holds neither yet (a word counts once the space after it has arrived)."""
    for mark in _FIRST_CLAUSE_END.finditer(text):
        words = len(text[: mark.start()].split())
        if words > FIRST_PIECE_MAX_WORDS:
            break
        if words >= FIRST_CLAUSE_MIN_WORDS:
            return mark.end()
    for count, word in enumerate(_WORD_END.finditer(text), start=1):
        if count == FIRST_PIECE_MAX_WORDS:
            return word.end()
    return None


def first_piece_ready(text: str) -> bool:
    """Whether streamed ``text`` holds the first piece a voice would speak: a sentence, or the
    first clause or words of :func:`first_piece_end`."""
    return _STREAMED_SENTENCE_END.search(text) is not None or first_piece_end(text) is not None


def complete_sentences_end(text: str) -> int | None:
    """Where the complete sentences of streamed ``text`` end (after the last end mark and the
    whitespace that follows it: a mark with nothing after it may still grow, "3." into
    "3.5"); None while it holds no complete sentence."""
    match = _LAST_STREAMED_SENTENCE_END.match(text)
    return match.end() if match is not None else None


def ends_sentence(text: str) -> bool:
    """Whether ``text`` ends with a sentence's end mark (a whole text, not a stream)."""
    return _ENDS_SENTENCE.search(text) is not None


#: A run of the same words this many times over ends a reply: "no, no, no" is speech, four
#: times is a loop; a phrase of two words or more said three times in a row is one too.
_LOOP_TIMES_WORD, _LOOP_TIMES_PHRASE = 4, 3
_LOOP_MAX_PHRASE_WORDS = 12
_PUNCTUATION = ".,;:!?…\"'“”‘’()[]-–—"


def repeats_itself(
    text: str, *, word_times: int = _LOOP_TIMES_WORD, phrase_times: int = _LOOP_TIMES_PHRASE
) -> bool:
    """Whether ``text`` ends by going round in circles: its last word said `word_times` (four)
    times in a row, or its last phrase (up to 12 words) `phrase_times` (three). A small model
    decoding greedily can fall into such a loop ("... Guangzhou, Shanghai, Shanghai, Shanghai,
    ...") and would fill its whole token budget with it; punctuation and case are ignored."""
    words = [w.strip(_PUNCTUATION).lower() for w in text[-1000:].split()]
    for size in range(1, _LOOP_MAX_PHRASE_WORDS + 1):
        times = word_times if size == 1 else phrase_times
        if len(words) < size * times:
            return False
        phrase = words[-size:]
        if all(words[-(k + 1) * size : len(words) - k * size] == phrase for k in range(1, times)):
            return True
    return False


class PieceCutter:
    """Streamed reply text cut into the pieces a voice speaks, as it arrives: complete sentences,
    and before any piece a short first one (:func:`first_piece_end`).

    Where the pieces fall depends on how the text arrived (after "Sure! " the first piece is
    "Sure!", whatever follows), so whoever needs to know a reply's pieces ahead of its voice
    (a reply guessed in the user's pause, voiced early) feeds the same deltas to a cutter of
    its own and gets the same pieces.
    """

    def __init__(self) -> None:
        self.pending = ""  # text not cut into pieces yet
        self.cut = 0  # pieces so far

    def add(self, text: str) -> list[str]:
        """The pieces ``text`` completes (often none)."""
        self.pending += text
        end = complete_sentences_end(self.pending)
        if end is None and self.cut == 0:
            end = first_piece_end(self.pending)  # first audio as early as possible
        if end is None:
            return []
        complete, self.pending = self.pending[:end], self.pending[end:]
        return self._pieces(complete)

    def finish(self) -> list[str]:
        """The pieces of what is left: the text is complete."""
        rest, self.pending = self.pending, ""
        return self._pieces(rest)

    def _pieces(self, text: str) -> list[str]:
        pieces = split_sentences(text)
        self.cut += len(pieces)
        return pieces
