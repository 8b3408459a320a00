"""Error codes of the Realtime protocol and the sans-I/O error value the validators return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BENIGN_CODES", "FATAL_CODES", "ProtocolError"]

INVALID_REQUEST: Final = "invalid_request_error"
SERVER_ERROR: Final = "server_error"

# Codes that describe a harmless race; a client must never end a session over them.
BENIGN_CODES: Final = frozenset(
    {
        "response_cancel_not_active",
        "conversation_already_has_active_response",
        "input_audio_buffer_commit_empty",
    }
)

# Codes (and error types) after which retrying the same session cannot help.
FATAL_CODES: Final = frozenset(
    {
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "model_not_found",
        "beta_api_shape_disabled",
        "unsupported_country_region_territory",
    }
)
FATAL_TYPES: Final = frozenset({"authentication_error", "permission_error", "insufficient_quota"})


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """What a validator found wrong with one client event, in OpenAI's terms."""

    code: str
    message: str
    param: str | None = None
    type: str = INVALID_REQUEST


def unknown_parameter(param: str) -> ProtocolError:
    return ProtocolError("unknown_parameter", f"Unknown parameter: '{param}'.", param)


def missing_parameter(param: str) -> ProtocolError:
    return ProtocolError(
        "missing_required_parameter", f"Missing required parameter: '{param}'.", param
    )


def invalid_type(param: str, expected: str, got: object) -> ProtocolError:
    return ProtocolError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_kind(got)} instead.",
        param,
    )


def invalid_value(param: str, message: str) -> ProtocolError:
    return ProtocolError("invalid_value", f"Invalid value for '{param}': {message}", param)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
