"""G.711 µ-law and A-law (ITU-T G.711), for 8 kHz telephone audio.

Encoding and decoding are table lookups: the tables (64 Ki entries to encode, 256 to decode) are
built once at import with the reference algorithm (the classic Sun/CCITT implementation), so
converting a 20 ms frame is one numpy indexing operation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # in the 14-bit domain (32635 >> 2)


def _segment(magnitude: npt.NDArray[np.int32], ends: tuple[int, ...]) -> npt.NDArray[np.int32]:
    """Index of the first segment whose end is >= magnitude (len(ends) when beyond all)."""
    seg: npt.NDArray[np.int32] = np.searchsorted(np.asarray(ends), magnitude, side="left").astype(
        np.int32
    )
    return seg


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(mag, (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF))
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> (seg + 1)) & 0xF))
    return _by_uint16_index((code ^ mask).astype(np.uint8))


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(mag, (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF))
    shift = np.where(seg < 2, 1, seg)
    code = np.where(seg >= 8, 0x7F, (seg << 4) | ((mag >> shift) & 0xF))
    return _by_uint16_index((code ^ mask).astype(np.uint8))


def _by_uint16_index(table_from_min: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Reorder a table built for -32768..32767 so it is indexed by the sample's uint16 bits."""
    return np.roll(table_from_min, -32768)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _ULAW_BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode()
ALAW_ENCODE = _build_alaw_encode()
ULAW_DECODE = _build_ulaw_decode()
ALAW_DECODE = _build_alaw_decode()
for _table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _table.setflags(write=False)


def _pcm_indices(pcm: bytes | bytearray | memoryview | npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise ValueError(f"G.711 encoding expects int16 samples, got {pcm.dtype}")
        return pcm.reshape(-1).view(np.uint16)
    if len(pcm) % 2:
        raise ValueError(f"int16 PCM must have an even byte length, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_encode(pcm: bytes | bytearray | memoryview | npt.NDArray[Any]) -> bytes:
    """int16 little-endian PCM (bytes or int16 array) -> µ-law bytes, one per sample."""
    return ULAW_ENCODE[_pcm_indices(pcm)].tobytes()


def alaw_encode(pcm: bytes | bytearray | memoryview | npt.NDArray[Any]) -> bytes:
    """int16 little-endian PCM (bytes or int16 array) -> A-law bytes, one per sample."""
    return ALAW_ENCODE[_pcm_indices(pcm)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """µ-law bytes -> int16 little-endian PCM bytes."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2", copy=False).tobytes()


def alaw_decode(data: bytes | bytearray | memoryview) -> bytes:
    """A-law bytes -> int16 little-endian PCM bytes."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2", copy=False).tobytes()
