"""Where the Realtime WebSocket lives and how to authenticate to it (OpenAI, Azure, local).

GA only: no ``OpenAI-Beta`` header is ever sent (OpenAI closes beta-shaped sessions with 4000
``beta_api_shape_disabled``). Azure's GA endpoint is ``/openai/v1/realtime?model=<deployment>``; the
deprecated preview form (``/openai/realtime?api-version=...&deployment=...``) is rewritten to it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

__all__ = [
    "OPENAI_BASE_URL",
    "auth_headers",
    "is_azure",
    "is_openai",
    "needs_api_key",
    "process_base_url",
    "redact_url",
]

OPENAI_BASE_URL = "https://api.openai.com/v1"

_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def _host(url: str) -> str:
    return (urlparse(url).hostname or "").lower()


def is_azure(url: str) -> bool:
    return _host(url).endswith(_AZURE_SUFFIXES)


def is_openai(url: str) -> bool:
    host = _host(url)
    return host == "api.openai.com" or host.endswith(".api.openai.com")


def is_loopback(url: str) -> bool:
    host = _host(url)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_api_key(url: str) -> bool:
    """OpenAI and Azure refuse anonymous sessions; a local or custom server may not need a key."""
    return is_openai(url) or is_azure(url)


def process_base_url(url: str, model: str) -> str:
    """The WebSocket URL for ``model`` under ``url`` (the seed's rules, plus Azure GA).

    ``http(s)`` becomes ``ws(s)``; a path of ``""``, ``/v1`` or ``/openai`` gets ``/realtime``
    appended; ``model=`` is added unless the query has one. Azure hosts get
    ``/openai/v1/realtime?model=<deployment>`` (a legacy ``deployment=`` becomes ``model=`` and
    ``api-version`` is dropped, as GA has none).
    """
    if url.startswith("http"):
        url = url.replace("http", "ws", 1)
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    path = parsed.path.rstrip("/")
    if is_azure(url):
        deployment = query.pop("deployment", None)
        query.pop("api-version", None)
        if deployment and "model" not in query:
            query["model"] = deployment
        if path in ("", "/openai", "/openai/v1", "/openai/realtime", "/openai/v1/realtime"):
            path = "/openai/v1/realtime"
    elif path in ("", "/v1", "/openai"):
        path = path + "/realtime"
    else:
        path = parsed.path
    if "model" not in query:
        query["model"] = [model]
    return urlunparse((parsed.scheme, parsed.netloc, path, "", urlencode(query, doseq=True), ""))


def auth_headers(api_key: str | None, url: str) -> dict[str, str]:
    """``Authorization: Bearer`` (and Azure's ``api-key``); nothing when there is no key."""
    if not api_key:
        return {}
    headers = {"Authorization": f"Bearer {api_key}"}
    if is_azure(url):
        headers["api-key"] = api_key
    return headers


def redact_url(url: str) -> str:
    """The URL without its query, for logs (an ``api-key`` may ride in a query string)."""
    parsed = urlparse(url)
    return urlunparse((parsed.scheme, parsed.netloc, parsed.path, "", "", ""))
