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

import binascii
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pybase64 import b64decode, b64encode_as_string

from realtalk.media.frame import AudioFrame
from realtalk.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from realtalk.media.playout import AudioOutput, FlushResult
from realtalk.media.resample import StreamResampler
from realtalk.protocol import AudioFormat, events

__all__ = [
    "AudioAppend",
    "AudioInput",
    "BargeIn",
    "HeldAudio",
    "OutputAudio",
    "append_event",
    "append_json",
    "b64_size",
    "barge_in_events",
    "join_appends",
]

_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "audio/pcmu": ulaw_encode,
    "audio/pcma": alaw_encode,
}
_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "audio/pcmu": ulaw_decode,
    "audio/pcma": alaw_decode,
}
logger = logging.getLogger("realtalk.client")

_INT16_LE = np.dtype("<i2")
# 0-d arrays, not NumPy scalars: a ufunc converts a scalar operand on every call.
_I16_MAX = np.array(32767.0, dtype=np.float32)
_I16_MIN = np.array(-32768.0, dtype=np.float32)

_KEEP_ITEMS = 256  # per-item counters remembered for truncation bounds


class AudioInput:
    """User audio → base64 payloads for ``input_audio_buffer.append`` in the wire format.

    The hot path, 50 frames a second per session, does as little per frame as it can: frames
    are gathered as they come (``_raw``, one format at a time) and downmixed and resampled
    together once they would fill a batch, into a float buffer of soxr's output in int16 units;
    rounding to int16, encoding and base64 happen once per batch. NumPy's and soxr's cost per
    call, not per sample, was most of the time at 20 ms. A batch goes out once the input since
    the last one covers ``batch_ms``, as a multiple of three samples, so its base64 has no
    padding and consecutive payloads can be joined into one append (the driver does, for
    appends that queued while the socket was busy).
    """

    def __init__(
        self, wire: AudioFormat, *, raw_rate: int, raw_channels: int, batch_ms: int
    ) -> None:
        self.wire = wire
        self.raw_rate = raw_rate
        self.raw_channels = raw_channels
        self._resampler: StreamResampler | None = None
        self._encode = _ENCODERS.get(wire.type)
        self._batch_samples = wire.rate * batch_ms // 1000
        self._raw = bytearray()  # frames not resampled yet, all of one format
        self._raw_rate = 0
        self._raw_channels = 0
        self._raw_per_sample = 1.0  # bytes of _raw per output sample (float, for the estimate)
        self._pending = np.empty(4 * self._batch_samples, np.float32)  # int16 units, unrounded
        self._fill = 0
        self._due = 0.0  # input since the last append, in wire samples
        self._pcm = np.empty(4 * self._batch_samples, _INT16_LE)

    def push(self, audio: bytes | bytearray | memoryview | AudioFrame) -> str | None:
        """Take one chunk; return a payload when a batch is full (else None)."""
        if not isinstance(audio, AudioFrame):
            if not isinstance(audio, bytes | bytearray | memoryview):
                raise TypeError(f"audio must be bytes or an AudioFrame, got {type(audio).__name__}")
            audio = AudioFrame(bytes(audio), self.raw_rate, self.raw_channels)
        if audio.sample_rate != self._raw_rate or audio.num_channels != self._raw_channels:
            self._resample_raw()
            self._raw_rate = audio.sample_rate
            self._raw_channels = audio.num_channels
            self._raw_per_sample = 2 * audio.num_channels * audio.sample_rate / self.wire.rate
        self._raw += audio.data
        self._due += len(audio.data) / self._raw_per_sample
        if self._due < self._batch_samples:
            return None
        self._resample_raw()
        # The input since the last append covers a batch: what has come out of the resampler
        # goes now, and what it still holds (a few ms) rides with the next. Waiting for that
        # too had 48 kHz input go out every third 20 ms frame for 40 ms batches.
        n = self._fill - self._fill % 3
        if not n:
            return None
        self._due = 0.0
        return self._take(n)

    def flush(self) -> str | None:
        """Everything still held (resampler tail included), e.g. before a manual commit."""
        self._resample_raw()
        if self._resampler is not None:
            self._add(self._resampler.flush_float())
            self._resampler = None
        self._due = 0.0
        return self._take(self._fill) if self._fill else None

    def reset(self) -> None:
        self._raw.clear()
        self._fill = 0
        self._due = 0.0
        if self._resampler is not None:
            self._resampler.flush()

    def _resample_raw(self) -> None:
        """Downmix and resample the gathered frames into the pending batch."""
        raw = self._raw
        if not raw:
            return
        rate, channels = self._raw_rate, self._raw_channels
        if rate == self.wire.rate and channels == 1:
            if self._resampler is not None:  # the format changed: the old stream's tail first
                self._add(self._resampler.flush_float())
                self._resampler = None
            self._add(np.frombuffer(raw, _INT16_LE))
        else:
            resampler = self._resampler
            if resampler is None:
                resampler = StreamResampler(
                    rate, self.wire.rate, num_channels_in=channels, quality="live"
                )
                self._resampler = resampler
            self._add(resampler.push_float(raw, rate, channels))
        raw.clear()

    def _add(self, samples: npt.NDArray[Any]) -> None:
        n = samples.size
        end = self._fill + n
        if end > self._pending.size:
            grown = np.empty(2 * end, np.float32)
            grown[: self._fill] = self._pending[: self._fill]
            self._pending = grown
        self._pending[self._fill : end] = samples
        self._fill = end

    def _take(self, n: int) -> str:
        """The first ``n`` pending samples, rounded, encoded and base64'd; the rest stay."""
        pending = self._pending
        head = pending[:n]
        np.rint(head, out=head)
        np.minimum(head, _I16_MAX, out=head)
        np.maximum(head, _I16_MIN, out=head)
        if self._pcm.size < n:
            self._pcm = np.empty(2 * n, _INT16_LE)
        pcm = self._pcm[:n]
        np.copyto(pcm, head, casting="unsafe")
        rest = self._fill - n
        if rest:
            pending[:rest] = pending[n : self._fill]
        self._fill = rest
        if self._encode is not None:
            return b64encode_as_string(self._encode(pcm.tobytes()))
        return b64encode_as_string(pcm.data)


