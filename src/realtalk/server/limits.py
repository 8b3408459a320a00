"""The resource budget of the local server: every limit a remote client runs into, in one place.

A client may make the server hold memory (frames, queued events, uncommitted audio, items),
CPU (validation, responses) and slots (connections). Each has a bound here; the server and its
connections read them from one :class:`Limits` value, and ``docs/reliability.md`` tables them
(OpenAI's documented limits where there are any, ours otherwise). The limits on the content of
events (id lengths, instructions, tools, nesting) are the protocol's, the same for every server:
``protocol.validate`` and ``protocol.session`` hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtalk.protocol.frames import MAX_FRAME_VALUES

__all__ = ["DEFAULT_LIMITS", "Limits"]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection and per-process bounds of ``LocalServer``."""

    #: One WebSocket message, in bytes (an append carries up to 15 MiB of audio, 20 MiB as
    #: base64; a little more still arrives so it can be answered with an error). Over: 1009.
    max_frame_bytes: int = 24 * MiB
    #: JSON values in one frame, counted before parsing (by its separators, so a text with more
    #: commas than this is refused too). Bounds the parse and validation work of any frame.
    max_frame_values: int = MAX_FRAME_VALUES
    #: Frames larger than this are parsed, validated and decoded off the event loop.
    offload_frame_bytes: int = 16 * 1024
    #: Bytes of events queued for a client that does not read. Over: close 1008.
    max_queued_bytes: int = 32 * MiB
    #: The same, for all connections together. Over: the connection pushing it over gets 1013.
    max_process_queued_bytes: int = 256 * MiB
    #: Uncommitted input audio, in milliseconds (5 minutes: 14.4 MB of 24 kHz PCM).
    max_buffer_ms: int = 5 * 60 * 1000
    #: Responses running at once on one connection (at most one in the default conversation).
    max_responses: int = 8
    #: Items in one conversation, and the bytes of their text (audio is bounded separately by
    #: ``conversation.KEEP_AUDIO_*``).
    max_items: int = 20_000
    max_conversation_bytes: int = 32 * MiB
    #: A connection whose client sent nothing for this long is closed (1001).
    idle_timeout_s: float = 600.0
    #: The opening handshake (TCP accepted to WebSocket open) must finish within this.
    handshake_timeout_s: float = 10.0
    #: Open connections in all, and from one client address.
    max_connections: int = 64
    max_connections_per_client: int = 32

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")


DEFAULT_LIMITS = Limits()
