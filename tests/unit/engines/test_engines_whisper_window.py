"""The encoder window Whisper gets for an utterance (pure arithmetic; the model is not loaded)."""

from __future__ import annotations

from realtalk.server.engines.whisper import MIN_WINDOW_FRAMES, window_frames


def test_short_utterances_get_the_minimum_window() -> None:
    assert window_frames(0) == MIN_WINDOW_FRAMES
    assert window_frames(300) == MIN_WINDOW_FRAMES  # 3 s of speech: 10 s of window


def test_longer_ones_get_half_second_steps_with_room_after_the_speech() -> None:
    assert window_frames(1000) == 1500  # exactly 10 s: no room left after it in 10 s
    assert window_frames(1240) == 1500
    assert window_frames(2950) == 3000


def test_what_does_not_fit_in_thirty_seconds_has_no_window() -> None:
    assert window_frames(2951) is None
    assert window_frames(10_000) is None
