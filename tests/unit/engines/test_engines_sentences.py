"""Sentence splitting for text-to-speech."""

from __future__ import annotations

from realtalk.server.engines.sentences import (
    PieceCutter,
    complete_sentences_end,
    ends_sentence,
    first_piece_end,
    first_piece_ready,
    repeats_itself,
    split_sentences,
)


def test_splits_at_sentence_ends_and_keeps_punctuation_and_quotes() -> None:
    text = 'It is sunny. He said "hi." Really?! Yes…\nNew line'
    assert split_sentences(text) == [
        "It is sunny.",
        'He said "hi."',
        "Really?!",
        "Yes…",
        "New line",
    ]


def test_decimal_numbers_and_blank_text_are_not_split() -> None:
    assert split_sentences("It costs 3.50 dollars.") == ["It costs 3.50 dollars."]
    assert split_sentences("   \n ") == []


def test_long_sentences_are_cut_at_clauses_without_losing_words() -> None:
    text = "one two three, four five six; seven eight nine: ten eleven twelve, thirteen"
    pieces = split_sentences(text, max_chars=30)
    assert all(len(p) <= 30 for p in pieces)
    assert len(pieces) > 1
    assert " ".join(pieces).replace(",", "").replace(";", "").replace(":", "").split() == (
        text.replace(",", "").replace(";", "").replace(":", "").split()
    )


def test_rejoining_the_pieces_gives_back_single_spaced_text_dashes_included() -> None:
    text = "First part of a long sentence - then a second part, and a third; more — and the end."
    pieces = split_sentences(text, max_chars=30)
    assert len(pieces) > 1
    assert " ".join(pieces) == text


def test_the_first_piece_is_a_first_clause_or_four_words() -> None:
    assert first_piece_end("Sure, I can") is None  # a clause of one word is too short
    text = "Well, of course, I can help you"
    assert text[: first_piece_end(text)] == "Well, of course, "  # three words and its mark
    text = "The capital of France is"
    assert text[: first_piece_end(text)] == "The capital of France "
    assert first_piece_end("The capital of France") is None  # "France" may go on: "Frances"


def test_a_first_piece_is_ready_at_a_sentence_or_a_first_piece() -> None:
    assert first_piece_ready("Sure! Here")
    assert not first_piece_ready("Sure!")  # "!" may be followed by more marks or a quote
    assert first_piece_ready("The capital of France is")
    assert not first_piece_ready("The capital of")


def test_complete_sentences_end_after_the_whitespace_of_the_last_end_mark() -> None:
    text = 'It is 3. He said "hi." More'
    assert text[: complete_sentences_end(text)] == 'It is 3. He said "hi." '
    assert complete_sentences_end("It is 3.") is None  # "3." may become "3.5"
    assert ends_sentence('He said "hi."') and not ends_sentence("The capital of France")


def _cut(deltas: list[str]) -> list[str]:
    cutter = PieceCutter()
    pieces = [piece for delta in deltas for piece in cutter.add(delta)]
    return pieces + cutter.finish()


def test_the_cutter_speaks_a_short_first_piece_then_sentences() -> None:
    deltas = ["The", " capital", " of", " France", " is", " Paris", ".", " It", " is", " big", "."]
    assert _cut(deltas) == ["The capital of France", "is Paris.", "It is big."]


def test_where_the_first_piece_falls_depends_on_how_the_text_arrived() -> None:
    words = ["Cats", " purr", " when", " they", " are", " happy", ".", " Dogs", " wag", "."]
    assert _cut(words) == ["Cats purr when they", "are happy.", "Dogs wag."]
    assert _cut(["Cats purr when they are happy. Dogs", " wag."]) == [
        "Cats purr when they are happy.",
        "Dogs wag.",
    ]


def test_the_cutter_hands_out_each_piece_once_and_what_is_left_at_the_end() -> None:
    cutter = PieceCutter()
    assert cutter.add("Yes") == []
    assert cutter.add(", I can hear") == []
    assert cutter.add(" you") == ["Yes, I can hear"]
    assert cutter.add(" well") == []  # after the first piece, only whole sentences
    assert cutter.finish() == ["you well"]
    assert cutter.finish() == []


def test_a_reply_going_round_in_circles_is_told_from_speech_that_repeats_a_little() -> None:
    assert repeats_itself("It includes Shanghai, Guangzhou, Shanghai, Shanghai, Shanghai, Shanghai")
    assert repeats_itself("I am sorry. I am sorry. I AM SORRY!")
    assert not repeats_itself("No, no, no. That is not it.")
    assert not repeats_itself("No, no, no")  # a word three times is still speech
    assert not repeats_itself("Shanghai, Guangzhou, Shanghai, Shanghai, Shanghai,")
    # a caller may be more patient: a call's expression may rightly repeat a term
    assert repeats_itself("2 * 2 * 2 * 2")
    assert not repeats_itself("2 * 2 * 2 * 2", word_times=8, phrase_times=6)
    assert repeats_itself("7 * " * 6, word_times=8, phrase_times=6)
    assert not repeats_itself("That is 1,000,000,000,000, a trillion.")
    assert not repeats_itself("It is three. It is four. It is five.")
    assert not repeats_itself("")
