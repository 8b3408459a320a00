"""The short polyphase FIR: clean in the speech band, aliases stopped, little held back, and the
same output however the stream is chunked."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from realtalk.media import StreamResampler
from realtalk.media.polyphase import PolyphaseStream, small_ratio
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.server.input_buffer import VadFeed
from tests.unit.media.media_signals import snr_db, tone

RATIOS = [(24000, 16000), (8000, 16000), (48000, 16000), (24000, 8000), (48000, 24000)]


def _stream(
    rates: tuple[int, int], x: npt.NDArray[np.float32], step: int
) -> npt.NDArray[np.float32]:
    s = PolyphaseStream(*rates)
    pieces = [s.resample_chunk(x[i : i + step]) for i in range(0, x.size, step)]
    pieces.append(s.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.concatenate(pieces)


@pytest.mark.parametrize("rates", RATIOS)
def test_a_tone_keeps_its_shape_and_the_stream_its_length(rates: tuple[int, int]) -> None:
    in_rate, out_rate = rates
    x = tone(997, in_rate, 1.0).astype(np.float32)  # 997 Hz: chunk edges fall mid-cycle
    out = _stream(rates, x, in_rate // 50)
    want = tone(997, out_rate, 1.0).astype(np.float32)
    assert out.size == want.size
    assert snr_db(want[200:-200], out[200:-200]) > 60


@pytest.mark.parametrize("rates", [(24000, 16000), (48000, 16000), (24000, 8000)])
def test_what_the_lower_rate_cannot_hold_is_stopped(rates: tuple[int, int]) -> None:
    in_rate, out_rate = rates
    above = tone(out_rate / 2 * 1.05, in_rate, 0.5).astype(np.float32)  # would alias into speech
    out = _stream(rates, above, in_rate // 50)[200:-200]
    rms_in = np.sqrt(np.mean(above.astype(np.float64) ** 2))
    assert 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2)) / rms_in) < -55


@pytest.mark.parametrize("rates", RATIOS)
def test_chunking_does_not_change_the_output(rates: tuple[int, int]) -> None:
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(rates[0] // 2) * 3000).astype(np.float32)
    whole = _stream(rates, x, x.size)
    for step in (1, 7, 160, rates[0] // 25):
        assert np.allclose(_stream(rates, x, step), whole, atol=0.05)


@pytest.mark.parametrize("rates", RATIOS)
def test_little_of_the_newest_audio_is_held_back(rates: tuple[int, int]) -> None:
    in_rate, out_rate = rates
    s = PolyphaseStream(in_rate, out_rate)
    fed = got = 0
    held = []
    for _ in range(20):
        got += s.resample_chunk(np.zeros(in_rate // 50, np.float32)).size
        fed += out_rate // 50
        held.append(1000 * (fed - got) / out_rate)
    assert max(held) <= 3.2  # soxr "MQ": ~21 ms from 24 to 16 kHz, 62 ms from 8 to 16 kHz


def test_only_small_ratios_are_taken_and_a_flush_starts_a_new_stream() -> None:
    assert small_ratio(24000, 16000) and not small_ratio(44100, 16000)
    with pytest.raises(ValueError, match="small ratio"):
        PolyphaseStream(44100, 16000)
    # StreamResampler's "fir" quality falls back to soxr for a ratio like that
    assert StreamResampler(44100, 16000, quality="fir").push(tone(997, 44100, 0.1)).size > 0
    s = PolyphaseStream(24000, 16000)
    x = tone(997, 24000, 0.2).astype(np.float32)
    first = np.concatenate([s.resample_chunk(x), s.resample_chunk(x[:0], last=True)])
    s.clear()
    again = np.concatenate([s.resample_chunk(x), s.resample_chunk(x[:0], last=True)])
    assert np.array_equal(first, again)


@pytest.mark.parametrize("fmt", ["audio/pcm", "audio/pcmu"])
def test_the_vad_hears_the_end_of_speech_within_a_few_ms(fmt: str) -> None:
    audio = AudioFormat.parse({"type": fmt})
    feed = VadFeed(audio)
    chunk = bytes(audio.bytes_for_ms(40))
    fed_ms = heard = 0.0
    for _ in range(10):
        heard += feed.convert(chunk).size / 16
        fed_ms += 40
    assert fed_ms - heard <= 3.2
