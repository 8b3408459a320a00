"""Blocking engine work in threads, consumed from asyncio, that never outlives its caller.

Model inference blocks (Whisper for a whole utterance, llama.cpp for a whole generation), so it
runs in a thread. ``asyncio.to_thread`` has a catch: cancelling the awaiting task leaves the thread
running, so a transcription could go on after the server that started it had closed. Here a
cancelled caller still waits for its thread to end before the cancellation goes on: when a task
that ran engine work has finished, so has the work. The waits are short, because the work is told
to stop: an iterating producer is stopped between items (within one token or one sentence), and a
single call simply finishes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_in_thread", "run_in_thread", "wait_through_cancellation"]

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


async def wait_through_cancellation(future: asyncio.Future[T]) -> T:
    """Await ``future`` to the end even if the caller is cancelled meanwhile, then re-raise the
    cancellation. ``future`` stands for work already running, so it is never cancelled here."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.cancelled():
                raise
            cancelled = True  # the caller was cancelled: wait on, then pass it on
        except BaseException:
            if not future.done():
                raise
    if cancelled:
        raise asyncio.CancelledError()
    return future.result()


def _notify(loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any) -> bool:
    """Run ``callback(*args)`` on the loop's thread; False if the loop has closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return False
    return True


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


async def run_in_thread(fn: Callable[[], T], *, name: str = "realtalk-engine") -> T:
    """``fn()`` in a dedicated daemon thread; a cancelled caller waits for it to return."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:
            _notify(loop, _settle, done, None, exc)
        else:
            _notify(loop, _settle, done, value, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    return await wait_through_cancellation(done)


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]],
    *,
    name: str = "realtalk-engine",
    lookahead: int | None = None,
) -> AsyncGenerator[T, None]:
    """Yield what `produce(stop)` yields, computed in a dedicated daemon thread.

    `produce` receives the stop event so it can also give up before starting (for instance after
    waiting for a model lock); between items the stop event is checked here. When the consumer
    stops early (closes this generator, or is cancelled), the stop event is set and the generator
    ends only once the thread has. With `lookahead`, the producer computes an item only when the
    consumer has asked for it, or for one of the `lookahead` items before it (0: strictly on
    demand), and waits while the consumer is not asking (it then leaves the CPU to others);
    without, it runs freely.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = threading.Event()
    finished: asyncio.Future[None] = loop.create_future()
    credits = threading.Semaphore(lookahead) if lookahead is not None else None

    def put(kind: int, value: Any) -> None:
        if not _notify(loop, queue.put_nowait, (kind, value)):
            stop.set()

    def wanted() -> bool:
        """Wait until the consumer wants another item (when limited); False once told to stop."""
        if credits is None:
            return not stop.is_set()
        while not credits.acquire(timeout=0.05):
            if stop.is_set():
                return False
        return not stop.is_set()

    def work() -> None:
        try:
            items = produce(stop)
            try:
                while wanted():
                    try:
                        item = next(items)
                    except StopIteration:
                        break
                    put(_ITEM, item)
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:
            put(_ERROR, exc)
        else:
            put(_END, None)
        finally:
            _notify(loop, _settle, finished, None, None)

    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        while True:
            if credits is not None:
                credits.release()  # asking for the next item
            kind, value = await queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
        await wait_through_cancellation(finished)
