"""AudioFrame: validation, numpy views and PyAV conversion."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.media import AudioFrame
from realtalk.media.frame import frame_unchecked


def test_properties_and_round_trip_through_numpy() -> None:
    stereo = np.arange(960 * 2, dtype=np.int16).reshape(960, 2)
    frame = AudioFrame.from_array(stereo, 48000)
    assert (frame.num_channels, frame.samples_per_channel) == (2, 960)
    assert frame.duration_ms == pytest.approx(20.0)
    assert frame.data[:4] == b"\x00\x00\x01\x00"  # interleaved, little-endian
    back = frame.to_array()
    assert back.shape == (960, 2)
    assert np.array_equal(back, stereo)
    assert not back.flags.owndata and not back.flags.writeable  # a view on the bytes
    mono = AudioFrame.from_array(stereo[:, 0], 16000)
    assert mono.to_array().shape == (960,)
    assert mono.duration_ms == pytest.approx(60.0)


@pytest.mark.parametrize(
    ("data", "rate", "channels", "message"),
    [
        (b"\x00" * 3, 24000, 1, "multiple of 2 bytes"),
        (b"\x00" * 6, 48000, 2, "multiple of 4 bytes"),
        (b"", 7999, 1, "outside 8000..192000"),
        (b"", 192001, 1, "outside"),
        (b"", 48000, 0, "num_channels 0"),
        (b"", 48000, 9, "num_channels 9"),
        (b"", 48000.0, 1, "must be an int"),
    ],
)
def test_invalid_frames_are_rejected(data: bytes, rate: int, channels: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AudioFrame(data, rate, channels)


def test_from_array_rejects_other_dtypes_and_shapes() -> None:
    with pytest.raises(ValueError, match="int16"):
        AudioFrame.from_array(np.zeros(10, dtype=np.float32), 24000)
    with pytest.raises(ValueError, match="shape"):
        AudioFrame.from_array(np.zeros((2, 2, 2), dtype=np.int16), 24000)


def test_silence() -> None:
    frame = AudioFrame.silence(20, 24000, 2)
    assert frame.samples_per_channel == 480 and frame.num_channels == 2 and not any(frame.data)


av = pytest.importorskip("av")


def _stereo(n: int) -> np.ndarray:
    left = np.arange(n, dtype=np.int16)
    return np.stack([left, -left], axis=1)


def test_from_av_packed_s16_stereo() -> None:
    samples = _stereo(960)
    src = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="stereo")
    src.sample_rate = 48000
    frame = AudioFrame.from_av(src)
    assert (frame.sample_rate, frame.num_channels) == (48000, 2)
    assert np.array_equal(frame.to_array(), samples)


def test_from_av_planar_s16_and_float() -> None:
    samples = _stereo(480)
    planar = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples.T), format="s16p", layout="stereo"
    )
    planar.sample_rate = 24000
    assert np.array_equal(AudioFrame.from_av(planar).to_array(), samples)
    floats = (samples.T / 32768.0).astype(np.float32)
    fltp = av.AudioFrame.from_ndarray(np.ascontiguousarray(floats), format="fltp", layout="stereo")
    fltp.sample_rate = 24000
    assert np.array_equal(AudioFrame.from_av(fltp).to_array(), samples)


def test_from_av_mono_reads_rate_from_the_frame() -> None:
    samples = np.arange(160, dtype=np.int16)
    src = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    src.sample_rate = 8000
    frame = AudioFrame.from_av(src)
    assert (frame.sample_rate, frame.num_channels, frame.duration_ms) == (8000, 1, 20.0)


def test_to_av_round_trip() -> None:
    frame = AudioFrame.from_array(_stereo(960), 48000)
    back = AudioFrame.from_av(frame.to_av())
    assert back == frame


def test_an_unchecked_frame_is_an_ordinary_frame() -> None:
    data = bytes(range(200)) * 2
    frame = frame_unchecked(data, 24000)
    assert frame == AudioFrame(data, 24000, 1)
    assert hash(frame) == hash(AudioFrame(data, 24000, 1))
    assert frame.samples_per_channel == 200 and frame_unchecked(data, 48000, 2).num_channels == 2
