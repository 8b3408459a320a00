"""The phone media-stream server: Twilio's voice webhook and the providers' media WebSockets.

- ``POST /twilio/voice``: Twilio's voice webhook. Answers TwiML that connects the call to our
  media WebSocket (``<Connect><Stream url="wss://…/twilio/media">``), passing the caller's
  From/To/CallSid as ``<Parameter>``s (Twilio's ``start`` message carries only the CallSid).
- ``GET /twilio/media`` (and ``/telnyx/media``, ``/plivo/media`` when enabled): the media
  WebSocket. Each connection is one call: after the provider's ``start`` a
  :class:`MediaStreamTransport` is made and ``on_call(transport)`` runs (the runner calls the
  agent's entrypoint there).

With an auth token, both Twilio endpoints check ``X-Twilio-Signature`` against the *public* URL
(``public_url``, for a tunnel or a load balancer) and answer 403 when it is missing or wrong.

Limits (each resource a caller can make us hold): ``max_calls`` concurrent calls (503 beyond),
text frames of at most ``MAX_MESSAGE_CHARS``, ``start`` within ``START_TIMEOUT_S`` (a ``start``
with a media format we cannot carry closes the socket with 1003 and the reason), and at most
``MAX_BAD_MESSAGES`` unparseable messages per call before the socket is closed (1008); a single
bad message is logged and dropped. Media beyond ``MAX_MEDIA_PER_S`` messages a second (Twilio
sends 50) is dropped and counted, never queued.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

import aiohttp
from aiohttp import web

from realtalk.transports.telephony.media_streams import (
    MAX_MESSAGE_CHARS,
    SERIALIZERS,
    MediaStreamSerializer,
    StreamError,
    StreamEvent,
)
from realtalk.transports.telephony.phone import CallInfo
from realtalk.transports.telephony.signature import valid_twilio_signature
from realtalk.transports.telephony.stream_transport import MediaStreamTransport

__all__ = ["MediaStreamServer", "TwilioCredentials"]

logger = logging.getLogger("realtalk.transport")

START_TIMEOUT_S = 10.0
MAX_BAD_MESSAGES = 50
TWILIO_API_BASE = "https://api.twilio.com"

OnCall = Callable[[MediaStreamTransport], Awaitable[Any]]


class TwilioCredentials:
    """Twilio account credentials: the auth token signs requests; with the account SID too,
    :meth:`complete_call` ends calls through the REST API (``api_base`` for a stand-in).
    Whatever is not given comes from ``TWILIO_AUTH_TOKEN``, ``TWILIO_ACCOUNT_SID`` and
    ``TWILIO_API_BASE`` unless ``from_env=False``."""

    def __init__(
        self,
        auth_token: str | None = None,
        account_sid: str | None = None,
        api_base: str | None = None,
        *,
        from_env: bool = True,
    ) -> None:
        env = os.environ if from_env else {}
        self.auth_token = auth_token or env.get("TWILIO_AUTH_TOKEN") or None
        self.account_sid = account_sid or env.get("TWILIO_ACCOUNT_SID") or None
        base = api_base or env.get("TWILIO_API_BASE") or TWILIO_API_BASE
        self.api_base = base.rstrip("/")

    def __repr__(self) -> str:  # never print the token
        return f"TwilioCredentials(account_sid={self.account_sid!r}, api_base={self.api_base!r})"

    async def complete_call(self, call: CallInfo) -> None:
        """``POST /2010-04-01/Accounts/{sid}/Calls/{CallSid}.json`` with ``Status=completed``."""
        if not (self.auth_token and self.account_sid and call.call_id):
            return  # the auth token alone only checks signatures; REST needs the account too
        account = call.account_id or self.account_sid  # the call's (sub)account, as Twilio said
        url = f"{self.api_base}/2010-04-01/Accounts/{account}/Calls/{call.call_id}.json"
        basic = base64.b64encode(f"{account}:{self.auth_token}".encode()).decode("ascii")
        headers = {"Authorization": f"Basic {basic}"}
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(url, data={"Status": "completed"}, headers=headers) as response,
        ):
            if response.status >= 300:
                raise RuntimeError(f"Twilio answered {response.status} to completing the call")
        logger.info("call %s: completed through the Twilio REST API", call.call_id)


class MediaStreamServer:
    """Args:
    on_call: runs once per call with its transport (it starts the agent's session).
    host, port: where to listen (port 0 picks a free one).
    public_url: the URL the provider reaches us at (``https://abc.example.com``); the TwiML's
        stream URL and the signature check use it. Default: what the request says.
    credentials: Twilio credentials (auth token: signatures; + account SID: REST hang-up).
    max_calls: concurrent calls; more are refused.
    providers: whose media streams to serve (``/twilio/media``, ``/telnyx/media``,
        ``/plivo/media``). Only Twilio's are authenticated (signatures): serve the others only
        behind your own authentication (a proxy, a secret path prefix).
    """

    def __init__(
        self,
        on_call: OnCall,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        public_url: str | None = None,
        credentials: TwilioCredentials | None = None,
        max_calls: int = 100,
        providers: tuple[str, ...] = ("twilio",),
    ) -> None:
        unknown = [p for p in providers if p not in SERIALIZERS]
        if unknown:
            raise ValueError(f"unknown providers {unknown} (choose from {', '.join(SERIALIZERS)})")
        self.providers = providers
        self.on_call = on_call
        self.host = host
        self.requested_port = port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.credentials = credentials or TwilioCredentials()
        self.max_calls = max_calls
        self.calls: set[MediaStreamTransport] = set()
        self.bad_messages = 0  # over all calls, for tests and monitoring
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._active = 0
        self._connections: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/twilio/voice", self._voice)
        for provider in self.providers:
            app.router.add_get(f"/{provider}/media", self._media)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.requested_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self.requested_port
        logger.info("phone media server on %s", self.base_url)

    async def aclose(self) -> None:
        for transport in list(self.calls):
            await transport.end_call("server stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> MediaStreamServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self._port}"

    # -- Twilio voice webhook --------------------------------------------------------------------

    async def _voice(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        if not self._signed(request, params):
            return web.Response(status=403, text="invalid X-Twilio-Signature\n")
        if self._active >= self.max_calls:
            return _twiml("<Say>All lines are busy. Please call again later.</Say><Hangup/>")
        fields = dict(params)
        stream_url = self._public(request, "/twilio/media", websocket=True)
        parameters = "".join(
            f"<Parameter name={quoteattr(name)} value={quoteattr(fields[name])}/>"
            for name in ("From", "To", "CallSid", "Direction")
            if fields.get(name)
        )
        logger.info(
            "call %s from %s: connecting its stream", fields.get("CallSid"), fields.get("From")
        )
        return _twiml(
            f"<Connect><Stream url={quoteattr(stream_url)}>{parameters}</Stream></Connect>"
        )

    # -- media WebSocket -------------------------------------------------------------------------

    async def _media(self, request: web.Request) -> web.StreamResponse:
        provider = request.path.split("/")[1]
        if provider == "twilio" and not self._signed(request, []):
            return web.Response(status=403, text="invalid X-Twilio-Signature\n")
        if self._active >= self.max_calls:
            return web.Response(status=503, text=f"at most {self.max_calls} calls at once\n")
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_CHARS * 2, autoping=True)
        await ws.prepare(request)
        self._active += 1
        try:
            await self._serve_stream(ws, SERIALIZERS[provider]())
        finally:
            self._active -= 1
            if not ws.closed:
                await ws.close()
        return ws

    async def _serve_stream(
        self, ws: web.WebSocketResponse, serializer: MediaStreamSerializer
    ) -> None:
        start = await self._wait_start(ws, serializer)
        if start is None:
            return
        call = CallInfo(
            provider=serializer.provider,
            call_id=start.call_id or start.parameters.get("CallSid"),
            from_number=start.from_number,
            to_number=start.to_number,
            stream_id=start.stream_id,
            account_id=start.account_id,
            parameters=start.parameters,
            encoding=start.encoding or "audio/pcmu",
        )

        async def close_stream() -> None:
            if not ws.closed:
                await ws.close()

        transport = MediaStreamTransport(
            serializer,
            call,
            send=ws.send_str,
            close_stream=close_stream,
            complete_call=self.credentials.complete_call
            if serializer.provider == "twilio"
            else None,
        )
        self.calls.add(transport)
        logger.info(
            "call %s (%s) from %s to %s: stream %s started",
            call.call_id,
            call.provider,
            call.from_number,
            call.to_number,
            call.stream_id,
        )
        job = asyncio.get_running_loop().create_task(self._run_call(transport))
        bad = 0
        reason = "the caller hung up"
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
                    event: StreamEvent | None = None
                    error = "binary frames are not part of the protocol"
                else:
                    try:
                        event, error = serializer.parse(message.data), ""
                    except StreamError as exc:
                        event, error = None, str(exc)
                if event is None:
                    bad += 1
                    self.bad_messages += 1
                    logger.warning("call %s: dropped a bad message: %s", call.call_id, error)
                    if bad >= MAX_BAD_MESSAGES:
                        reason = "too many bad messages"
                        await ws.close(code=1008, message=b"too many bad messages")
                        break
                    continue
                await transport.handle(event)
                if event.kind == "stop":
                    break
        finally:
            if not transport.closed:
                transport.remote_hung_up()
                await transport.end_call(reason)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(job, 5.0)
            self.calls.discard(transport)

    async def _wait_start(
        self, ws: web.WebSocketResponse, serializer: MediaStreamSerializer
    ) -> StreamEvent | None:
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        break
                    try:
                        event = serializer.parse(message.data)
                    except StreamError as exc:
                        self.bad_messages += 1
                        if exc.event == "start":  # e.g. a media format we cannot carry
                            logger.warning("media stream refused: %s", exc)
                            await ws.close(code=1003, message=str(exc)[:120].encode())
                            return None
                        logger.warning("media stream: dropped a bad message before start: %s", exc)
                        continue
                    if event.kind == "start":
                        return event
                    if event.kind == "stop":
                        return None
        except TimeoutError:
            logger.warning("media stream: no start within %.0f s; closing", START_TIMEOUT_S)
            await ws.close(code=1008, message=b"no start message")
        return None

    async def _run_call(self, transport: MediaStreamTransport) -> None:
        try:
            await self.on_call(transport)
        except Exception:
            logger.exception("call %s: the entrypoint failed", transport.call.call_id)
            await transport.end_call("the entrypoint failed")

    # -- helpers ---------------------------------------------------------------------------------

    def _signed(self, request: web.Request, params: list[tuple[str, str]]) -> bool:
        token = self.credentials.auth_token
        if not token:
            return True
        signature = request.headers.get("X-Twilio-Signature")
        urls = [self._public(request, request.path_qs, websocket=False)]
        if request.method == "GET":  # the upgrade: signed as wss://…, or as https://… by some
            urls.insert(0, self._public(request, request.path_qs, websocket=True))
        ok = any(valid_twilio_signature(token, url, params, signature) for url in urls)
        if not ok:
            logger.warning(
                "refused %s %s: bad or missing X-Twilio-Signature", request.method, request.path
            )
        return ok

    def _public(self, request: web.Request, path_qs: str, *, websocket: bool) -> str:
        """The URL the provider used (or should use) for ``path_qs``."""
        base = self.public_url or f"{request.scheme}://{request.host}"
        parts = urlsplit(base)
        scheme = parts.scheme
        if websocket:
            scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        return urlunsplit((scheme, parts.netloc, "", "", "")) + path_qs


def _twiml(body: str) -> web.Response:
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return web.Response(text=xml, content_type="text/xml")
