"""Workers, slots and stored conversations in Redis.

Layout (``P`` is the key prefix, ``realtalk:`` by default)::

    P workers               set of worker ids (may hold stale ids: reservation removes them)
    P worker:<id>           hash  url, capacity, draining, beat (Redis time, ms), ttl (ms);
                            expires ttl ms after the last heartbeat
    P worker:<id>:slots     sorted set of slot tokens; score = when the slot lapses (ms), or
                            +inf for a session the worker reports as running
    P conversation:<sid>    the session's conversation as JSON, expiring after its TTL

Why a sorted set of tokens instead of a load counter: every slot names its owner and lapses on
its own. A gateway that dies between reserving and forwarding leaks nothing (the pending score
lapses), a worker that dies takes its slots with it (the keys expire), and after a Redis restart
the worker's next heartbeat writes its running sessions back. The heartbeat replaces the +inf
members with the worker's current list, so the count never drifts.

Reservation is one Lua script (atomic in Redis): it skips dead, stale (no heartbeat within the
ttl) and draining workers, drops lapsed slots, picks the lowest load ratio (ties: fewest
sessions) and adds the slot. No two gateways can overfill a worker. The times are Redis's own
(``TIME``), so clocks of different machines never meet.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_CONVERSATION_BYTES",
    "Keys",
    "Registry",
    "RegistryUnavailable",
    "Reservation",
    "WorkerState",
    "decode_conversation",
    "encode_conversation",
    "new_session_id",
    "redact_url",
    "valid_session_id",
]

DEFAULT_PREFIX = "realtalk:"
#: Largest stored conversation; beyond it images go first, then the oldest items.
MAX_CONVERSATION_BYTES = 512 * 1024
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class RegistryUnavailable(RuntimeError):
    """Redis cannot be reached (or answered with an error): the message says which address."""


# -- sans-I/O -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    @property
    def workers(self) -> str:
        return f"{self.prefix}workers"

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def slots(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}:slots"

    def conversation(self, session_id: str) -> str:
        return f"{self.prefix}conversation:{session_id}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A slot reserved on a worker for one session (``token`` names the slot)."""

    worker_id: str
    url: str
    token: str
    load: int  # sessions on the worker, this one included
    capacity: int


@dataclass(frozen=True, slots=True)
class WorkerState:
    worker_id: str
    url: str
    capacity: int
    load: int
    draining: bool


def new_session_id() -> str:
    """A session id: 128 random bits, URL-safe; knowing it is what lets a page resume."""
    return secrets.token_urlsafe(16)


def valid_session_id(value: Any) -> bool:
    return isinstance(value, str) and _SESSION_ID.match(value) is not None


