"""Voice to voice through a real browser: the user's wait as the page itself measures it.

Chromium (headless, Debian's, driven by playwright) opens the agent's page; its microphone is a
WAV file (Piper speaking the v2v questions, 10 s apart); WebRTC carries the voice both ways, as
for a real user. The page measures each wait itself (``window.realtalk.waits()``): from the end
of the speech at its microphone to the first agent audio it plays, both read from the audio as
it passes through one AudioContext. That is the figure a user lives with; ``bench v2v`` stops at
the agent's speaker, before WebRTC, jitter buffers and the browser's playout.

The agent process (this one: ``WebRTCServer`` + ``AgentSession`` + ``OpenAIRealtime``) notes,
on the wall clock the page also reads, when the last loud microphone frame reached the model
(uplink), when ``speech_stopped`` arrived, and when the reply's first frame went to the WebRTC
track. Each wait splits into: uplink (page microphone → agent), turn + reply (agent: end of
speech → first frame out, i.e. v2v's figure), and downlink (first frame out → first sound the
page plays: Opus, RTP, the browser's jitter buffer and audio output).

Baseline, in the same run: the same page and questions against the pipeline before issue 9
(``bench.serve --baseline``). ``--quick`` (or ``REALTALK_BENCH_ENGINE=scripted``) uses the
scripted engines, for the transport's share alone.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Row, better_ratio, percentile, row
from bench.serve import ServerProcess

CHROMIUM = os.environ.get("REALTALK_CHROMIUM", "/usr/bin/chromium")
GOAL_MS = 1000.0
GAP_S = 10.0  # silence after each question: room for the answer before the next one
LEAD_S = 2.0  # silence before the first question: the call settles
INSTRUCTIONS = "You are a friendly voice assistant. Answer in one short sentence."
LOUD = 0.02  # the page's threshold too (peak level of speech)


def _say(line: str) -> None:
    print(f"  browser: {line}", file=sys.stderr, flush=True)


def _microphone(texts: list[str], folder: Path) -> Path:
    """One 48 kHz mono WAV: LEAD_S of silence, then each question followed by GAP_S."""
    from realtalk.media.resample import resample_oneshot
    from realtalk.server.engines.piper import PiperVoice

    voice = PiperVoice()
    parts = [np.zeros(int(48000 * LEAD_S), np.int16)]
    for text in texts:
        pcm = np.concatenate(list(voice.synthesize(text))).astype(np.int16)
        parts.append(np.asarray(resample_oneshot(pcm, voice.sample_rate, 48000), np.int16))
        parts.append(np.zeros(int(48000 * GAP_S), np.int16))
    path = folder / "questions.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(np.concatenate(parts).tobytes())
    return path


@dataclass
class AgentSide:
    """Wall-clock times (ms) noted in the agent process."""

    mic_loud: list[float] = field(default_factory=list)  # last loud frame of each utterance
    speech_stopped: list[float] = field(default_factory=list)
    first_frame: list[float] = field(default_factory=list)
    _last_loud: float = 0.0

    def frame(self, frame: Any) -> None:
        samples = np.frombuffer(frame.data, dtype="<i2")
        if samples.size and int(np.abs(samples).max()) >= LOUD * 32768:
            self._last_loud = time.time() * 1000

    def stopped(self) -> None:
        self.speech_stopped.append(time.time() * 1000)
        self.mic_loud.append(self._last_loud)


def _chromium_args(microphone_wav: Path) -> list[str]:
    """A headless Chromium whose microphone plays ``microphone_wav`` once, then silence."""
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


def _after(times: list[float], t: float, within_ms: float = 15000) -> float | None:
    later = [x for x in times if t <= x <= t + within_ms]
    return min(later) if later else None


async def _one_pass(base_url: str, wav: Path, n_questions: int, limit_s: float) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from realtalk.agent import Agent
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.session import AgentSession
    from realtalk.transports.webrtc import WebRTCServer

    side = AgentSide()
    sessions: list[AgentSession] = []

    async def entrypoint(ctx: Any) -> None:
        model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, api_key=None)
        original = model.handle_audio_input

        async def heard(frame: Any) -> None:
            side.frame(frame)
            await original(frame)

        model.handle_audio_input = heard  # type: ignore[method-assign]
        model.on("user_speech_ended", lambda _p: side.stopped())
        model.on("agent_speech_started", lambda _p: side.first_frame.append(time.time() * 1000))
        session = AgentSession(agent=Agent(instructions=INSTRUCTIONS), model=model)
        sessions.append(session)
        await session.start(ctx.transport)

    webrtc = WebRTCServer(entrypoint, "127.0.0.1", port=0)
    await webrtc.start()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=_chromium_args(wav))
            context = await browser.new_context(bypass_csp=True)
            page = await context.new_page()
            await page.goto(str(webrtc.url))
            await page.get_by_role("button", name="Connect").click()
            end = time.monotonic() + limit_s
            waits: list[dict[str, float]] = []
            while time.monotonic() < end and len(waits) < n_questions:
                await asyncio.sleep(1.0)
                waits = await page.evaluate("window.realtalk.waits()")
            metrics = await page.evaluate("window.realtalk.state.metrics.map(m => m.latency_ms)")
            await browser.close()
    finally:
        await webrtc.aclose()
    return {"waits": waits, "side": side, "agent_latency": metrics}


def _split(result: dict[str, Any]) -> list[dict[str, float]]:
    side: AgentSide = result["side"]
    out = []
    for wait in result["waits"]:
        if wait["wait_ms"] < 100:  # the microphone's own start, not an answer
            continue
        spoken_end, heard = wait["speech_end_wall_ms"], wait["agent_audio_wall_ms"]
        stopped = _after(side.speech_stopped, spoken_end)
        i = side.speech_stopped.index(stopped) if stopped is not None else None
        mic = side.mic_loud[i] if i is not None else None
        frame = _after(side.first_frame, stopped) if stopped is not None else None
        out.append(
            {
                "wait": wait["wait_ms"],
                "uplink": (mic - spoken_end) if mic else float("nan"),
                "agent": (frame - mic) if frame and mic else float("nan"),
                "downlink": (heard - frame) if frame else float("nan"),
            }
        )
    return out


def _p50(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def _pass(engine: str, wav: Path, n: int, *, baseline: bool) -> tuple[list[dict[str, float]], int]:
    """The pass's turns, and the llama.cpp threads its server's LLM took."""
    label = "baseline (the pipeline before issue 9)" if baseline else "ours"
    _say(f"{label}: starting the {engine} server")
    with ServerProcess(engine, voice="piper", baseline=baseline, start_timeout_s=300) as server:
        limit = LEAD_S + n * (GAP_S + 4.0) + 30.0
        result = asyncio.run(_one_pass(server.base_url, wav, n, limit))
        threads = server.llm_threads
    turns = _split(result)
    for t in turns:
        _say(
            f"{label}: waited {t['wait']:.0f} ms (uplink {t['uplink']:.0f}, agent "
            f"{t['agent']:.0f}, downlink {t['downlink']:.0f})"
        )
    agent = [x for x in result["agent_latency"] if isinstance(x, int | float)]
    _say(f"{label}: the agent's own latency figures: {[round(x) for x in agent]}")
    return turns, threads


def run(quick: bool = False) -> list[Row]:
    from bench.bench_v2v import QUESTIONS, WARM_UP

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found (scripts/setup installs Debian's chromium)")
    engine = os.environ.get("REALTALK_BENCH_ENGINE") or ("scripted" if quick else "local")
    texts = [WARM_UP, *QUESTIONS[: 3 if quick else len(QUESTIONS)]]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="realtalk-browser-bench-") as tmp:
        _say("synthesising the microphone with Piper")
        wav = _microphone(texts, Path(tmp))
        ours, threads = _pass(engine, wav, len(texts), baseline=False)
        base, base_threads = _pass(engine, wav, len(texts), baseline=True)
        ours, base = ours[1:], base[1:]  # the first turn is the warm-up
    load_after = os.getloadavg()
    waits, base_waits = [t["wait"] for t in ours], [t["wait"] for t in base]
    p50, b50 = _p50(waits), _p50(base_waits)
    split = ", ".join(f"{k} {_p50([t[k] for t in ours]):.0f} ms" for k in ("uplink", "agent"))
    split += f", downlink {_p50([t['downlink'] for t in ours]):.0f} ms"
    base_split = ", ".join(
        f"{k} {_p50([t[k] for t in base]):.0f} ms" for k in ("uplink", "agent", "downlink")
    )
    return [
        row(
            f"browser voice-to-voice ({engine} engines): the user's wait measured in the page, "
            f"p50 over {len(waits)} turns, ms",
            p50,
            b50,
            ratio=better_ratio(p50, b50, lower_is_better=True),
            goal=f"p50 ≤ {GOAL_MS:.0f} ms",
            met=bool(waits) and p50 <= GOAL_MS,
            note=(
                f"Chromium + WebRTC both ways; p90 {percentile(waits, 90) if waits else 0:.0f} ms;"
                f" split p50s: {split}; baseline (pipeline before issue 9, same run): "
                f"{base_split}; load average {load[0]:.1f} → {load_after[0]:.1f} on 2 cores; "
                f"llama.cpp threads: ours {threads}, baseline {base_threads}"
            ),
        )
    ]
