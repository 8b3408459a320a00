"""The WebSocket side of the local server: handshake, auth, frames in and out. Nothing else.

``LocalServer`` listens on ``/v1/realtime?model=...`` (and ``/openai/v1/realtime`` for Azure-shaped
clients), checks the API key before the upgrade, and gives every connection its own
:class:`~realtalk.server.connection.Connection`. Frames go in through ``Connection.receive``;
events come out through a queue that one writer task drains, so the protocol logic never awaits
the network. ``GET /healthz`` answers 200 with the engines' name.

What a client can make it hold is bounded by :class:`~realtalk.server.limits.Limits`: here the
frame size, the bytes queued for a client that does not read (then 1008, or 1013 when all
clients together hold too much), the socket's own write buffer (pongs to a ping flood), the
handshake and idle timeouts and the connection slots. Without an API key, only loopback names
and configured hosts may be used as ``Host``, and only pages on them as ``Origin``
(:mod:`realtalk.web_guard`): no web site the user visits can drive the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from realtalk.server.engines.base import Engines
from realtalk.web_guard import OriginPolicy

from .connection import Connection, expiry_message
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["LocalServer"]

logger = logging.getLogger("realtalk.server")

REALTIME_PATHS = ("/v1/realtime", "/openai/v1/realtime", "/openai/realtime")
DEFAULT_MODEL = "gpt-realtime"
# An append may carry 15 MiB of audio (20 MiB as base64); frames a little larger still arrive, so
# the server can answer them with an error instead of dropping the connection.
DEFAULT_MAX_MESSAGE_BYTES = 24 * 1024 * 1024
_INSECURE_KEY_PREFIX = "openai-insecure-api-key."
_SECRET_HEADERS = frozenset({"authorization", "api-key", "sec-websocket-protocol"})


# Whatever follows these, up to the end of the header value, is a credential.
_SECRET_PATTERN = re.compile(
    r"(?i)(bearer\s+|basic\s+|openai-insecure-api-key\.|api-key[\"']?\s*[:=,]\s*[\"']?"
    r"|authorization[\"']?\s*[:=,]\s*[\"']?)[^\s,;\"')]+"
)
#: The keys of the servers in this process, scrubbed from any record that still holds one.
_KNOWN_SECRETS: set[str] = set()


class _RedactSecrets(logging.Filter):
    """No key reaches the log, at any level: websockets logs every handshake header at DEBUG,
    and a malformed header in an exception message."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and record.msg in ("< %s: %s", "> %s: %s")
            and str(args[0]).lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], _redacted(str(args[0]), str(args[1])))
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        clean = scrub_secrets(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_secrets(record.exc_text)
            record.exc_info = None
        return True


def scrub_secrets(text: str) -> str:
    """``text`` with credentials replaced by ``[redacted]``."""
    text = _SECRET_PATTERN.sub(lambda m: m.group(1) + "[redacted]", text)
    for secret in _KNOWN_SECRETS:
        if secret and secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _redacted(header: str, value: str) -> str:
    if header.lower() == "sec-websocket-protocol":
        return ", ".join(
            _INSECURE_KEY_PREFIX + "[redacted]" if p.strip().startswith(_INSECURE_KEY_PREFIX) else p
            for p in value.split(",")
        )
    if value[:7].lower() == "bearer ":
        return value[:7] + "[redacted]"
    return "[redacted]"


_WEBSOCKETS_LOGGER = logging.getLogger("realtalk.server.websockets")
_WEBSOCKETS_LOGGER.addFilter(_RedactSecrets())
logger.addFilter(_RedactSecrets())
PARTIALS_MIN_CPUS = 4


class LocalServer:
    """An OpenAI-Realtime-compatible server on this machine, fully offline.

    Use it as ``async with LocalServer(engine="scripted") as server:`` and point a client at
    ``server.base_url`` (``AsyncOpenAI(base_url=...)``) or ``server.ws_url``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = None,
        engines: Engines | None = None,
        engine: str = "local",
        voice: str = "piper",
        llm_url: str | None = None,
        llm_model: str | None = None,
        llm_api_key: str | None = None,
        llm: str | None = None,
        session_max_seconds: float = 3600.0,
        max_message_bytes: int | None = None,
        max_connections_per_client: int | None = None,
        limits: Limits | None = None,
        allowed_hosts: Iterable[str] = (),
        partial_transcripts: bool | None = None,
        speculative_transcripts: bool = True,
        smart_turn: bool = True,
        speculative_replies: bool = True,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if session_max_seconds <= 0:
            raise ValueError(f"session_max_seconds must be positive, got {session_max_seconds}")
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self.engines = engines
        self.engine = engine
        self.voice = voice
        self.llm_url = llm_url
        self.llm_model = llm_model
        self.llm_api_key = llm_api_key
        self.llm = llm
        self.session_max_seconds = session_max_seconds
        limits = limits or DEFAULT_LIMITS
        if max_message_bytes is not None:
            limits = replace(limits, max_frame_bytes=max_message_bytes)
        if max_connections_per_client is not None:
            limits = replace(
                limits,
                max_connections_per_client=max_connections_per_client,
                max_connections=max(limits.max_connections, max_connections_per_client),
            )
        self.limits = limits
        self.max_message_bytes = limits.max_frame_bytes
        self.max_connections_per_client = limits.max_connections_per_client
        self.origin_policy = OriginPolicy.for_server(host, allowed_hosts)
        if api_key:
            _KNOWN_SECRETS.add(api_key)
        # Partials run Whisper every second while the user speaks; on a small CPU one is often
        # still running when the turn ends and delays the final transcript (measured: +0.5 to
        # +1.5 s voice-to-voice on 2 cores). None: only where there are cores to spare.
        self.partial_transcripts = (
            (os.cpu_count() or 1) >= PARTIALS_MIN_CPUS
            if partial_transcripts is None
            else partial_transcripts
        )
        self.speculative_transcripts = speculative_transcripts
        # semantic_vad asks Smart Turn (when loaded) whether a pause ends the turn
        self.smart_turn = smart_turn
        # the LLM starts on the speculative transcript during the silence wait
        self.speculative_replies = speculative_replies
        self._progress = progress
        self._server: Server | None = None
        self._per_client: Counter[str] = Counter()
        self._handlers: set[asyncio.Task[Any]] = set()
        #: Bytes queued for all clients together (see :class:`_Outbox`).
        self.queued_bytes = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the engines (unless given) and start listening."""
        if self._server is not None:
            return
        engines = self.engines
        if engines is None:
            from realtalk.server.engines import load_engines

            engines = self.engines = await asyncio.to_thread(
                load_engines,
                cast(Any, self.engine),
                voice=cast(Any, self.voice),
                llm_url=self.llm_url,
                llm_model=self.llm_model,
                llm_api_key=self.llm_api_key,
                llm=self.llm,
                progress=self._progress,
            )
        self._server = await serve(
            self._serve_connection,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            compression=None,
            max_size=self.limits.max_frame_bytes,
            # Frames read ahead per connection: at most 4 x max_frame_bytes held unprocessed.
            max_queue=4,
            open_timeout=self.limits.handshake_timeout_s,
            close_timeout=5,
            create_connection=_guarded_connection(self.limits.max_queued_bytes),
            logger=_WEBSOCKETS_LOGGER,
        )
        logger.info("listening on %s (engines: %s)", self.ws_url, engines.name)

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close(close_connections=True)
        await server.wait_closed()

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_sessions(self) -> int:
        """Connections being served now (each is one Realtime session)."""
        return sum(self._per_client.values())

    @property
    def base_url(self) -> str:
        """What to give ``AsyncOpenAI(base_url=...)`` or ``OpenAIRealtime(base_url=...)``."""
        return f"http://{self._url_host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/v1/realtime"

    @property
    def _url_host(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "", "::") else "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    # --- handshake ---------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path.rstrip("/")
        if self.api_key is None:  # with a key, the key decides; without one, the page's origin
            problem = self.origin_policy.check(
                request.headers.get("Host"), request.headers.get("Origin")
            )
            if problem is not None:
                logger.info("refused a request: %s", problem)
                return _json_error(
                    connection,
                    403,
                    f"Forbidden: {problem}. Start the server with --allowed-host NAME to be "
                    "reached by another name, or with an API key to accept any client.",
                    "forbidden",
                )
        if path == "/healthz":
            name = self.engines.name if self.engines else "none"
            return _json_response(connection, 200, {"status": "ok", "engines": name})
        if path not in REALTIME_PATHS:
            return _json_error(connection, 404, f"Invalid URL (GET {url.path}).", "not_found")
        if self.api_key is not None and not self._authorized(request.headers):
            return _json_error(
                connection,
                401,
                "Incorrect API key provided. Give the key the server was started with, as "
                "'Authorization: Bearer <key>', an 'api-key' header, or the subprotocol "
                "'openai-insecure-api-key.<key>'.",
                "invalid_api_key",
            )
        client = _client_of(connection)
        if sum(self._per_client.values()) >= self.limits.max_connections:
            return _json_error(
                connection,
                503,
                f"The server is at its maximum of {self.limits.max_connections} connections.",
                "server_busy",
            )
        if self._per_client[client] >= self.limits.max_connections_per_client:
            return _json_error(
                connection,
                429,
                f"Too many connections from {client} (at most {self.max_connections_per_client}).",
                "rate_limit_exceeded",
            )
        if "call_id" in parse_qs(url.query):
            return _json_error(
                connection, 400, "call_id sessions (WebRTC/SIP) are not supported.", "invalid_value"
            )
        return None

    def _authorized(self, headers: Headers) -> bool:
        assert self.api_key is not None
        expected = self.api_key.encode()
        offered: list[str] = []
        for auth in headers.get_all("Authorization"):  # sent twice: try both, not a 500
            if auth[:7].lower() == "bearer ":
                offered.append(auth[7:].strip())
        offered.extend(headers.get_all("api-key"))
        for header in headers.get_all("Sec-WebSocket-Protocol"):
            for proto in header.split(","):
                proto = proto.strip()
                if proto.startswith(_INSECURE_KEY_PREFIX):
                    offered.append(proto[len(_INSECURE_KEY_PREFIX) :])
        ok = False
        for key in offered:  # compare every candidate, in constant time each
            ok |= hmac.compare_digest(key.encode(), expected)
        return ok

    # --- one connection ----------------------------------------------------------------------

    async def _serve_connection(self, websocket: ServerConnection) -> None:
        assert self.engines is not None and websocket.request is not None
        query = parse_qs(urlsplit(websocket.request.path).query)
        model = (query.get("model") or query.get("deployment") or [DEFAULT_MODEL])[0]
        client = _client_of(websocket)
        self._per_client[client] += 1
        outbox = _Outbox(self, websocket)

        def send(event: dict[str, Any]) -> None:
            outbox.put(json.dumps(event, separators=(",", ":")))

        connection = Connection(
            self.engines,
            send,
            model=model,
            session_max_seconds=self.session_max_seconds,
            partial_transcripts=self.partial_transcripts,
            speculative_transcripts=self.speculative_transcripts,
            limits=self.limits,
            smart_turn=self.smart_turn,
            speculative_replies=self.speculative_replies,
        )
        logger.info("session %s opened (%s, model %s)", connection.session["id"], client, model)
        writer = asyncio.create_task(outbox.run())
        expiry = asyncio.create_task(self._expire(websocket, connection, outbox))
        activity = _Activity(asyncio.get_running_loop().time())
        idle = asyncio.create_task(self._close_when_idle(websocket, connection, activity))
        connection.open()
        try:
            while True:
                # Undecoded: the UTF-8 decoding of a 20 MB frame is done off the loop too.
                frame = await websocket.recv(decode=False)
                activity.last = asyncio.get_running_loop().time()
                await connection.receive(frame)
        except ConnectionClosed:
            pass
        finally:
            if connection.expired:  # let the 1001 close handshake finish
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(expiry, timeout=5)
            expiry.cancel()
            idle.cancel()
            await connection.aclose()
            outbox.finish()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, TimeoutError):
                await asyncio.wait_for(writer, timeout=5)
            outbox.drop()
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]
            logger.info("session %s closed", connection.session["id"])

    async def _expire(
        self, websocket: ServerConnection, connection: Connection, outbox: _Outbox
    ) -> None:
        await asyncio.sleep(self.session_max_seconds)
        connection.expire()
        await outbox.drained()
        await websocket.close(1001, expiry_message(self.session_max_seconds))

    async def _close_when_idle(
        self, websocket: ServerConnection, connection: Connection, activity: _Activity
    ) -> None:
        """Close a connection whose client has sent nothing for ``idle_timeout_s`` (and that
        has no response running): an idle socket must not hold a slot for the whole hour."""
        loop = asyncio.get_running_loop()
        timeout = self.limits.idle_timeout_s
        while True:
            wait = activity.last + timeout - loop.time()
            if wait <= 0 and not connection.responses:
                break
            await asyncio.sleep(max(wait, 1.0))
        logger.info("session %s idle for %.0f s: closing", connection.session["id"], timeout)
        await websocket.close(1001, f"No event from the client for {timeout:.0f} seconds.")


