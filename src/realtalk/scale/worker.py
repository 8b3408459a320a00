"""``realtalk worker``: one process that serves sessions handed to it, registered in Redis.

A worker answers WebRTC offers on ``POST /api/offer`` (from a gateway, or directly), runs the
agent's ``entrypoint`` per session as ``realtalk run`` does, and keeps its registration alive with
a heartbeat (address, capacity, the slot tokens of its running sessions, draining or not).

Continuity: after every turn the session's conversation (``model.conversation.replay_items()``:
text, tool calls and outputs, transcripts cut to what was heard) is stored in Redis under the
session id with a TTL. An offer carrying a session id whose conversation is stored resumes it:
the items are created in the new model session (``restore_conversation``) before the agent's
``on_enter``, and the page is told ``resumed: true``.

Drain (SIGTERM, :meth:`Worker.drain`): the registration says draining (no gateway picks it),
offers get 503, running sessions go on until they end or the deadline passes; those still
running then are stored and told to ``migrate`` (the page resumes them through a gateway).

Other transports (Twilio streams, SIP) plug in through :meth:`Worker.hold_slot`: a session that
arrives another way takes a slot, is counted in the registration, and releases it when done.

Capacity: every session (WebRTC or held) takes one of the WebRTC server's ``capacity`` slots,
synchronously before the offer's first await, so concurrent offers never overfill the worker.

Who may offer: the offer endpoint is for gateways, server to server. With a cluster secret
(``$REALTALK_CLUSTER_SECRET``, which ``realtalk run --workers`` generates for its children) an
offer must carry it in ``X-Realtalk-Cluster-Secret``; without one, offers that a browser sent
(those with an ``Origin`` header) are refused, so no web page can start sessions here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from realtalk.scale.observability import WorkerMetrics, metrics_response
from realtalk.scale.registry import (
    DEFAULT_PREFIX,
    Registry,
    RegistryUnavailable,
    encode_conversation,
    new_session_id,
    valid_session_id,
)
from realtalk.transports.webrtc import OfferError, ServerFullError, WebRTCServer

if TYPE_CHECKING:
    from realtalk.session import AgentSession
    from realtalk.transports.webrtc_transport import WebRTCTransport

__all__ = ["CLUSTER_SECRET_ENV", "CLUSTER_SECRET_HEADER", "Worker", "WorkerSession"]

logger = logging.getLogger("realtalk.scale")

_MAX_BODY = 256 * 1024
_MAX_SLOT_CHARS = 64
CLUSTER_SECRET_ENV = "REALTALK_CLUSTER_SECRET"
CLUSTER_SECRET_HEADER = "X-Realtalk-Cluster-Secret"
_OFFER = "offer"  # the slot holder of offers, in the WebRTC server's accounting
_HELD = "held"  # the slot holder of sessions from other transports


@dataclass(eq=False)
class WorkerSession:
    """One session on this worker: its id (stable across workers) and its slot token."""

    session_id: str
    token: str
    connection_id: str
    resumed: bool = False
    session: AgentSession | None = None
    store_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Worker:
    """Serves sessions of ``entrypoint`` and registers in Redis at ``redis_url``.

    Args:
        entrypoint: the agent file's ``async def entrypoint(ctx)``.
        context_factory: builds the ``ctx`` for a transport and its session record (the
            runner's JobContext, with the session id and whether it resumed).
        advertise: the host gateways and browsers' offers reach this worker at (default: host).
        capacity: sessions at most; the registration and ``/api/offer`` both enforce it.
        heartbeat_s: how often the registration is refreshed; it lapses after ``3 ×`` that.
        conversation_ttl_s: how long a stored conversation can be resumed after its last turn.
        cluster_secret: what offers must carry (default: $REALTALK_CLUSTER_SECRET); without
            one, offers with an ``Origin`` header (from a browser) are refused.
    """

    def __init__(
        self,
        entrypoint: Callable[[Any], Awaitable[Any]],
        *,
        redis_url: str,
        context_factory: Callable[[WebRTCTransport, WorkerSession], Any] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        advertise: str | None = None,
        capacity: int = 8,
        heartbeat_s: float = 1.0,
        conversation_ttl_s: float = 3600.0,
        prefix: str = DEFAULT_PREFIX,
        ice_servers: list[dict[str, Any]] | None = None,
        worker_id: str | None = None,
        cluster_secret: str | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be positive")
        if advertise is None and host in ("0.0.0.0", "::", ""):
            raise ValueError(
                f"binding {host or 'all interfaces'}: pass --advertise with the address "
                "gateways and browsers reach this worker at"
            )
        self.worker_id = worker_id or f"w-{secrets.token_hex(4)}"
        self.host = host
        self.port = port
        self.advertise = advertise or host
        self.capacity = capacity
        self._secret = (cluster_secret or os.environ.get(CLUSTER_SECRET_ENV) or "").encode()
        self.heartbeat_s = heartbeat_s
        self.ttl_ms = int(heartbeat_s * 3000)
        self.conversation_ttl_ms = int(conversation_ttl_s * 1000)
        self.registry = Registry(redis_url, prefix=prefix)
        self.metrics = WorkerMetrics()
        self.metrics.slots.set(capacity)
        self.server = WebRTCServer(
            entrypoint,
            host,
            0,
            ice_servers=ice_servers,
            max_connections=capacity,
            context_factory=self._context,
        )
        self._context_factory = context_factory
        self._by_connection: dict[str, WorkerSession] = {}
        self.sessions: dict[str, WorkerSession] = {}  # by slot token
        self.draining = False
        self.redis_ok = False
        self._held: set[str] = set()  # slot tokens of sessions from other transports
        self._runner: web.AppRunner | None = None
        self._beat_now = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def url(self) -> str:
        host = f"[{self.advertise}]" if ":" in self.advertise else self.advertise
        return f"http://{host}:{self.port}"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check Redis, serve HTTP, register. Raises RegistryUnavailable when Redis is down."""
        await self.registry.ping()
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post("/api/offer", self._offer)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        await self._beat()
        self._heartbeat_task = asyncio.get_running_loop().create_task(
            self._heartbeat_loop(), name=f"heartbeat-{self.worker_id}"
        )
        logger.info(
            "worker %s serving at %s (capacity %d)", self.worker_id, self.url, self.capacity
        )

    async def drain(self, timeout_s: float) -> int:
        """Take no new sessions; wait up to ``timeout_s`` for the running ones to end, then
        hand those left to another worker (the page resumes them). Returns how many moved."""
        self.draining = True
        self.metrics.draining.set(1)
        self._beat_now.set()
        logger.info(
            "worker %s draining (%d sessions, deadline %g s)",
            self.worker_id,
            len(self.sessions),
            timeout_s,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_no_sessions(), timeout_s)
        left = list(self.sessions.values())
        await asyncio.gather(*(self._migrate(record) for record in left))
        return len(left)

    async def aclose(self) -> None:
        """Close every session, deregister, stop serving."""
        await self.server.close_connections()
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(RegistryUnavailable):
            await self.registry.deregister(self.worker_id)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.registry.aclose()

    async def _wait_no_sessions(self) -> None:
        while self.sessions or self._held:
            self._idle.clear()
            await self._idle.wait()

    # -- other transports -----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def hold_slot(self) -> AsyncIterator[str]:
        """A slot for a session that arrived by another transport (a phone call): counted in
        the registration while the block runs. Raises ServerFullError when full or draining."""
        if self.draining:
            raise ServerFullError("this worker is draining")
        try:
            self.server.reserve_slot(_HELD)
        except ServerFullError:
            raise ServerFullError(f"this worker is full ({self.capacity} sessions)") from None
        token = secrets.token_urlsafe(12)
        self._held.add(token)
        self._beat_now.set()
        try:
            yield token
        finally:
            self.server.release_slot(_HELD)
            self._held.discard(token)
            self._idle.set()
            self._beat_now.set()

    # -- HTTP -----------------------------------------------------------------------------------

    async def _offer(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        refused = self._refusal(request)
        if refused is not None:
            return _error(refused, 403)
        if self.draining:
            return _error("this worker is draining; ask the gateway for another", 503)
        try:  # before any await: concurrent offers cannot overfill the worker
            self.server.reserve_slot(_OFFER)
        except ServerFullError:
            return _error(f"this worker is full ({self.capacity} sessions)", 503)
        response: web.Response | None = None
        try:
            response = await self._answer(request, started)
            return response
        finally:
            if response is None or response.status != 200:
                self.server.release_slot(_OFFER)  # no connection took it over

    def _refusal(self, request: web.Request) -> str | None:
        if self._secret:
            given = request.headers.get(CLUSTER_SECRET_HEADER, "").encode()
            if not hmac.compare_digest(given, self._secret):
                return f"this worker takes offers from gateways only ({CLUSTER_SECRET_HEADER})"
        elif "Origin" in request.headers:
            return "this worker takes offers from gateways, not from web pages"
        return None

    async def _answer(self, request: web.Request, started: float) -> web.Response:
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return _error(f"the offer is larger than {_MAX_BODY} bytes", 413)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return _error(f"the body is not valid JSON: {str(exc)[:200]}", 400)
        if not isinstance(body, dict):
            return _error('the body must be a JSON object {"sdp": ..., "type": "offer"}', 400)
        session_id = body.get("session_id")
        if session_id is not None and not valid_session_id(session_id):
            return _error('"session_id" must be 16 to 64 characters of [A-Za-z0-9_-]', 400)
        token = body.get("slot")
        if token is not None and (not isinstance(token, str) or len(token) > _MAX_SLOT_CHARS):
            return _error(f'"slot" must be a string of at most {_MAX_SLOT_CHARS} characters', 400)
        items = None
        if session_id is not None and body.get("resume", True) is not False:
            try:
                items = await self.registry.load_conversation(session_id)
            except RegistryUnavailable as exc:  # the call still starts, without its past
                logger.warning("cannot load the conversation of %s: %s", session_id, exc)
                self.metrics.errors.labels("redis").inc()
        if token in self.sessions:
            return _error(f"slot {token!r} is already in use on this worker", 400)
        session_id = session_id or new_session_id()
        token = token or secrets.token_urlsafe(12)
        connection_id = f"{session_id[:10]}-{secrets.token_hex(3)}"
        try:
            answer = await self.server.accept_offer(
                body, connection_id=connection_id, slot_holder=_OFFER
            )
        except OfferError as exc:
            return _error(str(exc), 400)
        except ServerFullError as exc:
            return _error(str(exc), 503)
        record = WorkerSession(session_id, token, connection_id, resumed=bool(items))
        self.sessions[token] = record
        self._by_connection[connection_id] = record
        self._idle.clear()
        transport = self.server.connections[connection_id]
        transport.add_attach_callback(lambda session: self._attached(record, items, session))
        transport.add_close_callback(lambda: self._ended(record))
        self._beat_now.set()
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.offer_latency.observe(time.perf_counter() - started)
        return web.json_response(
            {
                **answer,
                "session_id": session_id,
                "worker": self.worker_id,
                "resumed": record.resumed,
            }
        )

    async def _health(self, request: web.Request) -> web.Response:
        body = {
            "ok": self.redis_ok and not self.draining,
            "worker": self.worker_id,
            "url": self.url,
            "redis": self.redis_ok,
            "draining": self.draining,
            "sessions": len(self.sessions) + len(self._held),
            "capacity": self.capacity,
        }
        return web.json_response(body, status=200 if body["ok"] else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return metrics_response(self.metrics.registry)

    # -- sessions -------------------------------------------------------------------------------

    def _context(self, transport: WebRTCTransport) -> Any:
        # Called when the entrypoint starts, after _offer recorded the session.
        record = self._by_connection[transport.connection_id]
        if self._context_factory is not None:
            return self._context_factory(transport, record)
        from realtalk.runner import JobContext

        return JobContext(transport=transport, session_id=record.session_id, resumed=record.resumed)

    async def _attached(
        self, record: WorkerSession, items: list[dict[str, Any]] | None, session: AgentSession
    ) -> None:
        record.session = session
        if items:
            restore = getattr(session.model, "restore_conversation", None)
            if restore is None:
                logger.warning(
                    "%s cannot restore a conversation; session %s starts afresh",
                    type(session.model).__name__,
                    record.session_id,
                )
            else:
                try:
                    await restore(items)
                except Exception:  # a bad snapshot must not cost the call: go on without it
                    logger.exception("session %s: the stored conversation could not be restored",
                                     record.session_id)  # fmt: skip
                    self.metrics.errors.labels("restore").inc()
                else:
                    logger.info("session %s resumed with %d items", record.session_id, len(items))
        self.metrics.started.labels("resumed" if record.resumed else "new").inc()
        session.on("metrics", lambda payload: self._turn_done(record, payload))

    def _turn_done(self, record: WorkerSession, payload: Any) -> None:
        latency = payload.get("latency_ms") if isinstance(payload, dict) else None
        if isinstance(latency, int | float) and latency >= 0:
            self.metrics.turn_latency.observe(latency / 1000)
        self._spawn(self._store(record))

    async def _store(self, record: WorkerSession) -> bool:
        """Store the session's conversation now (the latest snapshot wins; never raises)."""
        session = record.session
        conversation = getattr(getattr(session, "model", None), "conversation", None)
        replay = getattr(conversation, "replay_items", None)
        if replay is None:
            return False
        async with record.store_lock:
            try:
                text, dropped = encode_conversation(replay())
                if dropped:
                    logger.warning(
                        "session %s: conversation too large to store whole; %d oldest items "
                        "left out",
                        record.session_id,
                        dropped,
                    )
                await self.registry.store_conversation(
                    record.session_id, text, ttl_ms=self.conversation_ttl_ms
                )
            except RegistryUnavailable as exc:
                logger.warning("session %s: conversation not stored: %s", record.session_id, exc)
                self.metrics.errors.labels("redis").inc()
                return False
            except Exception:
                logger.exception("session %s: conversation not stored", record.session_id)
                self.metrics.errors.labels("store").inc()
                return False
        self.metrics.stored.inc()
        return True

    async def _migrate(self, record: WorkerSession) -> None:
        """Store the conversation, tell the page to resume elsewhere, end the session here."""
        await self._store(record)
        transport = self.server.connections.get(record.connection_id)
        if transport is None:
            return
        transport.send_event(
            "migrate", {"reason": "this worker is shutting down", "session_id": record.session_id}
        )
        self.metrics.migrated.inc()
        session = record.session
        if session is not None:
            await session.close(reason="migrated to another worker")
        await transport.aclose()

    def _ended(self, record: WorkerSession) -> None:
        self.sessions.pop(record.token, None)
        self._by_connection.pop(record.connection_id, None)
        self.metrics.sessions.set(len(self.sessions))
        self.metrics.ended.inc()
        self._idle.set()
        self._beat_now.set()

    # -- heartbeat ------------------------------------------------------------------------------

    async def _beat(self) -> None:
        await self.registry.heartbeat(
            self.worker_id,
            url=self.url,
            capacity=self.capacity,
            draining=self.draining,
            ttl_ms=self.ttl_ms,
            tokens=[*self.sessions, *self._held],
        )
        self.redis_ok = True

    async def _heartbeat_loop(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that lands as
            # the event is set (a call ending while the worker closes), and this loop then
            # never ended (aclose hung).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.heartbeat_s):
                    await self._beat_now.wait()
            self._beat_now.clear()
            was_ok = self.redis_ok
            try:
                await self._beat()
            except RegistryUnavailable as exc:
                self.redis_ok = False
                self.metrics.errors.labels("redis").inc()
                if was_ok:
                    logger.warning(
                        "worker %s: heartbeat failed, calls go on: %s", self.worker_id, exc
                    )
                continue
            if not was_ok:
                logger.warning("worker %s: Redis reachable again, registered", self.worker_id)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _error(reason: str, status: int) -> web.Response:
    return web.json_response({"error": reason}, status=status)
