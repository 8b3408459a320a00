"""AudioOutput: exact played positions, barge-in flushes, pacing against an injected clock."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.media import AudioFrame, AudioOutput

RATE = 24000
FRAME = 480  # samples in 20 ms at 24 kHz


def pcm(n: int, start: int = 1) -> bytes:
    """n distinct non-zero samples (so any reordering, loss or repeat is visible)."""
    values = (np.arange(start, start + n) % 30000) + 1
    return values.astype("<i2").tobytes()


class FakeClock:
    """A clock that only moves when the code under test sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def started(self, item_id: str) -> None:
        self.events.append(("started", item_id))

    def finished(self, item_id: str, played_ms: int, interrupted: bool) -> None:
        self.events.append(("finished", item_id, played_ms, interrupted))

    def idle(self) -> None:
        self.events.append(("idle",))


def make_output(jitter_ms: int = 0, **kwargs: object) -> tuple[AudioOutput, Recorder]:
    rec = Recorder()
    out = AudioOutput(
        RATE,
        20,
        jitter_ms,
        realtime=False,
        on_item_started=rec.started,
        on_item_finished=rec.finished,
        on_idle=rec.idle,
        **kwargs,  # type: ignore[arg-type]
    )
    return out, rec


async def frames(out: AudioOutput, n: int) -> list[AudioFrame]:
    return [await out.next_frame() for _ in range(n)]


def is_silence(frame: AudioFrame) -> bool:
    return frame.samples_per_channel == FRAME and not any(frame.data)


async def test_frames_carry_the_pushed_audio_in_order() -> None:
    out, _ = make_output()
    audio = pcm(5 * FRAME)
    out.push("a", audio)
    out.end_item("a")
    got = await frames(out, 5)
    assert all(f.sample_rate == RATE and f.num_channels == 1 for f in got)
    assert b"".join(f.data for f in got) == audio
    assert is_silence(await out.next_frame())


async def test_odd_byte_pushes_are_reassembled_into_whole_samples() -> None:
    out, _ = make_output()
    audio = pcm(3 * FRAME)
    sizes = [1, 3, 7, 2, 999, 1, 5, 1000]
    pos = 0
    for size in sizes:
        out.push("a", audio[pos : pos + size])
        pos += size
    out.push("a", audio[pos:])
    out.end_item("a")
    got = await frames(out, 3)
    assert b"".join(f.data for f in got) == audio


async def test_half_sample_is_not_played_until_completed() -> None:
    out, _ = make_output()
    audio = pcm(FRAME + 1)
    out.push("a", audio[:-1])  # one frame plus half a sample
    assert out.buffered_ms == 20
    assert (await out.next_frame()).data == audio[: 2 * FRAME]
    assert is_silence(await out.next_frame())  # the half sample alone is not playable
    out.push("a", audio[-1:])
    out.end_item("a")
    last = await out.next_frame()
    assert last.data[:2] == audio[-2:]
    assert out.played_ms("a") == (FRAME + 1) * 1000 // RATE


async def test_flush_five_times_in_a_row() -> None:
    out, rec = make_output()
    for round_ in range(5):
        item = f"item{round_}"
        out.push(item, pcm(10 * FRAME, start=round_ * 100))
        played_frames = round_ + 1
        await frames(out, played_frames)
        result = out.flush()
        assert result.item_id == item
        assert result.played_ms == played_frames * 20
        after = await out.next_frame()
        assert after is out.silence_frame, f"stale audio after flush #{round_ + 1}"
        assert is_silence(after)
        # Late deltas of the interrupted item must never be played.
        out.push(item, pcm(4 * FRAME))
        assert all(is_silence(f) for f in await frames(out, 3))
        assert out.buffered_ms == 0
        assert ("finished", item, played_frames * 20, True) in rec.events


async def test_flush_reports_unstarted_and_dropped_items() -> None:
    out, rec = make_output(jitter_ms=40)
    out.push("a", pcm(FRAME))  # 20 ms < 40 ms jitter: not started yet
    out.push("b", pcm(FRAME))
    assert is_silence(await out.next_frame())
    result = out.flush()
    assert (result.item_id, result.played_ms, result.dropped_item_ids) == ("a", 0, ("b",))
    assert rec.events == []  # nothing started, so nothing finished
    assert out.flush().item_id is None  # nothing left


async def test_played_ms_is_exact_to_the_sample() -> None:
    out, rec = make_output()
    out.push("a", pcm(2 * FRAME + 250))
    out.end_item("a")
    got = await frames(out, 3)
    assert got[2].data[: 2 * 250] == pcm(2 * FRAME + 250)[2 * 2 * FRAME :]
    assert not any(got[2].data[2 * 250 :])  # padded with silence
    expected = (2 * FRAME + 250) * 1000 // RATE
    assert out.played_ms("a") == expected
    assert rec.events[-2:] == [("finished", "a", expected, False), ("idle",)]


