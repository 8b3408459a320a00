"""Opening the Realtime WebSocket, and telling a retryable failure from a fatal one.

A refused handshake is an HTTP response before the upgrade: 401/403 mean a bad or missing key,
404 a wrong URL or model, 400 a request the server will never accept (Azure answers a
non-realtime deployment this way), 429 with ``insufficient_quota`` an account without credit —
retrying any of those cannot help, so they are :class:`~realtalk.errors.FatalServerError`. Network
errors, timeouts, 5xx and plain 429 are :class:`~realtalk.errors.ConnectionLostError` and may be
retried with backoff.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from realtalk.errors import ConnectionLostError, FatalServerError, RealtalkError, ServerError
from realtalk.protocol.errors import FATAL_CODES, FATAL_TYPES
from realtalk.realtime.base import ModelError

from .redact import install_redaction
from .url import redact_url

__all__ = ["MAX_MESSAGE_BYTES", "handshake_error", "is_fatal", "model_error", "open_websocket"]

#: Largest frame accepted from the server (a long audio delta or a retrieved item).
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
PING_INTERVAL_S = 20.0
USER_AGENT = "realtalk (OpenAI Realtime GA client)"
#: websockets logs each handshake header at DEBUG, the key included: redacted.
WS_LOGGER = logging.getLogger("websockets.client")
install_redaction(WS_LOGGER)


def is_fatal(code: str | None, error_type: str | None) -> bool:
    """An error after which this session cannot go on (bad key, no quota, unknown model)."""
    return (code in FATAL_CODES) or (error_type in FATAL_TYPES)


async def open_websocket(
    url: str, headers: dict[str, str], *, timeout_s: float
) -> ClientConnection:
    """Connect, or raise FatalServerError / ConnectionLostError with a message naming the URL
    (its query is left out: it may carry a key)."""
    try:
        return await connect(
            url,
            additional_headers=headers,
            user_agent_header=USER_AGENT,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_INTERVAL_S,
            open_timeout=timeout_s,
            # Base64 audio barely compresses: deflate would only cost CPU (the SDK disables it too).
            compression=None,
            logger=WS_LOGGER,
        )
    except InvalidStatus as exc:
        response = exc.response
        raise handshake_error(url, response.status_code, bytes(response.body or b"")) from exc
    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
        raise ConnectionLostError(
            f"cannot connect to {redact_url(url)}: {type(exc).__name__}: {exc}"
        ) from exc


def handshake_error(url: str, status: int, body: bytes | None) -> RealtalkError:
    code, message = _read_error_body(body)
    where = redact_url(url)
    detail = f": {message}" if message else ""
    if status in (401, 403):
        return FatalServerError(
            f"the server at {where} refused the credentials (HTTP {status}){detail}. "
            "Check OPENAI_API_KEY (or api_key=...); for Azure use the resource's key.",
            type="authentication_error",
            code=code or "invalid_api_key",
        )
    if status == 429 and code == "insufficient_quota":
        return FatalServerError(
            f"the account has no quota left (HTTP 429){detail}",
            type="insufficient_quota",
            code=code,
        )
    if status in (400, 404):
        return FatalServerError(
            f"the server at {where} rejected the connection (HTTP {status}){detail}. "
            "Check the base_url and the model (Azure: the deployment name).",
            type="invalid_request_error",
            code=code or ("model_not_found" if status == 404 else "invalid_request"),
        )
    return ConnectionLostError(f"the server at {where} answered HTTP {status}{detail}")


def _read_error_body(body: bytes | None) -> tuple[str | None, str | None]:
    if not body:
        return None, None
    text = body.decode("utf-8", "replace")
    try:
        data: Any = json.loads(text)
    except ValueError:
        return None, text.strip()[:300] or None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (str(code) if code else None), (str(message) if message else None)
    return None, text.strip()[:300] or None


def model_error(exc: ServerError, *, fatal: bool) -> ModelError:
    return ModelError(
        exc.message,
        code=exc.code,
        type=exc.type,
        param=exc.param,
        event_id=exc.event_id,
        fatal=fatal,
    )
