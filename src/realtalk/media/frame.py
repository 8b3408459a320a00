"""AudioFrame: a block of int16 PCM that always carries its own rate and channel count.

The seed's worst bug was audio at the wrong speed, because the sample rate and channel count were
hard-coded in one place and assumed in another. Here every block of audio says what it is, and a
frame that lies about itself (a byte count that is not whole samples) cannot be built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # pragma: no cover - typing only
    import av

MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 192000
MAX_CHANNELS = 8

_INT16_LE = np.dtype("<i2")


def check_format(sample_rate: int, num_channels: int) -> None:
    """Raise ValueError unless the rate and channel count describe audio we can handle."""
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool):
        raise ValueError(f"sample_rate must be an int, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"sample_rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"
        )
    if not isinstance(num_channels, int) or isinstance(num_channels, bool):
        raise ValueError(f"num_channels must be an int, got {num_channels!r}")
    if not 1 <= num_channels <= MAX_CHANNELS:
        raise ValueError(f"num_channels {num_channels} is outside 1..{MAX_CHANNELS}")


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """Interleaved little-endian int16 PCM with its sample rate and channel count.

    `data` holds `samples_per_channel * num_channels` int16 values, interleaved (L R L R ...).
    """

    data: bytes
    sample_rate: int
    num_channels: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            if isinstance(self.data, bytearray | memoryview):
                object.__setattr__(self, "data", bytes(self.data))
            else:
                raise ValueError(f"data must be bytes, got {type(self.data).__name__}")
        check_format(self.sample_rate, self.num_channels)
        block = 2 * self.num_channels
        if len(self.data) % block:
            raise ValueError(
                f"data length {len(self.data)} is not a multiple of {block} bytes "
                f"(int16 x {self.num_channels} channel(s)); the frame would hold a partial sample"
            )

    @property
    def samples_per_channel(self) -> int:
        return len(self.data) // (2 * self.num_channels)

    @property
    def duration_ms(self) -> float:
        return self.samples_per_channel * 1000.0 / self.sample_rate

    @classmethod
    def from_array(cls, array: npt.NDArray[Any], sample_rate: int) -> AudioFrame:
        """Build a frame from int16 samples shaped (n,) for mono or (n, channels)."""
        arr = np.asarray(array)
        if arr.dtype != np.int16:
            raise ValueError(
                f"from_array expects int16 samples, got {arr.dtype}; convert explicitly "
                "(e.g. float_to_int16) so the scaling is intended"
            )
        if arr.ndim == 1:
            channels = 1
        elif arr.ndim == 2:
            channels = arr.shape[1]
        else:
            raise ValueError(f"from_array expects shape (n,) or (n, channels), got {arr.shape}")
        data = np.ascontiguousarray(arr, dtype=_INT16_LE).tobytes()
        return cls(data, sample_rate, channels)

    @classmethod
    def silence(cls, duration_ms: float, sample_rate: int, num_channels: int = 1) -> AudioFrame:
        """A frame of zeros lasting `duration_ms` (rounded down to whole samples)."""
        check_format(sample_rate, num_channels)
        n = int(duration_ms * sample_rate // 1000)
        return cls(bytes(2 * n * num_channels), sample_rate, num_channels)

    def to_array(self) -> npt.NDArray[np.int16]:
        """A read-only int16 view of the data: shape (n,) when mono, (n, channels) otherwise."""
        arr = np.frombuffer(self.data, dtype=_INT16_LE)
        if self.num_channels == 1:
            return arr
        return arr.reshape(-1, self.num_channels)

    @classmethod
    def from_av(cls, frame: av.AudioFrame) -> AudioFrame:
        """Convert a PyAV/aiortc audio frame (s16/s16p/flt/fltp, any layout) to int16 interleaved.

        The rate and channel count are read from the frame itself, never assumed.
        """
        fmt = frame.format.name
        channels = len(frame.layout.channels)
        n = frame.samples
        arr: npt.NDArray[Any] = frame.to_ndarray()
        if fmt in ("s16", "flt", "dbl", "s32"):  # packed: one plane, interleaved
            inter: npt.NDArray[Any] = arr.reshape(-1)[: n * channels]
        elif fmt in ("s16p", "fltp", "dblp", "s32p"):  # planar: one row per channel
            inter = arr[:channels, :n].T.reshape(-1)
        else:
            raise ValueError(f"unsupported PyAV audio format {fmt!r}")
        if inter.dtype == np.int16:
            pcm = inter
        elif inter.dtype == np.int32:
            pcm = (inter >> 16).astype(np.int16)
        else:
            pcm = float_to_int16(inter)
        data = np.ascontiguousarray(pcm, dtype=_INT16_LE).tobytes()
        return cls(data, int(frame.sample_rate), channels)

    def to_av(self) -> av.AudioFrame:
        """A packed s16 PyAV frame (pts left unset: the transport owns the timeline)."""
        import av

        arr = np.frombuffer(self.data, dtype=_INT16_LE).reshape(1, -1)
        out = av.AudioFrame.from_ndarray(arr, format="s16", layout=_layout_name(self.num_channels))
        out.sample_rate = self.sample_rate
        return out


_new_frame = object.__new__
# The slots' own setters: they bypass the frozen dataclass's __setattr__ (and its checks).
_set_data: Callable[[AudioFrame, bytes], None] = vars(AudioFrame)["data"].__set__
_set_rate: Callable[[AudioFrame, int], None] = vars(AudioFrame)["sample_rate"].__set__
_set_channels: Callable[[AudioFrame, int], None] = vars(AudioFrame)["num_channels"].__set__


def frame_unchecked(data: bytes, sample_rate: int, num_channels: int = 1) -> AudioFrame:
    """An AudioFrame built without ``__post_init__``'s checks, for a producer that cut ``data``
    itself from audio whose format it already checked (the playout hands out 50 frames a
    second per session: the checks were a third of its cost per frame).

    The caller guarantees what the checks would: ``data`` is ``bytes`` of whole samples and
    the format passed :func:`check_format`.
    """
    frame: AudioFrame = _new_frame(AudioFrame)
    _set_data(frame, data)
    _set_rate(frame, sample_rate)
    _set_channels(frame, num_channels)
    return frame


def _layout_name(num_channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(num_channels, f"{num_channels}c")


def float_to_int16(x: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    """Scale float samples in [-1, 1] to int16, rounding to nearest and clipping."""
    y = np.multiply(x, np.float32(32768.0), dtype=np.float32)  # a new array: x is untouched
    np.rint(y, out=y)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16)
