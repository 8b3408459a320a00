"""The WebSocket side of the local server: handshake, auth, frames in and out. Nothing else.

``LocalServer`` listens on ``/v1/realtime?model=...`` (and ``/openai/v1/realtime`` for Azure-shaped
clients), checks the API key before the upgrade, and gives every connection its own
:class:`~realtalk.server.connection.Connection`. Frames go in through ``Connection.receive``;
events come out through a queue that one writer task drains, so the protocol logic never awaits
the network. ``GET /healthz`` answers 200 with the engines' name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from realtalk.server.engines.base import Engines

from .connection import Connection, expiry_message

__all__ = ["LocalServer"]

logger = logging.getLogger("realtalk.server")

REALTIME_PATHS = ("/v1/realtime", "/openai/v1/realtime", "/openai/realtime")
DEFAULT_MODEL = "gpt-realtime"
# An append may carry 15 MiB of audio (20 MiB as base64); frames a little larger still arrive, so
# the server can answer them with an error instead of dropping the connection.
DEFAULT_MAX_MESSAGE_BYTES = 24 * 1024 * 1024
_INSECURE_KEY_PREFIX = "openai-insecure-api-key."
_SECRET_HEADERS = frozenset({"authorization", "api-key", "sec-websocket-protocol"})


class _RedactSecrets(logging.Filter):
    """At DEBUG websockets logs every handshake header; keys must not reach the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and record.msg in ("< %s: %s", "> %s: %s")
            and str(args[0]).lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], _redacted(str(args[0]), str(args[1])))
        return True


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
        session_max_seconds: float = 3600.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_connections_per_client: int = 32,
        partial_transcripts: bool | None = None,
        speculative_transcripts: bool = True,
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
        self.session_max_seconds = session_max_seconds
        self.max_message_bytes = max_message_bytes
        self.max_connections_per_client = max_connections_per_client
        # Partials run Whisper every second while the user speaks; on a small CPU one is often
        # still running when the turn ends and delays the final transcript (measured: +0.5 to
        # +1.5 s voice-to-voice on 2 cores). None: only where there are cores to spare.
        self.partial_transcripts = (
            (os.cpu_count() or 1) >= PARTIALS_MIN_CPUS
            if partial_transcripts is None
            else partial_transcripts
        )
        self.speculative_transcripts = speculative_transcripts
        self._progress = progress
        self._server: Server | None = None
        self._per_client: Counter[str] = Counter()
        self._handlers: set[asyncio.Task[Any]] = set()

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
                progress=self._progress,
            )
        self._server = await serve(
            self._serve_connection,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            compression=None,
            max_size=self.max_message_bytes,
            max_queue=64,
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
        if self._per_client[client] >= self.max_connections_per_client:
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
        auth = headers.get("Authorization", "")
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
        outbox: asyncio.Queue[str | None] = asyncio.Queue()

        def send(event: dict[str, Any]) -> None:
            outbox.put_nowait(json.dumps(event, separators=(",", ":")))

        connection = Connection(
            self.engines,
            send,
            model=model,
            session_max_seconds=self.session_max_seconds,
            partial_transcripts=self.partial_transcripts,
            speculative_transcripts=self.speculative_transcripts,
        )
        logger.info("session %s opened (%s, model %s)", connection.session["id"], client, model)
        writer = asyncio.create_task(_write(websocket, outbox))
        expiry = asyncio.create_task(self._expire(websocket, connection, outbox))
        connection.open()
        try:
            async for frame in websocket:
                await connection.receive(frame)
        except ConnectionClosed:
            pass
        finally:
            if connection.expired:  # let the 1001 close handshake finish
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(expiry, timeout=5)
            expiry.cancel()
            await connection.aclose()
            outbox.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await asyncio.wait_for(writer, timeout=5)
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]
            logger.info("session %s closed", connection.session["id"])

    async def _expire(
        self, websocket: ServerConnection, connection: Connection, outbox: asyncio.Queue[str | None]
    ) -> None:
        await asyncio.sleep(self.session_max_seconds)
        connection.expire()
        await _drained(outbox)
        await websocket.close(1001, expiry_message(self.session_max_seconds))


async def _write(websocket: ServerConnection, outbox: asyncio.Queue[str | None]) -> None:
    """Send queued events in order until the end marker (None) or the socket closes."""
    try:
        while True:
            text = await outbox.get()
            if text is None:
                return
            await websocket.send(text)
            outbox.task_done()
    except ConnectionClosed:
        return


async def _drained(outbox: asyncio.Queue[str | None], timeout: float = 5.0) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(outbox.join(), timeout)


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
