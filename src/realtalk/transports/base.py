"""The Transport interface: how media gets into and out of an AgentSession.

A transport is the edge of a conversation: a browser over WebRTC, the local microphone and
speaker, WAV files. It pumps user audio (and camera frames) into the session and pulls the agent's
voice out of ``session.audio_output``. Nothing about the model or the protocol lives here.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtalk.media.frame import AudioFrame
    from realtalk.media.playout import AudioOutput
    from realtalk.session import AgentSession

__all__ = ["Transport", "agent_audio"]

_POLL_S = 0.005  # how often an unpaced consumer looks for new audio when none is queued


class Transport(ABC):
    """Media in and out for one :class:`~realtalk.session.AgentSession`.

    ``AgentSession.start(transport)`` calls :meth:`attach` once the model is connected;
    ``AgentSession.close()`` calls :meth:`aclose`. A transport that decides the conversation is
    over (the browser hung up, the input files are answered) calls ``session.close()``, which then
    calls its ``aclose``.
    """

    #: The session this transport serves, once attached (``None`` before).
    session: AgentSession | None = None

    @abstractmethod
    async def attach(self, session: AgentSession) -> None:
        """Start pumping: user audio → ``session.push_audio``, ``session.audio_output`` → out.

        Implementations set :attr:`session` and return promptly (the pumps run as tasks).
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Stop the pumps and release devices, files and connections; safe to call twice."""


async def agent_audio(output: AudioOutput, *, realtime: bool) -> AsyncIterator[AudioFrame]:
    """The agent's voice from ``output`` as 20 ms frames, skipping the silence between replies.

    ``realtime=True`` releases frames at playback speed (a speaker, a live stream).
    ``realtime=False`` hands each frame out as soon as it is playable, so a file or a discarded
    stream is not held to the wall clock; turn-taking still works, because the agent's speech
    starts and ends (``agent_speech_started``/``_ended``) as its frames are taken here.
    """
    silence = output.silence_frame  # the object the output hands out when nothing is ready
    while True:
        if realtime:
            frame = await output.next_frame()
        elif output.buffered_ms > 0:
            frame = output.read_frame()
            if frame is silence:  # the jitter buffer is still filling
                await asyncio.sleep(_POLL_S)
                continue
        else:
            await asyncio.sleep(_POLL_S)
            continue
        if frame is not silence:
            yield frame
        await asyncio.sleep(0)  # an unpaced consumer must not starve the receive loop
