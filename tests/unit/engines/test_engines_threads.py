"""iterate_in_thread: items arrive in order, errors propagate, closing stops the producer."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import pytest

from realtalk.server.engines.threads import iterate_in_thread, run_in_thread


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


async def test_a_cancelled_caller_of_run_in_thread_waits_for_the_thread() -> None:
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    def work() -> int:
        entered.set()
        release.wait(5)
        returned.set()
        return 1

    task = asyncio.create_task(run_in_thread(work))
    assert await asyncio.to_thread(entered.wait, 5)
    task.cancel()
    task.cancel()  # a second cancel does not cut the wait short either
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the thread
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert returned.is_set()


async def test_run_in_thread_returns_the_value_and_raises_the_error() -> None:
    assert await run_in_thread(lambda: 6 * 7) == 42

    def fail() -> None:
        raise ValueError("bad audio")

    with pytest.raises(ValueError, match="bad audio"):
        await run_in_thread(fail)


async def test_a_cancelled_consumer_of_iterate_in_thread_ends_after_the_producer() -> None:
    inside, release, finished = threading.Event(), threading.Event(), threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        try:
            yield 1
            inside.set()
            release.wait(5)  # a long model call the stop flag cannot interrupt
            yield 2
        finally:
            finished.set()

    async def consume() -> None:
        async for _ in iterate_in_thread(produce):
            pass

    task = asyncio.create_task(consume())
    assert await asyncio.to_thread(inside.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()


async def test_with_lookahead_the_producer_waits_for_a_reader_and_still_stops() -> None:
    produced: list[int] = []

    def produce(stop: threading.Event) -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    stream = iterate_in_thread(produce, lookahead=3)
    async with contextlib.aclosing(stream):
        assert await anext(stream) == 0
        await asyncio.sleep(0.2)  # not reading: the producer must stall
        assert len(produced) <= 1 + 3 + 1  # the item read, the lookahead, one being made
        assert [await anext(stream) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert len(produced) < 20  # closing while it waited stopped it


async def test_with_no_lookahead_an_item_is_computed_only_when_asked_for() -> None:
    """The LLM relies on this to pause llama.cpp between a reply's first piece and the rest."""
    produced: list[int] = []

    def produce(stop: threading.Event) -> Iterator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    stream = iterate_in_thread(produce, lookahead=0)
    async with contextlib.aclosing(stream):
        assert await anext(stream) == 0
        await asyncio.sleep(0.2)
        assert produced == [0]  # nothing beyond what was asked for
        assert await anext(stream) == 1
        await asyncio.sleep(0.1)
        assert produced == [0, 1]
