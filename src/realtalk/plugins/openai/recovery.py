"""What a new connection needs from the old one: the conversation, what waited, the user's audio.

A Realtime session dies at OpenAI's 60-minute limit or with the network, and a new session starts
empty. :class:`Recovery` keeps what the client sent (or wanted to send) while the link was down,
holds the last seconds of the user's audio (:class:`~.audio.HeldAudio`), and builds the events
that rebuild the conversation in the new session from the :class:`~.conversation.ConversationMirror`
(a text copy: audio cannot be replayed). Live audio, cuts of old audio and requests are not
replayed as they were: the mirror and the response queue stand for them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from realtalk.protocol import AudioFormat, events

from .audio import HeldAudio
from .conversation import ConversationMirror

__all__ = ["MAX_HELD_AUDIO_MS", "NOT_REPLAYED", "Recovery"]

logger = logging.getLogger("realtalk.client")

#: User audio kept during an outage and sent to the new session (older audio is dropped and
#: reported): enough for a sentence, not so much that a stale question is answered.
MAX_HELD_AUDIO_MS = 5000

# Client events that make no sense on a new connection (live audio, cuts of old audio).
NOT_REPLAYED = frozenset(
    {
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "conversation.item.truncate",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "conversation.item.create",  # replayed from the conversation mirror instead
        "response.cancel",
        "response.create",  # requests are re-queued by the ResponseTracker
        "session.update",  # the new connection gets a full one
    }
)


class Recovery:
    """Events deferred while the link is down, and the replay into a new session."""

    def __init__(self, wire: AudioFormat) -> None:
        self.held_audio = HeldAudio(wire, MAX_HELD_AUDIO_MS)
        self._deferred: list[dict[str, Any]] = []

    def defer(self, event: dict[str, Any]) -> None:
        """An event sent while the link is down: kept unless a new session gets it otherwise."""
        if event.get("type") not in NOT_REPLAYED:
            self._deferred.append(event)

    def requeue_unsent(self, unsent: Sequence[dict[str, Any]]) -> None:
        """Events a dropped socket never sent: audio is held, the rest goes first."""
        salvaged = []
        for event in unsent:
            kind = event.get("type")
            if kind == "input_audio_buffer.append":
                self.held_audio.add(event["audio"])
            elif kind not in NOT_REPLAYED:
                salvaged.append(event)
        self._deferred[:0] = salvaged

    def take_deferred(self) -> list[dict[str, Any]]:
        out, self._deferred = self._deferred, []
        return out

    def lost_audio_ms(self) -> int:
        """Giving up: the user's audio of the outage is lost (returned in ms, then forgotten)."""
        _, held_ms, dropped_ms = self.held_audio.take()
        return held_ms + dropped_ms

    def replay(
        self, mirror: ConversationMirror, new_id: Callable[[str], str]
    ) -> tuple[list[dict[str, Any]], int, int]:
        """The events that rebuild the conversation in a fresh session, then what waited.

        Returns (events, milliseconds of user audio replayed, milliseconds dropped).
        """
        items = mirror.replay_items()
        mirror.clear()
        out: list[dict[str, Any]] = []
        previous: str | None = None
        for item in items:
            mirror.created(item)
            out.append(
                events.conversation_item_create(
                    item, previous_item_id=previous, event_id=new_id("event")
                )
            )
            previous = item.get("id")
        out += self.take_deferred()
        audio, held_ms, dropped_ms = self.held_audio.take()
        out += [events.input_audio_buffer_append(payload) for payload in audio]
        logger.info(
            "replayed %d conversation items and %d ms of user audio into the new session",
            len(items),
            held_ms,
        )
        return out, held_ms, dropped_ms
