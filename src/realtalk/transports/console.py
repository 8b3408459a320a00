"""ConsoleTransport: talk to an agent from a terminal, by voice or by typing.

Voice mode uses the microphone and speaker through ``sounddevice`` (the ``console`` extra:
``pip install 'realtalk[console]'``). It is imported only here and only when voice is asked for,
and when the module, PortAudio or an audio device is missing the transport says so and falls back
to text mode, which works anywhere (over SSH, in a container, in CI): each line read from stdin is
sent with ``session.send_text`` and the transcripts are printed.

In voice mode typed lines are sent too, and the transcripts are printed the same way. Use
headphones: without echo cancellation the microphone hears the agent and interrupts it.

``/quit`` ends the conversation once the agent has finished its answer; so does the end of input
(Ctrl+D, or the end of piped stdin) in text mode, so ``echo "hello" | realtalk run agent.py
--transport console --text`` prints one exchange and exits. In voice mode the end of stdin only
stops typed input (the conversation goes on until ``/quit`` or Ctrl+C).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np

from realtalk.media.frame import AudioFrame
from realtalk.media.resample import StreamResampler
from realtalk.transports.base import Transport, agent_audio

if TYPE_CHECKING:
    from realtalk.session import AgentSession

__all__ = ["ConsoleTransport", "audio_unavailable_reason"]

logger = logging.getLogger("realtalk.transport")

_FRAME_MS = 20
_QUIT = frozenset({"/quit", "/exit", "/bye"})
_MAX_SPEAKER_BACKLOG_MS = 200  # drop older speaker audio if the device clock runs slow


def audio_unavailable_reason() -> str | None:
    """Why voice mode cannot run here (None when a microphone and a speaker are usable)."""
    try:
        import sounddevice as sd
    except ImportError:
        return "sounddevice is not installed (pip install 'realtalk[console]')"
    except OSError as exc:  # the module is there but PortAudio is not
        return f"the PortAudio library is missing ({exc})"
    try:
        sd.query_devices(kind="input")
        sd.query_devices(kind="output")
    except Exception as exc:  # sounddevice raises PortAudioError or ValueError
        return f"no usable audio device ({exc})"
    return None


class ConsoleTransport(Transport):
    """Microphone and speaker, or a text chat, in the terminal.

    Args:
        audio: ``True`` needs voice mode (raises when it cannot run), ``False`` is text only,
            ``None`` uses voice when possible and says why not otherwise.
        stdin, stdout: where lines come from and transcripts go (the process's by default).
        input_device, output_device: sounddevice device names or indexes (system default if None).

    Raises:
        RuntimeError: ``audio=True`` and no microphone/speaker can be used.
    """

    def __init__(
        self,
        *,
        audio: bool | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        input_device: int | str | None = None,
        output_device: int | str | None = None,
    ) -> None:
        self._stdin = stdin if stdin is not None else sys.stdin
        self._out = stdout if stdout is not None else sys.stdout
        self._interactive = _isatty(self._out)
        self._interim = False  # an interim transcript line is on screen
        self._input_device = input_device
        self._output_device = output_device
        reason = audio_unavailable_reason() if audio is not False else None
        if audio is True and reason is not None:
            raise RuntimeError(f"console voice mode is unavailable: {reason}")
        self.audio = audio is not False and reason is None
        if audio is None and reason is not None:
            self._print(f"Voice mode unavailable: {reason}. Using text mode.")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._mic: asyncio.Queue[AudioFrame] = asyncio.Queue()
        self._speaker: collections.deque[np.ndarray[Any, Any]] = collections.deque()
        self._streams: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._listeners: list[tuple[str, Callable[..., Any]]] = []
        self._closed = False

    # -- Transport -------------------------------------------------------------------------------

    async def attach(self, session: AgentSession) -> None:
        if self.session is not None:
            raise RuntimeError("a ConsoleTransport serves one session")
        self.session = session
        self._loop = asyncio.get_running_loop()
        listeners: dict[str, Callable[..., Any]] = {
            "transcription": self._on_transcription,
            "function_call": self._on_function_call,
            "error": self._on_error,
            "reconnecting": lambda p: self._print(f"[reconnecting: {p.get('reason', '')}]"),
        }
        for event, handler in listeners.items():
            session.on(event, handler)
            self._listeners.append((event, handler))
        loop = self._loop
        if self.audio:
            self._tasks.append(loop.create_task(self._open_audio()))
        else:
            self._tasks.append(loop.create_task(self._discard_audio()))
        threading.Thread(target=self._read_lines, name="realtalk-stdin", daemon=True).start()
        self._tasks.append(loop.create_task(self._chat()))
        if self.audio:
            self._print(
                "Voice mode: speak (headphones help), or type a message and press Enter. "
                "/quit or Ctrl+C ends the conversation."
            )
        else:
            self._print(
                "Text mode: type a message and press Enter. Ctrl+D or /quit ends the conversation."
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        current = asyncio.current_task()
        pending = [task for task in self._tasks if task is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for stream in self._streams:
            try:
                stream.stop()
                stream.close()
            except Exception:
                logger.exception("closing an audio stream failed")
        self._streams.clear()
        if self.session is not None:
            for event, handler in self._listeners:
                self.session.off(event, handler)
        self._listeners.clear()
        self._end_interim()

    # -- text ------------------------------------------------------------------------------------

    def _read_lines(self) -> None:
        """In a daemon thread: a blocking readline must not hold up the loop or its shutdown."""
        loop = self._loop
        assert loop is not None
        try:
            for line in self._stdin:
                loop.call_soon_threadsafe(self._lines.put_nowait, line)
        except (OSError, ValueError):  # stdin closed under us
            pass
        finally:
            try:
                loop.call_soon_threadsafe(self._lines.put_nowait, None)
            except RuntimeError:  # the loop is gone: the program is ending anyway
                pass

    async def _chat(self) -> None:
        session = self._session()
        await session.wait_started()
        while not session.closed:
            line = await self._lines.get()
            if line is None and self.audio:
                return  # stdin ended (or was never there); the voice conversation goes on
            text = line.strip() if line is not None else None
            if text is None or text.lower() in _QUIT:
                break
            if text:
                await session.send_text(text)
        await self._wait_for_agent()
        await session.close(reason="end of console input")

    async def _wait_for_agent(self) -> None:
        """Let the agent finish its answer (piped input ends right after the last line)."""
        session = self._session()
        while not session.closed and session.agent_state != "listening":
            await asyncio.sleep(0.05)

    # -- audio -----------------------------------------------------------------------------------

    async def _discard_audio(self) -> None:
        """Text mode: take the agent's audio as it comes, so its turns start and end."""
        async for _frame in agent_audio(self._session().audio_output, realtime=False):
            pass

    async def _open_audio(self) -> None:
        import sounddevice as sd

        loop = self._loop
        assert loop is not None
        output = self._session().audio_output
        in_rate = int(sd.query_devices(self._input_device, kind="input")["default_samplerate"])
        out_rate = int(sd.query_devices(self._output_device, kind="output")["default_samplerate"])

        def on_mic(indata: Any, _frames: int, _time: Any, status: Any) -> None:
            if status:
                logger.debug("microphone: %s", status)
            frame = AudioFrame(bytes(indata), in_rate, 1)
            loop.call_soon_threadsafe(self._mic.put_nowait, frame)

        def on_speaker(outdata: Any, frames: int, _time: Any, status: Any) -> None:
            if status:
                logger.debug("speaker: %s", status)
            self._fill(outdata, frames)

        mic = sd.RawInputStream(
            samplerate=in_rate,
            channels=1,
            dtype="int16",
            blocksize=in_rate * _FRAME_MS // 1000,
            device=self._input_device,
            callback=on_mic,
        )
        speaker = sd.OutputStream(
            samplerate=out_rate,
            channels=1,
            dtype="int16",
            device=self._output_device,
            callback=on_speaker,
        )
        self._streams = [mic, speaker]
        mic.start()
        speaker.start()
        self._tasks.append(loop.create_task(self._pump_mic()))
        resampler = None
        if out_rate != output.sample_rate:
            resampler = StreamResampler(output.sample_rate, out_rate)
        async for frame in agent_audio(output, realtime=True):
            self._speaker.append(frame.to_array() if resampler is None else resampler.push(frame))

    def _fill(self, outdata: Any, frames: int) -> None:
        """In the PortAudio thread: copy queued speaker audio, zeros where there is none.

        Only this thread removes from the queue (the loop only appends), so no lock is needed.
        A backlog beyond ``_MAX_SPEAKER_BACKLOG_MS`` (the device clock slower than ours) is cut.
        """
        while len(self._speaker) > _MAX_SPEAKER_BACKLOG_MS // _FRAME_MS:
            self._speaker.popleft()
        out = outdata[:, 0]
        pos = 0
        while pos < frames and self._speaker:
            chunk = self._speaker[0]
            n = min(frames - pos, chunk.size)
            out[pos : pos + n] = chunk[:n]
            pos += n
            if n == chunk.size:
                self._speaker.popleft()
            else:
                self._speaker[0] = chunk[n:]
        out[pos:] = 0

    async def _pump_mic(self) -> None:
        session = self._session()
        while True:
            await session.push_audio(await self._mic.get())

    # -- printing --------------------------------------------------------------------------------

    def _on_transcription(self, payload: dict[str, Any]) -> None:
        who = "you" if payload.get("role") == "user" else "agent"
        text = str(payload.get("text", "")).strip()
        if payload.get("is_final"):
            if text:
                self._print(f"{who}: {text}")
        elif self._interactive and text:
            self._out.write(f"\r\x1b[K{who}: {text}")  # one updating line while it is spoken
            self._out.flush()
            self._interim = True

    def _on_function_call(self, payload: dict[str, Any]) -> None:
        mark = "failed" if payload.get("is_error") else "->"
        self._print(
            f"[tool {payload.get('name')}({payload.get('arguments')}) {mark} "
            f"{payload.get('output')}]"
        )

    def _on_error(self, payload: dict[str, Any]) -> None:
        self._print(f"[error: {payload.get('message')}]")

    def _print(self, line: str) -> None:
        self._end_interim()
        self._out.write(line + "\n")
        self._out.flush()

    def _end_interim(self) -> None:
        if self._interim:
            self._out.write("\r\x1b[K")
            self._interim = False

    def _session(self) -> AgentSession:
        if self.session is None:
            raise RuntimeError("ConsoleTransport is not attached to a session")
        return self.session


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
