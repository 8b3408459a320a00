"""Vision frames: JPEG encoding that keeps the aspect ratio, and a frame-rate throttle.

Why: the seed squashed every video frame into 1024x1024 (aspect ratio lost) and encoded every
frame on the event loop. Here images are only ever scaled down, proportionally, encoding runs in a
thread, and `FrameThrottler` drops frames above the rate the model can use.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

ImageInput = Any  # PIL.Image.Image | av.VideoFrame | numpy RGB array | encoded image bytes


def _to_pil(image: ImageInput) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, bytes | bytearray | memoryview):
        if not len(image):
            raise ValueError("empty image data")
        try:
            img = Image.open(io.BytesIO(bytes(image)))
            img.load()
        except Image.DecompressionBombError as exc:
            # A header claiming more pixels than PIL will decode (not an OSError): a few bytes
            # that would take gigabytes once decoded.
            raise ValueError(f"image too large: {exc}") from exc
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ValueError(f"cannot decode image data: {exc}") from exc
        return img
    if isinstance(image, np.ndarray):
        return _array_to_pil(image)
    if type(image).__name__ == "VideoFrame" and hasattr(image, "to_image"):  # av.VideoFrame
        if not image.width or not image.height:
            raise ValueError("empty video frame")
        pil: Image.Image = image.to_image()
        return pil
    raise ValueError(f"unsupported image type {type(image).__name__}")


def _array_to_pil(arr: np.ndarray[Any, Any]) -> Image.Image:
    if arr.size == 0:
        raise ValueError(f"empty image array, shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {arr.dtype}")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4)):
        # uint8 (h, w) -> L, (h, w, 3) -> RGB, (h, w, 4) -> RGBA
        return Image.fromarray(np.ascontiguousarray(arr))
    raise ValueError(
        f"image arrays must be (h, w), (h, w, 3) RGB or (h, w, 4) RGBA, got {arr.shape}"
    )


def fit_size(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size within the bounds with the same aspect ratio; never larger than input."""
    if width <= 0 or height <= 0:
        raise ValueError(f"invalid image size {width}x{height}")
    if max_width <= 0 or max_height <= 0:
        raise ValueError(f"invalid bounds {max_width}x{max_height}")
    scale = min(1.0, max_width / width, max_height / height)
    if scale >= 1.0:
        return width, height
    new_width = max(1, min(max_width, round(width * scale)))
    new_height = max(1, min(max_height, round(height * scale)))
    return new_width, new_height


def encode_jpeg(
    image: ImageInput, *, max_width: int = 1024, max_height: int = 1024, quality: int = 75
) -> bytes:
    """Encode to JPEG, scaled down (never up) to fit max_width x max_height, aspect kept.

    Accepts a PIL image, an `av.VideoFrame`, a uint8 RGB/RGBA/gray ndarray or encoded image
    bytes. CPU-heavy: on the event loop use `encode_jpeg_async`.
    """
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in 1..95, got {quality}")
    img = _to_pil(image)
    size = fit_size(img.width, img.height, max_width, max_height)
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")  # JPEG has no alpha or palette
    if size != img.size:
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=quality)
    return out.getvalue()


async def encode_jpeg_async(
    image: ImageInput, *, max_width: int = 1024, max_height: int = 1024, quality: int = 75
) -> bytes:
    """`encode_jpeg` in a worker thread, so video never blocks the audio path."""
    return await asyncio.to_thread(
        encode_jpeg, image, max_width=max_width, max_height=max_height, quality=quality
    )


def data_url(jpeg_bytes: bytes, mime: str = "image/jpeg") -> str:
    """A `data:` URL for an encoded image (how the Realtime API takes `input_image`)."""
    if not jpeg_bytes:
        raise ValueError("empty image data")
    return f"data:{mime};base64,{base64.b64encode(jpeg_bytes).decode('ascii')}"


class FrameThrottler:
    """Lets at most `max_fps` frames per second through; `ready()` says whether to keep one."""

    def __init__(self, max_fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not max_fps > 0:
            raise ValueError(f"max_fps must be > 0, got {max_fps}")
        self.max_fps = max_fps
        self._interval = 1.0 / max_fps
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        """True (and the frame counts) when at least 1/max_fps passed since the last one kept."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        self._last = None