async def test_item_finished_fires_with_the_last_frame_and_only_after_end() -> None:
    out, rec = make_output()
    out.push("a", pcm(3 * FRAME))
    await frames(out, 3)  # all data handed out, but more may still arrive
    await frames(out, 2)
    assert rec.events == [("started", "a")]
    out.end_item("a")
    assert rec.events == [("started", "a"), ("finished", "a", 60, False), ("idle",)]

    rec.events.clear()
    out.push("b", pcm(3 * FRAME))
    out.end_item("b")
    await frames(out, 2)
    assert rec.events == [("started", "b")]
    await out.next_frame()
    assert rec.events == [("started", "b"), ("finished", "b", 60, False), ("idle",)]


async def test_items_play_in_push_order_without_idle_between() -> None:
    out, rec = make_output()
    out.push("a", pcm(2 * FRAME, start=1))
    out.push("b", pcm(2 * FRAME, start=5000))
    out.end_item("b")
    got = await frames(out, 2)
    assert b"".join(f.data for f in got) == pcm(2 * FRAME, start=1)
    out.end_item("a")
    got = await frames(out, 2)
    assert b"".join(f.data for f in got) == pcm(2 * FRAME, start=5000)
    assert [e for e in rec.events if e[0] == "idle"] == [("idle",)]
    assert rec.events[-1] == ("idle",)


async def test_discard_drops_a_cancelled_item_that_has_not_played() -> None:
    out, rec = make_output()
    out.push("a", pcm(2 * FRAME, start=1))
    out.end_item("a")
    out.push("b", pcm(5 * FRAME, start=9000))  # audio of a response that then gets cancelled
    assert out.discard("b") == 0
    out.push("b", pcm(FRAME))  # a delta that was already in flight
    got = await frames(out, 4)
    assert b"".join(f.data for f in got[:2]) == pcm(2 * FRAME, start=1)
    assert all(is_silence(f) for f in got[2:])
    assert out.played_ms("b") == 0
    assert ("started", "b") not in rec.events


async def test_discard_of_the_playing_item_interrupts_it() -> None:
    out, rec = make_output()
    out.push("a", pcm(5 * FRAME))
    await frames(out, 2)
    assert out.discard("a") == 40
    assert is_silence(await out.next_frame())
    assert rec.events[-2:] == [("finished", "a", 40, True), ("idle",)]


async def test_jitter_buffer_holds_a_new_item_until_enough_audio() -> None:
    out, rec = make_output(jitter_ms=60)
    out.push("a", pcm(FRAME))
    out.push("a", pcm(FRAME, start=FRAME + 1))
    assert is_silence(await out.next_frame())  # 40 ms buffered < 60 ms
    assert rec.events == []
    out.push("a", pcm(FRAME, start=2 * FRAME + 1))
    assert (await out.next_frame()).data == pcm(FRAME)
    assert rec.events == [("started", "a")]


async def test_jitter_buffer_releases_a_short_complete_item() -> None:
    out, _ = make_output(jitter_ms=100)
    out.push("a", pcm(100))
    assert is_silence(await out.next_frame())
    out.end_item("a")
    first = await out.next_frame()
    assert first.data[:200] == pcm(100)


async def test_underrun_inside_an_item_refills_the_jitter_buffer() -> None:
    out, _ = make_output(jitter_ms=40)
    out.push("a", pcm(2 * FRAME))
    await frames(out, 2)
    assert is_silence(await out.next_frame())  # underrun: nothing left to hand out
    out.push("a", pcm(FRAME, start=7000))  # 20 ms is not enough to resume
    assert is_silence(await out.next_frame())
    out.push("a", pcm(FRAME, start=8000))
    assert (await out.next_frame()).data == pcm(FRAME, start=7000)
    assert out.played_ms("a") == 60


async def test_push_after_end_is_an_error() -> None:
    out, _ = make_output()
    out.push("a", pcm(10))
    out.end_item("a")
    with pytest.raises(ValueError, match="after end_item"):
        out.push("a", pcm(10))


async def test_failing_callback_does_not_stop_playout() -> None:
    out, _ = make_output()

    def boom(item_id: str) -> None:
        raise RuntimeError("handler bug")

    out.on_item_started = boom
    out.push("a", pcm(2 * FRAME))
    got = await frames(out, 2)
    assert b"".join(f.data for f in got) == pcm(2 * FRAME)


