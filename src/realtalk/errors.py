"""The exceptions realtalk raises.

One root, two kinds of trouble: what *this* process did wrong (misuse of the API, bad local input)
and what the *other side* did (the Realtime server sent an error, or something we cannot read)::

    RealtalkError
    ├── LocalError              your code asked for something that cannot work
    │   ├── ConfigurationError  bad settings: missing API key, impossible audio format, ...
    │   └── NotConnectedError   a call that needs a live session, made without one
    ├── RemoteError             the server said no, or said something we cannot read
    │   ├── ServerError         an `error` event; carries its type, code, message, param, event_id
    │   │   └── FatalServerError   authentication, quota or other errors that end the session
    │   └── ProtocolViolation   a frame that is not a valid Realtime event
    └── ConnectionLostError     the transport went away and could not be brought back
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "ConnectionLostError",
    "FatalServerError",
    "LocalError",
    "NotConnectedError",
    "ProtocolViolation",
    "RealtalkError",
    "RemoteError",
    "ServerError",
]


class RealtalkError(Exception):
    """Root of every exception realtalk raises on purpose."""


class LocalError(RealtalkError):
    """This process misused the API or handed over bad input."""


class ConfigurationError(LocalError, ValueError):
    """Settings that cannot work (a ValueError too, as the seed raised ValueError)."""


class NotConnectedError(LocalError, RuntimeError):
    """The call needs a live session (a RuntimeError too, as the seed raised RuntimeError)."""


class RemoteError(RealtalkError):
    """The other side reported an error or broke the protocol."""


class ServerError(RemoteError):
    """An `error` event from the Realtime server."""

    def __init__(
        self,
        message: str,
        *,
        type: str = "server_error",
        code: str | None = None,
        param: str | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.event_id = event_id

    @classmethod
    def from_payload(cls, error: dict[str, Any]) -> ServerError:
        return cls(
            str(error.get("message") or "unknown server error"),
            type=str(error.get("type") or "server_error"),
            code=error.get("code"),
            param=error.get("param"),
            event_id=error.get("event_id"),
        )

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code else ""
        return f"{self.type}{code}: {self.message}"


class FatalServerError(ServerError):
    """A server error after which the session cannot go on (bad key, no quota, expired key)."""


class ProtocolViolation(RemoteError):
    """A frame that is not a valid Realtime event."""


class ConnectionLostError(RealtalkError):
    """The connection dropped and reconnecting failed."""
