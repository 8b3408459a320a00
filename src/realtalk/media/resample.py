"""Streaming resampling to mono, built on soxr.

Why streaming: resampling each 20 ms chunk on its own (the seed used `scipy.signal.resample`
per chunk) treats every chunk as a periodic signal and clicks at every edge. A soxr stream keeps
its filter state across chunks, so the concatenated output equals a one-shot resample of the whole
signal.

Why the format is read from each frame: the seed hard-coded the input rate and channel count and
produced audio at 0.5x, 0.75x or 2x speed when the browser sent something else. A stream here
follows the frames it is given and never reinterprets samples.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from .frame import MAX_CHANNELS, AudioFrame, check_format
from .polyphase import PolyphaseStream, small_ratio

logger = logging.getLogger("realtalk.media")

_EMPTY_I16: npt.NDArray[np.int16] = np.zeros(0, dtype=np.int16)
_EMPTY_F32: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
# 0-d arrays, not NumPy scalars: a ufunc converts a scalar operand on every call (~1 µs each).
_I16_MAX = np.array(32767.0, dtype=np.float32)
_I16_MIN = np.array(-32768.0, dtype=np.float32)
_INT16_LE = np.dtype("<i2")
_INV_CHANNELS = {c: np.array(1.0 / c, dtype=np.float32) for c in range(1, MAX_CHANNELS + 1)}
_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ", "live", "fir")


def downmix(samples: npt.NDArray[Any], num_channels: int = 1) -> npt.NDArray[np.float32]:
    """Average channels into float32 mono scaled to [-1, 1).

    `samples` is int16 or float (already in [-1, 1]); shape (n, channels), or 1-D interleaved
    with `num_channels` channels.
    """
    arr = np.asarray(samples)
    if arr.ndim == 1:
        if num_channels > 1:
            if arr.size % num_channels:
                raise ValueError(
                    f"{arr.size} interleaved samples is not a multiple of {num_channels} channels"
                )
            arr = arr.reshape(-1, num_channels)
    elif arr.ndim != 2:
        raise ValueError(f"expected shape (n,) or (n, channels), got {arr.shape}")
    if arr.dtype == np.int16:
        scale = 1.0 / 32768.0
    elif arr.dtype.kind == "f":
        scale = 1.0
    else:
        raise ValueError(f"expected int16 or float samples, got {arr.dtype}")
    if arr.ndim == 1 or arr.shape[1] == 1:
        mono = arr.reshape(-1).astype(np.float32)
        if scale != 1.0:
            mono *= np.float32(scale)
        return mono
    channels = arr.shape[1]
    if channels == 2:  # the common WebRTC case: two column adds beat a generic reduction
        mono = arr[:, 0].astype(np.float32)
        mono += arr[:, 1]
    else:
        mono = arr.sum(axis=1, dtype=np.float32)
    mono *= np.float32(scale / channels)
    return mono


class StreamResampler:
    """Resample a stream of chunks to int16 mono at `output_rate`, keeping filter state.

    Channels are averaged to mono (in float32) before resampling, so the soxr stream itself is
    always mono and a change in channel count needs no rebuild. A change in input rate does:
    the old stream is flushed (its buffered tail is returned first) and a new one is started,
    so output is never produced at the wrong speed.

    ``quality`` is soxr's, or ``"fir"``: our short polyphase FIR (a few ms behind, for small
    ratios; others take :func:`live_quality`). ``"live"`` (what a listener waits on) picks
    :func:`live_quality` for each input rate: soxr's filtered qualities hold back 10-90 ms of a
    stream fed in 20 ms chunks, the live choice 0-3 ms at the rates a voice comes in.

    Why the stream is fed in int16 units (a mono sample of 1000 is 1000.0, not 1000/32768):
    int16 input then needs no rescaling on the way in or out, and since scaling by a power of two
    is exact in floating point, the output is bit-identical to resampling `downmix()` and
    converting with `float_to_int16`. Per 20 ms frame the hot path makes a handful of NumPy calls
    into buffers it keeps, because at 48 kHz the NumPy glue, not soxr, was most of the cost.
    """

    def __init__(
        self,
        input_rate: int,
        output_rate: int,
        *,
        num_channels_in: int = 1,
        quality: str = "HQ",
    ) -> None:
        check_format(input_rate, num_channels_in)
        check_format(output_rate, 1)
        if quality not in _QUALITIES:
            raise ValueError(f"quality must be one of {_QUALITIES}, got {quality!r}")
        self.output_rate = output_rate
        self.quality = quality
        self.num_channels_in = num_channels_in
        self.input_rate = input_rate
        self._stream: soxr.ResampleStream | PolyphaseStream | None = None
        self._wide = _EMPTY_F32  # interleaved input as float32, scaled by 1/channels
        self._mono = _EMPTY_F32  # the downmix fed to soxr
        self._build(input_rate)

    def _build(self, input_rate: int) -> None:
        self.input_rate = input_rate
        quality = self.quality
        small = small_ratio(input_rate, self.output_rate)
        if quality == "live" or (quality == "fir" and not small):
            quality = live_quality(input_rate, self.output_rate)
        if input_rate == self.output_rate:
            self._stream = None
        elif quality == "fir":
            self._stream = PolyphaseStream(input_rate, self.output_rate)
        else:
            self._stream = soxr.ResampleStream(
                input_rate, self.output_rate, 1, dtype="float32", quality=quality
            )
        # soxr's own call under resample_chunk, which first re-checks the dtype and reshapes
        # mono to a column and back: ~1.5 µs of a ~6 µs chunk. Our mono buffer is always a
        # float32 ndarray. The public method stays the fallback should soxr rename it.
        process = getattr(self._stream, "_process", None)
        self._process: Callable[[npt.NDArray[np.float32], bool], npt.NDArray[np.float32]] | None
        self._process = process if callable(process) else None

    def push(self, chunk: AudioFrame | npt.NDArray[Any]) -> npt.NDArray[np.int16]:
        """Resample one chunk; returns the int16 mono output that is ready so far.

        An AudioFrame carries its own rate and channels. An ndarray is taken at the stream's
        current input rate: shape (n, channels), or 1-D interleaved with `num_channels_in`
        channels; int16, or float in [-1, 1].
        """
        if isinstance(chunk, AudioFrame):
            return self.push_frame(chunk)
        samples = np.asarray(chunk)
        channels = samples.shape[1] if samples.ndim == 2 else self.num_channels_in
        if samples.dtype == np.int16 and 1 <= channels <= MAX_CHANNELS:
            if samples.ndim not in (1, 2) or samples.size % channels:
                downmix(samples, channels)  # raises the clear error
            samples = np.ascontiguousarray(samples)
            return self._push_int16(samples.reshape(-1), self.input_rate, channels)
        mono = downmix(samples, channels)
        mono *= np.float32(32768.0)  # downmix returned a new array: scaling it in place is safe
        self.num_channels_in = channels
        return self._resample(mono, self.input_rate, channels)

    def push_frame(self, frame: AudioFrame) -> npt.NDArray[np.int16]:
        """`push` for a frame, without the isinstance dispatch (the converter's hot path)."""
        samples = np.frombuffer(frame.data, dtype=_INT16_LE)
        return self._push_int16(samples, frame.sample_rate, frame.num_channels)

    def push_float(
        self, data: bytes | bytearray, rate: int, channels: int
    ) -> npt.NDArray[np.float32]:
        """`push` of interleaved int16 bytes (whole samples, a checked format), returning the
        output still in float32, in int16 units, neither rounded nor clipped.

        For a caller that gathers several chunks and rounds them once (the uplink's batches):
        rounding is per sample, so rounding the gathered output later gives the same int16 as
        :meth:`push`. The array is only valid until the next call.
        """
        samples = np.frombuffer(data, dtype=_INT16_LE)
        return self._resample_float(self._downmix_int16(samples, channels), rate, channels)

    def flush_float(self) -> npt.NDArray[np.float32]:
        """:meth:`flush` in float32 int16 units, unrounded (see :meth:`push_float`)."""
        return self._flush_float()

    def _push_int16(
        self, interleaved: npt.NDArray[np.int16], rate: int, channels: int
    ) -> npt.NDArray[np.int16]:
        mono = self._downmix_int16(interleaved, channels)
        return _round_to_int16(self._resample_float(mono, rate, channels))

    def _downmix_int16(
        self, interleaved: npt.NDArray[np.int16], channels: int
    ) -> npt.NDArray[np.float32]:
        """Interleaved int16 -> float32 mono in int16 units, in a buffer kept between calls."""
        n = interleaved.size // channels
        if self._wide.size < interleaved.size:
            self._wide = np.empty(interleaved.size, np.float32)
        if self._mono.size < n:
            self._mono = np.empty(n, np.float32)
        mono = self._mono[:n]
        if channels == 1:
            np.copyto(mono, interleaved, casting="unsafe")
        else:
            wide = self._wide[: interleaved.size]
            np.multiply(interleaved, _INV_CHANNELS[channels], out=wide)
            np.add(wide[0::channels], wide[1::channels], out=mono)
            for c in range(2, channels):
                mono += wide[c::channels]
        self.num_channels_in = channels
        return mono

    def _resample(
        self, mono: npt.NDArray[np.float32], rate: int, channels: int
    ) -> npt.NDArray[np.int16]:
        """`mono` (int16 units, overwritten) -> a new int16 array of the output ready so far."""
        return _round_to_int16(self._resample_float(mono, rate, channels))

    def _resample_float(
        self, mono: npt.NDArray[np.float32], rate: int, channels: int
    ) -> npt.NDArray[np.float32]:
        """`mono` (int16 units) -> the float32 output ready so far; may return `mono` itself."""
        head = _EMPTY_F32
        if rate != self.input_rate:
            logger.info(
                "input rate changed %d -> %d Hz: rebuilding resampler", self.input_rate, rate
            )
            check_format(rate, channels)
            head = self._flush_float()
            self._build(rate)
        out: npt.NDArray[np.float32]
        if self._stream is None:
            out = mono
        elif self._process is not None:
            out = self._process(mono[:, None], False)[:, 0]
        else:
            out = self._stream.resample_chunk(mono)
        if head.size:
            out = np.concatenate((head, out))
        return out

    def _flush_float(self) -> npt.NDArray[np.float32]:
        if self._stream is None:
            return _EMPTY_F32
        tail: npt.NDArray[np.float32] = self._stream.resample_chunk(_EMPTY_F32, last=True)
        self._stream.clear()
        return tail

    def flush(self) -> npt.NDArray[np.int16]:
        """Return the audio still inside the filter and reset, ready for a new stream."""
        tail = self._flush_float()
        if not tail.size:
            return _EMPTY_I16.copy()
        return _round_to_int16(tail)


def live_quality(input_rate: int, output_rate: int) -> str:
    """The quality for a stream somebody is waiting on (a user's voice on its way to the model,
    the agent's on its way to a caller); ``StreamResampler(quality="live")`` picks it for each
    input rate.

    soxr's filtered qualities work in blocks and hold back the newest audio of a stream fed in
    20 ms chunks, on average: 48 -> 24 kHz 23 ms at "HQ", ~10 ms at "LQ"; 24 -> 8 kHz 38 ms at
    "HQ", 21 ms at "LQ"; 8 -> 24 kHz 38 ms at "HQ". Its quick (cubic) stream holds back under
    1 ms. Upsampling takes the quick stream (interpolation adds no alias). Downsampling needs a
    real anti-alias filter: to a narrow band (16 kHz or less, where "LQ" holds back 20 ms or
    more) at a small ratio, our polyphase FIR ("fir", 1.5-3 ms behind; see
    :mod:`realtalk.media.polyphase`); otherwise soxr's "LQ", passing 80 % of the new band (9.6
    kHz of 12 at 24 kHz). Our FIR would hold back less there too, but costs ~25 µs a 20 ms
    chunk against soxr's ~5, on every frame of every browser's uplink.
    """
    if output_rate >= input_rate:
        return "QQ"
    return "fir" if output_rate <= 16000 and small_ratio(input_rate, output_rate) else "LQ"


def _round_to_int16(x: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    """Round int16-unit floats to nearest and clip, as a new int16 array; `x` is overwritten.

    The same result as `float_to_int16(x / 32768)` with one allocation instead of three. The
    cast is a separate `astype` because a ufunc casting into an int16 `out` is ~3x slower.
    """
    np.rint(x, out=x)
    np.minimum(x, _I16_MAX, out=x)
    np.maximum(x, _I16_MIN, out=x)
    return x.astype(_INT16_LE)


class InputAudioConverter:
    """Turn microphone frames of any rate and channel count into int16 mono bytes at one rate.

    The rate and channels are read from every frame. Frames already at the target rate and mono
    pass through untouched; others go through a ``"live"`` stream (little held back, see
    :class:`StreamResampler`) unless another quality is asked for. One stream follows the
    input: when the input format changes, the previous stream's tail is flushed first so no
    audio is lost or replayed later.
    """

    def __init__(self, target_rate: int = 24000, *, quality: str = "live") -> None:
        check_format(target_rate, 1)
        self.target_rate = target_rate
        self.quality = quality
        self._resampler: StreamResampler | None = None

    def convert(self, frame: AudioFrame) -> bytes:
        """int16 little-endian mono PCM at `target_rate` for this frame (may be empty)."""
        if not isinstance(frame, AudioFrame):
            raise ValueError(f"convert expects an AudioFrame, got {type(frame).__name__}")
        if frame.sample_rate == self.target_rate and frame.num_channels == 1:
            if self._resampler is None:
                return frame.data
            return self.flush() + frame.data
        if self._resampler is None:
            self._resampler = StreamResampler(
                frame.sample_rate,
                self.target_rate,
                num_channels_in=frame.num_channels,
                quality=self.quality,
            )
        return self._resampler.push_frame(frame).tobytes()

    def flush(self) -> bytes:
        """The resampler's buffered tail (call at end of input, e.g. before a manual commit)."""
        if self._resampler is None:
            return b""
        tail = self._resampler.flush()
        self._resampler = None
        return tail.astype("<i2", copy=False).tobytes()


def resample_oneshot(
    x: npt.NDArray[Any], in_rate: int, out_rate: int, quality: str = "HQ"
) -> npt.NDArray[Any]:
    """Resample a whole signal at once (files, tests); keeps dtype and channel layout."""
    arr = np.asarray(x)
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise ValueError(f"expected a non-empty (n,) or (n, channels) array, got {arr.shape}")
    check_format(in_rate, 1)
    check_format(out_rate, 1)
    if in_rate == out_rate:
        return arr.copy()
    out: npt.NDArray[Any] = soxr.resample(arr, in_rate, out_rate, quality=quality)
    return out