async def test_pacing_follows_start_plus_n_frames_without_drift() -> None:
    clock = FakeClock()
    out = AudioOutput(RATE, 20, 0, clock, sleep=clock.sleep)
    out.push("a", pcm(50 * FRAME))
    start = clock.now
    rng = np.random.default_rng(1)
    for n in range(50):
        frame = await out.next_frame()
        assert frame.data == pcm(50 * FRAME)[n * 2 * FRAME : (n + 1) * 2 * FRAME]
        assert clock.now == pytest.approx(start + n * 0.020, abs=1e-9)
        clock.now += float(rng.uniform(0, 0.015))  # the consumer takes a while with each frame


async def test_late_consumer_is_reanchored_instead_of_bursting() -> None:
    clock = FakeClock()
    out = AudioOutput(RATE, 20, 0, clock, sleep=clock.sleep, max_lag_ms=100)
    await frames(out, 3)
    clock.now += 1.0  # the consumer stalled for a second
    await out.next_frame()  # handed out at once
    resumed = clock.now
    await out.next_frame()
    assert clock.now == pytest.approx(resumed + 0.020)
    await out.next_frame()
    assert clock.now == pytest.approx(resumed + 0.040)


async def test_small_lag_catches_up_on_schedule() -> None:
    clock = FakeClock()
    out = AudioOutput(RATE, 20, 0, clock, sleep=clock.sleep, max_lag_ms=100)
    start = clock.now
    await frames(out, 2)
    clock.now += 0.050  # 50 ms late: catch up without sleeping, keep the original schedule
    await frames(out, 2)  # frames 2 and 3 were due at +40 and +60 ms: handed out at once
    assert clock.now == pytest.approx(start + 0.070)
    await out.next_frame()  # frame 4 is due at +80 ms
    assert clock.now == pytest.approx(start + 0.080)


def test_buffered_ms_and_bad_construction() -> None:
    out, _ = make_output()
    out.push("a", pcm(RATE // 10))
    out.push("b", pcm(RATE // 20))
    assert out.buffered_ms == 150
    tail, _ = make_output()
    tail.push("a", pcm(10))  # 0.42 ms: still reported, so a poller does not strand it
    assert tail.buffered_ms == 1
    assert AudioOutput(22050, 20).silence_frame.samples_per_channel == 441
    with pytest.raises(ValueError, match="whole number of samples"):
        AudioOutput(11025, 20)  # 220.5 samples per frame
    with pytest.raises(ValueError):
        AudioOutput(RATE, 20, -1)


def test_queued_ms_follows_every_change_of_the_queue() -> None:
    out = AudioOutput(sample_rate=24000, realtime=False, jitter_ms=0)
    checks = []

    def check() -> None:
        checks.append((out.queued_ms, out.buffered_ms))
        assert abs(out.queued_ms - out.buffered_ms) <= 1  # O(1) count vs the exact sum

    out.push("a", bytes(4801))  # ~100 ms and half a sample
    check()
    out.push("a", bytes(479))
    check()
    for _ in range(3):
        out.read_frame()
        check()
    out.push("b", bytes(2400))
    out.end_item("a")
    check()
    out.push("c", bytes(960 * 3 + 1))
    out.end_item("c")  # drops the half sample
    out.discard("b")
    check()
    while out.buffered_ms:
        out.read_frame()
        check()
    assert out.queued_ms == 0
    out.push("d", bytes(9600))
    out.flush()
    assert out.queued_ms == out.buffered_ms == 0
    assert checks[0][0] == 100


def test_frames_are_the_pushed_bytes_whatever_the_chunk_sizes() -> None:
    # Chunks of every size, odd ones included (half samples wait for the next push), cut into
    # frames that span chunks: what comes out is exactly what went in, then the padded tail.
    rng = np.random.default_rng(11)
    data = rng.integers(0, 256, 24_001, dtype=np.uint8).tobytes()  # ends with half a sample
    out = AudioOutput(sample_rate=24000, realtime=False, jitter_ms=0)
    pos = 0
    played = bytearray()
    while pos < len(data):
        size = int(rng.integers(1, 3000))
        out.push("a", data[pos : pos + size])
        pos += size
        while out.buffered_ms > 20:  # rounded up: > 20 ms holds a whole frame
            played += out.read_frame().data
    out.end_item("a")  # drops the last half sample
    while out.playing_item_id is not None or out.buffered_ms:
        played += out.read_frame().data
    whole = len(data) - 1
    assert bytes(played[:whole]) == data[:whole]
    assert not any(played[whole:]) and len(played) % 960 == 0
    assert out.queued_ms == 0 and out.played_ms("a") == whole // 2 * 1000 // 24000