def redact_url(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def encode_conversation(
    items: list[dict[str, Any]], *, max_bytes: int = MAX_CONVERSATION_BYTES
) -> tuple[str, int]:
    """JSON for ``items`` within ``max_bytes``: images are dropped first, then the oldest items.

    Returns the JSON and how many items had to be dropped (0 normally).
    """
    text = json.dumps({"items": items}, separators=(",", ":"))
    if len(text.encode()) <= max_bytes:
        return text, 0
    kept = [_without_images(item) for item in items]
    dropped = 0
    while True:
        text = json.dumps({"items": kept, "dropped": dropped}, separators=(",", ":"))
        if len(text.encode()) <= max_bytes or not kept:
            return text, dropped
        cut = max(1, len(kept) // 8)
        kept = kept[cut:]
        dropped += cut


def decode_conversation(text: str | bytes | None) -> list[dict[str, Any]] | None:
    """The items of a stored conversation, or None if there is none or it is unreadable."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    items = value.get("items") if isinstance(value, dict) else None
    if not isinstance(items, list):
        return None
    return [item for item in items if isinstance(item, dict) and isinstance(item.get("type"), str)]


def _without_images(item: dict[str, Any]) -> dict[str, Any]:
    content = item.get("content")
    if not isinstance(content, list):
        return item
    return {**item, "content": [p for p in content if p.get("type") != "input_image"]}


# -- Lua ------------------------------------------------------------------------------------------

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS[1] workers set; ARGV: prefix, token, pending_ms, excluded ids...
_RESERVE = (
    _NOW
    + """
local excluded = {}
for i = 4, #ARGV do excluded[ARGV[i]] = true end
local best, best_ratio, best_load, best_url, best_cap
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. 'worker:' .. id
  local f = redis.call('HMGET', key, 'url', 'capacity', 'draining', 'beat', 'ttl')
  local beat, ttl = tonumber(f[4]), tonumber(f[5])
  if (not f[1]) or (not beat) or (not ttl) or now - beat > ttl then
    redis.call('SREM', KEYS[1], id)
    redis.call('DEL', key, key .. ':slots')
  elseif f[3] ~= '1' and not excluded[id] then
    local slots = key .. ':slots'
    redis.call('ZREMRANGEBYSCORE', slots, '-inf', '(' .. now)
    local load = redis.call('ZCARD', slots)
    local cap = tonumber(f[2]) or 0
    if load < cap then
      local ratio = load / cap
      if best == nil or ratio < best_ratio or (ratio == best_ratio and load < best_load)
         or (ratio == best_ratio and load == best_load and id < best) then
        best, best_ratio, best_load, best_url, best_cap = id, ratio, load, f[1], cap
      end
    end
  end
end
if best == nil then return false end
local slots = ARGV[1] .. 'worker:' .. best .. ':slots'
redis.call('ZADD', slots, now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', slots, math.max(tonumber(ARGV[3]), redis.call('PTTL', slots)))
return {best, best_url, best_load + 1, best_cap}
"""
)

# KEYS: workers set, worker hash, slots; ARGV: id, url, capacity, draining, ttl_ms, tokens...
_HEARTBEAT = (
    _NOW
    + """
redis.call('HSET', KEYS[2], 'url', ARGV[2], 'capacity', ARGV[3], 'draining', ARGV[4],
           'beat', now, 'ttl', ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '+inf', '+inf')
for i = 6, #ARGV do redis.call('ZADD', KEYS[3], 'inf', ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. now)
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('PEXPIRE', KEYS[3], math.max(tonumber(ARGV[5]), redis.call('PTTL', KEYS[3])))
end
return redis.call('ZCARD', KEYS[3])
"""
)


# -- I/O ------------------------------------------------------------------------------------------


class Registry:
    """The Redis side of workers and gateways (``redis.asyncio``); every call raises
    :class:`RegistryUnavailable` when Redis cannot be reached."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 2.0) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.keys = Keys(prefix)
        try:
            self.redis: Any = aioredis.from_url(
                url,
                socket_connect_timeout=timeout_s,
                socket_timeout=timeout_s,
                retry_on_timeout=False,
                decode_responses=True,
            )
        except ValueError as exc:
            raise RegistryUnavailable(f"bad Redis URL {redact_url(url)!r}: {exc}") from None
        self._reserve = self.redis.register_script(_RESERVE)
        self._heartbeat = self.redis.register_script(_HEARTBEAT)

    async def _call(self, what: str, awaitable: Any) -> Any:
        import redis.exceptions

        try:
            return await awaitable
        except (redis.exceptions.RedisError, OSError) as exc:
            raise RegistryUnavailable(
                f"Redis at {redact_url(self.url)} failed ({what}): {exc or type(exc).__name__}"
            ) from None

    async def ping(self) -> None:
        await self._call("ping", self.redis.ping())

    async def aclose(self) -> None:
        try:
            await self.redis.aclose()
        except Exception:  # closing a pool whose server is gone
            pass

    # -- workers ----------------------------------------------------------------------------

    async def heartbeat(
        self,
        worker_id: str,
        *,
        url: str,
        capacity: int,
        draining: bool,
        ttl_ms: int,
        tokens: list[str],
    ) -> int:
        """Register or refresh a worker; returns the slots it holds now."""
        keys = [self.keys.workers, self.keys.worker(worker_id), self.keys.slots(worker_id)]
        args = [worker_id, url, capacity, "1" if draining else "0", ttl_ms, *tokens]
        return int(await self._call("heartbeat", self._heartbeat(keys=keys, args=args)))

    async def deregister(self, worker_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.srem(self.keys.workers, worker_id)
        pipe.delete(self.keys.worker(worker_id), self.keys.slots(worker_id))
        await self._call("deregister", pipe.execute())

    async def reserve(
        self, *, pending_ms: int, exclude: list[str] | tuple[str, ...] = ()
    ) -> Reservation | None:
        """A slot on the least-loaded live worker (None when every worker is full)."""
        token = secrets.token_urlsafe(12)
        args = [self.keys.prefix, token, pending_ms, *exclude]
        result = await self._call("reserve", self._reserve(keys=[self.keys.workers], args=args))
        if not result:
            return None
        worker_id, url, load, capacity = result
        return Reservation(str(worker_id), str(url), token, int(load), int(capacity))

    async def release(self, worker_id: str, token: str) -> None:
        await self._call("release", self.redis.zrem(self.keys.slots(worker_id), token))

    async def workers(self) -> list[WorkerState]:
        """Live registered workers (for health pages and tests)."""
        ids = await self._call("list workers", self.redis.smembers(self.keys.workers))
        out = []
        for worker_id in sorted(ids):
            info = await self._call("worker", self.redis.hgetall(self.keys.worker(worker_id)))
            if not info:
                continue
            load = await self._call("slots", self.redis.zcard(self.keys.slots(worker_id)))
            out.append(
                WorkerState(
                    worker_id,
                    info.get("url", ""),
                    int(info.get("capacity", 0)),
                    int(load),
                    info.get("draining") == "1",
                )
            )
        return out

    # -- conversations ----------------------------------------------------------------------

    async def store_conversation(self, session_id: str, text: str, *, ttl_ms: int) -> None:
        key = self.keys.conversation(session_id)
        await self._call("store conversation", self.redis.set(key, text, px=ttl_ms))

    async def load_conversation(self, session_id: str) -> list[dict[str, Any]] | None:
        key = self.keys.conversation(session_id)
        return decode_conversation(await self._call("load conversation", self.redis.get(key)))
