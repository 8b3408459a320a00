"""WAV files in and out, as AudioFrames (int16, any rate and channel count).

Reading accepts what recorders and TTS tools actually write: 8/16/24/32-bit integer PCM and
32/64-bit float, plain or WAVE_FORMAT_EXTENSIBLE. The stdlib `wave` module handles plain integer
PCM; the rest is parsed here with numpy. Everything becomes int16, the format the rest of
realtalk speaks.
"""

from __future__ import annotations

import os
import struct
import wave
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from .frame import AudioFrame, check_format, float_to_int16

_PCM = 1
_FLOAT = 3
_EXTENSIBLE = 0xFFFE

PathLike = str | os.PathLike[str]


def read_wav(path: PathLike) -> AudioFrame:
    """Read a whole WAV file as one int16 AudioFrame with the file's rate and channels."""
    try:
        with wave.open(os.fspath(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
        samples = _int_to_int16(raw, width, channels)
    except (wave.Error, EOFError):
        rate, channels, samples = _read_riff(path)
    return AudioFrame(samples.astype("<i2", copy=False).tobytes(), rate, channels)


def _int_to_int16(raw: bytes, width: int, channels: int) -> npt.NDArray[np.int16]:
    usable = len(raw) - len(raw) % (width * channels)  # a truncated file ends mid-frame
    buf = np.frombuffer(raw, dtype=np.uint8, count=usable)
    if width == 1:  # 8-bit WAV is unsigned
        return ((buf.astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return buf.view("<i2").astype(np.int16)
    if width == 3:  # keep the top two bytes of each little-endian 24-bit sample
        return np.ascontiguousarray(buf.reshape(-1, 3)[:, 1:]).view("<i2").reshape(-1)
    if width == 4:
        return (buf.view("<i4") >> 16).astype(np.int16)
    raise ValueError(f"unsupported WAV sample width: {8 * width} bits")


def _read_riff(path: PathLike) -> tuple[int, int, npt.NDArray[np.int16]]:
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError(f"{os.fspath(path)!r} is not a RIFF/WAVE file")
    fmt: tuple[Any, ...] | None = None
    pos = 12
    while pos + 8 <= len(blob):
        chunk_id = blob[pos : pos + 4]
        (size,) = struct.unpack_from("<I", blob, pos + 4)
        body = blob[pos + 8 : pos + 8 + size]  # clamps a streamed file's oversized data chunk
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise ValueError("WAV fmt chunk is too short")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first 2 bytes of the SubFormat GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("WAV data chunk before fmt chunk")
            tag, channels, rate, bits = fmt
            check_format(rate, channels)
            return rate, channels, _decode(body, tag, bits, channels)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{os.fspath(path)!r} has no fmt/data chunk")


def _decode(body: bytes, tag: int, bits: int, channels: int) -> npt.NDArray[np.int16]:
    if tag == _PCM:
        return _int_to_int16(body, bits // 8, channels)
    if tag == _FLOAT and bits in (32, 64):
        width = bits // 8
        usable = len(body) - len(body) % (width * channels)
        x = np.frombuffer(body, dtype="<f4" if bits == 32 else "<f8", count=usable // width)
        return float_to_int16(x)
    raise ValueError(f"unsupported WAV encoding: format tag {tag}, {bits} bits")


def write_wav(
    path: PathLike,
    frame_or_pcm: AudioFrame | bytes | bytearray | npt.NDArray[np.int16],
    sample_rate: int | None = None,
    num_channels: int = 1,
) -> None:
    """Write 16-bit PCM. An AudioFrame brings its own format; raw PCM bytes or an int16 array
    need `sample_rate` (an array's channel count comes from its shape)."""
    if isinstance(frame_or_pcm, AudioFrame):
        frame = frame_or_pcm
        if sample_rate is not None and sample_rate != frame.sample_rate:
            raise ValueError(
                f"sample_rate {sample_rate} contradicts the frame's {frame.sample_rate}"
            )
    else:
        if sample_rate is None:
            raise ValueError("sample_rate is required when writing raw PCM")
        if isinstance(frame_or_pcm, np.ndarray):
            frame = AudioFrame.from_array(frame_or_pcm, sample_rate)
        else:
            frame = AudioFrame(bytes(frame_or_pcm), sample_rate, num_channels)
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(frame.num_channels)
        w.setsampwidth(2)
        w.setframerate(frame.sample_rate)
        w.writeframes(frame.data)


def iter_frames(
    frame: AudioFrame, frame_ms: int = 20, *, pad: bool = False
) -> Iterator[AudioFrame]:
    """Split into `frame_ms` frames; the last one is shorter unless `pad` fills it with silence."""
    if frame_ms <= 0:
        raise ValueError(f"frame_ms must be > 0, got {frame_ms}")
    step = 2 * frame.num_channels * max(1, frame.sample_rate * frame_ms // 1000)
    data = frame.data
    for start in range(0, len(data), step):
        chunk = data[start : start + step]
        if pad and len(chunk) < step:
            chunk += bytes(step - len(chunk))
        yield AudioFrame(chunk, frame.sample_rate, frame.num_channels)
