"""Turn detection fed probabilities directly: no audio, no clock."""

from __future__ import annotations

import pytest

from realtalk.server.turns import (
    EAGERNESS_SILENCE_MS,
    SMART_EAGERNESS,
    PauseCheck,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnSettings,
)

W = 32.0  # ms per VAD window


def windows(ms: float) -> int:
    return round(ms / W)


def test_start_includes_prefix_padding_and_stop_reports_where_silence_began() -> None:
    detector = TurnDetector(TurnSettings(prefix_padding_ms=300, silence_duration_ms=200))
    decisions = detector.feed([0.0] * 50)  # 1.6 s of silence
    assert decisions == []
    decisions = detector.feed([0.9] * 30)  # speech from 1600 ms
    assert decisions == [SpeechStarted(1600 - 300)]
    assert detector.speaking
    decisions = detector.feed([0.0] * 10)  # silence from 2560 ms, 320 ms of it
    assert decisions == [SpeechStopped(1600 + 30 * 32)]
    assert not detector.speaking


def test_padding_never_reaches_before_the_start_of_listening() -> None:
    detector = TurnDetector(TurnSettings(prefix_padding_ms=300), start_ms=5000.0)
    assert detector.feed([0.9, 0.9]) == [SpeechStarted(5000)]


def test_a_click_shorter_than_min_speech_is_ignored() -> None:
    detector = TurnDetector(TurnSettings(min_speech_ms=64))
    assert detector.feed([0.9, 0.0, 0.9, 0.0, 0.0]) == []
    assert detector.feed([0.9, 0.9]) != []


def test_stop_waits_for_the_whole_silence_duration() -> None:
    settings = TurnSettings(silence_duration_ms=500)
    detector = TurnDetector(settings)
    detector.feed([0.9] * 5)
    assert detector.feed([0.0] * (windows(500) - 1)) == []
    assert detector.feed([0.0]) == [SpeechStopped(5 * 32)]


def test_speech_during_the_silence_restarts_it() -> None:
    detector = TurnDetector(TurnSettings(silence_duration_ms=200))
    detector.feed([0.9] * 5)
    assert detector.feed([0.0] * 5 + [0.9] + [0.0] * 5) == []  # never 200 ms in a row
    assert detector.feed([0.0] * 2) == [SpeechStopped(11 * 32)]


def test_probabilities_between_the_thresholds_neither_end_nor_reset_silence() -> None:
    detector = TurnDetector(TurnSettings(threshold=0.5, silence_duration_ms=192))
    detector.feed([0.9] * 3)
    # 0.4 is below the start threshold but above the stop threshold (0.35): no silence begins
    assert detector.feed([0.4] * 20) == []
    assert detector.feed([0.1] * 3 + [0.4] * 2 + [0.1]) == [SpeechStopped(23 * 32)]


def test_a_second_turn_cannot_reach_back_into_the_first() -> None:
    detector = TurnDetector(TurnSettings(prefix_padding_ms=1000, silence_duration_ms=64))
    detector.feed([0.9] * 3 + [0.0] * 2)  # turn ends at 160 ms (decision taken there)
    started = detector.feed([0.9] * 2)
    assert started == [SpeechStarted(160)]


def test_reset_forgets_speech_and_moves_the_clock() -> None:
    detector = TurnDetector(TurnSettings())
    detector.feed([0.9] * 5)
    detector.reset(10_000.0)
    assert not detector.speaking
    assert detector.position_ms == 10_000.0
    assert detector.feed([0.0] * 30) == []


@pytest.mark.parametrize(("eagerness", "silence"), sorted(EAGERNESS_SILENCE_MS.items()))
def test_semantic_vad_maps_eagerness_to_a_silence_timeout(eagerness: str, silence: int) -> None:
    settings = TurnSettings.from_session(
        {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
    )
    assert settings.silence_duration_ms == silence
    assert settings.create_response is False
    assert (
        EAGERNESS_SILENCE_MS["high"] < EAGERNESS_SILENCE_MS["medium"] < EAGERNESS_SILENCE_MS["low"]
    )


def test_server_vad_settings_come_from_the_session() -> None:
    settings = TurnSettings.from_session(
        {
            "type": "server_vad",
            "threshold": 0.7,
            "prefix_padding_ms": 100,
            "silence_duration_ms": 900,
            "interrupt_response": False,
        }
    )
    assert (settings.threshold, settings.prefix_padding_ms, settings.silence_duration_ms) == (
        0.7,
        100,
        900,
    )
    assert settings.interrupt_response is False and settings.create_response is True
    detector = TurnDetector(settings)
    assert detector.feed([0.65] * 10) == []  # below this session's threshold


# --- semantic_vad with an end-of-turn model ------------------------------------------------------


def _smart(eagerness: str = "medium") -> TurnDetector:
    settings = TurnSettings.from_session(
        {"type": "semantic_vad", "eagerness": eagerness}, smart=True
    )
    return TurnDetector(settings)


def test_a_pause_asks_the_model_once_after_check_after_ms() -> None:
    detector = _smart()  # medium: ask after 96 ms, wait up to 800 ms
    assert detector.feed([0.9] * 10) == [SpeechStarted(0)]
    decisions = detector.feed([0.0] * 3)  # 96 ms of silence from 320 ms
    assert decisions == [PauseCheck(320.0)]
    assert detector.feed([0.0] * 2) == []  # asked already about this pause


def test_a_finished_sentence_ends_the_turn_where_the_pause_began() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 7)  # the answer comes after the shortest pause (192 ms)
    assert isinstance(check, PauseCheck)
    assert detector.conclude(check.pause_ms, 0.9) == [SpeechStopped(320)]
    assert not detector.speaking


