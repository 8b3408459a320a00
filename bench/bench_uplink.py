"""Uplink cost and quality: one 20 ms microphone frame -> an `input_audio_buffer.append` event.

Input: 48 kHz stereo int16 (what a browser sends over WebRTC). Output: 24 kHz mono int16, base64,
in a JSON event string.

- ours: the client's `AudioInput` (format read from the frame, frames gathered into batches of
  the default `append_batch_ms`, one live resampling stream, rounding and base64 once per batch)
  + `append_json` (no json.dumps)
- seed: per-chunk `scipy.signal.resample` of the interleaved samples treated as mono, to 24 kHz,
  then base64 + json.dumps (the seed plugin's method; see lessons.md items 2-3)

Both are timed in the same run with time.perf_counter. Quality is the SNR of the whole uplinked
signal against a one-shot soxr resample of the correctly downmixed input.

Run: `.venv/bin/python bench/bench_uplink.py`; or import and call `run()` (rows of figures).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

from realtalk.media import (
    AudioFrame,
    downmix,
    float_to_int16,
    read_wav,
    resample_oneshot,
)
from realtalk.plugins.openai.audio import AudioInput, append_json
from realtalk.plugins.openai.config import OpenAIRealtimeConfig
from realtalk.protocol import PCM24K

IN_RATE = 48000
OUT_RATE = 24000
FRAME_SAMPLES = IN_RATE // 50  # 20 ms
N_FRAMES = 2000
REPEATS = 7
SPEECH_TEXT = (
    "Hello! I would like to know the weather in Paris tomorrow morning, and whether I should "
    "take an umbrella. Also, please remind me to call my sister at six."
)

Uplink = Callable[[bytes], str]


def _event(pcm: bytes) -> str:
    audio = base64.b64encode(pcm).decode("ascii")
    return json.dumps({"type": "input_audio_buffer.append", "audio": audio})


def ours() -> tuple[Uplink, Callable[[], bytes]]:
    """The client's uplink for one stream (``AudioInput``: gathered frames, a live resampling
    stream, batches of the default ``append_batch_ms``, base64; the append's JSON by
    ``append_json``): frame bytes -> event string, '' while a batch fills."""
    batch_ms = OpenAIRealtimeConfig().append_batch_ms
    audio_in = AudioInput(PCM24K, raw_rate=IN_RATE, raw_channels=2, batch_ms=batch_ms)

    def uplink(data: bytes) -> str:
        payload = audio_in.push(AudioFrame(data, IN_RATE, 2))
        return append_json(payload) if payload else ""

    def flush() -> bytes:
        payload = audio_in.flush()
        return base64.b64decode(payload) if payload else b""

    return uplink, flush


def seed(signal: Any) -> Uplink:
    """The seed's uplink: interleaved stereo read as mono, FFT-resampled chunk by chunk."""

    def uplink(data: bytes) -> str:
        samples = np.frombuffer(data, dtype=np.int16)
        num = int(len(samples) * OUT_RATE / IN_RATE)
        resampled = signal.resample(samples, num).astype(np.int16)
        return _event(resampled.tobytes())

    return uplink


