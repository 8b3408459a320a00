"""Streaming resampling: equal to a one-shot resample, at the right speed, whatever the input."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import soxr

from realtalk.media import (
    AudioFrame,
    InputAudioConverter,
    StreamResampler,
    downmix,
    float_to_int16,
    iter_frames,
    resample_oneshot,
)
from realtalk.media.resample import live_quality
from tests.unit.media.media_signals import snr_db, tone


def to_stereo(mono: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Two different channels (the right one quieter and 3 samples late), so downmixing matters."""
    right = np.concatenate([np.zeros(3, np.int16), (mono[:-3] * 0.6).astype(np.int16)])
    return np.stack([mono, right], axis=1)


def stream_in_frames(
    samples: npt.NDArray[np.int16], rate: int, frame_ms: int = 20
) -> tuple[npt.NDArray[np.int16], list[int]]:
    """Feed `samples` as AudioFrames through a StreamResampler to 24 kHz; output and chunk sizes."""
    resampler = StreamResampler(rate, 24000, num_channels_in=1)
    frame = AudioFrame.from_array(samples, rate)
    chunks = [resampler.push(f) for f in iter_frames(frame, frame_ms)]
    chunks.append(resampler.flush())
    return np.concatenate(chunks), [len(c) for c in chunks]


def oneshot_reference(samples: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    """The whole signal downmixed and resampled at once: what the stream must reproduce."""
    channels = samples.shape[1] if samples.ndim == 2 else 1
    return float_to_int16(soxr.resample(downmix(samples, channels), rate, 24000, quality="HQ"))


def dominant_frequency(x: npt.NDArray[np.int16], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


@pytest.mark.parametrize("frame_ms", [20, 10])
def test_stream_equals_oneshot_for_a_997hz_tone_48k_stereo(frame_ms: int) -> None:
    stereo = to_stereo(tone(997, 48000, 3.0))
    out, _ = stream_in_frames(stereo, 48000, frame_ms)
    ref = oneshot_reference(stereo, 48000)
    # soxr's stream removes its own filter delay: no lag to trim, lengths match exactly.
    assert len(out) == len(ref) == 72000
    assert snr_db(ref, out) >= 100


def test_stream_equals_oneshot_for_speech_48k_stereo(speech_48k: npt.NDArray[np.int16]) -> None:
    stereo = to_stereo(speech_48k)
    out, _ = stream_in_frames(stereo, 48000)
    ref = oneshot_reference(stereo, 48000)
    assert len(out) == len(ref) == len(speech_48k) // 2
    assert snr_db(ref, out) >= 100
    # And the reference is itself a faithful resample (not a trivially matching artefact):
    # back to 48 kHz it is close to the downmixed input.
    mono48 = float_to_int16(downmix(stereo, 2))
    back = resample_oneshot(ref, 24000, 48000)
    assert snr_db(mono48[1000:-1000], back[1000:-1000]) > 20


@pytest.mark.parametrize(
    ("rate", "channels"), [(48000, 2), (48000, 1), (16000, 1), (44100, 2), (8000, 1)]
)
def test_output_duration_equals_input_duration(rate: int, channels: int) -> None:
    """The seed's wrong-speed bugs: stereo read as mono (0.5x) and mono read as stereo (2x)."""
    mono = tone(997, rate, 2.0)
    samples = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    out, sizes = stream_in_frames(samples, rate)
    assert len(out) == 48000  # exactly two seconds at 24 kHz
    # Output never runs ahead of the input, and the lag stays bounded instead of growing: soxr
    # HQ emits in blocks, holding back up to ~36 ms at 48 kHz and ~60 ms at 8 kHz.
    produced = np.cumsum(sizes[:-1])
    consumed = np.arange(1, len(produced) + 1) * 24000 * 20 // 1000
    assert np.all(produced <= consumed + 1)
    assert np.all(consumed - produced <= 24000 * 80 // 1000)
    assert dominant_frequency(out, 24000) == pytest.approx(997, abs=1.0)


def test_downmix_averages_channels() -> None:
    x = tone(997, 48000, 0.1)
    silent = downmix(np.stack([x, -x], axis=1), 2)
    assert np.max(np.abs(silent)) < 1e-6
    half = downmix(np.stack([x, np.zeros_like(x)], axis=1), 2)
    assert np.allclose(half, x / 65536.0, atol=1e-7)
    interleaved = np.stack([x, np.zeros_like(x)], axis=1).reshape(-1)
    assert np.array_equal(downmix(interleaved, 2), half)
    four = np.stack([x, x, x, -x], axis=1)
    assert np.allclose(downmix(four, 4), x / 65536.0, atol=1e-7)
    with pytest.raises(ValueError, match="not a multiple of 2"):
        downmix(np.zeros(5, np.int16), 2)


def test_ndarray_chunks_use_the_configured_rate_and_channels() -> None:
    stereo = to_stereo(tone(440, 48000, 1.0))
    interleaved = StreamResampler(48000, 24000, num_channels_in=2)
    shaped = StreamResampler(48000, 24000)
    a = [interleaved.push(stereo[i : i + 960].reshape(-1)) for i in range(0, 48000, 960)]
    b = [shaped.push(stereo[i : i + 960]) for i in range(0, 48000, 960)]
    out_a = np.concatenate([*a, interleaved.flush()])
    out_b = np.concatenate([*b, shaped.flush()])
    assert np.array_equal(out_a, out_b)
    assert np.array_equal(out_a, oneshot_reference(stereo, 48000))


def test_rate_change_rebuilds_instead_of_playing_at_the_wrong_speed() -> None:
    resampler = StreamResampler(48000, 24000)
    first = AudioFrame.from_array(to_stereo(tone(997, 48000, 1.0)), 48000)
    second = AudioFrame.from_array(tone(997, 16000, 1.0), 16000)
    out_first = np.concatenate([resampler.push(f) for f in iter_frames(first)])
    out_second = np.concatenate([resampler.push(f) for f in iter_frames(second)])
    out_second = np.concatenate([out_second, resampler.flush()])
    assert resampler.input_rate == 16000
    total = np.concatenate([out_first, out_second])
    assert len(total) == 48000
    # Both halves are the same 997 Hz tone: neither was reinterpreted at another rate.
    assert dominant_frequency(total[:24000], 24000) == pytest.approx(997, abs=1.5)
    assert dominant_frequency(total[24000:], 24000) == pytest.approx(997, abs=1.5)


def test_input_converter_reads_the_format_from_each_frame() -> None:
    conv = InputAudioConverter(24000, quality="HQ")  # the reference's quality: equal streams
    native = AudioFrame.from_array(tone(997, 24000, 0.02), 24000)
    assert conv.convert(native) is native.data  # identity fast path: no copy

    stereo48 = AudioFrame.from_array(to_stereo(tone(997, 48000, 1.0)), 48000)
    out = b"".join(conv.convert(f) for f in iter_frames(stereo48)) + conv.flush()
    assert len(out) == 2 * 24000
    ref = oneshot_reference(stereo48.to_array(), 48000)
    assert snr_db(ref, np.frombuffer(out, "<i2")) >= 100

    # Switching back to native 24 kHz mono first flushes what the resampler still held.
    conv.convert(AudioFrame.from_array(tone(997, 8000, 0.2), 8000))
    passthrough = conv.convert(native)
    assert len(passthrough) > len(native.data)
    assert passthrough.endswith(native.data)
    with pytest.raises(ValueError, match="AudioFrame"):
        conv.convert(b"\x00\x00")  # type: ignore[arg-type]


def test_same_rate_stereo_is_only_downmixed() -> None:
    x = tone(997, 24000, 0.1)
    out = StreamResampler(24000, 24000).push(AudioFrame.from_array(np.stack([x, x], axis=1), 24000))
    assert np.array_equal(out, x)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="quality"):
        StreamResampler(48000, 24000, quality="best")
    with pytest.raises(ValueError, match="outside"):
        StreamResampler(4000, 24000)
    with pytest.raises(ValueError, match="non-empty"):
        resample_oneshot(np.zeros(0, np.int16), 48000, 24000)


def test_soxr_fast_call_and_public_method_give_the_same_stream() -> None:
    stereo = to_stereo(tone(997, 48000, 1.0))
    fast = StreamResampler(48000, 24000, num_channels_in=2)
    public = StreamResampler(48000, 24000, num_channels_in=2)
    public._process = None  # what a soxr without the private call gets
    assert fast._process is not None
    chunks = [stereo[i : i + 960] for i in range(0, len(stereo), 960)]
    a = np.concatenate([fast.push(c) for c in chunks] + [fast.flush()])
    b = np.concatenate([public.push(c) for c in chunks] + [public.flush()])
    assert np.array_equal(a, b)


def test_float_output_rounds_to_the_int16_output() -> None:
    stereo = to_stereo(tone(440, 44100, 0.5))
    as_int = StreamResampler(44100, 24000, num_channels_in=2)
    as_float = StreamResampler(44100, 24000, num_channels_in=2)
    ints, floats = [], []
    for i in range(0, len(stereo), 882):
        chunk = stereo[i : i + 882]
        ints.append(as_int.push(chunk))
        floats.append(as_float.push_float(chunk.tobytes(), 44100, 2).copy())
    ints.append(as_int.flush())
    floats.append(as_float.flush_float())
    rounded = np.clip(np.rint(np.concatenate(floats)), -32768, 32767).astype(np.int16)
    assert np.array_equal(rounded, np.concatenate(ints))


def _mean_lag_ms(resampler: StreamResampler, in_rate: int, out_rate: int) -> float:
    """How far, on average, the output trails the input fed in 20 ms frames."""
    lags, fed, out = [], 0, 0
    frame = np.zeros(in_rate // 50, np.int16)
    for _ in range(16):
        fed += out_rate // 50
        out += resampler.push(frame).size
        lags.append(fed - out)
    return 1000 * float(np.mean(lags[4:])) / out_rate


@pytest.mark.parametrize(
    ("in_rate", "out_rate", "most_ms"),
    [(48000, 24000, 12), (44100, 24000, 8), (8000, 24000, 1), (24000, 8000, 4), (48000, 8000, 4)],
)
def test_live_streams_hold_back_little_of_the_newest_audio(
    in_rate: int, out_rate: int, most_ms: float
) -> None:
    live = StreamResampler(in_rate, out_rate, quality="live")
    assert _mean_lag_ms(live, in_rate, out_rate) <= most_ms
    # what it avoids: soxr's default quality keeps ~20-40 ms of a live stream back
    assert _mean_lag_ms(StreamResampler(in_rate, out_rate), in_rate, out_rate) > 15


def test_live_quality_interpolates_up_and_filters_down() -> None:
    assert live_quality(8000, 24000) == "QQ" and live_quality(24000, 24000) == "QQ"
    assert live_quality(44100, 16000) == "LQ"  # many phases: soxr
    assert live_quality(48000, 24000) == "LQ"  # soxr holds back ~10 ms there, for 1/5 the CPU
    assert live_quality(24000, 8000) == "fir"  # where LQ holds back 21 ms
    # a 997 Hz tone keeps its shape
    for in_rate, out_rate in ((48000, 24000), (8000, 24000), (24000, 8000)):
        r = StreamResampler(in_rate, out_rate, quality="live")
        x = tone(997, in_rate, 1.0)
        step = in_rate // 50
        pieces = [r.push(x[i : i + step]) for i in range(0, x.size, step)]
        out = np.concatenate([*pieces, r.flush()])
        want = tone(997, out_rate, 1.0)
        assert out.size == want.size
        assert snr_db(want[500:-500], out[500:-500]) > 40