class AudioAppend(dict[str, Any]):
    """An ``input_audio_buffer.append`` that :class:`AudioInput`'s payload went into: a plain
    event dict, marked so the send loop writes it with :func:`append_json` (no ``json.dumps``:
    a fixed type and a base64 payload need no escaping) and joins consecutive ones."""

    __slots__ = ()


def append_event(payload_b64: str) -> AudioAppend:
    return AudioAppend(type="input_audio_buffer.append", audio=payload_b64)


_APPEND_HEAD = '{"type":"input_audio_buffer.append","audio":"'


def append_json(payload_b64: str) -> str:
    """The JSON text of an append of ``payload_b64`` (base64 holds no character JSON escapes)."""
    return _APPEND_HEAD + payload_b64 + '"}'


class _Queue(Protocol):
    def empty(self) -> bool: ...
    def get_nowait(self) -> dict[str, Any]: ...
    def put_nowait(self, item: dict[str, Any]) -> None: ...


#: Appends joined into one message stay under this many base64 characters (~1 MiB of
#: audio); the server takes events of up to 15 MiB.
MAX_JOINED_APPEND_CHARS = 1 << 20


def join_appends(first: AudioAppend, queue: _Queue) -> str:
    """The JSON text of ``first`` joined with the appends queued right behind it.

    One message and one socket write instead of several, when the sender fell behind. Base64
    payloads join only after one without padding (``AudioInput``'s batches have none). The
    queue keeps everything else in order: an event that ends the run goes back to its front.
    """
    audio = first["audio"]
    if queue.empty() or audio.endswith("="):
        return append_json(audio)
    parts = [audio]
    size = len(audio)
    while not queue.empty() and size < MAX_JOINED_APPEND_CHARS:
        event = queue.get_nowait()
        if type(event) is not AudioAppend:
            _put_back(queue, event)
            break
        more = event["audio"]
        parts.append(more)
        size += len(more)
        if more.endswith("="):
            break
    return append_json("".join(parts))


def _put_back(queue: _Queue, event: dict[str, Any]) -> None:
    """``event`` back at the front of ``queue`` (rare: a non-append right behind appends that
    waited; the queue holds what one busy socket write let pile up)."""
    rest = [event]
    while not queue.empty():
        rest.append(queue.get_nowait())
    for item in rest:
        queue.put_nowait(item)


class HeldAudio:
    """User audio that arrives while the connection is being rebuilt.

    The latest ``max_ms`` are kept and appended to the new session once it is ready, so what the
    user says during a short outage is still heard (server VAD finds the speech in it); older
    audio is dropped and counted, so the loss can be reported instead of happening silently.
    """

    def __init__(self, wire: AudioFormat, max_ms: int) -> None:
        self.wire = wire
        self.max_ms = max_ms
        self._payloads: deque[tuple[str, float]] = deque()
        self._held_ms = 0.0  # exact: the replay advances the audio clock by the amount held
        self._dropped_ms = 0.0

    def add(self, payload_b64: str) -> None:
        ms = self.wire.duration_ms(b64_size(payload_b64))
        self._payloads.append((payload_b64, ms))
        self._held_ms += ms
        while self._held_ms > self.max_ms and len(self._payloads) > 1:
            _, old = self._payloads.popleft()
            self._held_ms -= old
            self._dropped_ms += old

    @property
    def held_ms(self) -> int:
        return round(self._held_ms)

    def take(self) -> tuple[list[str], int, int]:
        """(payloads, milliseconds kept, milliseconds dropped), and start empty again."""
        out = [payload for payload, _ in self._payloads]
        result = (out, round(self._held_ms), round(self._dropped_ms))
        self._payloads.clear()
        self._held_ms = self._dropped_ms = 0.0
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
            wire = b64decode(delta_b64, validate=True)
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