def _seed_mono_chunks(signal: Any, mono: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """The seed's per-chunk resampling on correct mono input: isolates the chunk-edge damage."""
    out = [
        signal.resample(mono[i : i + FRAME_SAMPLES], FRAME_SAMPLES // 2).astype(np.int16)
        for i in range(0, len(mono) - FRAME_SAMPLES + 1, FRAME_SAMPLES)
    ]
    return np.concatenate(out)


def _frames(stereo: npt.NDArray[np.int16]) -> list[bytes]:
    n = len(stereo) // FRAME_SAMPLES
    return [stereo[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].tobytes() for i in range(n)]


def _decode(events: Iterable[str]) -> npt.NDArray[np.int16]:
    chunks = [base64.b64decode(json.loads(e)["audio"]) for e in events if e]
    return np.frombuffer(b"".join(chunks), dtype="<i2")


def _reference(stereo: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    return float_to_int16(soxr.resample(downmix(stereo, 2), IN_RATE, OUT_RATE, quality="HQ"))


def snr_db(reference: npt.NDArray[Any], test: npt.NDArray[Any]) -> float:
    """SNR of `test` against `reference` over their common length (no realignment)."""
    n = min(len(reference), len(test))
    ref = reference[:n].astype(np.float64)
    noise = float(np.sum((ref - test[:n].astype(np.float64)) ** 2))
    return float("inf") if noise == 0 else 10 * float(np.log10(np.sum(ref * ref) / noise))


def tone_stereo(seconds: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(IN_RATE * seconds)) / IN_RATE
    left = 0.5 * np.sin(2 * np.pi * 997 * t)
    right = 0.3 * np.sin(2 * np.pi * 997 * t + 0.4)  # a real stereo pair, not two copies
    return float_to_int16(np.stack([left, right], axis=1))


def speech_stereo() -> npt.NDArray[np.int16] | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-w", str(path), SPEECH_TEXT], check=True, capture_output=True)
        frame = read_wav(path)
    mono = np.asarray(resample_oneshot(frame.to_array(), frame.sample_rate, IN_RATE), np.int16)
    right = np.concatenate([np.zeros(5, np.int16), (mono[:-5] * 0.7).astype(np.int16)])
    return np.stack([mono, right], axis=1)


def _time_per_frame(
    makers: dict[str, Callable[[], Uplink]], frames: list[bytes]
) -> dict[str, float]:
    """Best-of-REPEATS mean wall time per frame in µs for each uplink (a fresh stream each
    repeat). The candidates alternate inside each repeat so load changes hit them alike."""
    best = dict.fromkeys(makers, float("inf"))
    for _ in range(REPEATS):
        for name, make in makers.items():
            uplink = make()
            start = time.perf_counter()
            for data in frames:
                uplink(data)
            best[name] = min(best[name], (time.perf_counter() - start) / len(frames))
    return {name: value * 1e6 for name, value in best.items()}


def _quality(stereo: npt.NDArray[np.int16], signal: Any) -> tuple[float, float | None]:
    frames = _frames(stereo)
    stereo = stereo[: len(frames) * FRAME_SAMPLES]
    ref = _reference(stereo)
    uplink, flush = ours()
    events = [uplink(f) for f in frames]
    ours_out = np.concatenate([_decode(events), np.frombuffer(flush(), "<i2")])
    seed_snr = None if signal is None else snr_db(ref, _decode(seed(signal)(f) for f in frames))
    return snr_db(ref, ours_out), seed_snr


def _ratio(ours_value: float, baseline: float | None, higher_is_better: bool) -> float | None:
    if baseline is None or ours_value in (0, float("inf")) or baseline in (0, float("inf")):
        return None
    return ours_value / baseline if higher_is_better else baseline / ours_value


def run() -> list[dict[str, Any]]:
    """Measure; returns rows {figure, ours, baseline, ratio, goal} (baseline None if no scipy)."""
    try:
        from scipy import signal
    except ImportError:
        signal = None
        print("bench_uplink: scipy is not installed; skipping the seed baseline")

    tone = tone_stereo(N_FRAMES * 0.02)
    frames = _frames(tone)
    rows: list[dict[str, Any]] = []

    makers: dict[str, Callable[[], Uplink]] = {"ours": lambda: ours()[0]}
    if signal is not None:
        makers["seed"] = lambda: seed(signal)
    timings = _time_per_frame(makers, frames)
    ours_us, seed_us = timings["ours"], timings.get("seed")
    rows.append(
        {
            "figure": "uplink cost per 20 ms frame, 48k stereo -> 24k mono -> JSON (µs)",
            "ours": ours_us,
            "baseline": seed_us,
            "ratio": _ratio(ours_us, seed_us, higher_is_better=False),
            "goal": "faster than the seed (ratio = seed/ours > 1)",
        }
    )

    uplink, flush = ours()
    ours_ms = (sum(len(_decode([uplink(f)])) for f in frames) + len(flush()) // 2) / len(frames)
    seed_ms = None
    if signal is not None:
        seed_up = seed(signal)
        seed_ms = sum(len(_decode([seed_up(f)])) for f in frames) / len(frames)
    rows.append(
        {
            "figure": "audio uplinked per 20 ms input frame (ms at 24 kHz; speed = 20/x)",
            "ours": ours_ms / (OUT_RATE / 1000),
            "baseline": None if seed_ms is None else seed_ms / (OUT_RATE / 1000),
            "ratio": None,
            "goal": "20.0 (right speed)",
        }
    )

    tone_ours, tone_seed = _quality(tone_stereo(3.0), signal)
    rows.append(
        {
            "figure": "uplink SNR vs one-shot resample, 997 Hz stereo tone (dB)",
            "ours": tone_ours,
            "baseline": tone_seed,
            "ratio": None,
            "goal": ">= 100 dB",
        }
    )
    speech = speech_stereo()
    if speech is None:
        print("bench_uplink: espeak-ng is not installed; skipping the speech quality figure")
    else:
        speech_ours, speech_seed = _quality(speech, signal)
        rows.append(
            {
                "figure": "uplink SNR vs one-shot resample, espeak-ng speech, stereo (dB)",
                "ours": speech_ours,
                "baseline": speech_seed,
                "ratio": None,
                "goal": ">= 100 dB",
            }
        )
    if signal is not None:
        # Even with the channel bug fixed, per-chunk FFT resampling clicks at every chunk edge.
        mono = tone_stereo(3.0)[:, 0]
        dual_mono = np.stack([mono, mono], axis=1)
        ref = _reference(dual_mono)
        mono_ours, _ = _quality(dual_mono, None)
        rows.append(
            {
                "figure": "SNR with the speed bug fixed (mono tone): chunk-edge damage only (dB)",
                "ours": mono_ours,
                "baseline": snr_db(ref, _seed_mono_chunks(signal, mono)),
                "ratio": None,
                "goal": ">= 100 dB",
            }
        )
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "inf (identical)"
    return f"{value:.2f}"


def main() -> None:
    rows = run()
    print(f"{'figure':<74} {'ours':>16} {'seed':>10} {'ratio':>7}  goal")
    for row in rows:
        print(
            f"{row['figure']:<74} {_fmt(row['ours']):>16} {_fmt(row['baseline']):>10} "
            f"{_fmt(row['ratio']):>7}  {row['goal']}"
        )


if __name__ == "__main__":
    main()
