"""SIP messages (RFC 3261 §7), sans I/O: parse a datagram into a request or response, build one.

Only what a user agent server needs: start line, headers (compact forms expanded, repeated
headers kept in order, comma-separated Via/Route/Contact split), a body of Content-Length bytes.
Anything that is not SIP raises :class:`SipParseError` with a reason; the endpoint answers a
request it can still identify (Via, Call-ID, CSeq, From, To) with ``400 Bad Request`` and that
reason, and drops the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SipMessage",
    "SipParseError",
    "StreamFramer",
    "parse_message",
    "reason_phrase",
]

#: Largest datagram accepted (RFC 3261 §18.1.1 asks UDP messages to stay under the path MTU).
MAX_MESSAGE_BYTES = 16 * 1024
_MAX_HEADERS = 100

_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
}
_MULTI = {"via", "route", "record-route", "contact"}  # comma-separated lists (§7.3.1)
_CANONICAL = {
    "via": "Via",
    "from": "From",
    "to": "To",
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "contact": "Contact",
    "content-length": "Content-Length",
    "content-type": "Content-Type",
    "record-route": "Record-Route",
    "route": "Route",
    "www-authenticate": "WWW-Authenticate",
    "max-forwards": "Max-Forwards",
}
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_PHRASES = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    481: "Call/Transaction Does Not Exist",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    503: "Service Unavailable",
    513: "Message Too Large",
}


def reason_phrase(status: int) -> str:
    return _PHRASES.get(status, "Unknown")


class SipParseError(ValueError):
    """Not a valid SIP message; the text says what is wrong (it goes into a 400's reason)."""

    def __init__(self, reason: str, partial: SipMessage | None = None) -> None:
        super().__init__(reason)
        self.partial = partial  # the headers read so far, to answer a request with 400


@dataclass
class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` set)."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)  # lower-case names, in order
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def set(self, name: str, value: str) -> None:
        name = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k != name]
        self.headers.append((name, value))

    @property
    def call_id(self) -> str:
        return self.get("call-id") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header; (0, "") when missing or bad."""
        value = self.get("cseq") or ""
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return 0, ""
        return int(parts[0]), parts[1].upper()

    def to_bytes(self) -> bytes:
        if self.is_request:
            start = f"{self.method} {self.uri} SIP/2.0"
        else:
            start = f"SIP/2.0 {self.status} {self.reason or reason_phrase(self.status or 0)}"
        lines = [start]
        for name, value in self.headers:
            if name == "content-length":
                continue
            lines.append(f"{_CANONICAL.get(name, _title(name))}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def parse_message(data: bytes) -> SipMessage:
    """Parse one SIP message from a datagram."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = _unfold(text.replace("\r\n", "\n").split("\n"))
    if not lines or not lines[0].strip():
        raise SipParseError("empty message")
    message = _start_line(lines[0])
    for line in lines[1:]:
        if len(message.headers) >= _MAX_HEADERS:
            raise SipParseError(f"more than {_MAX_HEADERS} headers", message)
        name, colon, value = line.partition(":")
        name = name.strip().lower()
        if not colon or not name or not _TOKEN.match(name):
            raise SipParseError(f"malformed header line {line[:60]!r}", message)
        name = _COMPACT.get(name, name)
        value = value.strip()
        if name in _MULTI:
            message.headers.extend((name, part) for part in _split_commas(value))
        else:
            message.headers.append((name, value))
    _check(message, body)
    return message


def _unfold(lines: list[str]) -> list[str]:
    """Join continuation lines (leading whitespace) to the header they continue (§7.3.1)."""
    out: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and out:
            out[-1] += " " + line.strip()
        elif line:
            out.append(line)
    return out


def _start_line(line: str) -> SipMessage:
    parts = line.split(" ", 2)
    if len(parts) != 3:
        raise SipParseError(f"malformed start line {line[:80]!r}")
    if parts[0] == "SIP/2.0":
        if not (parts[1].isdigit() and len(parts[1]) == 3):
            raise SipParseError(f"bad status code {parts[1][:10]!r}")
        return SipMessage(status=int(parts[1]), reason=parts[2])
    method, uri, version = parts
    if version.strip() != "SIP/2.0":
        raise SipParseError(f"unsupported version {version[:20]!r}")
    if not _TOKEN.match(method):
        raise SipParseError(f"bad method {method[:20]!r}")
    if ":" not in uri:
        raise SipParseError(f"bad Request-URI {uri[:80]!r}")
    return SipMessage(method=method.upper(), uri=uri)


def _check(message: SipMessage, body: bytes) -> None:
    for name in ("via", "from", "to", "call-id", "cseq"):
        if message.get(name) is None:
            raise SipParseError(f"missing {_CANONICAL.get(name, name)} header", message)
    number, method = message.cseq
    if not method:
        raise SipParseError("malformed CSeq header", message)
    if message.is_request and method != message.method and message.method != "ACK":
        raise SipParseError("CSeq method does not match the request method", message)
    if number >= 2**31:
        raise SipParseError("CSeq number out of range", message)
    length = message.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise SipParseError("malformed Content-Length", message)
        n = int(length)
        if n > len(body):
            raise SipParseError("body shorter than Content-Length", message)
        body = body[:n]
    message.body = body


def _split_commas(value: str) -> list[str]:
    """Split a header list on commas outside quotes and angle brackets."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        if ch == "," and not quoted and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def header_param(value: str, name: str) -> str | None:
    """A ``;name=value`` parameter of a header value (outside its <URI>)."""
    tail = value.rsplit(">", 1)[-1] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name:
            return val.strip()
    return None


def uri_of(value: str) -> str:
    """The URI in a From/To/Contact value (``"Bob" <sip:bob@x>;tag=1`` → ``sip:bob@x``)."""
    if "<" in value and ">" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


def user_of(uri: str) -> str | None:
    """The user part of a SIP URI (``sip:+1555@host`` → ``+1555``)."""
    rest = uri.split(":", 1)[-1]
    return rest.split("@", 1)[0] if "@" in rest else None


_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", re.I | re.M)


class StreamFramer:
    """Cuts a byte stream (SIP over TCP, RFC 3261 §18.3) into messages by Content-Length.

    CRLF keep-alives between messages are skipped. A header block or body beyond
    ``MAX_MESSAGE_BYTES`` is a :class:`SipParseError` (the connection is then closed).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_MESSAGE_BYTES:
                    raise SipParseError(f"header block larger than {MAX_MESSAGE_BYTES} bytes")
                return messages
            head = bytes(self._buffer[:end])
            match = _CONTENT_LENGTH.search(head)
            if match is None:
                raise SipParseError("a message over TCP needs a Content-Length header")
            length = int(match.group(1))
            total = end + 4 + length
            if total > MAX_MESSAGE_BYTES:
                raise SipParseError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
