"""Browser-origin safety for the servers on this machine: which web pages may use them.

A server on 127.0.0.1 is still reachable from every web page the user opens: the page's
JavaScript can open a WebSocket to it or POST to it (a "simple" cross-site request needs no
permission), and a DNS-rebinding site can even read the answers, its own name pointing at
127.0.0.1. Two checks close that, for ``realtalk serve`` and the runner's web app alike:

- **Host**: the request must name this server by a loopback name (``localhost``,
  ``127.0.0.1``, ``[::1]``, ``*.localhost``), by the address it binds, or by a name the user
  configured (``allowed_hosts``). A rebinding site's requests carry its own name: refused.
- **Origin**: when a browser says which page sent the request, that page must be on a loopback
  or configured name too; endpoints that only the server's own page calls require exactly its
  own origin (:meth:`OriginPolicy.same_origin`).

Endpoints that start work (the WebRTC offer) also require a **page token**
(:class:`PageTokens`): a value embedded in the page served from here, which another site cannot
read, sent back in the ``X-Realtalk-Token`` header. A header that is not CORS-safelisted plus a
JSON body also force a CORS preflight that these servers never grant.

Sans-I/O: the checks take header values. :func:`aiohttp_middleware` applies them to an aiohttp
application (the runner's web app, and any endpoint a teammate adds to it).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "TOKEN_HEADER",
    "OriginPolicy",
    "PageTokens",
    "aiohttp_middleware",
    "host_name",
    "is_loopback_name",
    "page_with_token",
    "token_from_page",
]

TOKEN_HEADER = "X-Realtalk-Token"
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def host_name(value: str | None) -> str | None:
    """The lowercase name of a ``Host`` header value (``name``, ``name:port``, ``[v6]:port``)."""
    return _split_host(value)[0]


def _split_host(value: str | None) -> tuple[str | None, int | None]:
    if not value:
        return None, None
    value = value.strip().lower()
    port = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None, None
        name, rest = value[1:end], value[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, port = value.split(":")
    else:  # a name, or a bare IPv6 address
        name = value
    return (name or None), (int(port) if port.isdigit() else None)


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class OriginPolicy:
    """Which ``Host`` and ``Origin`` values a server accepts.

    ``allowed_hosts``: names (or addresses) besides the loopback ones under which the server is
    reached, e.g. the name a reverse proxy forwards. ``bind_host``: the address the server binds;
    a specific one is allowed too (0.0.0.0 adds nothing: name the hosts).
    """

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def for_server(cls, bind_host: str, allowed_hosts: Iterable[str] = ()) -> OriginPolicy:
        names = {h.strip().lower().strip("[]") for h in allowed_hosts if h.strip()}
        if bind_host not in _WILDCARD_BINDS:
            names.add(bind_host.lower().strip("[]"))
        return cls(frozenset(names))

    def name_allowed(self, name: str | None) -> bool:
        return name is not None and (is_loopback_name(name) or name in self.allowed_hosts)

    def check(self, host: str | None, origin: str | None) -> str | None:
        """Why a request with these headers is refused, or None when it is fine."""
        if not self.name_allowed(host_name(host)):
            return (
                f"the Host {host!r} is not a name of this server (loopback names, or those "
                "given as allowed hosts)"
            )
        if origin is None:
            return None  # not sent by a browser page
        if not self.name_allowed(_origin_name(origin)):
            return f"requests from pages on {origin!r} are not allowed"
        return None

    def same_origin(self, host: str | None, origin: str | None) -> str | None:
        """Like :meth:`check`, and the page must be this server's own (Origin = Host)."""
        problem = self.check(host, origin)
        if problem is not None:
            return problem
        if origin is None:
            return "the Origin header is missing (only this server's page may call this)"
        if not _same_netloc(origin, host or ""):
            return f"only this server's own page may call this, not one on {origin!r}"
        return None


def _origin_name(origin: str) -> str | None:
    if origin == "null":
        return None
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower()


def _same_netloc(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    try:
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    name, port = _split_host(host)
    # Behind a proxy the Host may omit the default port the Origin implies.
    return (parts.hostname or "").lower() == name and port in (None, origin_port)


@dataclass
class PageTokens:
    """Tokens embedded in a served page: ``issue()`` per page load, ``valid()`` on each call.

    Stateless (an HMAC of a timestamp and a nonce under a per-process secret), so issuing one
    per page costs no memory a client could grow.
    """

    max_age_s: float = 24 * 3600.0
    _secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def issue(self) -> str:
        payload = f"{int(time.time())}.{secrets.token_hex(8)}"
        return f"{payload}.{self._mac(payload)}"

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 128 or token.count(".") != 2:
            return False
        issued, nonce, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(f"{issued}.{nonce}")):
            return False
        try:
            age = time.time() - int(issued)
        except ValueError:
            return False
        return -60 <= age <= self.max_age_s

    def _mac(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode(), hashlib.sha256).hexdigest()[:32]


def page_with_token(html: bytes, token: str) -> bytes:
    """The page with its token in a ``<meta name="realtalk-token">`` (what its script sends)."""
    meta = f'<meta name="realtalk-token" content="{token}">\n</head>'
    return html.replace(b"</head>", meta.encode(), 1)


def token_from_page(html: str) -> str:
    """The page token in a served page (what the page's script reads; for other clients)."""
    marker = '<meta name="realtalk-token" content="'
    start = html.find(marker)
    if start < 0:
        return ""
    start += len(marker)
    return html[start : html.find('"', start)]


Handler = Callable[[Any], Awaitable[Any]]


def aiohttp_middleware(
    policy: OriginPolicy,
    *,
    tokens: PageTokens | None = None,
    guarded: Callable[[Any], bool] = lambda request: request.method not in ("GET", "HEAD"),
) -> Any:
    """An aiohttp middleware: every request passes :meth:`OriginPolicy.check` (403 otherwise);
    those ``guarded(request)`` selects (by default all but GET and HEAD) must also come from the
    server's own page with a JSON body and, given ``tokens``, a valid page token."""
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> Any:
        host, origin = request.headers.get("Host"), request.headers.get("Origin")
        problem = policy.check(host, origin)
        if problem is None and guarded(request):
            problem = policy.same_origin(host, origin)
            if problem is None and request.content_type != "application/json":
                problem = "the body must be JSON (Content-Type: application/json)"
            token = request.headers.get(TOKEN_HEADER)
            if problem is None and tokens is not None and not tokens.valid(token):
                problem = f"a valid {TOKEN_HEADER} header (from the page) is required"
        if problem is not None:
            return web.json_response({"error": problem}, status=403)
        return await handler(request)

    return guard
