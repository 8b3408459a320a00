"""Audio at the edges of the Realtime socket: user audio in (batched appends), agent audio out.

Input: every frame carries its own rate and channels (raw bytes use the declared format); one
streaming soxr resampler brings it to the wire rate (24 kHz PCM, or 8 kHz for G.711, encoded with
``realtalk.media.g711``), and samples are sent in appends of ``append_batch_ms`` rather than one
tiny JSON message per 10–20 ms frame. Nothing here resamples a chunk on its own (the seed's
per-chunk FFT resampling clicked at every chunk edge).

Output: each ``response.output_audio.delta`` is decoded and pushed to the model's
:class:`~realtalk.media.AudioOutput` under its item id. The bytes received per item are counted,
because a ``conversation.item.truncate`` must never name more audio than the server produced
("Audio content of X ms is already shorter than Y ms").
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtalk.media.frame import AudioFrame
from realtalk.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from realtalk.media.playout import AudioOutput, FlushResult
from realtalk.media.resample import InputAudioConverter, StreamResampler
from realtalk.protocol import AudioFormat, events

__all__ = ["AudioInput", "BargeIn", "HeldAudio", "OutputAudio", "b64_size", "barge_in_events"]

_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "audio/pcmu": ulaw_encode,
    "audio/pcma": alaw_encode,
}
_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "audio/pcmu": ulaw_decode,
    "audio/pcma": alaw_decode,
}
logger = logging.getLogger("realtalk.client")

_KEEP_ITEMS = 256  # per-item counters remembered for truncation bounds


class AudioInput:
    """User audio → base64 payloads for ``input_audio_buffer.append`` in the wire format."""

    def __init__(
        self, wire: AudioFormat, *, raw_rate: int, raw_channels: int, batch_ms: int
    ) -> None:
        self.wire = wire
        self.raw_rate = raw_rate
        self.raw_channels = raw_channels
        self._converter = InputAudioConverter(target_rate=wire.rate)
        self._encode = _ENCODERS.get(wire.type)
        self._batch = bytearray()
        self._batch_bytes = 2 * (wire.rate * batch_ms // 1000)  # int16 PCM before encoding

    def push(self, audio: bytes | bytearray | memoryview | AudioFrame) -> str | None:
        """Take one chunk; return a payload when a batch is full (else None)."""
        if not isinstance(audio, AudioFrame):
            if not isinstance(audio, bytes | bytearray | memoryview):
                raise TypeError(f"audio must be bytes or an AudioFrame, got {type(audio).__name__}")
            audio = AudioFrame(bytes(audio), self.raw_rate, self.raw_channels)
        self._batch += self._converter.convert(audio)
        if len(self._batch) < self._batch_bytes:
            return None
        return self._take()

    def flush(self) -> str | None:
        """Everything still held (resampler tail included), e.g. before a manual commit."""
        self._batch += self._converter.flush()
        return self._take() if self._batch else None

    def reset(self) -> None:
        self._batch.clear()
        self._converter.flush()

    def _take(self) -> str:
        # PCM is encoded straight from the batch buffer: no intermediate bytes copy.
        wire = self._encode(bytes(self._batch)) if self._encode is not None else self._batch
        payload = base64.b64encode(wire).decode("ascii")
        self._batch.clear()
        return payload


class HeldAudio:
    """User audio that arrives while the connection is being rebuilt.

    The latest ``max_ms`` are kept and appended to the new session once it is ready, so what the
    user says during a short outage is still heard (server VAD finds the speech in it); older
    audio is dropped and counted, so the loss can be reported instead of happening silently.
    """

    def __init__(self, wire: AudioFormat, max_ms: int) -> None:
        self.wire = wire
        self.max_ms = max_ms
        self._payloads: deque[tuple[str, int]] = deque()
        self._held_ms = 0
        self._dropped_ms = 0

    def add(self, payload_b64: str) -> None:
        ms = self.wire.ms_for_bytes(b64_size(payload_b64))
        self._payloads.append((payload_b64, ms))
        self._held_ms += ms
        while self._held_ms > self.max_ms and len(self._payloads) > 1:
            _, old = self._payloads.popleft()
            self._held_ms -= old
            self._dropped_ms += old

    @property
    def held_ms(self) -> int:
        return self._held_ms

    def take(self) -> tuple[list[str], int, int]:
        """(payloads, milliseconds kept, milliseconds dropped), and start empty again."""
        out = [payload for payload, _ in self._payloads]
        result = (out, self._held_ms, self._dropped_ms)
        self._payloads.clear()
        self._held_ms = self._dropped_ms = 0
        return result


def b64_size(payload: str) -> int:
    """Decoded size of a base64 payload."""
    return len(payload) // 4 * 3 - payload[-2:].count("=")


class OutputAudio:
    """Agent audio deltas → PCM in an :class:`AudioOutput`, with bytes received per item."""

    def __init__(self, output: AudioOutput, wire: AudioFormat) -> None:
        self.output = output
        self.wire = wire
        self._decode = _DECODERS.get(wire.type)
        self._received: OrderedDict[str, int] = OrderedDict()
        self._resamplers: dict[str, StreamResampler] = {}
        self._resample = output.sample_rate != wire.rate

    def push(self, item_id: str, delta_b64: str) -> int:
        """Decode one delta and queue it; returns the wire bytes it held."""
        try:
            wire = base64.b64decode(delta_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"audio delta of item {item_id} is not valid base64") from exc
        if not wire:
            return 0
        self._received[item_id] = self._received.get(item_id, 0) + len(wire)
        self._received.move_to_end(item_id)
        if len(self._received) > _KEEP_ITEMS:
            self._received.popitem(last=False)
        pcm = self._decode(wire) if self._decode is not None else wire
        if self._resample:
            pcm = self._resampler(item_id).push(AudioFrame(pcm, self.wire.rate)).tobytes()
        try:
            self.output.push(item_id, pcm)
        except ValueError as exc:  # a late delta of an item that already ended: drop it
            logger.debug("dropping audio delta: %s", exc)
        return len(wire)

    def end(self, item_id: str) -> None:
        resampler = self._resamplers.pop(item_id, None)
        if resampler is not None:
            tail = resampler.flush()
            if tail.size:
                self.output.push(item_id, tail.tobytes())
        self.output.end_item(item_id)

    def discard(self, item_id: str) -> int:
        self._resamplers.pop(item_id, None)
        return self.output.discard(item_id)

    def received_ms(self, item_id: str) -> int:
        return self.wire.ms_for_bytes(self._received.get(item_id, 0))

    def has_received(self, item_id: str) -> bool:
        return item_id in self._received

    def _resampler(self, item_id: str) -> StreamResampler:
        resampler = self._resamplers.get(item_id)
        if resampler is None:
            resampler = StreamResampler(self.wire.rate, self.output.sample_rate)
            self._resamplers[item_id] = resampler
        return resampler


@dataclass(frozen=True, slots=True)
class BargeIn:
    """What one interruption did: the item cut, how much of it was heard, what was deleted."""

    item_id: str | None
    played_ms: int
    truncated_ms: int | None
    deleted: tuple[str, ...]


def barge_in_events(
    flushed: FlushResult, received_ms: Callable[[str], int], new_id: Callable[[str], str]
) -> tuple[BargeIn, list[dict[str, Any]]]:
    """The client events that tell the server what the user really heard.

    The item being played is truncated at the played position, clamped to what was received
    (the server rejects a longer truncation); an item of which nothing was played, and the items
    queued behind it, are deleted (a 0 ms truncation is rejected, and the user heard none of it).
    """
    out: list[dict[str, Any]] = []
    deleted: list[str] = []
    truncated: int | None = None
    if flushed.item_id is not None:
        end_ms = min(flushed.played_ms, received_ms(flushed.item_id))
        if end_ms > 0:
            truncated = end_ms
            out.append(
                events.conversation_item_truncate(flushed.item_id, end_ms, event_id=new_id("event"))
            )
        else:
            deleted.append(flushed.item_id)
    deleted.extend(flushed.dropped_item_ids)
    for item_id in deleted:
        out.append(events.conversation_item_delete(item_id, event_id=new_id("event")))
    return BargeIn(flushed.item_id, flushed.played_ms, truncated, tuple(deleted)), out
