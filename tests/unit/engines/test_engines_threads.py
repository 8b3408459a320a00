"""iterate_in_thread: items arrive in order, errors propagate, closing stops the producer."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from realtalk.server.engines.threads import iterate_in_thread


async def test_items_arrive_in_order_from_another_thread() -> None:
    threads: set[str] = set()

    def produce(stop: threading.Event) -> Iterator[int]:
        for i in range(5):
            threads.add(threading.current_thread().name)
            yield i

    assert [i async for i in iterate_in_thread(produce, name="producer")] == [0, 1, 2, 3, 4]
    assert threads == {"producer"}


async def test_producer_errors_reach_the_consumer() -> None:
    def produce(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise RuntimeError("model crashed")

    got = []
    with pytest.raises(RuntimeError, match="model crashed"):
        async for i in iterate_in_thread(produce):
            got.append(i)
    assert got == [1]


async def test_closing_early_stops_and_closes_the_producer() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        try:
            for i in range(1000):
                produced.append(i)
                yield i
                time.sleep(0.005)
        finally:
            closed.set()

    stream = iterate_in_thread(produce)
    async with contextlib.aclosing(stream):
        async for i in stream:
            if i == 2:
                break
    assert closed.wait(2.0)
    assert len(produced) < 1000
