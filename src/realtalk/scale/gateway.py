"""``realtalk gateway``: the front door of a fleet of workers.

It serves the page and ``POST /api/offer``. For each offer it reserves a slot on the
least-loaded live worker (one Lua script in Redis, so gateways never overfill a worker), forwards
the offer there and returns the worker's answer: the media then flows between the browser and
the worker directly, and the gateway holds nothing per call (restarting it leaves calls alone).

An offer may carry the ``session_id`` of an earlier answer: the worker it lands on resumes that
conversation from Redis. A worker that cannot be reached (it died; its registration has not
lapsed yet) is skipped by this gateway for a few seconds and the offer goes to another; so does
one that answers 503 (full, draining). Redis unreachable: ``503`` with a reason.

Browser-origin safety is the single-process runner's (:mod:`realtalk.web_guard`): every request
must name the gateway by a loopback name, its bind address or an ``allowed_hosts`` name, and an
offer must come from the gateway's own page (Origin), as JSON, with the page's token. Offers are
forwarded with the cluster secret (``$REALTALK_CLUSTER_SECRET``) when one is set: workers
configured with it take offers from gateways only (:mod:`realtalk.scale.worker`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web

from realtalk.scale.observability import GatewayMetrics, metrics_response
from realtalk.scale.registry import (
    DEFAULT_PREFIX,
    Registry,
    RegistryUnavailable,
    Reservation,
    new_session_id,
    valid_session_id,
)
from realtalk.scale.worker import CLUSTER_SECRET_ENV, CLUSTER_SECRET_HEADER
from realtalk.transports.web_page import PageRoutes, read_page_files
from realtalk.transports.webrtc import OfferError, parse_offer
from realtalk.web_guard import (
    OriginPolicy,
    PageTokens,
    aiohttp_middleware,
)

__all__ = ["Gateway"]

logger = logging.getLogger("realtalk.scale")

_MAX_BODY = 256 * 1024


class Gateway(PageRoutes):
    """Serves the page and dispatches offers to workers registered in Redis.

    Args:
        attempts: workers tried per offer before giving up (503).
        forward_timeout_s: how long a worker may take to answer an offer.
        pending_s: how long a reserved slot waits for the worker to take the session.
        suspect_s: how long a worker that could not be reached is skipped by this gateway.
        allowed_hosts: names the page is reached by besides loopback ones (a proxy's host).
        cluster_secret: sent to workers with each offer (default: $REALTALK_CLUSTER_SECRET).
    """

    def __init__(
        self,
        *,
        redis_url: str,
        host: str = "127.0.0.1",
        port: int = 8080,
        prefix: str = DEFAULT_PREFIX,
        ice_servers: list[dict[str, Any]] | None = None,
        attempts: int = 3,
        forward_timeout_s: float = 10.0,
        pending_s: float = 15.0,
        suspect_s: float = 5.0,
        allowed_hosts: Iterable[str] = (),
        cluster_secret: str | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.host = host
        self.port = port
        self.ice_servers = list(ice_servers or [])
        self.attempts = attempts
        self.forward_timeout_s = forward_timeout_s
        self.pending_ms = int(pending_s * 1000)
        self.suspect_s = suspect_s
        self.registry = Registry(redis_url, prefix=prefix)
        self.metrics = GatewayMetrics()
        self.origin_policy = OriginPolicy.for_server(host, allowed_hosts)
        self.tokens = PageTokens()
        secret = cluster_secret or os.environ.get(CLUSTER_SECRET_ENV) or ""
        self._worker_headers = {CLUSTER_SECRET_HEADER: secret} if secret else {}
        self._suspects: dict[str, float] = {}  # worker id -> monotonic time it may be tried again
        self._files = read_page_files()
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=_MAX_BODY,
            middlewares=[aiohttp_middleware(self.origin_policy, tokens=self.tokens)],
        )
        self.add_page_routes(app)
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/api/offer", self._offer)
        return app

    async def start(self) -> None:
        """Check Redis, then serve. Raises RegistryUnavailable when Redis is down."""
        await self.registry.ping()
        self._client = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.forward_timeout_s)
        )
        runner = web.AppRunner(self.build_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        logger.info("gateway at %s", self.url)

    async def aclose(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._client is not None:
            await self._client.close()
            self._client = None
        await self.registry.aclose()

    # -- page -----------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        try:
            workers = await self.registry.workers()
        except RegistryUnavailable as exc:
            self.metrics.errors.labels("redis").inc()
            return web.json_response({"ok": False, "redis": False, "error": str(exc)}, status=503)
        live = [w for w in workers if not w.draining]
        free = sum(max(0, w.capacity - w.load) for w in live)
        self.metrics.workers.set(len(live))
        self.metrics.slots_free.set(free)
        body = {
            "ok": bool(live),
            "redis": True,
            "workers": [
                {"id": w.worker_id, "load": w.load, "capacity": w.capacity, "draining": w.draining}
                for w in workers
            ],
            "slots_free": free,
        }
        return web.json_response(body, status=200 if live else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        try:  # the fleet gauges are read from Redis at scrape time
            workers = await self.registry.workers()
        except RegistryUnavailable:
            self.metrics.errors.labels("redis").inc()
        else:
            live = [w for w in workers if not w.draining]
            self.metrics.workers.set(len(live))
            self.metrics.slots_free.set(sum(max(0, w.capacity - w.load) for w in live))
        return metrics_response(self.metrics.registry)

    # -- dispatch -------------------------------------------------------------------------------

    async def _offer(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse("rejected", f"the offer is larger than {_MAX_BODY} bytes", 413)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return self._refuse("rejected", f"the body is not valid JSON: {str(exc)[:200]}", 400)
        try:
            parse_offer(body)  # refuse a bad offer here, before it takes a slot
        except OfferError as exc:
            return self._refuse("rejected", str(exc), 400)
        session_id = body.get("session_id")
        if session_id is not None and not valid_session_id(session_id):
            return self._refuse(
                "rejected", '"session_id" must be 16 to 64 characters of [A-Za-z0-9_-]', 400
            )
        forward = {
            "sdp": body["sdp"],
            "type": "offer",
            "session_id": session_id or new_session_id(),
            "resume": session_id is not None,  # a new session has nothing stored to load
        }
        tried: list[str] = []
        for _attempt in range(self.attempts):
            try:
                reservation = await self.registry.reserve(
                    pending_ms=self.pending_ms, exclude=[*tried, *self._current_suspects()]
                )
            except RegistryUnavailable as exc:
                logger.warning("offer refused: %s", exc)
                self.metrics.errors.labels("redis").inc()
                return self._refuse(
                    "redis_down",
                    "the session registry (Redis) is unreachable; try again shortly",
                    503,
                )
            if reservation is None:
                return self._refuse(
                    "no_worker", "no worker has a free slot; try again shortly", 503
                )
            if tried:
                self.metrics.retries.inc()
            tried.append(reservation.worker_id)
            status, answer = await self._forward(reservation, forward)
            if status == 200:
                self.metrics.dispatch.observe(time.perf_counter() - started)
                self.metrics.offers.labels("resumed" if answer.get("resumed") else "answered").inc()
                return web.json_response(answer)
            await self._release(reservation)
            if status == 400:
                return self._refuse("rejected", str(answer.get("error") or "bad offer"), 400)
        return self._refuse("failed", "no worker could take the session; try again shortly", 503)

    async def _forward(
        self, reservation: Reservation, forward: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """POST the offer to the worker: (200, answer), (400, error), or (503, ...) to retry."""
        assert self._client is not None, "Gateway.start() was not called"
        url = reservation.url.rstrip("/") + "/api/offer"
        try:
            async with self._client.post(
                url, json={**forward, "slot": reservation.token}, headers=self._worker_headers
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            logger.warning(
                "worker %s at %s unreachable (%s); skipping it for %g s",
                reservation.worker_id,
                reservation.url,
                exc or type(exc).__name__,
                self.suspect_s,
            )
            self._suspects[reservation.worker_id] = time.monotonic() + self.suspect_s
            self.metrics.errors.labels("worker_unreachable").inc()
            return 503, {}
        try:
            answer = json.loads(text)
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status == 200 and isinstance(answer.get("sdp"), str):
            return 200, answer
        if status == 400:
            return 400, answer
        logger.info("worker %s answered %d: %s", reservation.worker_id, status, answer.get("error"))
        return 503, answer

    async def _release(self, reservation: Reservation) -> None:
        try:
            await self.registry.release(reservation.worker_id, reservation.token)
        except RegistryUnavailable:
            pass  # the pending slot lapses by itself

    def _current_suspects(self) -> list[str]:
        now = time.monotonic()
        for worker_id, until in list(self._suspects.items()):
            if until <= now:
                del self._suspects[worker_id]
        return list(self._suspects)

    def _refuse(self, outcome: str, reason: str, status: int) -> web.Response:
        self.metrics.offers.labels(outcome).inc()
        return web.json_response({"error": reason}, status=status)
