"""``realtalk run --transport twilio|sip``: serve phone calls, one agent session per call.

These are the entry points the runner (and a future worker pool) calls: :func:`run_call` runs
the agent's entrypoint for one call's transport; :func:`serve_phone` serves calls until ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from realtalk.transports.telephony.phone import PhoneTransport

__all__ = ["run_call", "serve_phone"]

logger = logging.getLogger("realtalk.transport")


async def run_call(
    entrypoint: Callable[[Any], Awaitable[None]],
    make_context: Callable[[PhoneTransport], Any],
    transport: PhoneTransport,
) -> None:
    """Run ``entrypoint`` for one call and wait until its session closes."""
    await entrypoint(make_context(transport))
    session = transport.session
    if session is None:
        logger.error(
            "call %s: the entrypoint started no session on ctx.transport; hanging up",
            transport.call.call_id,
        )
        await transport.end_call("the entrypoint started no session")
        return
    await session.wait_closed()


async def serve_phone(
    kind: str,
    entrypoint: Callable[[Any], Awaitable[None]],
    make_context: Callable[[PhoneTransport], Any],
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    **options: Any,
) -> int:
    """Answer calls until ``stop`` is set; closes every call's session before returning."""

    async def on_call(transport: Any) -> None:
        await run_call(entrypoint, make_context, transport)

    server: Any
    if kind == "twilio":
        from realtalk.transports.telephony.server import MediaStreamServer

        server = MediaStreamServer(on_call, host=host, port=port, **options)
        await server.start()
        public = server.public_url or server.base_url
        print(
            f"Twilio voice webhook: POST {public}/twilio/voice (listening on {server.base_url}; "
            "media stream on /twilio/media; Ctrl+C to stop).",
            file=sys.stdout,
            flush=True,
        )
    elif kind == "sip":
        from realtalk.transports.telephony.sip.endpoint import SipServer

        server = SipServer(on_call, host=host, port=port, **options)
        await server.start()
        print(
            f"SIP endpoint: sip:agent@{server.host}:{server.port} "
            f"({'UDP and TCP' if server.tcp_enabled else 'UDP'}; Ctrl+C to stop).",
            file=sys.stdout,
            flush=True,
        )
    else:
        raise ValueError(f"unknown phone transport {kind!r}")
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await server.aclose()
    return 0
