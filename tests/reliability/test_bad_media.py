"""Bad audio and images: odd lengths, lying formats, silence, clipping, extreme values,
empty/huge/corrupt pictures. Each is refused with a clear ``ValueError`` where it enters, or
handled, and a live session goes on talking afterwards."""

from __future__ import annotations

import io
import itertools
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from realtalk.media import AudioFrame, InputAudioConverter, encode_jpeg
from tests.reliability.conftest import Ledger
from tests.reliability.rig import Rig, start_rig

AREA = "bad media"
RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 96000, 192000]
SMALL = settings(max_examples=150, deadline=None, database=None)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await start_rig()
    yield r
    await r.aclose()


# --- audio -------------------------------------------------------------------------------------


@SMALL
@given(
    data=st.binary(max_size=64),
    rate=st.integers(-10, 10**7) | st.sampled_from(RATES) | st.floats(allow_nan=False),
    channels=st.integers(-2, 12),
)
def test_audio_frames_cannot_lie_about_themselves(
    ledger: Ledger, data: bytes, rate: Any, channels: int
) -> None:
    """Any declared rate, channel count and byte length: a valid frame, or a ValueError that
    names the problem."""
    try:
        frame = AudioFrame(data, rate, channels)
    except ValueError as exc:
        assert any(w in str(exc) for w in ("sample_rate", "num_channels", "data length"))
        ledger.record(AREA, "AudioFrame with a wrong rate, channel count or length (refused)")
        return
    assert frame.samples_per_channel * 2 * channels == len(data)
    ledger.record(AREA, "AudioFrame with a wrong rate, channel count or length (refused)")


