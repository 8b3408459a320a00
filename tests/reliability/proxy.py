"""A loopback TCP proxy that injects faults between a client and a server.

Put it between the client and the server (``OpenAIRealtime(base_url=proxy.base_url)``) and the
client's WebSocket runs through it byte for byte. The controls reproduce what real networks do:

- ``delay(ms)``      every chunk waits ``ms`` before it is forwarded (a slow link)
- ``stall(seconds)`` nothing moves, either way, for ``seconds`` (a frozen server or NAT)
- ``cut(after_bytes=None)``  abort both sides of every open connection, now or once
  ``after_bytes`` more bytes have gone to the client, so a WebSocket frame can be cut in half
- ``refuse(n)``      the next ``n`` connections are accepted and reset at once
- ``restore()``      undo delay, stall, pending cuts and refusals

It only ever listens on 127.0.0.1, every loop ends when its socket ends, and the proxy closes
itself after ``max_lifetime_s`` so a forgotten proxy cannot outlive a test run.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FaultProxy", "ProxyStats"]

Direction = Literal["to_client", "to_server", "both"]

_CHUNK = 64 * 1024
_STALL_POLL_S = 0.02
_HALF_CLOSE_GRACE_S = 5.0


@dataclass
class ProxyStats:
    """What the proxy saw; tests read it to prove a fault really happened."""

    accepted: int = 0  # connections forwarded to the server
    refused: int = 0  # connections reset on purpose
    cuts: int = 0  # connections aborted by cut()
    upstream_failures: int = 0  # the server could not be reached
    bytes_to_server: int = 0
    bytes_to_client: int = 0
    closed_by_peer: int = 0  # connections that ended without a fault
    history: list[str] = field(default_factory=list)


class _Link:
    """One client connection and its server connection, with a byte budget for a pending cut."""

    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.client_reader, self.client_writer = client
        self.server_reader, self.server_writer = server
        self.cut_budget: int | None = None
        self.cut_direction: Direction = "to_client"
        self.closed = False
        self.faulted = False

    def close(self, *, graceful: bool = False) -> None:
        """Close both sockets: with a FIN after pending bytes, or (default) reset them at once,
        without a close handshake (no FIN, no WebSocket close frame)."""
        self.closed = True
        for writer in (self.client_writer, self.server_writer):
            transport = writer.transport
            if not transport.is_closing():
                transport.close() if graceful else transport.abort()


class FaultProxy:
    """An asyncio TCP proxy on 127.0.0.1 with fault controls; use ``async with``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        max_lifetime_s: float = 600.0,
    ) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the fault proxy only forwards to loopback, not {target_host!r}")
        self._target = (target_host, target_port)
        self._max_lifetime_s = max_lifetime_s
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._delay_s = 0.0
        self._stall_until = 0.0
        self._refuse = 0
        self._pending_cut: tuple[int, Direction] | None = None
        self.stats = ProxyStats()
        self.port = 0

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._watchdog = asyncio.create_task(self._expire())
        return self

    async def aclose(self) -> None:
        """Stop listening, reset every open link and wait for the pumps; safe to call twice."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        self._watchdog = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def base_url(self) -> str:
        """The http base URL of the proxy (what a client takes as ``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def active(self) -> int:
        """Connections open through the proxy right now."""
        return len(self._links)

    # -- controls ---------------------------------------------------------------------------------

    def delay(self, ms: float) -> None:
        if ms < 0:
            raise ValueError(f"delay must be >= 0 ms, got {ms}")
        self._delay_s = ms / 1000.0
        self._note(f"delay {ms} ms")

    def stall(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"stall must be >= 0 s, got {seconds}")
        self._stall_until = asyncio.get_running_loop().time() + seconds
        self._note(f"stall {seconds} s")

    def cut(self, after_bytes: int | None = None, *, direction: Direction = "to_client") -> int:
        """Abort every open link now, or after ``after_bytes`` more bytes in ``direction``.

        With ``after_bytes``, links opened before those bytes flow are armed too, so a cut
        requested between connections still lands on the next one. Returns the number of
        links aborted at once.
        """
        if after_bytes is None:
            links = list(self._links)
            for link in links:
                self._abort(link)
            self._note(f"cut {len(links)} now")
            return len(links)
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes}")
        self._pending_cut = (after_bytes, direction)
        for link in self._links:
            link.cut_budget, link.cut_direction = after_bytes, direction
        self._note(f"cut after {after_bytes} bytes {direction}")
        return 0

    def refuse(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"refuse needs n >= 0, got {n}")
        self._refuse = n
        self._note(f"refuse {n}")

    def restore(self) -> None:
        self._delay_s = 0.0
        self._stall_until = 0.0
        self._refuse = 0
        self._pending_cut = None
        for link in self._links:
            link.cut_budget = None
        self._note("restore")

    # -- forwarding -------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refuse > 0:
            self._refuse -= 1
            self.stats.refused += 1
            writer.transport.abort()
            return
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*self._target), 5.0)
        except (OSError, TimeoutError):
            self.stats.upstream_failures += 1
            writer.transport.abort()
            return
        link = _Link((reader, writer), upstream)
        if self._pending_cut is not None:
            link.cut_budget, link.cut_direction = self._pending_cut
        self._links.add(link)
        self.stats.accepted += 1
        pumps = [
            asyncio.create_task(self._pump(link, link.client_reader, link.server_writer, False)),
            asyncio.create_task(self._pump(link, link.server_reader, link.client_writer, True)),
        ]
        self._tasks.update(pumps)
        try:
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            if pending:  # one side said goodbye: give the other a moment to finish, no more
                await asyncio.wait(pending, timeout=_HALF_CLOSE_GRACE_S)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._links.discard(link)
            if not link.faulted:
                self.stats.closed_by_peer += 1
            link.close(graceful=not link.faulted)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        to_client: bool,
    ) -> None:
        """Copy one direction until EOF (passed on as a half-close) or a fault (resets both)."""
        try:
            while not link.closed:
                data = await reader.read(_CHUNK)
                if not data:
                    if writer.can_write_eof() and not writer.transport.is_closing():
                        writer.write_eof()
                    return
                await self._hold()
                if link.closed:
                    return
                data = self._spend_budget(link, data, to_client)
                if data:
                    writer.write(data)
                    await writer.drain()
                    if to_client:
                        self.stats.bytes_to_client += len(data)
                    else:
                        self.stats.bytes_to_server += len(data)
                if link.cut_budget == 0 and self._matches(link.cut_direction, to_client):
                    await self._flushed(writer)  # the half frame must really leave
                    self._abort(link)
                    return
        except (ConnectionError, OSError):
            link.close()  # a reset on one side is passed on as a reset

    async def _hold(self) -> None:
        """Wait out the configured delay and any stall (the stall can be lifted by restore)."""
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        loop = asyncio.get_running_loop()
        while (left := self._stall_until - loop.time()) > 0:
            await asyncio.sleep(min(left, _STALL_POLL_S))

    def _spend_budget(self, link: _Link, data: bytes, to_client: bool) -> bytes:
        if link.cut_budget is None or not self._matches(link.cut_direction, to_client):
            return data
        allowed = min(link.cut_budget, len(data))
        link.cut_budget -= allowed
        return data[:allowed]

    @staticmethod
    def _matches(direction: Direction, to_client: bool) -> bool:
        return direction == "both" or (direction == "to_client") == to_client

    def _abort(self, link: _Link) -> None:
        if not link.closed:
            self.stats.cuts += 1
            link.faulted = True
            link.close()
            self._pending_cut = None

    @staticmethod
    async def _flushed(writer: asyncio.StreamWriter) -> None:
        """Wait (bounded) until the kernel took every byte written, so abort drops none."""
        for _ in range(50):
            if writer.transport.get_write_buffer_size() == 0:
                return
            await asyncio.sleep(0.01)

    def _note(self, what: str) -> None:
        self.stats.history.append(what)

    async def _expire(self) -> None:
        await asyncio.sleep(self._max_lifetime_s)
        await self.aclose()
