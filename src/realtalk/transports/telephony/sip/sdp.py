"""SDP offer/answer for a phone call's audio (RFC 4566, RFC 3264), sans I/O.

We answer one audio stream with one G.711 codec (PCMU preferred, then PCMA) at 8 kHz, 20 ms
packets, plus RFC 4733 ``telephone-event`` when the offer has it. Video and other streams are
rejected in the answer with port 0, as RFC 3264 §6 says; an offer without any G.711 is an
:class:`SdpError` (the endpoint answers ``488 Not Acceptable Here``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["AudioOffer", "SdpError", "build_answer", "parse_offer"]

_STATIC = {0: "PCMU", 8: "PCMA"}
_PREFERENCE = ("PCMU", "PCMA")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """An offer we cannot answer; the text says why (it goes into a 488's Warning)."""


@dataclass
class AudioOffer:
    """What we take from an offer: where to send, which codec, DTMF, the direction."""

    address: str
    port: int
    payload_type: int
    encoding: str  # "audio/pcmu" or "audio/pcma"
    dtmf_payload_type: int | None
    direction: str = "sendrecv"
    #: Media lines of the offer, in order, for the answer (kind, proto, accepted).
    media_lines: list[tuple[str, str, str, bool]] = field(default_factory=list)


def parse_offer(sdp: bytes | str) -> AudioOffer:
    text = sdp.decode("utf-8", "replace") if isinstance(sdp, bytes) else sdp
    session_address: str | None = None
    session_direction = "sendrecv"
    media: list[dict[str, object]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        current = media[-1] if media else None
        if kind == "c":
            address = _connection_address(value)
            if current is None:
                session_address = address
            else:
                current["address"] = address
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError(f"malformed media line {value[:60]!r}")
            media.append(
                {
                    "kind": parts[0],
                    "port": int(parts[1].split("/")[0]),
                    "proto": parts[2],
                    "formats": parts[3:],
                    "rtpmap": {},
                    "direction": None,
                }
            )
        elif kind == "a":
            name, _, attr = value.partition(":")
            if name in _DIRECTIONS:
                if current is None:
                    session_direction = name
                else:
                    current["direction"] = name
            elif name == "rtpmap" and current is not None:
                pt, _, encoding = attr.partition(" ")
                if pt.isdigit():
                    rtpmap = current["rtpmap"]
                    assert isinstance(rtpmap, dict)
                    rtpmap[int(pt)] = encoding.strip()
    lines: list[tuple[str, str, str, bool]] = []
    chosen: AudioOffer | None = None
    for m in media:
        accepted = False
        if chosen is None and m["kind"] == "audio" and m["proto"] in ("RTP/AVP", "RTP/AVPF"):
            chosen = _choose(m, session_address, session_direction)
            accepted = chosen is not None
        formats = m["formats"]
        first = formats[0] if isinstance(formats, list) and formats else "0"
        lines.append((str(m["kind"]), str(m["proto"]), str(first), accepted))
    if chosen is None:
        if not any(m["kind"] == "audio" for m in media):
            raise SdpError("the offer has no audio stream")
        raise SdpError("no common codec: we take PCMU or PCMA at 8000 Hz over RTP/AVP")
    chosen.media_lines = lines
    return chosen


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) < 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"malformed connection line {value[:60]!r}")
    address = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"connection address {address[:60]!r} is not an IP address") from None
    return address


def _choose(m: dict[str, object], session_address: str | None, direction: str) -> AudioOffer | None:
    formats = [int(f) for f in m["formats"] if isinstance(f, str) and f.isdigit()]  # type: ignore[attr-defined]
    rtpmap = m["rtpmap"]
    assert isinstance(rtpmap, dict)
    names: dict[int, str] = {}
    for pt in formats:
        encoding = str(rtpmap.get(pt, "")) or _STATIC.get(pt, "")
        names[pt] = encoding
    codec: tuple[int, str] | None = None
    for wanted in _PREFERENCE:
        for pt in formats:
            name, _, rate = names[pt].partition("/")
            if name.upper() == wanted and rate.split("/")[0] in ("", "8000"):
                codec = (pt, wanted)
                break
        if codec is not None:
            break
    if codec is None:
        return None
    dtmf = next(
        (pt for pt in formats if names[pt].lower().startswith("telephone-event/8000")), None
    )
    address = m.get("address") or session_address
    if not isinstance(address, str):
        raise SdpError("the offer has no connection address (c=)")
    port = m["port"]
    assert isinstance(port, int)
    if not 0 <= port <= 65535:
        raise SdpError(f"bad RTP port {port}")
    return AudioOffer(
        address=address,
        port=port,
        payload_type=codec[0],
        encoding="audio/pcmu" if codec[1] == "PCMU" else "audio/pcma",
        dtmf_payload_type=dtmf,
        direction=str(m.get("direction") or direction),
    )


_ANSWER_DIRECTION = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}


def build_answer(
    offer: AudioOffer, address: str, port: int, session_id: int, version: int
) -> bytes:
    """The answer to ``offer``: our RTP address, the chosen codec, DTMF, the matching direction."""
    family = "IP6" if ":" in address else "IP4"
    codec = "PCMU" if offer.encoding == "audio/pcmu" else "PCMA"
    lines = [
        "v=0",
        f"o=realtalk {session_id} {version} IN {family} {address}",
        "s=realtalk",
        f"c=IN {family} {address}",
        "t=0 0",
    ]
    for kind, proto, first_format, accepted in offer.media_lines:
        if not accepted:  # rejected: port 0 (RFC 3264 §6)
            lines.append(f"m={kind} 0 {proto} {first_format}")
            continue
        formats = [str(offer.payload_type)]
        if offer.dtmf_payload_type is not None:
            formats.append(str(offer.dtmf_payload_type))
        lines.append(f"m=audio {port} RTP/AVP {' '.join(formats)}")
        lines.append(f"a=rtpmap:{offer.payload_type} {codec}/8000")
        if offer.dtmf_payload_type is not None:
            lines.append(f"a=rtpmap:{offer.dtmf_payload_type} telephone-event/8000")
            lines.append(f"a=fmtp:{offer.dtmf_payload_type} 0-16")
        lines.append("a=ptime:20")
        lines.append(f"a={_ANSWER_DIRECTION.get(offer.direction, 'sendrecv')}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