@st.composite
def _frame_runs(draw: st.DrawFn) -> list[AudioFrame]:
    """Runs of frames whose format changes from run to run, as a device switch would."""
    frames: list[AudioFrame] = []
    for _ in range(draw(st.integers(1, 4))):
        rate = draw(st.sampled_from(RATES))
        channels = draw(st.integers(1, 8))
        for _ in range(draw(st.integers(1, 5))):
            n = draw(st.integers(0, rate // 25))  # up to 40 ms, empty frames included
            style = draw(st.sampled_from(["noise", "silence", "clip", "extreme"]))
            if style == "silence":
                samples = np.zeros((n, channels), np.int16)
            elif style == "clip":
                samples = np.full((n, channels), 32767, np.int16)
                samples[::2] = -32768
            elif style == "extreme":
                samples = np.where(np.arange(n * channels) % 3, 32767, -32768).astype(np.int16)
                samples = samples.reshape(n, channels)
            else:
                rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
                samples = rng.integers(-32768, 32767, (n, channels), dtype=np.int16)
            frames.append(AudioFrame(samples.tobytes(), rate, channels))
    return frames


@SMALL
@given(frames=_frame_runs())
def test_the_converter_keeps_every_millisecond(ledger: Ledger, frames: list[AudioFrame]) -> None:
    """Whatever the formats, the 24 kHz mono output lasts as long as the input: no audio is
    dropped or duplicated at a format change, and extreme samples do not break the filter."""
    converter = InputAudioConverter(24000)
    out = b"".join(converter.convert(f) for f in frames) + converter.flush()
    assert len(out) % 2 == 0
    expected = sum(f.samples_per_channel * 24000 / f.sample_rate for f in frames)
    segments = 1 + sum(1 for a, b in itertools.pairwise(frames) if a.sample_rate != b.sample_rate)
    assert abs(len(out) // 2 - expected) <= 2 * segments + 1
    ledger.record(AREA, "audio: rate/channel switches, silence, clipping, extremes (converter)")


def _signal(kind: str, rate: int, channels: int, ms: int = 20) -> AudioFrame:
    n = rate * ms // 1000
    t = np.arange(n) / rate
    if kind == "silence":
        mono = np.zeros(n)
    elif kind == "clipping":
        mono = np.sign(np.sin(2 * np.pi * 300 * t)) * 40000  # past full scale, clipped below
    elif kind == "extreme":
        mono = np.where(np.arange(n) % 2, 32767.0, -32768.0)
    else:  # a tone: speech to the energy VAD
        mono = 0.3 * 32767 * np.sin(2 * np.pi * 440 * t)
    samples = np.clip(np.repeat(mono[:, None], channels, axis=1), -32768, 32767)
    return AudioFrame.from_array(samples.astype(np.int16), rate)


@pytest.mark.parametrize(
    ("kind", "rate", "channels"),
    [
        ("silence", 48000, 2),
        ("clipping", 48000, 1),
        ("extreme", 44100, 2),
        ("tone", 8000, 1),
        ("tone", 11025, 1),
        ("tone", 96000, 6),
        ("tone", 192000, 8),
        ("extreme", 16000, 1),
    ],
)
async def test_odd_audio_through_a_live_session(
    rig: Rig, ledger: Ledger, kind: str, rate: int, channels: int
) -> None:
    """One second of odd audio into the session; then the conversation goes on."""
    frame = _signal(kind, rate, channels)
    for _ in range(50):
        await rig.session.push_audio(frame)
    for _ in range(40):  # silence, so a turn the VAD opened can close
        await rig.session.push_audio(_signal("silence", rate, channels))
    await rig.idle()
    assert await rig.turn("are you there") == "You said: are you there."
    assert rig.events.fatal_errors() == []
    ledger.record(AREA, f"audio into a live session: {kind} {rate} Hz x{channels}")


async def test_raw_bytes_of_odd_length_are_refused_clearly(rig: Rig, ledger: Ledger) -> None:
    """Raw PCM bytes are read as int16 at the declared rate; half a sample is a clear error,
    and the session is unharmed."""
    for size in (1, 3, 961):
        with pytest.raises(ValueError, match="multiple of"):
            await rig.model.handle_audio_input(b"\x01" * size)
    await rig.model.handle_audio_input(b"\x00" * 960)  # whole samples are fine
    assert await rig.turn("still fine") == "You said: still fine."
    ledger.record(AREA, "raw audio bytes of odd length (ValueError)", tries=3)


# --- images ------------------------------------------------------------------------------------


def _png(width: int, height: int, *, declared: tuple[int, int] | None = None) -> bytes:
    """A PNG; with ``declared`` its header claims another size (a decompression bomb)."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    png = bytearray(buf.getvalue())
    if declared is not None:
        png[16:24] = struct.pack(">II", *declared)
        png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    return bytes(png)


def _jpeg(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 10)).save(buf, format="JPEG")
    return buf.getvalue()


BAD_IMAGES = [
    pytest.param(b"", id="empty-bytes"),
    pytest.param(b"\xff\xd8\xff\xe0" + b"\x00" * 100, id="jpeg-header-then-zeros"),
    pytest.param(_jpeg(64, 48)[:200], id="truncated-jpeg"),
    pytest.param(b"GIF89a" + b"\x01" * 50, id="corrupt-gif"),
    pytest.param(np.zeros((0, 10, 3), np.uint8), id="empty-array"),
    pytest.param(np.zeros((10, 10, 3), np.float32), id="float-array"),
    pytest.param(np.zeros((4, 4, 4, 4), np.uint8), id="4d-array"),
    pytest.param(np.zeros((10, 10, 2), np.uint8), id="two-channel-array"),
    pytest.param("not an image", id="a-string"),
    pytest.param(_png(1, 1, declared=(20000, 20000)), id="decompression-bomb"),
]


@pytest.mark.parametrize("image", BAD_IMAGES)
def test_bad_images_are_refused_with_a_value_error(ledger: Ledger, image: Any) -> None:
    try:
        encode_jpeg(image)
    except ValueError:
        ledger.record(AREA, "empty, corrupt or mis-shaped image to encode_jpeg (ValueError)")
        return
    except Exception as exc:
        ledger.record(
            AREA,
            "empty, corrupt or mis-shaped image to encode_jpeg (ValueError)",
            survived=0,
            lost=f"{type(exc).__name__} escaped instead of a ValueError",
        )
        raise
    pytest.fail("a bad image was encoded")


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(_png(1, 1), id="1x1"),
        pytest.param(_png(1, 3000), id="1x3000"),
        pytest.param(np.full((3000, 4000, 3), 255, np.uint8), id="12-megapixel-array"),
        pytest.param(np.zeros((5, 7, 4), np.uint8), id="rgba-array"),
        pytest.param(np.zeros((480, 640), np.uint8), id="gray-array"),
    ],
)
def test_odd_but_valid_images_fit_the_bounds(ledger: Ledger, image: Any) -> None:
    jpeg = encode_jpeg(image, max_width=1024, max_height=1024)
    with Image.open(io.BytesIO(jpeg)) as out:
        assert out.format == "JPEG"
        assert out.width <= 1024 and out.height <= 1024
    ledger.record(AREA, "tiny, huge or extreme-aspect image (encoded within bounds)")


@SMALL
@given(
    data=st.binary(max_size=300)
    | st.builds(lambda j, b: j[:b], st.just(_jpeg(32, 24)), st.integers(0, 800))
)
def test_random_bytes_never_escape_as_anything_but_value_error(ledger: Ledger, data: bytes) -> None:
    try:
        jpeg = encode_jpeg(data)
    except ValueError:
        pass
    else:
        assert jpeg[:2] == b"\xff\xd8"
    ledger.record(AREA, "random or truncated bytes as an image")


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(b"\xff\xd8\xff\xe0garbage", id="garbage"),
        pytest.param(_png(1, 1, declared=(20000, 20000)), id="decompression-bomb"),
    ],
)
async def test_corrupt_frames_in_a_vision_session_are_reported(
    ledger: Ledger, frame: bytes
) -> None:
    """A vision session given a corrupt camera frame says so (error event) and goes on."""
    r = await start_rig()
    try:
        r.session.vision = True
        await r.session.push_video(frame)
        await r.events.wait(
            lambda: any(e.get("code") == "invalid_image" for e in r.events.of("error"))
        )
        assert await r.turn("can you see") == "You said: can you see."
        assert r.events.fatal_errors() == []
    finally:
        await r.aclose()
    ledger.record(AREA, "corrupt camera frame in a vision session (reported, goes on)")
