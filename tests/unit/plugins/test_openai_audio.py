"""User audio to the wire (rate and channels from each frame, batching, G.711) and audio out."""

from __future__ import annotations

import asyncio
import base64
import json

import numpy as np
import pytest

from realtalk.media.frame import AudioFrame
from realtalk.media.g711 import ulaw_decode, ulaw_encode
from realtalk.media.playout import AudioOutput
from realtalk.media.resample import InputAudioConverter
from realtalk.plugins.openai import OpenAIRealtimeConfig
from realtalk.plugins.openai.audio import (
    AudioAppend,
    AudioInput,
    OutputAudio,
    append_event,
    append_json,
    join_appends,
)
from realtalk.protocol import PCM24K, PCMU, events
from tests.conformance import check_client_event
from tests.unit.plugins.harness import Harness


def sine(freq: float, rate: int, ms: int, channels: int = 1) -> np.ndarray:
    t = np.arange(rate * ms // 1000) / rate
    mono = (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def frames(signal: np.ndarray, rate: int, frame_ms: int = 20) -> list[AudioFrame]:
    step = rate * frame_ms // 1000
    return [AudioFrame.from_array(signal[i : i + step], rate) for i in range(0, len(signal), step)]


def peak_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.argmax(spectrum) * rate / len(pcm))


def run(audio_in: AudioInput, chunks: list) -> tuple[list[bytes], bytes]:
    payloads = [p for c in chunks if (p := audio_in.push(c)) is not None]
    tail = audio_in.flush()
    decoded = [base64.b64decode(p) for p in payloads]
    return decoded, b"".join(decoded) + (base64.b64decode(tail) if tail else b"")


def test_48k_stereo_frames_become_24k_mono_at_the_right_speed() -> None:
    audio_in = AudioInput(PCM24K, raw_rate=48000, raw_channels=1, batch_ms=40)
    batches, total = run(audio_in, frames(sine(1000, 48000, 1000, channels=2), 48000))
    pcm = np.frombuffer(total, dtype="<i2")
    assert abs(len(pcm) - 24000) <= 24  # one second, not half or double
    assert abs(peak_hz(pcm, 24000) - 1000) < 5  # pitch kept: no 0.75x/2x speed
    # An append every 40 ms (two frames), not one per frame, and not a frame late: each goes
    # as soon as the input covers it, without what the resampler still holds (~1 ms at 24
    # kHz). Waiting for that too sent every third frame: 16 appends of 58 ms.
    assert len(batches) == 25
    assert all(len(b) <= 2 * 1920 for b in batches)


def test_raw_bytes_use_the_declared_input_format() -> None:
    audio_in = AudioInput(PCM24K, raw_rate=16000, raw_channels=1, batch_ms=40)
    signal = sine(500, 16000, 1000)
    chunks = [signal[i : i + 320].tobytes() for i in range(0, len(signal), 320)]
    _, total = run(audio_in, chunks)
    pcm = np.frombuffer(total, dtype="<i2")
    assert abs(len(pcm) - 24000) <= 24
    assert abs(peak_hz(pcm, 24000) - 500) < 5


def test_frames_at_the_wire_rate_pass_through_unchanged() -> None:
    audio_in = AudioInput(PCM24K, raw_rate=24000, raw_channels=1, batch_ms=40)
    signal = sine(300, 24000, 200)
    _, total = run(audio_in, frames(signal, 24000))
    assert total == signal.tobytes()


def test_g711_input_is_8k_ulaw() -> None:
    audio_in = AudioInput(PCMU, raw_rate=48000, raw_channels=2, batch_ms=40)
    _, total = run(audio_in, frames(sine(400, 48000, 1000, channels=2), 48000))
    assert abs(len(total) - 8000) <= 8  # one byte per sample at 8 kHz
    pcm = np.frombuffer(ulaw_decode(total), dtype="<i2")
    assert abs(peak_hz(pcm, 8000) - 400) < 5


def test_bad_raw_audio_is_a_clear_error() -> None:
    audio_in = AudioInput(PCM24K, raw_rate=48000, raw_channels=2, batch_ms=40)
    try:
        audio_in.push(b"\x00\x01\x02")
    except ValueError as exc:
        assert "partial sample" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("odd-sized audio was accepted")


async def test_model_sends_batched_appends_from_frames() -> None:
    h = Harness(OpenAIRealtimeConfig(append_batch_ms=100))
    for f in frames(sine(440, 48000, 1000, channels=2), 48000):
        await h.model.handle_audio_input(f)
    appends = h.sent()
    assert {e["type"] for e in appends} == {"input_audio_buffer.append"}
    assert 7 <= len(appends) <= 10  # >= 100 ms each, not one per 20 ms frame


async def test_the_audio_clock_counts_every_sample_sent() -> None:
    """The server's ``audio_end_ms`` is mapped back through the amount the client sent; the
    48 -> 24 kHz appends hold a sample more or less than 20 ms, and counting each in whole
    milliseconds fell ~3 % behind the server: after a few seconds every end of speech lay
    beyond the count and the turn's latency was timed from the arrival of speech_stopped."""
    h = Harness(OpenAIRealtimeConfig())
    for f in frames(sine(440, 48000, 10_000, channels=2), 48000):
        await h.model.handle_audio_input(f)
    sent = sum(len(base64.b64decode(e["audio"])) for e in h.sent() if "audio" in e) // 2
    assert sent > 230_000
    assert h.model.core.audio_clock.total_ms == pytest.approx(sent * 1000 / 24000)


async def test_push_to_talk_commit_flushes_the_tail() -> None:
    h = Harness(OpenAIRealtimeConfig(turn_detection=None))
    for f in frames(sine(440, 48000, 60), 48000):
        await h.model.handle_audio_input(f)
    await h.model.commit_audio_input()
    assert h.sent_types()[-2:] == ["input_audio_buffer.append", "input_audio_buffer.commit"]


def test_output_counts_received_ms_and_decodes_g711() -> None:
    output = AudioOutput(sample_rate=8000, realtime=False, jitter_ms=0)
    out = OutputAudio(output, PCMU)
    pcm = sine(300, 8000, 250)
    out.push("item_a", base64.b64encode(ulaw_encode(pcm)).decode())
    assert out.received_ms("item_a") == 250
    assert output.buffered_ms == 250


def test_output_resamples_when_the_playout_rate_differs() -> None:
    output = AudioOutput(sample_rate=24000, realtime=False, jitter_ms=0)
    out = OutputAudio(output, PCMU)
    out.push("item_a", base64.b64encode(ulaw_encode(sine(300, 8000, 500))).decode())
    out.end("item_a")
    assert abs(output.buffered_ms - 500) <= 2
    assert out.received_ms("item_a") == 500


def test_batched_uplink_equals_the_streaming_converter_across_format_changes() -> None:
    # The hot path gathers frames and rounds once per batch; what reaches the wire must still
    # be, byte for byte, the per-frame stream of InputAudioConverter, format changes included.
    rng = np.random.default_rng(1)
    formats = [(48000, 2)] * 30 + [(24000, 1)] * 7 + [(16000, 1)] * 9 + [(44100, 2)] * 11
    chunks = []
    for rate, channels in formats + [(24000, 1)] * 3:
        n = rate // 50 * channels
        pcm = (rng.standard_normal(n) * 12000).clip(-32768, 32767).astype("<i2")
        chunks.append(AudioFrame(pcm.tobytes(), rate, channels))
    converter = InputAudioConverter(24000)
    expected = b"".join(converter.convert(c) for c in chunks) + converter.flush()
    batches, total = run(AudioInput(PCM24K, raw_rate=48000, raw_channels=1, batch_ms=40), chunks)
    assert total == expected
    # Every batch but the flushed tail holds a multiple of three samples: no base64 padding,
    # so the driver may join queued payloads into one append.
    assert all(len(b) % 6 == 0 for b in batches)


def test_appends_are_prebuilt_and_their_json_is_the_protocol_event() -> None:
    payload = base64.b64encode(bytes(range(256)) * 3).decode("ascii")
    event = append_event(payload)
    assert isinstance(event, AudioAppend)
    assert event == events.input_audio_buffer_append(payload)
    check_client_event(event)
    assert json.loads(append_json(payload)) == events.input_audio_buffer_append(payload)


async def test_the_core_hands_out_prebuilt_appends() -> None:
    h = Harness(OpenAIRealtimeConfig(turn_detection=None, input_audio_transcription=None))
    out = [h.model.core.append_audio(AudioFrame(bytes(960), 24000)) for _ in range(4)]
    appends = [e for e in out if e is not None]
    assert appends and all(type(e) is AudioAppend for e in appends)


def test_queued_appends_join_into_one_message_in_order() -> None:
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    pcm = [bytes([i]) * 1920 for i in range(4)]  # 1920 bytes: base64 without padding
    first, *rest = [append_event(base64.b64encode(p).decode("ascii")) for p in pcm]
    for event in rest:
        queue.put_nowait(event)
    commit = events.input_audio_buffer_commit(event_id="event_1")
    queue.put_nowait(commit)
    later = append_event(base64.b64encode(b"z" * 6).decode("ascii"))
    queue.put_nowait(later)
    message = json.loads(join_appends(first, queue))
    check_client_event(message)
    assert base64.b64decode(message["audio"]) == b"".join(pcm)
    # The commit ended the run; it is next in the queue, still before the later append.
    assert queue.get_nowait() is commit
    assert queue.get_nowait() is later and queue.empty()


def test_a_padded_payload_ends_the_join() -> None:
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    padded = append_event(base64.b64encode(b"ab").decode("ascii"))  # "YWI="
    queue.put_nowait(append_event(base64.b64encode(b"cde").decode("ascii")))
    frame = join_appends(padded, queue)  # nothing may follow a padded payload
    assert json.loads(frame)["audio"] == "YWI=" and queue.qsize() == 1
    queue.get_nowait()
    queue.put_nowait(padded)
    queue.put_nowait(append_event(base64.b64encode(b"ABC").decode("ascii")))
    frame = join_appends(append_event(base64.b64encode(b"xyz").decode("ascii")), queue)
    assert base64.b64decode(json.loads(frame)["audio"]) == b"xyzab"  # the padded one ends it
    assert queue.qsize() == 1


def test_by_default_every_frame_is_appended_as_it_comes() -> None:
    # The server's VAD hears the end of speech only once the append carrying it arrives: a
    # batch costs the end of every turn half its length on average.
    batch_ms = OpenAIRealtimeConfig().append_batch_ms
    assert batch_ms == 20
    audio_in = AudioInput(PCM24K, raw_rate=24000, raw_channels=1, batch_ms=batch_ms)
    chunks = frames(sine(300, 24000, 200), 24000)
    assert all(audio_in.push(c) is not None for c in chunks)
