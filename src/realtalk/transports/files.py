"""FilesTransport: WAV files in, the agent's voice to a WAV and the conversation to a JSON report.

For scripted runs, tests and benchmarks: each input file is one user turn. A file may have any rate
and channel count (the model converts each frame). Turn-taking works as with a person:

- each file is fed as 20 ms frames followed by ``trailing_silence_ms`` of silence, because server
  VAD only ends the user's turn after hearing silence;
- the next file starts only once the agent has finished answering (``agent_state`` back to
  ``listening``, its audio played out), so no input ever barges in on a reply; a greeting from
  ``on_enter`` is waited for the same way.

By default nothing waits for the wall clock: input frames are fed as fast as the connection takes
them and the agent's audio is pulled from ``session.audio_output`` as soon as it is queued, so a
run takes about as long as the model needs to think. ``realtime=True`` paces both sides at real
speed instead (latencies in the report then match what a listener would experience).

The report (``output`` with ``.json``, or ``report``) holds each turn's final transcripts, tool
calls and metrics, plus every error. When all inputs are answered the transport closes the
session, so ``await session.wait_closed()`` is how a caller waits for the end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from realtalk.media.frame import AudioFrame
from realtalk.media.wav import iter_frames, read_wav, write_wav
from realtalk.transports.base import Transport, agent_audio

if TYPE_CHECKING:
    from realtalk.session import AgentSession

__all__ = ["FilesTransport"]

logger = logging.getLogger("realtalk.transport")

_FRAME_MS = 20


@dataclass
class _Turn:
    """What happened between feeding one input and the agent falling silent again."""

    input: str | None
    user: list[str] = field(default_factory=list)
    agent: list[str] = field(default_factory=list)
    function_calls: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    agent_audio_ms: float = 0.0
    error: str | None = None

    def is_empty(self) -> bool:
        return not (self.user or self.agent or self.function_calls or self.agent_audio_ms)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "user": " ".join(self.user),
            "agent": " ".join(self.agent),
            "function_calls": self.function_calls,
            "metrics": self.metrics,
            "agent_audio_ms": round(self.agent_audio_ms, 1),
            "error": self.error,
        }


class FilesTransport(Transport):
    """Plays WAV files to the agent as user turns and records its answers.

    Args:
        inputs: WAV files, one user turn each, in order.
        output: where the agent's audio goes (24 kHz mono WAV, answers separated by
            ``gap_ms`` of silence); ``None`` records nothing.
        report: where the JSON report goes; defaults to ``output`` with a ``.json`` suffix.
        trailing_silence_ms: silence fed after each file so server VAD ends the turn.
        gap_ms: silence between answers in the output WAV (readability, not timing).
        realtime: pace input and output at real speed instead of as fast as possible.
        start_timeout_s: how long to wait for the agent to react to an input before giving up
            on that turn (no speech detected, no reply).
        turn_timeout_s: the longest an answer (tool calls included) may take.

    Raises:
        ValueError: no inputs, or an input that is not a readable WAV file.
    """

    def __init__(
        self,
        inputs: Sequence[str | os.PathLike[str]],
        output: str | os.PathLike[str] | None = None,
        *,
        report: str | os.PathLike[str] | None = None,
        trailing_silence_ms: int = 1000,
        gap_ms: int = 300,
        realtime: bool = False,
        start_timeout_s: float = 30.0,
        turn_timeout_s: float = 120.0,
    ) -> None:
        if not inputs:
            raise ValueError("FilesTransport needs at least one input WAV file")
        if trailing_silence_ms < 0 or gap_ms < 0:
            raise ValueError("trailing_silence_ms and gap_ms must be >= 0")
        self.inputs = [Path(p) for p in inputs]
        self._audio_in = [_load(p) for p in self.inputs]  # fail before anything connects
        self.output = Path(output) if output is not None else None
        if report is not None:
            self.report_path: Path | None = Path(report)
        else:
            self.report_path = self.output.with_suffix(".json") if self.output else None
        self.trailing_silence_ms = trailing_silence_ms
        self.gap_ms = gap_ms
        self.realtime = realtime
        self.start_timeout_s = start_timeout_s
        self.turn_timeout_s = turn_timeout_s
        self.report: dict[str, Any] | None = None  # filled in when the run ends
        self._turns: list[_Turn] = [_Turn(input=None)]  # turn 0: whatever on_enter does
        self._errors: list[dict[str, Any]] = []
        self._transcript: list[dict[str, Any]] = []
        self._all_metrics: list[dict[str, Any]] = []
        self._audio = bytearray()
        self._sample_rate = 24000
        self._state_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[tuple[str, Callable[..., Any]]] = []
        self._reactions = 0  # times the agent left "listening"
        self._t0 = 0.0
        self._finished = False

    # -- Transport -------------------------------------------------------------------------------

    async def attach(self, session: AgentSession) -> None:
        if self.session is not None:
            raise RuntimeError("a FilesTransport serves one session")
        self.session = session
        self._t0 = time.monotonic()
        self._sample_rate = session.audio_output.sample_rate
        listeners: dict[str, Callable[..., Any]] = {
            "agent_state_changed": self._on_state,
            "transcription": self._on_transcription,
            "function_call": self._on_function_call,
            "metrics": self._on_metrics,
            "error": self._on_error,
        }
        for event, handler in listeners.items():
            session.on(event, handler)
            self._listeners.append((event, handler))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._record()), loop.create_task(self._converse())]

    async def aclose(self) -> None:
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.session is not None:
            for event, handler in self._listeners:
                self.session.off(event, handler)
        self._listeners.clear()
        await self._finish()

    # -- the conversation ------------------------------------------------------------------------

    async def _converse(self) -> None:
        session = self._session()
        await session.wait_started()
        if session.agent_state != "listening" and not await self._wait(
            functools.partial(self._answered, 0), self.turn_timeout_s
        ):
            self._turns[-1].error = f"the greeting took longer than {self.turn_timeout_s:g} s"
        for path, audio in zip(self.inputs, self._audio_in, strict=True):
            if session.closed:
                return
            self._end_turn()
            turn = _Turn(input=str(path))
            self._turns.append(turn)
            logger.info("feeding %s (%.1f s)", path, audio.duration_ms / 1000)
            reacted = functools.partial(self._reacted_since, self._reactions)
            answered = functools.partial(self._answered, len(self._all_metrics))
            await self._feed(audio)
            if not await self._wait(reacted, self.start_timeout_s):
                turn.error = f"no reply within {self.start_timeout_s:g} s (was speech detected?)"
                logger.warning("%s: %s", path, turn.error)
            elif not await self._wait(answered, self.turn_timeout_s):
                turn.error = f"the answer took longer than {self.turn_timeout_s:g} s"
                logger.warning("%s: %s", path, turn.error)
                await session.interrupt()
        await self._finish()
        await session.close(reason="all inputs answered")

    async def _feed(self, audio: AudioFrame) -> None:
        """Push the file and then the trailing silence as 20 ms frames."""
        session = self._session()
        silence = AudioFrame.silence(_FRAME_MS, audio.sample_rate, audio.num_channels)
        frames = [
            *iter_frames(audio, _FRAME_MS, pad=True),
            *([silence] * (self.trailing_silence_ms // _FRAME_MS)),
        ]
        start = time.monotonic()
        for n, frame in enumerate(frames):
            await session.push_audio(frame)
            if self.realtime:
                delay = start + (n + 1) * _FRAME_MS / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)  # let the receive loop run between frames

    def _reacted_since(self, count: int) -> bool:
        """The agent left ``listening`` (or closed) since the count was ``count``."""
        return self._reactions > count or self._session().closed

    def _answered(self, metrics_count: int) -> bool:
        """The turn is over: the model reported its metrics (which it does once the answer,
        tool calls and follow-ups included, is complete and played) and the agent listens."""
        session = self._session()
        if session.closed:
            return True
        return len(self._all_metrics) > metrics_count and session.agent_state == "listening"

    async def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds, re-checked on each state change, metrics and frame."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            return False
        return True

    def _end_turn(self) -> None:
        """Separate this turn's audio from the next one's in the output WAV."""
        if self._turns[-1].agent_audio_ms and self.gap_ms:
            self._audio += bytes(2 * (self._sample_rate * self.gap_ms // 1000))

    # -- the agent's audio -----------------------------------------------------------------------

    async def _record(self) -> None:
        """Keep the agent's audio; the state check re-runs as each frame is taken."""
        async for frame in agent_audio(self._session().audio_output, realtime=self.realtime):
            self._audio += frame.data
            self._turns[-1].agent_audio_ms += frame.duration_ms
            self._state_changed.set()

    # -- session events --------------------------------------------------------------------------

    def _on_state(self, payload: dict[str, Any]) -> None:
        if payload.get("state") != "listening":
            self._reactions += 1  # counted, so a short excursion is not missed between checks
        self._state_changed.set()

    def _on_transcription(self, payload: dict[str, Any]) -> None:
        if not payload.get("is_final") or not payload.get("text"):
            return
        role = payload.get("role")
        text = str(payload["text"]).strip()
        turn = self._turns[-1]
        (turn.user if role == "user" else turn.agent).append(text)
        self._transcript.append(
            {"role": role, "text": text, "item_id": payload.get("item_id"), "t": self._elapsed()}
        )

    def _on_function_call(self, payload: dict[str, Any]) -> None:
        self._turns[-1].function_calls.append(dict(payload))

    def _on_metrics(self, payload: dict[str, Any]) -> None:
        self._turns[-1].metrics.append(payload)
        self._all_metrics.append(payload)
        self._state_changed.set()

    def _on_error(self, payload: dict[str, Any]) -> None:
        self._errors.append({**payload, "t": self._elapsed()})
        self._state_changed.set()

    # -- results ---------------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Write the WAV and the report once (at the end of the run, or at an early close)."""
        if self._finished:
            return
        self._finished = True
        self.report = self._build_report()
        await asyncio.to_thread(self._write, self.report, bytes(self._audio))

    def _build_report(self) -> dict[str, Any]:
        turns = [t for i, t in enumerate(self._turns) if i > 0 or not t.is_empty()]
        audio_ms = len(self._audio) / 2 * 1000 / self._sample_rate
        return {
            "inputs": [str(p) for p in self.inputs],
            "output": str(self.output) if self.output else None,
            "sample_rate": self._sample_rate,
            "output_audio_ms": round(audio_ms, 1),
            "turns": [t.to_dict() for t in turns],
            "transcript": self._transcript,
            "metrics": self._all_metrics,
            "errors": self._errors,
            "elapsed_s": round(self._elapsed(), 3),
        }

    def _write(self, report: dict[str, Any], audio: bytes) -> None:
        if self.output is not None:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            write_wav(self.output, audio, self._sample_rate)
            logger.info("wrote %s", self.output)
        if self.report_path is not None:
            self.report_path.parent.mkdir(parents=True, exist_ok=True)
            self.report_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
            logger.info("wrote %s", self.report_path)

    def _elapsed(self) -> float:
        return time.monotonic() - self._t0 if self._t0 else 0.0

    def _session(self) -> AgentSession:
        if self.session is None:
            raise RuntimeError("FilesTransport is not attached to a session")
        return self.session


def _load(path: Path) -> AudioFrame:
    if not path.is_file():
        raise ValueError(f"input {str(path)!r} does not exist or is not a file")
    try:
        audio = read_wav(path)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"input {str(path)!r} is not a readable WAV file: {exc}") from exc
    if audio.samples_per_channel == 0:
        raise ValueError(f"input {str(path)!r} holds no audio")
    return audio