def test_an_early_finished_answer_waits_for_the_shortest_pause() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 3)  # asked at 96 ms
    assert detector.conclude(check.pause_ms, 0.9) == []  # finished, but only 96 ms of pause
    assert detector.feed([0.0] * 2) == []  # 160 ms
    assert detector.feed([0.0]) == [SpeechStopped(320)]  # 192 ms


def test_an_unfinished_sentence_waits_for_the_longest_silence() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 7)
    assert detector.conclude(check.pause_ms, 0.2) == []
    assert detector.speaking
    assert detector.feed([0.0] * 17) == []  # 768 ms of silence
    assert detector.feed([0.0]) == [SpeechStopped(320)]  # 800 ms


def test_an_unfinished_question_waits_half_as_long() -> None:
    """The intonation says unfinished, the words end in "?": the wait is halved (medium: 400
    ms instead of 800), not dropped, so a user who pauses mid-question can still go on."""
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 3)
    assert detector.conclude(check.pause_ms, 0.1, question=True) == []
    assert detector.feed([0.0] * 9) == []  # 384 ms of silence
    assert detector.feed([0.0]) == [SpeechStopped(320)]  # 416 ms


def test_a_late_answer_about_a_question_ends_a_pause_long_enough_at_once() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 13)  # 416 ms: the model answered late
    assert detector.conclude(check.pause_ms, 0.1, question=True) == [SpeechStopped(320)]


def test_a_question_goes_on_after_a_pause_as_any_speech_does() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 3)
    detector.conclude(check.pause_ms, 0.1, question=True)
    detector.feed([0.0] * 5)
    assert detector.feed([0.9] * 3) == []  # speaking again before 400 ms: the turn goes on
    assert detector.feed([0.0] * 17) == [PauseCheck(check.pause_ms + 8 * 32 + 3 * 32)]
    assert detector.speaking  # the new pause is unfinished until the model says otherwise


def test_an_answer_about_a_pause_that_ended_is_ignored() -> None:
    detector = _smart()
    detector.feed([0.9] * 10)
    (check,) = detector.feed([0.0] * 7)
    detector.feed([0.9] * 3)  # the user went on speaking before the model answered
    assert detector.conclude(check.pause_ms, 0.99) == []
    assert detector.speaking
    (second,) = detector.feed([0.0] * 3)  # the next pause is asked about afresh
    assert second == PauseCheck(check.pause_ms + 7 * 32 + 3 * 32)


@pytest.mark.parametrize("eagerness", sorted(SMART_EAGERNESS))
def test_eagerness_sets_when_to_ask_how_long_to_wait_and_how_sure(eagerness: str) -> None:
    settings = TurnSettings.from_session(
        {"type": "semantic_vad", "eagerness": eagerness}, smart=True
    )
    check, least, wait, question, threshold = SMART_EAGERNESS[eagerness]
    assert (settings.check_after_ms, settings.silence_duration_ms) == (check, wait)
    assert (settings.min_silence_ms, settings.complete_threshold) == (least, threshold)
    assert settings.question_wait_ms == question
    assert check < least < question < wait
    low, high = SMART_EAGERNESS["low"], SMART_EAGERNESS["high"]
    assert all(h < lo for h, lo in zip(high, low, strict=True))


def test_server_vad_never_asks_the_model() -> None:
    settings = TurnSettings.from_session({"type": "server_vad"}, smart=True)
    assert settings.check_after_ms is None
    detector = TurnDetector(settings)
    detector.feed([0.9] * 10)
    assert all(not isinstance(d, PauseCheck) for d in detector.feed([0.0] * 30))
