"""WAV reading and writing across rates, channel counts and sample encodings."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest

from realtalk.media import AudioFrame, iter_frames, read_wav, write_wav


def _random_pcm(n: int, channels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-32768, 32768, size=(n, channels), dtype=np.int16)


@pytest.mark.parametrize(
    ("rate", "channels"), [(8000, 1), (11025, 2), (22050, 3), (44100, 5), (96000, 8)]
)
def test_round_trip_of_odd_rates_and_channel_counts(
    tmp_path: Path, rate: int, channels: int
) -> None:
    samples = _random_pcm(rate // 7, channels)
    frame = AudioFrame.from_array(samples if channels > 1 else samples[:, 0], rate)
    path = tmp_path / "x.wav"
    write_wav(path, frame)
    back = read_wav(path)
    assert back == frame
    with wave.open(str(path)) as w:  # a standard file any player reads
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (rate, channels, 2)


def test_write_raw_pcm_and_arrays(tmp_path: Path) -> None:
    samples = _random_pcm(100, 2)
    write_wav(tmp_path / "a.wav", samples.tobytes(), 16000, 2)
    write_wav(tmp_path / "b.wav", samples, 16000)
    assert read_wav(tmp_path / "a.wav") == read_wav(tmp_path / "b.wav")
    assert np.array_equal(read_wav(tmp_path / "b.wav").to_array(), samples)
    with pytest.raises(ValueError, match="sample_rate is required"):
        write_wav(tmp_path / "c.wav", samples.tobytes())
    with pytest.raises(ValueError, match="contradicts"):
        write_wav(tmp_path / "c.wav", AudioFrame(b"", 8000), 16000)


def _write_stdlib(path: Path, raw: bytes, width: int, rate: int, channels: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(raw)


def test_reads_8_24_and_32_bit_integer_pcm(tmp_path: Path) -> None:
    expected = np.array([0, 256, -256, 32512, -32768, 12800], dtype=np.int16)
    u8 = ((expected >> 8) + 128).astype(np.uint8).tobytes()
    _write_stdlib(tmp_path / "u8.wav", u8, 1, 8000, 1)
    as32 = expected.astype(np.int32) << 16 | 0x1234  # low bits must be dropped, not rounded up
    _write_stdlib(tmp_path / "s32.wav", as32.astype("<i4").tobytes(), 4, 8000, 2)
    s24 = b"".join(struct.pack("<i", int(v) << 8 | 0x56)[:3] for v in expected)
    _write_stdlib(tmp_path / "s24.wav", s24, 3, 22050, 1)
    assert np.array_equal(read_wav(tmp_path / "u8.wav").to_array(), expected)
    s32 = read_wav(tmp_path / "s32.wav")
    assert s32.num_channels == 2 and np.array_equal(s32.to_array().reshape(-1), expected)
    s24_frame = read_wav(tmp_path / "s24.wav")
    assert s24_frame.sample_rate == 22050 and np.array_equal(s24_frame.to_array(), expected)


def _riff(fmt_body: bytes, data: bytes) -> bytes:
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"  # odd-sized chunk with pad byte
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def test_reads_32_bit_float(tmp_path: Path) -> None:
    values = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5], dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 1, 24000, 24000 * 4, 4, 32)
    (tmp_path / "f.wav").write_bytes(_riff(fmt, values.tobytes()))
    frame = read_wav(tmp_path / "f.wav")
    assert frame.sample_rate == 24000
    assert frame.to_array().tolist() == [0, 16384, -16384, 32767, -32768, 32767]  # clipped


def test_reads_wave_format_extensible_24_bit(tmp_path: Path) -> None:
    expected = np.array([[100, -100], [32767, -32768]], dtype=np.int16)
    data = b"".join(struct.pack("<i", int(v) << 8)[:3] for v in expected.reshape(-1))
    guid_pcm = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 2, 48000, 48000 * 6, 6, 24, 22, 24, 3) + guid_pcm
    (tmp_path / "x.wav").write_bytes(_riff(fmt, data))
    frame = read_wav(tmp_path / "x.wav")
    assert (frame.sample_rate, frame.num_channels) == (48000, 2)
    assert np.array_equal(frame.to_array(), expected)


def test_rejects_non_wav_files(tmp_path: Path) -> None:
    (tmp_path / "n.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(ValueError, match="RIFF"):
        read_wav(tmp_path / "n.wav")
    fmt = struct.pack("<HHIIHH", 2, 1, 8000, 8000, 1, 4)  # ADPCM
    (tmp_path / "adpcm.wav").write_bytes(_riff(fmt, b"\x00" * 8))
    with pytest.raises(ValueError, match="unsupported"):
        read_wav(tmp_path / "adpcm.wav")


def test_iter_frames_splits_into_20ms_frames() -> None:
    samples = _random_pcm(48000 // 50 * 3 + 100, 2)  # three 20 ms frames and a bit
    frame = AudioFrame.from_array(samples, 48000)
    frames = list(iter_frames(frame))
    assert [f.samples_per_channel for f in frames] == [960, 960, 960, 100]
    assert b"".join(f.data for f in frames) == frame.data
    padded = list(iter_frames(frame, 20, pad=True))
    assert padded[-1].samples_per_channel == 960 and not any(padded[-1].data[400:])
