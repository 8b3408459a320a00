"""Where a local turn's time goes: every engine call of the server on one clock with the client.

``.venv/bin/python -m bench.timeline [--turns N]`` plays ``bench v2v``'s questions to a local
server with the real engines and prints, for each turn, what the server's engines did and when,
in ms from the end of the user's speech (the last loud sample of the clip): Whisper (the pause's
speculation and the partial warm-up), Smart Turn, each LLM request and its first pieces, Piper,
``speech_stopped``, and the client's first audio delta and first frame handed to the speaker.

Not a figure (no baseline, no ratio): a tool to find what a turn waits for. The server runs in a
process of its own (``--serve``) with its engines' methods wrapped to print a stamp on stderr;
both processes read ``time.perf_counter``, one clock on Linux (``CLOCK_MONOTONIC``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

STAMP = "TIMELINE"
LLM_PIECES_SHOWN = 6


def _stamp(message: str) -> None:
    print(f"{STAMP} {time.perf_counter():.4f} {message}", file=sys.stderr, flush=True)


def _timed(owner: Any, name: str, describe: Callable[..., str]) -> None:
    """Wrap the blocking method ``owner.name`` with a stamp before and after."""
    inner = getattr(owner, name)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _stamp(f"{describe(*args)} starts")
        result = inner(self, *args, **kwargs)
        _stamp(f"{describe(*args)} ends: {result!r:.80}")
        return result

    setattr(owner, name, wrapper)


def _instrument() -> None:
    from realtalk.server import listening
    from realtalk.server.engines import piper, runtime, smart_turn, whisper

    _timed(
        whisper.WhisperTranscriber, "transcribe", lambda pcm: f"whisper {pcm.size / 16000:.2f} s"
    )
    _timed(smart_turn.SmartTurn, "probability", lambda pcm: "smart turn")

    synthesize = piper.PiperVoice.synthesize

    def voiced(self: Any, text: str) -> Iterator[Any]:
        _stamp(f"piper starts {text!r}")
        for i, chunk in enumerate(synthesize(self, text)):
            if i == 0:
                _stamp("piper's first audio")
            yield chunk

    complete = runtime.LlamaRuntime.complete

    def completed(self: Any, prompt: str, **kwargs: Any) -> Iterator[str]:
        _stamp(
            f"llm request: {kwargs.get('max_tokens')} tokens at most, prompt {len(prompt)} chars"
        )
        count = 0
        try:
            for piece in complete(self, prompt, **kwargs):
                count += 1
                if count <= LLM_PIECES_SHOWN:
                    _stamp(f"llm piece {count} {piece!r}")
                yield piece
        finally:
            _stamp(f"llm request ends after {count} pieces")

    stopped = listening.Listener._speech_stopped

    def speech_stopped(self: Any, audio_end_ms: int) -> None:
        _stamp(f"speech_stopped (audio_end_ms {audio_end_ms})")
        stopped(self, audio_end_ms)

    piper.PiperVoice.synthesize = voiced  # type: ignore[method-assign]
    runtime.LlamaRuntime.complete = completed  # type: ignore[method-assign]
    listening.Listener._speech_stopped = speech_stopped  # type: ignore[method-assign]


def _serve() -> None:
    from bench import serve

    _instrument()
    sys.argv = [sys.argv[0], "--engine", "local"]
    serve.main()


async def _play(base_url: str, turns: int) -> list[tuple[float, dict[str, float], str]]:
    """Each turn: (the end of speech, the client's stamps, the question), perf_counter."""
    from bench import bench_v2v as v2v
    from bench.harness import Tap, live_call
    from realtalk.media.playout import AudioOutput
    from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

    clips = v2v._clips([v2v.WARM_UP, *v2v.QUESTIONS[:turns]])
    output = AudioOutput(sample_rate=24000, realtime=True)
    config = OpenAIRealtimeConfig(turn_detection=v2v.OURS_TURNS)
    model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, config=config)
    model.audio_output = output
    tap = Tap(model)
    stamps: dict[str, float] = {}
    model.on(
        "agent_speech_started", lambda _: stamps.setdefault("first frame", time.perf_counter())
    )
    tap.on("response.output_audio.delta", lambda _e, at: stamps.setdefault("first delta", at))

    out = []
    async with live_call(model, output) as mic:
        await asyncio.sleep(1.0)
        for clip in clips:
            stamps.clear()
            done = asyncio.ensure_future(tap.wait_for(lambda e: e["type"] == "response.done", 30.0))
            pushed = mic.play(clip.frames)
            while len(pushed) < len(clip.frames):
                await asyncio.sleep(0.02)
            await done
            end = clip.speech_ended(pushed)
            out.append((end, dict(stamps), clip.text))
            await model.interrupt()
            await asyncio.sleep(0.6)
    return out[1:]  # the first turn is the warm-up


def _server_stamps(log: str) -> list[tuple[float, str]]:
    found = []
    with open(log) as f:
        for line in f:
            if line.startswith(STAMP + " "):
                _, at, message = line.rstrip("\n").split(" ", 2)
                found.append((float(at), message))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=12, help="questions to ask (max 12)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.timeline", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            assert server.stdout is not None
            ready = server.stdout.readline()
            if not ready.startswith("READY "):
                raise SystemExit("the local server did not start (see its errors above)")
            turns = asyncio.run(_play(ready.split()[1], args.turns))
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.wait(30)
        stamps = _server_stamps(log.name)
    waits = []
    for i, (end, client, question) in enumerate(turns):
        until = turns[i + 1][0] - 3.0 if i + 1 < len(turns) else float("inf")
        wait_ms = (client.get("first frame", float("nan")) - end) * 1000
        waits.append(wait_ms)
        print(f"\n{question!r}: {wait_ms:.0f} ms")
        shown = [(at, message) for at, message in stamps if end - 3.0 <= at < until]
        shown += [(at, f"client: {name}") for name, at in client.items()]
        for at, message in sorted(shown):
            print(f"  {(at - end) * 1000:7.0f}  {message}")
    clean = [w for w in waits if w == w]
    if clean:
        print(f"\np50 {statistics.median(clean):.0f} ms, max {max(clean):.0f} ms over {len(clean)}")


if __name__ == "__main__":
    main()
