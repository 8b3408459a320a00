"""The audio clock (server audio positions back to capture times) and the transcript pacer
(agent text released as its audio plays; after a cut, only what was heard)."""

from __future__ import annotations

import pytest

from realtalk.plugins.openai.agent_speech import MAX_PACE_S, PACE_S
from realtalk.plugins.openai.audio_clock import MAX_MARKS, AudioClock
from realtalk.plugins.openai.link import ArmTimer
from realtalk.plugins.openai.transcript_pacer import TranscriptPacer
from tests.unit.plugins.harness import Harness


def test_a_position_maps_to_when_that_audio_was_captured() -> None:
    clock = AudioClock()
    for i in range(10):  # 40 ms appends pushed at 0.04, 0.08, ... s
        clock.sent(40, at=0.04 * (i + 1))
    assert clock.total_ms == 400
    assert clock.time_of(400) == pytest.approx(0.40)
    assert clock.time_of(330) == pytest.approx(0.33)  # inside the append that ended at 360
    assert clock.time_of(401) is None  # not sent yet


def test_the_speech_end_is_earlier_than_the_event_that_reports_it() -> None:
    clock = AudioClock()
    for i in range(50):
        clock.sent(40, at=10.0 + 0.04 * (i + 1))
    # speech ended at 1,000 ms of audio; speech_stopped arrives 300 ms of audio later
    assert clock.time_of(1000) == pytest.approx(11.0)


def test_old_positions_are_forgotten_and_a_new_session_starts_at_zero() -> None:
    clock = AudioClock()
    for i in range(MAX_MARKS + 10):
        clock.sent(40, at=float(i))
    assert clock.time_of(40) is None
    assert clock.time_of(clock.total_ms) == pytest.approx(MAX_MARKS + 9)
    clock.reset()
    assert clock.time_of(0) is None
    clock.sent(40, at=5.0)
    assert clock.time_of(40) == 5.0


class Shown:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool, bool]] = []

    def __call__(self, item_id: str, text: str, final: bool, interrupted: bool) -> None:
        self.events.append((item_id, text, final, interrupted))


def test_pieces_wait_for_their_audio_to_play() -> None:
    shown = Shown()
    pacer = TranscriptPacer(shown)
    played = {"a": 0.0}
    pacer.delta("a", "Hello there.", 0)
    pacer.delta("a", "Hello there. How are you?", 1200)
    pacer.done("a", "Hello there. How are you?", 2500, has_audio=True)
    pacer.tick(played.get)
    assert shown.events == []  # nothing plays yet
    pacer.started("a")
    pacer.tick(played.get)
    assert shown.events == [("a", "Hello there.", False, False)]
    played["a"] = 1000
    pacer.tick(played.get)
    assert len(shown.events) == 1 and pacer.holding
    played["a"] = 1200
    pacer.tick(played.get)
    assert shown.events[-1] == ("a", "Hello there. How are you?", False, False)
    pacer.finished("a", interrupted=False)
    assert shown.events[-1] == ("a", "Hello there. How are you?", True, False)
    assert not pacer.holding


def test_a_cut_shows_only_what_was_heard_marked_interrupted() -> None:
    shown = Shown()
    pacer = TranscriptPacer(shown)
    pacer.delta("a", "First sentence.", 0)
    pacer.delta("a", "First sentence. Second one.", 1500)
    pacer.done("a", "First sentence. Second one.", 3000, has_audio=True)
    pacer.started("a")
    pacer.tick(lambda _item: 700.0)
    pacer.cut("a")
    assert shown.events == [
        ("a", "First sentence.", False, False),
        ("a", "First sentence.", True, True),
    ]
    pacer.finished("a", interrupted=True)  # the playout's own callback changes nothing
    pacer.done("a", "First sentence. Second one.", 3000, has_audio=True)
    assert len(shown.events) == 2


def test_cut_before_any_audio_played_shows_nothing() -> None:
    shown = Shown()
    pacer = TranscriptPacer(shown)
    pacer.delta("a", "Never heard.", 0)
    pacer.cut("a")
    assert shown.events == [("a", "", True, True)]


def test_a_transcript_without_audio_shows_at_once() -> None:
    shown = Shown()
    pacer = TranscriptPacer(shown)
    pacer.delta("a", "No", 0)
    pacer.done("a", "No audio at all.", 0, has_audio=False)
    assert shown.events == [("a", "No audio at all.", True, False)]


def test_the_pacer_says_when_its_next_piece_is_due() -> None:
    pacer = TranscriptPacer(Shown())
    played = {"a": 0.0, "b": 0.0}
    pacer.delta("a", "One.", 0)
    pacer.delta("a", "One. Two.", 1200)
    pacer.done("a", "One. Two.", 2500, has_audio=True)
    pacer.delta("b", "Later.", 100)
    assert pacer.due_in_ms(played.get) is None  # nothing plays yet: started() releases it
    pacer.started("a")
    pacer.tick(played.get)
    played["a"] = 500
    assert pacer.due_in_ms(played.get) == 700  # "Two." at 1200 ms
    played["a"] = 1300
    pacer.tick(played.get)
    assert pacer.due_in_ms(played.get) == 1200  # the final transcript at 2500 ms
    pacer.started("b")
    assert pacer.due_in_ms(played.get) == 100  # the sooner of the two playing items


@pytest.mark.parametrize(("next_at_ms", "delay_s"), [(10, PACE_S), (100, 0.1), (5000, MAX_PACE_S)])
async def test_the_pace_timer_is_armed_for_the_next_piece(next_at_ms: int, delay_s: float) -> None:
    h = Harness()
    core = h.model.core
    core.pacer.delta("item_x", "Hi.", 0)
    core.pacer.delta("item_x", "Hi. There.", next_at_ms)
    core.actions()
    core.audio_started("item_x", 0.0)  # "Hi." now, "There." once next_at_ms of it played
    (armed,) = [a for a in core.actions() if isinstance(a, ArmTimer) and a.name == "pace"]
    assert armed.delay_s == pytest.approx(delay_s)
