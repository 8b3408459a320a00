"""The fault proxy itself: each control does what it says, on a plain TCP echo server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.reliability.conftest import open_fds, settle
from tests.reliability.proxy import FaultProxy

MakeProxy = Callable[[int], Awaitable[FaultProxy]]


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A loopback server that echoes, and answers b"big" with 10,000 bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(4096):
                writer.write(b"x" * 10_000 if data == b"big" else data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    out = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(4096):
            out += chunk
    return out


async def test_forwards_both_ways_and_counts(make_proxy: MakeProxy, echo_port: int) -> None:
    proxy = await make_proxy(echo_port)
    for i in range(3):
        reader, writer = await _connect(proxy)
        writer.write(f"hello {i}".encode())
        assert await reader.readexactly(7) == f"hello {i}".encode()
        writer.close()
    assert await settle(lambda: proxy.active == 0)
    assert proxy.stats.accepted == 3
    assert proxy.stats.closed_by_peer == 3
    assert proxy.stats.bytes_to_server == proxy.stats.bytes_to_client == 21


async def test_delay_still_delivers_everything_in_order(
    make_proxy: MakeProxy, echo_port: int
) -> None:
    proxy = await make_proxy(echo_port)
    proxy.delay(20)
    reader, writer = await _connect(proxy)
    for i in range(5):
        writer.write(bytes([i]) * 3)
        assert await reader.readexactly(3) == bytes([i]) * 3
    writer.close()


async def test_stall_holds_bytes_until_restore(make_proxy: MakeProxy, echo_port: int) -> None:
    proxy = await make_proxy(echo_port)
    reader, writer = await _connect(proxy)
    proxy.stall(60)
    writer.write(b"ping")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(4), 0.3)
    proxy.restore()
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    writer.close()


async def test_cut_now_resets_open_connections(make_proxy: MakeProxy, echo_port: int) -> None:
    proxy = await make_proxy(echo_port)
    reader, writer = await _connect(proxy)
    writer.write(b"a")
    assert await reader.readexactly(1) == b"a"
    assert proxy.cut() == 1
    assert await _read_all(reader) == b""
    assert proxy.stats.cuts == 1
    assert await settle(lambda: proxy.active == 0)


async def test_cut_after_bytes_delivers_exactly_that_many(
    make_proxy: MakeProxy, echo_port: int
) -> None:
    proxy = await make_proxy(echo_port)
    reader, writer = await _connect(proxy)
    proxy.cut(after_bytes=1234)
    writer.write(b"big")
    assert len(await _read_all(reader)) == 1234
    assert proxy.stats.cuts == 1


async def test_cut_armed_between_connections_lands_on_the_next(
    make_proxy: MakeProxy, echo_port: int
) -> None:
    proxy = await make_proxy(echo_port)
    proxy.cut(after_bytes=10)
    reader, writer = await _connect(proxy)
    writer.write(b"big")
    assert len(await _read_all(reader)) == 10
    reader, writer = await _connect(proxy)  # the cut fired once; the next link is whole
    writer.write(b"big")
    assert len(await reader.readexactly(10_000)) == 10_000
    writer.close()


async def test_refuse_n_then_accept(make_proxy: MakeProxy, echo_port: int) -> None:
    proxy = await make_proxy(echo_port)
    proxy.refuse(2)
    for _ in range(2):
        reader, writer = await _connect(proxy)
        with contextlib.suppress(ConnectionError):
            writer.write(b"x")
        assert await _read_all(reader) == b""
    reader, writer = await _connect(proxy)
    writer.write(b"ok")
    assert await reader.readexactly(2) == b"ok"
    writer.close()
    assert proxy.stats.refused == 2
    assert proxy.stats.accepted == 1


async def test_unreachable_server_is_reset_and_counted(make_proxy: MakeProxy) -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    dead_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    proxy = await make_proxy(dead_port)
    reader, _ = await _connect(proxy)
    assert await _read_all(reader) == b""
    assert proxy.stats.upstream_failures == 1


async def test_close_leaves_no_sockets_and_refuses_remote_targets(echo_port: int) -> None:
    before = open_fds()
    proxy = await FaultProxy("127.0.0.1", echo_port).start()
    reader, writer = await _connect(proxy)
    writer.write(b"x")
    await reader.readexactly(1)
    await proxy.aclose()
    await proxy.aclose()  # twice is fine
    writer.close()
    assert await settle(lambda: open_fds() <= before)
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("10.0.0.1", 80)


async def test_proxy_expires_by_itself(echo_port: int) -> None:
    proxy = await FaultProxy("127.0.0.1", echo_port, max_lifetime_s=0.1).start()
    port = proxy.port
    assert await settle(lambda: proxy.port > 0 and proxy._server is None)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
