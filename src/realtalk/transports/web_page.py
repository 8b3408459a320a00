"""The browser page and its static files, served the same way by every web front door.

`realtalk run`'s WebRTC server and the scale-out gateway both serve the page: this mixin gives them
one copy of its routes (the page with its per-page token, the static files, the ICE configuration)
and of the headers a non-page client must send with an offer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from realtalk.web_guard import TOKEN_HEADER, PageTokens, page_with_token

__all__ = ["SECURITY_HEADERS", "WEB_DIR", "PageRoutes"]

WEB_DIR = Path(__file__).with_name("web")
_STATIC = {
    "app.js": "text/javascript",
    "level-probe.js": "text/javascript",
    "style.css": "text/css",
}
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def read_page_files() -> dict[str, bytes]:
    """The page and its static files, read once at start-up."""
    return {name: (WEB_DIR / name).read_bytes() for name in (*_STATIC, "index.html")}


class PageRoutes:
    """Routes for the page; the owner sets ``tokens``, ``ice_servers``, ``_files`` and ``url``."""

    tokens: PageTokens
    ice_servers: list[dict[str, Any]]
    _files: dict[str, bytes]

    @property
    def url(self) -> str:
        raise NotImplementedError

    def add_page_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/config", self._config)

    def offer_headers(self, origin: str | None = None) -> dict[str, str]:
        """The headers the page sends with an offer (for clients that are not the page)."""
        return {
            "Content-Type": "application/json",
            "Origin": (origin or self.url).rstrip("/"),
            TOKEN_HEADER: self.tokens.issue(),
        }

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=page_with_token(self._files["index.html"], self.tokens.issue()),
            content_type="text/html",
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        content_type = _STATIC.get(name)
        if content_type is None:
            raise web.HTTPNotFound(text=f"no static file {name!r}")
        return web.Response(
            body=self._files[name],
            content_type=content_type,
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    async def _config(self, request: web.Request) -> web.Response:
        return web.json_response({"iceServers": self.ice_servers}, headers=SECURITY_HEADERS)
