"""G.711 against ITU code points, an independent implementation (audioop) and error bounds."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from realtalk.media import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


def i16(values: list[int]) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def decoded(data: bytes) -> list[int]:
    return np.frombuffer(data, dtype="<i2").tolist()


def test_ulaw_known_code_points() -> None:
    # G.711 µ-law: 0 -> 0xFF, full scale positive -> 0x80, full scale negative -> 0x00;
    # -1..-4 are below the 14-bit resolution and land on the smallest negative code 0x7E.
    assert ulaw_encode(i16([0, 32767, -32768, -1])) == bytes([0xFF, 0x80, 0x00, 0x7E])
    assert decoded(ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00, 0x7E]))) == [0, 0, 32124, -32124, -8]


def test_alaw_known_code_points() -> None:
    # G.711 A-law (even bits inverted): 0 -> 0xD5, -1 -> 0x55, full scale -> 0xAA / 0x2A.
    assert alaw_encode(i16([0, -1, 32767, -32768])) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert decoded(alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]


def test_matches_reference_implementation_for_every_value() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="audioop was removed in Python 3.13")
    pcm = ALL_INT16.astype("<i2").tobytes()
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)
    assert alaw_encode(pcm) == audioop.lin2alaw(pcm, 2)
    codes = bytes(range(256))
    assert ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes) == audioop.alaw2lin(codes, 2)


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_round_trip_error_is_within_half_a_step(
    encode: Callable[[Any], bytes], decode: Callable[[bytes], bytes]
) -> None:
    back = np.frombuffer(decode(encode(ALL_INT16)), dtype="<i2").astype(np.int32)
    err = np.abs(back - ALL_INT16.astype(np.int32))
    # Logarithmic companding: 16 steps per doubling of magnitude, so the error is at most half
    # a step, about 1/32 of the magnitude, plus half of the smallest step near zero.
    mag = np.abs(ALL_INT16.astype(np.int32))
    assert np.all(err <= mag / 32 + 8)
    assert np.all(err[mag < 64] <= 8)
    # Decoding then encoding again is the identity on code words, except µ-law's "negative
    # zero" 0x7F, which decodes to 0 and so encodes back as 0xFF.
    codes = bytes(range(256))
    expected = codes.replace(b"\x7f", b"\xff") if encode is ulaw_encode else codes
    assert encode(decode(codes)) == expected


def test_rejects_half_samples_and_wrong_dtype() -> None:
    with pytest.raises(ValueError, match="even byte length"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="int16"):
        alaw_encode(np.zeros(4, dtype=np.float32))
