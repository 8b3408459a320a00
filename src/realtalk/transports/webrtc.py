"""The browser transport: a small aiohttp app that serves the page and answers WebRTC offers.

``GET /`` serves the page (``web/``: plain HTML, JS and CSS, no build step, nothing loaded from
elsewhere). ``POST /api/offer`` takes the browser's SDP offer (``{"sdp", "type": "offer"}``) and
answers it; each offer becomes one aiortc ``RTCPeerConnection`` and one
:class:`~realtalk.transports.webrtc_transport.WebRTCTransport`, on which the agent's
``entrypoint(ctx)`` is called. Any number of browsers may be connected at once, each with its own
session. When a browser leaves (connection failed or closed, or the page says "bye") its session
is closed and everything it held is released.

No STUN or TURN server is contacted unless you pass ``ice_servers``: aiortc's default would reach a
public STUN server, and loopback and LAN connections work without one.

Exposing it beyond this machine, safely:

- It binds ``127.0.0.1`` by default. Browsers grant microphone access only to secure origins
  (``https://`` or ``http://localhost``), so for another device put it behind a reverse proxy that
  terminates TLS (Caddy, nginx) and forwards ``/`` and ``/api/offer`` to this port.
- Anyone who can load the page can talk to your agent and spend your API budget: add
  authentication at that proxy; ``max_connections`` caps concurrent sessions, and one client
  address holds at most ``max_connections_per_client`` of them. Name the proxy's host in
  ``allowed_hosts``: requests naming any other host are refused (DNS rebinding).
- No other web site can start a session: ``POST /api/offer`` takes only JSON from this server's
  own page (``Origin``), with the token embedded in that page (:mod:`realtalk.web_guard`).
- The media itself flows peer to peer (UDP) between the browser and this process, not through the
  proxy. On a LAN, host candidates suffice; across NAT pass ``ice_servers`` with a TURN server
  you run (``[{"urls": "turn:turn.example.com:3478", "username": ..., "credential": ...}]``) —
  the same list is handed to the page through ``GET /api/config``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from realtalk.job import JobContext
from realtalk.transports.web_page import PageRoutes, read_page_files
from realtalk.transports.webrtc_transport import WebRTCTransport
from realtalk.web_guard import (
    OriginPolicy,
    PageTokens,
    aiohttp_middleware,
)

__all__ = [
    "SERVER_KEY",
    "OfferError",
    "ServerFullError",
    "WebRTCServer",
    "WebRTCTransport",
    "serve",
]

logger = logging.getLogger("realtalk.transport")

Entrypoint = Callable[[Any], Awaitable[Any] | Any]

_MAX_BODY = 256 * 1024  # a browser offer is a few kB; refuse anything absurd before parsing
_CONNECT_TIMEOUT_S = 30.0  # an answered offer that never connects is dropped after this
_REPORT_WAIT_S = 5.0  # how long a failed start waits for the page's channel to say why


class OfferError(ValueError):
    """A malformed offer: the reason goes back to the browser with HTTP 400."""


class _ClientShareError(RuntimeError):
    """One client address already holds its share of the slots (HTTP 429)."""


class ServerFullError(RuntimeError):
    """Every connection slot is taken: HTTP 503."""


@dataclass
class WebJobContext:
    """What an entrypoint gets when the runner did not supply its own context factory."""

    transport: WebRTCTransport
    base_url: str | None = None
    api_key: str | None = None


def _default_context(transport: WebRTCTransport) -> Any:
    """A :class:`realtalk.job.JobContext` for this connection."""
    return JobContext(transport=transport, base_url=os.environ.get("OPENAI_BASE_URL"))


def parse_offer(body: Any) -> RTCSessionDescription:
    """Check the JSON of ``POST /api/offer``; raise OfferError saying what is wrong."""
    if not isinstance(body, dict):
        raise OfferError('the body must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise OfferError(f'"type" must be "offer", got {kind!r}')
    if not isinstance(sdp, str) or not sdp.strip():
        raise OfferError('"sdp" must be a non-empty string')
    if not sdp.lstrip().startswith("v=0"):
        raise OfferError('"sdp" is not a session description (it must start with "v=0")')
    if "\nm=audio " not in sdp.replace("\r\n", "\n"):
        raise OfferError("the offer has no audio section: the page must send a microphone track")
    return RTCSessionDescription(sdp=sdp, type="offer")


def _ice_servers(servers: list[dict[str, Any]] | None) -> list[RTCIceServer]:
    result = []
    for server in servers or []:
        if not isinstance(server, Mapping) or "urls" not in server:
            raise ValueError(f"an ICE server must be a dict with 'urls', got {server!r}")
        result.append(
            RTCIceServer(
                urls=server["urls"],
                username=server.get("username"),
                credential=server.get("credential"),
            )
        )
    return result


class WebRTCServer(PageRoutes):
    """Serves the page and one agent session per browser connection, in this process.

    ``entrypoint(ctx)`` is called once per connection with a context whose ``.transport`` is that
    connection's :class:`WebRTCTransport`; it usually builds an AgentSession and awaits
    ``session.start(ctx.transport)``. ``context_factory(transport)`` builds that context (the
    runner passes one that adds the local server's URL); by default it is a
    ``realtalk.runner.JobContext``.

    Use ``await start()``, then ``url``; ``await aclose()`` closes every connection.
    """

    def __init__(
        self,
        entrypoint: Entrypoint,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ice_servers: list[dict[str, Any]] | None = None,
        max_connections: int = 32,
        max_connections_per_client: int | None = None,
        allowed_hosts: Iterable[str] = (),
        context_factory: Callable[[WebRTCTransport], Any] | None = None,
    ) -> None:
        if not callable(entrypoint):
            raise TypeError(f"entrypoint must be callable, got {entrypoint!r}")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.entrypoint = entrypoint
        self.host = host
        self.port = port
        self.ice_servers = list(ice_servers or [])
        self._rtc_ice_servers = _ice_servers(self.ice_servers)  # validate now, not per offer
        self.max_connections = max_connections
        #: One client address may hold at most this many slots (by default half of them).
        self.max_connections_per_client = max_connections_per_client or max(1, max_connections // 2)
        self.origin_policy = OriginPolicy.for_server(host, allowed_hosts)
        self.tokens = PageTokens()
        # Slots are taken before the first await of an offer and given back when it fails or
        # its connection ends: concurrent offers cannot overshoot the cap.
        self._slots_taken = 0
        self._slots_by_client: Counter[str] = Counter()
        self.context_factory = context_factory or _default_context
        self.connections: dict[str, WebRTCTransport] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._files = read_page_files()
        self._ids = itertools.count(1)

    # -- lifecycle ----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        """The aiohttp application (exposed for aiohttp's test client)."""
        app = web.Application(
            client_max_size=_MAX_BODY,
            middlewares=[aiohttp_middleware(self.origin_policy, tokens=self.tokens)],
        )
        app[SERVER_KEY] = self
        self.add_page_routes(app)
        app.router.add_get("/api/health", self._health)
        app.router.add_post("/api/offer", self._offer)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("WebRTCServer already started")
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        if self.host not in ("127.0.0.1", "localhost", "::1"):
            logger.warning(
                "serving on %s: browsers allow the microphone only over https or on localhost, "
                "and anyone who reaches this port can talk to the agent (see the "
                "realtalk.transports.webrtc docs on exposing it safely)",
                self.host,
            )
        logger.info("WebRTC page at %s", self.url)

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    async def aclose(self) -> None:
        """Close every connection (their sessions first), then stop serving."""
        await self.close_connections()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def close_connections(self) -> None:
        transports = list(self.connections.values())
        await asyncio.gather(*(self._end(t, "server closing") for t in transports))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close_connections()

    # -- HTTP handlers ------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "connections": len(self.connections)})

    async def _offer(self, request: web.Request) -> web.Response:
        client = request.remote or "unknown"
        try:
            self._take_slot(client, share=True)
        except _ClientShareError as exc:
            return web.json_response({"error": str(exc)}, status=429)
        except ServerFullError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        answered = False
        try:
            try:
                body = await request.json(loads=_strict_loads)
            except web.HTTPRequestEntityTooLarge:
                return _bad_request(f"the offer is larger than {_MAX_BODY} bytes", status=413)
            except (ValueError, UnicodeDecodeError) as exc:
                return _bad_request(f"the body is not valid JSON: {exc}")
            except RecursionError:  # json.loads on [[[[... deeper than the interpreter's stack
                return _bad_request("the body is nested too deeply to be an offer")
            try:
                answer = await self.accept_offer(body, slot_holder=client)
            except OfferError as exc:
                return _bad_request(str(exc))
            answered = True
            return web.json_response(answer)
        finally:
            if not answered:
                self._release(client)

    def _take_slot(self, client: str, *, share: bool) -> None:
        """Take a slot now, before any await: concurrent offers cannot overshoot the cap."""
        if self._slots_taken >= self.max_connections:
            raise ServerFullError(f"too many connections (at most {self.max_connections})")
        if share and self._slots_by_client[client] >= self.max_connections_per_client:
            raise _ClientShareError(
                f"too many connections from {client} (at most {self.max_connections_per_client})"
            )
        self._slots_taken += 1
        self._slots_by_client[client] += 1

    def reserve_slot(self, holder: str = "direct") -> None:
        """Take a slot now, with no per-client share (for a process that gets offers or
        sessions some other way, e.g. a worker): before its first await, so concurrent callers
        cannot overshoot ``max_connections``. Pass ``slot_holder=holder`` to
        :meth:`accept_offer` and the connection keeps the slot; otherwise (or when the offer
        fails) give it back with :meth:`release_slot`. Raises ServerFullError when full."""
        self._take_slot(holder, share=False)

    def release_slot(self, holder: str = "direct") -> None:
        self._release(holder)

    def _release(self, client: str) -> None:
        self._slots_taken -= 1
        self._slots_by_client[client] -= 1
        if self._slots_by_client[client] <= 0:
            del self._slots_by_client[client]

    async def accept_offer(
        self, body: Any, *, connection_id: str | None = None, slot_holder: str | None = None
    ) -> dict[str, Any]:
        """Answer an offer (the JSON body of ``POST /api/offer``) and start its session.

        Returns ``{"sdp", "type": "answer", "connection_id"}``. A process that receives offers
        some other way (a worker behind a gateway) calls this directly; ``connection_id`` names
        the connection (it must not be in use), else one is made. The connection holds one of
        ``max_connections`` slots until it closes: one taken here, or the one
        :meth:`reserve_slot` took for ``slot_holder``.

        Raises:
            OfferError: the offer is malformed or unusable (HTTP 400).
            ServerFullError: ``max_connections`` are open (HTTP 503).
        """
        offer = parse_offer(body)
        client = slot_holder
        if client is None:  # a direct call: its slot is taken here (no per-client share)
            client = "direct"
            self._take_slot(client, share=False)
        registered = False
        try:
            if connection_id is None:
                connection_id = f"c{next(self._ids)}-{secrets.token_hex(3)}"
            elif connection_id in self.connections:
                raise OfferError(f"connection {connection_id!r} is already open")
            pc = RTCPeerConnection(RTCConfiguration(iceServers=self._rtc_ice_servers))
            transport = WebRTCTransport(pc, connection_id=connection_id)
            try:
                await pc.setRemoteDescription(offer)
                pc.addTrack(transport.audio_track)
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:  # aiortc raises ValueError and friends for bad SDP
                await transport.aclose()
                logger.info("offer rejected: %s", exc)
                reason = f"the offer could not be used: {exc or type(exc).__name__}"
                raise OfferError(reason) from exc
            self._register(transport, client)
            registered = True
        finally:
            if not registered and slot_holder is None:
                self._release(client)
        answer = pc.localDescription
        return {"sdp": answer.sdp, "type": answer.type, "connection_id": connection_id}

    # -- connections --------------------------------------------------------------------------

    def _register(self, transport: WebRTCTransport, client: str = "unknown") -> None:
        """The connection now holds the slot its offer took; closing it gives the slot back."""
        cid = transport.connection_id
        self.connections[cid] = transport

        def closed() -> None:
            if self.connections.pop(cid, None) is not None:
                self._release(client)

        transport.add_close_callback(closed)
        pc = transport.pc

        @pc.on("connectionstatechange")
        def _on_state() -> None:
            state = pc.connectionState
            logger.debug("connection %s: %s", cid, state)
            if state in ("failed", "closed"):
                transport.mark_page_left()
                self._spawn(self._end(transport, f"peer connection {state}"))

        self._spawn(self._run_entrypoint(transport))
        self._spawn(self._watch_connect(transport))
        logger.info("connection %s: offer answered (%d open)", cid, len(self.connections))

    async def _run_entrypoint(self, transport: WebRTCTransport) -> None:
        try:
            result = self.entrypoint(self.context_factory(transport))
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("entrypoint failed for connection %s", transport.connection_id)
            transport.send_event(
                "error",
                {
                    "message": f"the agent failed to start: {str(exc)[:300] or type(exc).__name__}",
                    "code": "entrypoint_failed",
                    "fatal": True,
                },
            )
            # Let the page learn why before the connection goes (its channel may still be
            # opening: the entrypoint can fail within milliseconds of the answer).
            await transport.wait_channel_open(timeout=_REPORT_WAIT_S)
            await self._end(transport, "entrypoint failed")
            return
        if transport.session is None and not transport.closed:
            logger.warning(
                "entrypoint returned without starting a session on connection %s "
                "(call `await session.start(ctx.transport)`)",
                transport.connection_id,
            )

    async def _watch_connect(self, transport: WebRTCTransport) -> None:
        """Drop a connection whose browser vanished between the offer and ICE/DTLS."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONNECT_TIMEOUT_S
        while loop.time() < deadline and not transport.closed:
            if transport.pc.connectionState == "connected":
                return
            await asyncio.sleep(0.25)
        if not transport.closed and transport.pc.connectionState != "connected":
            await self._end(transport, "the browser never connected")

    async def _end(self, transport: WebRTCTransport, reason: str) -> None:
        """Close a connection's session (which closes the transport), then the transport."""
        if transport.closed:
            return
        logger.info("connection %s ending: %s", transport.connection_id, reason)
        session = transport.session
        if session is not None:
            try:
                await session.close()
            except Exception:
                logger.exception("closing the session of %s failed", transport.connection_id)
        await transport.aclose()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


#: The WebRTCServer an application belongs to (``request.app[SERVER_KEY]``).
SERVER_KEY = web.AppKey("realtalk_webrtc_server", WebRTCServer)


def _strict_loads(text: str) -> Any:
    return json.loads(text)


def _bad_request(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def serve(
    entrypoint: Entrypoint,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
    ice_servers: list[dict[str, Any]] | None = None,
    allowed_hosts: Iterable[str] = (),
) -> None:
    """Serve the page and run ``entrypoint`` per browser connection until cancelled."""
    server = WebRTCServer(
        entrypoint, host, port, ice_servers=ice_servers, allowed_hosts=allowed_hosts
    )
    await server.start()
    try:
        if on_ready is not None:
            on_ready(server.url)
        await asyncio.Event().wait()
    finally:
        try:
            await server.aclose()
        except Exception:
            logger.exception("closing the WebRTC server failed")
