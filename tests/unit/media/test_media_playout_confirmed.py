"""AudioOutput with remote playout: positions come from what the far end confirmed."""

from __future__ import annotations

from realtalk.media.playout import AudioOutput


def _frames(output: AudioOutput, n: int) -> None:
    for _ in range(n):
        output.read_frame()


def test_flush_reports_the_confirmed_position_not_the_handed_out_one() -> None:
    finished: list[tuple[str, int, bool]] = []
    output = AudioOutput(8000, jitter_ms=0, realtime=False)
    output.on_item_finished = lambda *args: finished.append(args)
    output.confirm_playout()
    output.push("a", bytes(2 * 8000))  # 1 s
    _frames(output, 10)  # 200 ms handed out
    mark = output.playout_mark()
    _frames(output, 5)  # 100 ms more, not confirmed
    output.confirm_played(mark)
    assert output.unconfirmed_ms == 100
    assert output.played_ms("a") == 200
    flushed = output.flush()
    assert (flushed.item_id, flushed.played_ms) == ("a", 200)
    assert finished == [("a", 200, True)]


def test_marks_never_move_backwards_nor_past_what_was_handed_out() -> None:
    output = AudioOutput(8000, jitter_ms=0, realtime=False)
    output.confirm_playout()
    output.push("a", bytes(2 * 8000))
    _frames(output, 10)
    output.confirm_played(10**9)  # a made-up mark
    assert output.played_ms("a") == 200
    output.confirm_played(0)  # a stale one
    assert output.played_ms("a") == 200


def test_a_second_item_counts_from_its_own_start() -> None:
    output = AudioOutput(8000, jitter_ms=0, realtime=False)
    output.confirm_playout()
    output.push("a", bytes(2 * 800))  # 100 ms
    output.end_item("a")
    output.push("b", bytes(2 * 8000))
    _frames(output, 5)  # all of a
    _frames(output, 3)  # 60 ms of b
    output.confirm_played(output.playout_mark() - 8 * 20)
    assert output.discard("b") == 40


def test_without_confirmation_the_handed_out_position_counts() -> None:
    output = AudioOutput(8000, jitter_ms=0, realtime=False)
    output.push("a", bytes(2 * 8000))
    _frames(output, 10)
    assert output.flush().played_ms == 200
