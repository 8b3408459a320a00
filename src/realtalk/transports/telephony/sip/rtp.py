"""RTP (RFC 3550) for one G.711 call, sans I/O: packets, a jitter buffer, RFC 4733 DTMF.

- :func:`parse_rtp` / :class:`RtpSender`: the 12-byte header (CSRCs and extensions skipped),
  sequence numbers and timestamps that wrap, a marker on the first packet of each talkspurt.
- :class:`JitterBuffer`: packets are put in sequence order and released one 20 ms slot at a
  time once ``depth`` slots are buffered; late and duplicate packets are dropped; a missing slot
  plays as silence (G.711 has no concealment worth the name); ``max_packets`` bounds a flood.
- :class:`DtmfReceiver`: a telephone-event's digit is reported once, at its first packet (the
  end packet is sent three times, a key held long re-sends the start).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = ["DtmfReceiver", "JitterBuffer", "RtpPacket", "RtpSender", "parse_rtp"]

_HEADER = struct.Struct("!BBHII")
_EVENTS = "0123456789*#ABCD"


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; ValueError for anything else (RTCP, STUN, garbage)."""
    if len(data) < _HEADER.size:
        raise ValueError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("not RTP version 2")
    payload_type = second & 0x7F
    if 72 <= payload_type <= 76:
        raise ValueError("an RTCP packet")
    offset = _HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            raise ValueError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last byte says how much
        if end <= offset:
            raise ValueError("padding without payload")
        end -= data[-1]
    if end < offset:
        raise ValueError("truncated RTP packet")
    return RtpPacket(payload_type, sequence, timestamp, ssrc, bool(second & 0x80), data[offset:end])


class RtpSender:
    """Builds our packets: random SSRC, sequence and timestamp start (RFC 3550 §5.1)."""

    def __init__(self, payload_type: int, samples_per_packet: int = 160) -> None:
        self.payload_type = payload_type
        self.samples_per_packet = samples_per_packet
        self.ssrc = random.getrandbits(32)
        self._sequence = random.getrandbits(16)
        self._timestamp = random.getrandbits(32)
        self._talkspurt = True

    def packet(self, payload: bytes) -> bytes:
        marker = 0x80 if self._talkspurt else 0
        self._talkspurt = False
        header = _HEADER.pack(
            0x80, marker | self.payload_type, self._sequence, self._timestamp, self.ssrc
        )
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (self._timestamp + self.samples_per_packet) & 0xFFFFFFFF
        return header + payload

    def pause(self, samples: int) -> None:
        """Silence not sent: the timestamp still advances, the next packet starts a talkspurt."""
        self._timestamp = (self._timestamp + samples) & 0xFFFFFFFF
        self._talkspurt = True


def _newer(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


class JitterBuffer:
    """Reorders audio packets and releases one per 20 ms tick (see the module docstring)."""

    def __init__(self, depth: int = 3, max_packets: int = 50) -> None:
        self.depth = depth
        self.max_packets = max_packets
        self._packets: dict[int, bytes] = {}
        self._next: int | None = None  # sequence number of the next slot to release
        self._primed = False
        self.late = 0
        self.duplicates = 0
        self.overflows = 0
        self.lost = 0

    def put(self, packet: RtpPacket) -> None:
        seq = packet.sequence
        if self._next is None:
            self._next = seq
        elif _newer(seq, self._next) < 0:
            self.late += 1
            return
        elif _newer(seq, self._next) > self.max_packets:
            # A jump far ahead (a new stream after hold, a restart): start over from it.
            self._packets.clear()
            self._next = seq
            self._primed = False
        if seq in self._packets:
            self.duplicates += 1
            return
        if len(self._packets) >= self.max_packets:
            self.overflows += 1
            return
        self._packets[seq] = packet.payload

    def pop(self) -> bytes | None:
        """The payload for this tick; b"" for a lost packet; None while empty or priming."""
        if self._next is None or not self._packets:
            self._primed = False
            return None
        if not self._primed:
            if len(self._packets) < self.depth:
                return None
            self._primed = True
        seq = self._next
        self._next = (seq + 1) & 0xFFFF
        payload = self._packets.pop(seq, None)
        if payload is None:
            self.lost += 1
            return b""
        return payload

    def __len__(self) -> int:
        return len(self._packets)


class DtmfReceiver:
    """RFC 4733 telephone-events → digits, each reported once."""

    def __init__(self) -> None:
        self._last_timestamp: int | None = None

    def feed(self, packet: RtpPacket) -> str | None:
        if len(packet.payload) < 4:
            return None
        event = packet.payload[0]
        if event >= len(_EVENTS):
            return None  # flash and tones we do not map
        if packet.timestamp == self._last_timestamp:
            return None  # the same event continuing, or its end re-sent
        self._last_timestamp = packet.timestamp
        return _EVENTS[event]
