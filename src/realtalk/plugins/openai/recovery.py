"""What a new connection needs from the old one: the conversation, what waited, the user's audio.

A Realtime session dies at OpenAI's 60-minute limit or with the network, and a new session starts
empty. :class:`Recovery` keeps what the client sent (or wanted to send) while the link was down,
holds the last seconds of the user's audio (:class:`~.audio.HeldAudio`), and builds the events
that rebuild the conversation in the new session from the :class:`~.conversation.ConversationMirror`
(a text copy: audio cannot be replayed). Live audio, cuts of old audio and requests are not
replayed as they were: the mirror and the response queue stand for them.

A long call has a long conversation, and each item is one event the new session must take in
before the reply that was cut can resume. So only the last ``MAX_REPLAYED_ITEMS`` items are
replayed as items; everything older becomes one system message holding its transcript (the last
``MAX_FOLDED_CHARS`` characters of it: a model's context has room for no more anyway). A
reconnect after an hour of talk costs ~40 events, not thousands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from realtalk.protocol import AudioFormat, events

from .audio import HeldAudio
from .conversation import ConversationMirror

__all__ = [
    "EARLIER_HEADER",
    "MAX_FOLDED_CHARS",
    "MAX_HELD_AUDIO_MS",
    "MAX_REPLAYED_ITEMS",
    "NOT_REPLAYED",
    "Recovery",
    "fold_older",
]

logger = logging.getLogger("realtalk.client")

#: User audio kept during an outage and sent to the new session (older audio is dropped and
#: reported): enough for a sentence, not so much that a stale question is answered.
MAX_HELD_AUDIO_MS = 5000
#: The most recent items replayed as items; older ones are folded into one transcript message.
MAX_REPLAYED_ITEMS = 40
#: The folded transcript keeps this many of its last characters (~3,000 tokens).
MAX_FOLDED_CHARS = 12_000
#: Opens the folded transcript (and marks it, so a later fold takes its lines, not itself).
EARLIER_HEADER = "Earlier in this conversation (a transcript, oldest first):"

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
        items = fold_older(mirror.replay_items(), new_id)
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


def fold_older(
    items: list[dict[str, Any]],
    new_id: Callable[[str], str],
    *,
    keep: int = MAX_REPLAYED_ITEMS,
    max_chars: int = MAX_FOLDED_CHARS,
) -> list[dict[str, Any]]:
    """``items`` with all but the last ``keep`` folded into one leading system message.

    The kept part starts at a message, so no function call output is replayed without its call.
    """
    if len(items) <= keep:
        return items
    start = len(items) - keep
    while start < len(items) and items[start].get("type") != "message":
        start += 1
    older, kept = items[:start], items[start:]
    lines = [line for item in older for line in _transcript_lines(item)]
    text = "\n".join(lines)
    if len(text) > max_chars:
        text = text[-max_chars:]
        text = text[text.find("\n") + 1 :] if "\n" in text else text  # from a line's start
    if not text:
        return kept
    return [events.system_text_item(f"{EARLIER_HEADER}\n{text}", item_id=new_id("item")), *kept]


def _transcript_lines(item: dict[str, Any]) -> list[str]:
    kind = item.get("type")
    if kind == "function_call":
        return [f"(the assistant called {item.get('name')}({item.get('arguments') or ''}))"]
    if kind == "function_call_output":
        return [f"(the result: {item.get('output') or ''})"]
    words = " ".join(
        str(part.get("text") or "")
        for part in item.get("content") or ()
        if part.get("type") in ("input_text", "output_text")
    ).strip()
    role = item.get("role")
    if role == "system" and words.startswith(EARLIER_HEADER):
        return words[len(EARLIER_HEADER) :].strip().split("\n")  # an earlier fold: its lines
    if not words:
        return []  # an image alone: the transcript cannot carry it
    return [f"{str(role).capitalize()}: {words}"]