class _Activity:
    __slots__ = ("last",)

    def __init__(self, last: float) -> None:
        self.last = last


class _Outbox:
    """The events waiting for one client, counted in bytes.

    A client that does not read cannot make the server hold more than ``max_queued_bytes``
    for it (then: close 1008, as a policy violation), nor make all clients together hold
    more than ``max_process_queued_bytes`` (then: 1013, try again later). What was queued is
    dropped at once: the memory is back before the close handshake ends.
    """

    def __init__(self, server: LocalServer, websocket: ServerConnection) -> None:
        self._server = server
        self._websocket = websocket
        self._queue: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self.bytes = 0
        self._finished = False
        self._close: tuple[int, str] | None = None

    def put(self, text: str) -> None:
        if self._finished or self._close is not None:
            return
        self._queue.append(text)
        self.bytes += len(text)
        self._server.queued_bytes += len(text)
        self._wakeup.set()
        limits = self._server.limits
        if self.bytes > limits.max_queued_bytes:
            self._overflow(
                1008, f"The client is not reading: over {limits.max_queued_bytes} bytes queued."
            )
        elif self._server.queued_bytes > limits.max_process_queued_bytes:
            self._overflow(1013, "The server is holding too much for slow clients; try again.")

    def _overflow(self, code: int, reason: str) -> None:
        logger.warning("closing a connection (%d): %s", code, reason)
        self._close = (code, reason)
        self.drop()
        asyncio.get_running_loop().create_task(_close_or_abort(self._websocket, code, reason))

    def drop(self) -> None:
        self._server.queued_bytes -= self.bytes
        self.bytes = 0
        self._queue.clear()

    def finish(self) -> None:
        """Send what is queued, then stop."""
        self._finished = True
        self._wakeup.set()

    async def drained(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._queue and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def run(self) -> None:
        """Send queued events in order until finished, overflowed, or the socket closes."""
        try:
            while self._close is None:
                while self._queue and self._close is None:
                    text = self._queue.popleft()
                    self.bytes -= len(text)
                    self._server.queued_bytes -= len(text)
                    await self._websocket.send(text)
                if self._finished:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
        except ConnectionClosed:
            return
        finally:
            self.drop()


async def _close_or_abort(websocket: ServerConnection, code: int, reason: str) -> None:
    try:
        await asyncio.wait_for(websocket.close(code, reason), timeout=2.0)
    except (TimeoutError, ConnectionClosed, OSError):
        pass
    if websocket.transport is not None and not websocket.transport.is_closing():
        websocket.transport.abort()


#: Pings and pongs a client may send: a burst, then this many a second.
CONTROL_FRAMES_BURST = 50
CONTROL_FRAMES_PER_S = 10.0


def _guarded_connection(max_buffered: int) -> type[ServerConnection]:
    class GuardedConnection(ServerConnection):
        """Pongs and close frames are written without flow control: a client that floods pings
        and never reads would grow the socket's write buffer without bound, and a ping flood
        costs the event loop a frame parse each. Cut both off."""

        _control_tokens = float(CONTROL_FRAMES_BURST)
        _control_at = 0.0

        def process_event(self, event: Any) -> None:
            if isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG):
                now = self.loop.time()
                self._control_tokens = min(
                    float(CONTROL_FRAMES_BURST),
                    self._control_tokens + (now - self._control_at) * CONTROL_FRAMES_PER_S,
                )
                self._control_at = now
                self._control_tokens -= 1
                if self._control_tokens < 0:
                    if self.transport is not None and not self.transport.is_closing():
                        logger.warning("closing a connection: a flood of pings or pongs")
                        self.transport.abort()
                    return
            super().process_event(event)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            transport = self.transport
            if transport is not None and transport.get_write_buffer_size() > max_buffered:
                logger.warning(
                    "closing a connection: over %d bytes unread by the client", max_buffered
                )
                transport.abort()

    return GuardedConnection


def _select_subprotocol(connection: ServerConnection, subprotocols: Any) -> Any:
    """Echo ``realtime`` when offered (browsers send it beside the key subprotocol)."""
    return "realtime" if "realtime" in subprotocols else None


def _client_of(connection: ServerConnection) -> str:
    address = connection.remote_address
    return str(address[0]) if address else "unknown"


def _json_response(connection: ServerConnection, status: int, body: dict[str, Any]) -> Response:
    response = connection.respond(status, json.dumps(body))
    del response.headers["Content-Type"]
    response.headers["Content-Type"] = "application/json"
    return response


def _json_error(connection: ServerConnection, status: int, message: str, code: str) -> Response:
    return _json_response(
        connection,
        status,
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        },
    )
