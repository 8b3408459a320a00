"""Transcription of user audio: final transcripts, early partials, and a head start in the pause.

The LLM reads text, so every committed utterance is transcribed whether or not the client asked
for transcription events (``report`` says whether to send them). The transcriber blocks, so it
runs in a thread. Two things make the text arrive sooner:

- **Partials** (only when the client asked for transcription): while the user speaks, the audio
  so far is transcribed every ``partial_interval_ms``; the words two partials agree on go out as
  ``...input_audio_transcription.delta`` events for the item the turn will become (the id of
  ``speech_started``), so those deltas precede the item's ``conversation.item.added``.
- **Speculation**: once a pause has lasted ``speculate_after_ms`` the utterance is transcribed
  as it stands. If the pause becomes the end of the turn, the final transcript is that result
  (the silence after the speech adds no words), so the VAD's silence wait and the transcriber
  overlap. If the user goes on speaking the guess is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.server.engines.base import Transcriber, Transcript
from realtalk.server.engines.threads import run_in_thread

from .input_buffer import to_pcm16k

__all__ = ["Draft", "UserTranscripts"]

logger = logging.getLogger("realtalk.server")

Send = Callable[[dict[str, Any]], None]


@dataclass
class Draft:
    """The transcription state of a turn that has started and is not committed yet."""

    item_id: str
    start_ms: float
    emitted: str = ""  # partial transcript already sent as deltas
    last_words: list[str] = field(default_factory=list)
    partial_at_ms: float = 0.0
    partial_task: asyncio.Task[None] | None = None
    #: (where the pause began, the transcription of the audio up to the pause)
    speculation: tuple[float, asyncio.Task[Transcript]] | None = None
    closed: bool = False  # committed or dropped: no more partials for it


class UserTranscripts:
    """Transcripts of user audio content parts, by (item id, content index)."""

    def __init__(
        self,
        transcriber: Transcriber,
        send: Send,
        new_id: Callable[[str], str],
        *,
        on_text: Callable[[str, int, str], None],
        partials: bool = True,
        partial_interval_ms: float = 1000.0,
        speculate: bool = True,
        speculate_after_ms: float = 32.0,
    ) -> None:
        self._transcriber = transcriber
        self._send = send
        self._new_id = new_id
        self._on_text = on_text
        self.partials = partials
        self.partial_interval_ms = partial_interval_ms
        self.speculate = speculate
        self.speculate_after_ms = speculate_after_ms
        self._finals: dict[tuple[str, int], asyncio.Task[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False  # after aclose: no new transcriptions
        #: the session's transcription prompt, handed to the transcriber with every utterance
        self.prompt: str | None = None

    # --- final transcripts -------------------------------------------------------------------

    def start(
        self,
        item_id: str,
        index: int,
        data: bytes,
        fmt: AudioFormat,
        *,
        report: bool,
        draft: Draft | None = None,
        speech_end_ms: float | None = None,
    ) -> None:
        """Transcribe committed audio (reusing the draft's speculation when it fits)."""
        if self.closed:
            return
        early: asyncio.Task[Transcript] | None = None
        if draft is not None and draft.speculation is not None:
            paused_at, task = draft.speculation
            if speech_end_ms is not None and round(paused_at) == round(speech_end_ms):
                early = task
        emitted = ""
        if draft is not None:
            draft.closed = True
            emitted = draft.emitted
        final = asyncio.create_task(self._final(item_id, index, data, fmt, report, emitted, early))
        self._finals[(item_id, index)] = final
        self._track(final)

    async def text_of(self, item_id: str, index: int) -> str:
        """The transcript ("" if the part was never transcribed or failed)."""
        task = self._finals.get((item_id, index))
        return "" if task is None else await asyncio.shield(task)

    def pending(self) -> list[asyncio.Task[str]]:
        return [t for t in self._finals.values() if not t.done()]

    def forget(self, item_id: str) -> None:
        for key in [k for k in self._finals if k[0] == item_id]:
            del self._finals[key]

    async def aclose(self) -> None:
        """Cancel every transcription; returns once their threads have ended too."""
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _final(
        self,
        item_id: str,
        index: int,
        data: bytes,
        fmt: AudioFormat,
        report: bool,
        emitted: str,
        early: asyncio.Task[Transcript] | None,
    ) -> str:
        started = time.perf_counter()
        try:
            transcript = await early if early is not None else await self._run(data, fmt)
        except Exception as exc:
            logger.warning("transcription of %s failed: %s", item_id, exc)
            if report:
                self._send(
                    ev.input_audio_transcription_failed(
                        self._new_id("event"),
                        item_id,
                        message=str(exc),
                        code="transcription_failed",
                        content_index=index,
                    )
                )
            return ""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "transcript of %s ready %.0f ms after commit%s",
                item_id,
                (time.perf_counter() - started) * 1000,
                " (speculated in the pause)" if early is not None else "",
            )
        text = transcript.text.strip()
        if report:
            rest = text[len(emitted) :] if text.startswith(emitted) else ""
            if rest:
                self._send(
                    ev.input_audio_transcription_delta(self._new_id("event"), item_id, rest, index)
                )
            self._send(
                ev.input_audio_transcription_completed(
                    self._new_id("event"),
                    item_id,
                    text,
                    usage={"type": "duration", "seconds": round(transcript.duration_s, 3)},
                    content_index=index,
                )
            )
            self._on_text(item_id, index, text)
        return text

    async def so_far(self, data: bytes, fmt: AudioFormat) -> str:
        """The words in ``data`` (the turn so far), for the server's own use: nothing is sent."""
        return (await self._run(data, fmt)).text.strip()

    async def _run(self, data: bytes, fmt: AudioFormat) -> Transcript:
        if not data:  # an idle-timeout commit may hold no audio at all
            return Transcript("", 0.0)
        transcriber, prompt = self._transcriber, self.prompt
        return await run_in_thread(
            lambda: transcriber.transcribe(to_pcm16k(data, fmt), prompt),
            name="realtalk-transcribe",
        )

    # --- while the user speaks ---------------------------------------------------------------

    def hearing(
        self,
        draft: Draft,
        audio: Callable[[], bytes],
        fmt: AudioFormat,
        *,
        now_ms: float,
        pause_began_ms: float | None,
        report: bool,
    ) -> None:
        """Called after each append during a turn; ``audio()`` reads the turn so far."""
        if self.closed:
            return
        if self.speculate:
            if pause_began_ms is None:
                draft.speculation = None  # speaking again: the guess is stale
            elif now_ms - pause_began_ms >= self.speculate_after_ms and (
                draft.speculation is None or draft.speculation[0] != pause_began_ms
            ):
                task = asyncio.create_task(self._run(audio(), fmt))
                self._track(task)
                draft.speculation = (pause_began_ms, task)
        if not (report and self.partials) or pause_began_ms is not None:
            return  # in a pause the speculation (or the final) transcribes; don't compete
        if now_ms - draft.partial_at_ms < self.partial_interval_ms:
            return
        if draft.partial_task is not None and not draft.partial_task.done():
            return
        draft.partial_at_ms = now_ms
        draft.partial_task = asyncio.create_task(self._partial(draft, audio(), fmt))
        self._track(draft.partial_task)

    async def _partial(self, draft: Draft, data: bytes, fmt: AudioFormat) -> None:
        """Send the words two partial transcripts agree on (they rarely change after that)."""
        try:
            text = (await self._run(data, fmt)).text
        except Exception as exc:
            logger.debug("partial transcription failed: %s", exc)
            return
        if draft.closed:
            return  # committed meanwhile: the final transcript owns the rest
        words = text.split()
        stable = 0
        for old, new in zip(draft.last_words, words, strict=False):
            if old != new:
                break
            stable += 1
        draft.last_words = words
        sent = len(draft.emitted.split())
        if stable > sent:
            delta = (" " if draft.emitted else "") + " ".join(words[sent:stable])
            draft.emitted += delta
            self._send(
                ev.input_audio_transcription_delta(self._new_id("event"), draft.item_id, delta)
            )

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
