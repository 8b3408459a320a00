"""HTTP digest authentication for SIP requests (RFC 3261 §22.4, RFC 2617 MD5 with qop=auth).

Optional: with credentials set, an INVITE without a valid ``Authorization`` is answered
``401 Unauthorized`` with a challenge. Nonces are HMACs of a timestamp under a per-process
secret, so nothing is stored per challenge (a flood of INVITEs holds no memory) and a nonce
expires after ``NONCE_TTL_S``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

__all__ = ["DigestAuth"]

NONCE_TTL_S = 300.0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _params(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    out: dict[str, str] = {}
    for part in _split(rest):
        key, _, val = part.partition("=")
        out[key.strip().lower()] = val.strip().strip('"')
    return out


def _split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


class DigestAuth:
    def __init__(self, username: str, password: str, realm: str = "realtalk") -> None:
        self.username = username
        self.realm = realm
        self._ha1 = _md5(f"{username}:{realm}:{password}")
        self._secret = secrets.token_bytes(16)

    def __repr__(self) -> str:  # never show the password or its hash
        return f"DigestAuth(username={self.username!r}, realm={self.realm!r})"

    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of a 401."""
        stamp = f"{time.time():.0f}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return f'Digest realm="{self.realm}", nonce="{stamp}.{mac}", algorithm=MD5, qop="auth"'

    def check(self, method: str, authorization: str | None) -> bool:
        if not authorization:
            return False
        p = _params(authorization)
        if p.get("username") != self.username or p.get("realm") != self.realm:
            return False
        if p.get("algorithm", "MD5").upper() != "MD5" or not self._fresh(p.get("nonce", "")):
            return False
        ha2 = _md5(f"{method}:{p.get('uri', '')}")
        if p.get("qop") == "auth":
            expected = _md5(
                f"{self._ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}"
            )
        else:
            expected = _md5(f"{self._ha1}:{p['nonce']}:{ha2}")
        return hmac.compare_digest(expected, p.get("response", ""))

    def _fresh(self, nonce: str) -> bool:
        stamp, _, mac = nonce.partition(".")
        good = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(good, mac):
            return False
        try:
            return time.time() - float(stamp) < NONCE_TTL_S
        except ValueError:
            return False
