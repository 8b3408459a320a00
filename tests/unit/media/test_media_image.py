"""JPEG encoding keeps the aspect ratio and never upscales; bad input is a ValueError."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from realtalk.media import FrameThrottler, data_url, encode_jpeg, encode_jpeg_async, fit_size


def decode(jpeg: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(jpeg))
    assert img.format == "JPEG"
    return img


def gradient(width: int, height: int) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    y = np.linspace(0, 255, height, dtype=np.uint8)
    return np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.uint8(128)), axis=-1)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1920, 1080), (1024, 576)),
        ((1080, 1920), (576, 1024)),
        ((640, 480), (640, 480)),
        ((4000, 10), (1024, 3)),
        ((3000, 3000), (1024, 1024)),
    ],
)
def test_resizes_keeping_aspect_ratio_and_never_upscales(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    img = Image.new("RGB", size, (10, 200, 30))
    out = decode(encode_jpeg(img))
    assert out.size == expected
    assert out.getpixel((out.width // 2, out.height // 2)) == pytest.approx((10, 200, 30), abs=4)


def test_custom_bounds() -> None:
    assert decode(encode_jpeg(gradient(1280, 720), max_width=640, max_height=640)).size == (
        640,
        360,
    )
    assert fit_size(1280, 720, 300, 100) == (178, 100)


def test_accepts_ndarray_rgba_and_encoded_bytes() -> None:
    rgb = gradient(200, 100)
    out = decode(encode_jpeg(rgb))
    assert out.size == (200, 100)
    # The colours survive (red grows left to right), so channels were not swapped or dropped.
    pixels = np.asarray(out)
    assert pixels[50, 190, 0] > 200 and pixels[50, 5, 0] < 50
    rgba = np.concatenate([rgb, np.full((100, 200, 1), 255, np.uint8)], axis=-1)
    assert decode(encode_jpeg(rgba)).mode == "RGB"
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format="PNG")
    assert decode(encode_jpeg(png.getvalue(), max_width=100)).size == (100, 50)


def test_accepts_av_video_frame() -> None:
    av = pytest.importorskip("av")
    frame = av.VideoFrame.from_ndarray(gradient(640, 360), format="rgb24")
    assert decode(encode_jpeg(frame, max_width=320)).size == (320, 180)


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x89PNG\r\n\x1a\n garbage",
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        "image.png",
        None,
    ],
)
def test_corrupt_or_empty_input_is_a_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        encode_jpeg(bad)


def test_truncated_jpeg_is_a_value_error() -> None:
    good = encode_jpeg(gradient(64, 64))
    with pytest.raises(ValueError):
        encode_jpeg(good[: len(good) // 3])


def test_a_decompression_bomb_is_refused_as_too_large() -> None:
    """A tiny PNG whose header claims 20000x20000 pixels: PIL refuses it before decoding, with
    its own error type, which must come out as the module's ValueError."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    png[16:24] = struct.pack(">II", 20000, 20000)  # IHDR width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # and its checksum
    with pytest.raises(ValueError, match="image too large"):
        encode_jpeg(bytes(png))


async def test_async_encoding_gives_the_same_bytes() -> None:
    img = gradient(300, 200)
    assert await encode_jpeg_async(img, quality=60) == encode_jpeg(img, quality=60)


def test_data_url() -> None:
    jpeg = encode_jpeg(gradient(8, 8))
    url = data_url(jpeg)
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == jpeg
    with pytest.raises(ValueError):
        data_url(b"")


def test_throttler_keeps_at_most_max_fps() -> None:
    now = [0.0]
    throttle = FrameThrottler(2.0, clock=lambda: now[0])
    kept = []
    for i in range(60):  # two seconds of 30 fps video
        now[0] = i / 30
        if throttle.ready():
            kept.append(i)
    assert kept == [0, 15, 30, 45]
    with pytest.raises(ValueError):
        FrameThrottler(0)
