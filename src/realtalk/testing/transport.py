"""The test user's microphone and the agent's speaker, both paced at ``speed`` times real time.

The speaker takes the agent's audio frame by frame as a sound card would, so the model knows what
was *played* (barge-in truncates there) and its voice takes as long as it lasts; the microphone
pushes 20 ms frames at the same pace, as a real one does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from realtalk.media.frame import AudioFrame
from realtalk.transports.base import Transport

if TYPE_CHECKING:
    from realtalk.session import AgentSession

__all__ = ["FRAME_MS", "TestTransport"]

FRAME_MS = 20


class TestTransport(Transport):
    """Media for an :class:`~realtalk.testing.AgentTest`: ``on_attach(session)`` when the session
    attaches it, ``on_played(ms)`` for every frame of agent audio played."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        speed: float,
        on_attach: Callable[[AgentSession], None],
        on_played: Callable[[float], None],
    ) -> None:
        self.speed = speed
        self._on_attach = on_attach
        self._on_played = on_played
        self._speaker: asyncio.Task[None] | None = None
        self.played_ms = 0.0

    async def attach(self, session: AgentSession) -> None:
        self.session = session
        self._on_attach(session)
        self._speaker = asyncio.get_running_loop().create_task(
            self._play(session), name="realtalk-test-speaker"
        )

    async def aclose(self) -> None:
        if self._speaker is not None:
            self._speaker.cancel()
            await asyncio.gather(self._speaker, return_exceptions=True)

    async def _play(self, session: AgentSession) -> None:
        output = session.audio_output
        silence = output.silence_frame
        period = FRAME_MS / 1000 / self.speed
        due = time.monotonic()
        while True:
            frame = output.read_frame() if output.buffered_ms > 0 else silence
            if frame is silence:  # nothing to play (or the jitter buffer is filling)
                await asyncio.sleep(0.005)
                due = time.monotonic()
                continue
            self.played_ms += frame.duration_ms
            self._on_played(frame.duration_ms)
            due += period
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def stream(self, frames: list[AudioFrame]) -> None:
        """Push microphone frames at ``speed`` times real time."""
        session = self.session
        if session is None:
            raise RuntimeError("the test transport is not attached to a session")
        start = time.monotonic()
        for n, frame in enumerate(frames):
            await session.push_audio(frame)
            due = start + (n + 1) * FRAME_MS / 1000 / self.speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
