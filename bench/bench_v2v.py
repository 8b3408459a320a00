"""Voice to voice on the local server with the real engines: from the end of the user's speech in
the audio to the first frame of the agent's reply handed to the speaker.

Two passes in one run, each with its own server process (``--engine local``: Silero VAD, Whisper
tiny.en, the local LLM the server selects, Piper; partial transcripts as ``realtalk serve`` runs
by default, i.e. off on 2 cores):

- **ours**: the client asks for ``semantic_vad`` (Smart Turn decides when a pause ends the
  turn); Whisper in a short window; the transcript and the reply start speculatively in the pause.
- **baseline**: the pipeline before issue 9 (``bench.serve --baseline``): Whisper's 30 s window,
  no Smart Turn, no speculation, and the client's default turn rule (server VAD, 200 ms).

The client is a plain ``OpenAIRealtime`` and a speaker pulling ``next_frame`` in real time. Each
turn streams a spoken question (synthesised with Piper beforehand, 48 kHz, as a microphone would
deliver it, 20 ms frames in real time), waits for the reply's first frame and for
``response.done``, interrupts, and goes on.

The user's speech ends at the last loud sample of the clip; it was "spoken" 20 ms before the
frame holding it was pushed, less its offset in that frame. Stages, from events as they reach
the client:

- VAD: end of speech → ``speech_stopped`` (the silence the turn rule waits for included)
- STT: → ``input_audio_transcription.completed`` (near zero when the speculation was used)
- LLM + TTS: → first ``response.output_audio.delta`` (split between the two by running the
  engines directly on the same inputs, below)
- playout: → first frame of the reply handed out (jitter buffer and frame pacing)

The same engines, loaded in this process too, are run directly after each turn of ours (so both
see the same machine), one after the other: Whisper on the utterance, the LLM until its first
complete sentence, Piper on that sentence until its first audio. ``REALTALK_BENCH_SCRIPTED_LLM=1``
puts the scripted LLM in place of the local one (to measure the rest where none is installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.common import Row, better_ratio, percentile, row
from bench.harness import Tap, live_call
from bench.serve import ServerProcess
from realtalk.media.frame import AudioFrame
from realtalk.media.playout import AudioOutput
from realtalk.media.resample import resample_oneshot
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.server.engines.sentences import complete_sentences_end

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

GOAL_MS = 800.0
GOAL_P90_MS = 1200.0
PASS_LIMIT_S = 240.0  # one end-to-end pass stops starting turns after this
SILENCE_RULE_MS = 200  # the client's default server_vad silence_duration_ms
MIC_RATE = 48000
FRAME = MIC_RATE // 50
WARM_UP = "Hello, can you hear me?"  # one turn first, not counted: first calls page things in
QUESTIONS = [
    "What is the capital of France?",
    "Can you tell me a joke about cats?",
    "How many days are there in a week?",
    "What color is the sky on a clear day?",
    "Please recommend a good book to read.",
    "What is two plus two?",
    "Tell me something interesting about the moon.",
    "How do I make a cup of tea?",
    "Which season do you like best?",
    "Where do penguins live?",
    "Give me a tip for sleeping better.",
    "Why do cats purr?",
]


@dataclass
class Clip:
    text: str
    frames: list[AudioFrame]
    pcm16k: np.ndarray  # float32, for the direct STT run
    speech_end: int  # sample index (48 kHz) just after the last loud sample

    def speech_ended(self, pushed: list[float]) -> float:
        """When the speech ended (perf_counter), given when each frame was pushed."""
        k = (self.speech_end - 1) // FRAME  # the frame holding the last loud sample
        # That frame was captured over the 20 ms before its push; speech ended inside it.
        return pushed[k] - (FRAME * (k + 1) - self.speech_end) / MIC_RATE


@dataclass
class Turn:
    total: float = float("nan")
    vad: float = float("nan")
    stt: float = float("nan")
    llm_tts: float = float("nan")
    playout: float = float("nan")
    transcript: str = ""
    calls: list[str] = field(default_factory=list)  # the tools the turn's replies called


@dataclass
class Direct:
    stt: list[float] = field(default_factory=list)
    llm_first_sentence: list[float] = field(default_factory=list)
    tts_first_audio: list[float] = field(default_factory=list)
    vad_per_turn: list[float] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    llm_threads: int = 0  # llama.cpp threads the server's LLM took


def _say(line: str) -> None:
    print(f"  v2v: {line}", file=sys.stderr, flush=True)


def _clips(texts: list[str]) -> list[Clip]:
    from realtalk.server.engines.piper import PiperVoice

    voice = PiperVoice()
    clips = []
    for text in texts:
        pcm = np.concatenate(list(voice.synthesize(text))).astype(np.int16)
        audio = np.asarray(resample_oneshot(pcm, voice.sample_rate, MIC_RATE), dtype=np.int16)
        loud = np.flatnonzero(np.abs(audio.astype(np.int32)) > 0.02 * 32768)
        speech_end = int(loud[-1]) + 1 if loud.size else audio.size
        lead = np.zeros(MIC_RATE * 3 // 10, dtype=np.int16)  # 300 ms of silence first
        padded = np.concatenate([lead, audio])
        padded = np.concatenate([padded, np.zeros((-padded.size) % FRAME, np.int16)])
        frames = [
            AudioFrame.from_array(padded[i : i + FRAME], MIC_RATE)
            for i in range(0, padded.size, FRAME)
        ]
        pcm16k = np.asarray(resample_oneshot(pcm, voice.sample_rate, 16000), np.float32) / 32768
        clips.append(Clip(text, frames, pcm16k, lead.size + speech_end))
    return clips


async def _end_to_end(
    base_url: str,
    clips: list[Clip],
    engines: DirectEngines | None,
    direct: Direct,
    turn_detection: dict[str, Any] | None = None,
    agent: Any = None,
    warm_up: bool = True,
) -> list[Turn]:
    """The turns of one call, the first left out if it is a ``warm_up``; ``agent``: its
    instructions and tools for the session (the client runs the tools), else the server's
    defaults."""
    output = AudioOutput(sample_rate=24000, realtime=True)
    config = OpenAIRealtimeConfig()
    if turn_detection is not None:
        config = OpenAIRealtimeConfig(turn_detection=turn_detection)
    model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, config=config)
    if agent is not None:
        model.set_agent(agent)
    model.audio_output = output
    tap = Tap(model)
    first_frame: list[float] = []
    model.on("agent_speech_started", lambda _payload: first_frame.append(time.perf_counter()))
    stamps: dict[str, float] = {}
    transcripts: list[str] = []

    def stamp(name: str) -> Any:
        def hook(event: dict[str, Any], arrival: float) -> None:
            if name == "vad":  # the last end of turn counts (a pause mid-question ends one)
                stamps.clear()
                transcripts.clear()
            if name not in stamps:
                stamps[name] = arrival
                if name == "stt":
                    transcripts.append(str(event.get("transcript") or ""))

        return hook

    calls: list[str] = []

    def called(event: dict[str, Any], _arrival: float) -> None:
        item = event.get("item") or {}
        if item.get("type") == "function_call":
            calls.append(str(item.get("name")))

    tap.on("response.output_item.done", called)
    tap.on("input_audio_buffer.speech_stopped", stamp("vad"))
    tap.on("conversation.item.input_audio_transcription.completed", stamp("stt"))
    tap.on("response.output_audio.delta", stamp("delta"))

    turns: list[Turn] = []
    end = time.monotonic() + PASS_LIMIT_S
    async with live_call(model, output) as mic:
        await asyncio.sleep(1.0)
        for clip in clips:
            if time.monotonic() > end:
                _say(f"time limit of {PASS_LIMIT_S:.0f} s reached: {len(turns)} turns done")
                break
            stamps.clear()
            first_frame.clear()
            transcripts.clear()
            calls.clear()
            done = asyncio.ensure_future(tap.wait_for(lambda e: e["type"] == "response.done", 30.0))
            pushed = mic.play(clip.frames)
            while len(pushed) < len(clip.frames):
                await asyncio.sleep(0.02)
            await _until(lambda: bool(first_frame), 30.0)
            t_end = clip.speech_ended(pushed)
            turn = Turn(transcript=" ".join(transcripts), calls=list(calls))
            if first_frame:
                t_vad, t_stt = stamps.get("vad", np.nan), stamps.get("stt", np.nan)
                t_delta = stamps.get("delta", np.nan)
                turn.total = first_frame[0] - t_end
                turn.vad = t_vad - t_end
                turn.stt = t_stt - t_vad
                turn.llm_tts = t_delta - t_stt
                turn.playout = first_frame[0] - t_delta
            turns.append(turn)
            _say(
                ("warm-up " if warm_up and len(turns) == 1 else "")
                + f"{clip.text!r} → heard {turn.transcript!r}: {turn.total * 1000:.0f} ms "
                f"(vad {turn.vad * 1000:.0f}, stt {turn.stt * 1000:.0f}, llm+tts "
                f"{turn.llm_tts * 1000:.0f}, playout {turn.playout * 1000:.0f})"
                + (f", called {', '.join(turn.calls)}" if turn.calls else "")
            )
            await done
            await model.interrupt()
            await asyncio.sleep(0.3)
            if engines is not None:
                await asyncio.to_thread(engines.measure, clip, turn.transcript, direct)
                await asyncio.sleep(0.3)
    if not warm_up:
        return turns
    for values in (direct.stt, direct.llm_first_sentence, direct.tts_first_audio):
        del values[:1]  # the first clip is the warm-up
    del direct.vad_per_turn[:1], direct.replies[:1]
    return turns[1:]


async def _until(condition: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        await asyncio.sleep(0.005)
    return False


class DirectEngines:
    """The same engines as the server, loaded here, run one after the other on one turn's input
    (between the end-to-end turns, so both see the same machine)."""

    def __init__(self) -> None:
        from bench.serve import scripted_llm_if_asked
        from realtalk.server.engines import load_engines

        scripted_llm_if_asked()
        engines = load_engines("local", voice="piper")  # the server's own selection
        self.vad, self.stt = engines.vad, engines.transcriber
        self.llm, self.voice = engines.llm, engines.voice

    def measure(self, clip: Clip, heard: str, out: Direct) -> None:
        from realtalk.plugins.openai.config import DEFAULT_INSTRUCTIONS
        from realtalk.server.engines.base import ChatMessage, TextDelta
        from realtalk.server.engines.sentences import split_sentences

        stream = self.vad.create_stream()
        t0 = time.perf_counter()
        stream.feed(clip.pcm16k)
        out.vad_per_turn.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        text = self.stt.transcribe(clip.pcm16k).text
        out.stt.append(time.perf_counter() - t0)

        messages = [ChatMessage("system", DEFAULT_INSTRUCTIONS), ChatMessage("user", heard or text)]
        first, reply = asyncio.run(_first_sentence(self.llm, messages, TextDelta))
        out.llm_first_sentence.append(first)
        out.replies.append(reply)
        sentence = next(iter(split_sentences(reply)), reply) or "Okay."
        t0 = time.perf_counter()
        next(iter(self.voice.synthesize(sentence)))
        out.tts_first_audio.append(time.perf_counter() - t0)


async def _first_sentence(llm: Any, messages: list[Any], delta_type: type) -> tuple[float, str]:
    """Seconds until the streamed text holds a complete sentence (or ends), and that text."""
    text = ""
    t0 = time.perf_counter()
    first = float("nan")
    async with contextlib.aclosing(llm.stream(messages, tools=[])) as chunks:
        async for chunk in chunks:
            if isinstance(chunk, delta_type):
                text += chunk.text  # type: ignore[attr-defined]
                if complete_sentences_end(text) is not None:
                    first = time.perf_counter() - t0
                    break
    if first != first:  # no sentence end before the reply ended: the whole reply is voiced
        first = time.perf_counter() - t0
    return first, text


def _p50_ms(values: list[float]) -> float:
    clean = [v * 1000 for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


#: Ours: semantic_vad, so Smart Turn decides when a pause ends the turn (eagerness "auto").
OURS_TURNS = {"type": "semantic_vad", "eagerness": "auto"}


def _e2e(
    clips: list[Clip], engines: DirectEngines | None, *, baseline: bool
) -> tuple[list[Turn], Direct]:
    label = "the pipeline before issue 9 (baseline)" if baseline else "ours"
    _say(f"starting the local server: {label}")
    direct = Direct()
    with ServerProcess("local", voice="piper", baseline=baseline, start_timeout_s=300) as s:
        # the baseline keeps the client's default turn rule of the time: server VAD, 200 ms
        detection = None if baseline else OURS_TURNS
        turns = asyncio.run(_end_to_end(s.base_url, clips, engines, direct, detection))
        direct.llm_threads = s.llm_threads
    return turns, direct


def _stages(turns: list[Turn]) -> dict[str, float]:
    return {
        "VAD": _p50_ms([t.vad for t in turns]),
        "STT": _p50_ms([t.stt for t in turns]),
        "LLM+TTS": _p50_ms([t.llm_tts for t in turns]),
        "playout": _p50_ms([t.playout for t in turns]),
    }


def _totals(turns: list[Turn]) -> list[float]:
    return [t.total * 1000 for t in turns if t.total == t.total]


def _shares(stages: dict[str, float]) -> str:
    total = sum(v for v in stages.values() if v == v)
    return ", ".join(f"{k} {v:.0f} ms ({100 * v / total:.0f} %)" for k, v in stages.items())


def run(quick: bool = False) -> list[Row]:
    n = 3 if quick else len(QUESTIONS)
    load = os.getloadavg()
    _say("synthesising the questions with Piper")
    clips = _clips([WARM_UP, *QUESTIONS[:n]])
    _say("loading the engines here too, for the direct runs")
    engines = DirectEngines()
    turns, direct = _e2e(clips, engines, baseline=False)
    base_turns, base_direct = _e2e(clips, None, baseline=True)
    load_after = os.getloadavg()

    totals, base_totals = _totals(turns), _totals(base_turns)
    p50 = statistics.median(totals) if totals else float("nan")
    p90 = percentile(totals, 90) if totals else float("nan")
    b50 = statistics.median(base_totals) if base_totals else float("nan")
    b90 = percentile(base_totals, 90) if base_totals else float("nan")
    stages, base_stages = _stages(turns), _stages(base_turns)
    llm, tts = _p50_ms(direct.llm_first_sentence), _p50_ms(direct.tts_first_audio)
    llm_share = llm / (llm + tts) if llm + tts > 0 else float("nan")
    loads = (
        f"load average {load[0]:.1f} at start, {load_after[0]:.1f} at end (2 cores); llama.cpp "
        f"threads: ours {direct.llm_threads}, baseline {base_direct.llm_threads}"
    )
    return [
        row(
            f"voice-to-voice, local server, real engines: p50 over {len(totals)} turns, ms",
            p50,
            b50,
            ratio=better_ratio(p50, b50, lower_is_better=True),
            goal=f"p50 ≤ {GOAL_MS:.0f} ms",
            met=bool(totals) and p50 <= GOAL_MS,
            note=(
                f"ours: Smart Turn (semantic_vad auto), short Whisper window, speculative "
                f"transcript and reply; baseline in the same run: the pipeline before issue 9 "
                f"(30 s Whisper window, server VAD 200 ms, no speculation); {loads}; stage p50s "
                f"(share): {_shares(stages)}; LLM+TTS split by the direct runs: LLM to first "
                f"sentence ~{llm_share * stages['LLM+TTS']:.0f} ms, TTS first audio "
                f"~{(1 - llm_share) * stages['LLM+TTS']:.0f} ms; baseline stages: "
                f"{_shares(base_stages)}"
            ),
        ),
        row(
            f"voice-to-voice p90 over {len(totals)} turns, ms",
            p90,
            b90,
            ratio=better_ratio(p90, b90, lower_is_better=True),
            goal=f"p90 ≤ {GOAL_P90_MS:.0f} ms",
            met=bool(totals) and p90 <= GOAL_P90_MS,
            note=f"max {max(totals, default=float('nan')):.0f} ms; {loads}",
        ),
        row(
            "voice-to-voice: the engines alone (direct, same inputs), p50 ms",
            SILENCE_RULE_MS + _p50_ms(direct.stt) + llm + tts,
            goal="report",
            note=(
                f"silence rule {SILENCE_RULE_MS} ms + Whisper {_p50_ms(direct.stt):.0f} ms + LLM "
                f"first sentence {llm:.0f} ms + Piper first audio {tts:.0f} ms; Silero "
                f"{_p50_ms(direct.vad_per_turn):.1f} ms of compute per utterance"
            ),
        ),
    ]
