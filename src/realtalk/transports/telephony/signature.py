"""Twilio request signatures (``X-Twilio-Signature``), as Twilio documents them.

The signature is base64(HMAC-SHA1(auth token, URL + the POST form fields sorted by name, each
name followed by its value)). The URL is the one Twilio requested, query string included, so
behind a tunnel or proxy it is the *public* URL, not the one this process sees. A WebSocket
upgrade is a GET: only the URL is signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

__all__ = ["twilio_signature", "valid_twilio_signature"]


def twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]] = ()
) -> str:
    """The signature Twilio sends for a request to ``url`` with form fields ``params``."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    data = url + "".join(name + value for name, value in sorted(pairs, key=lambda kv: kv[0]))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_twilio_signature(
    auth_token: str,
    url: str,
    params: Mapping[str, str] | Iterable[tuple[str, str]],
    signature: str | None,
) -> bool:
    """Whether ``signature`` is Twilio's for this request (constant-time comparison).

    Twilio's own validators also accept the URL with the default port added or removed (some
    proxies rewrite it), so both spellings are tried.
    """
    if not signature:
        return False
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    for candidate in _url_variants(url):
        expected = twilio_signature(auth_token, candidate, pairs)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return True
    return False


def _url_variants(url: str) -> list[str]:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    variants = [url]
    default = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme)
    host = parts.hostname or ""
    if default is not None and host:
        if parts.port is None:
            variants.append(urlunsplit(parts._replace(netloc=f"{host}:{default}")))
        elif parts.port == default:
            variants.append(urlunsplit(parts._replace(netloc=host)))
    return variants
