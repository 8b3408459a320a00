"""Run a blocking iterator in a thread and consume it from asyncio, with prompt cancellation.

Model inference (llama.cpp) blocks for the whole generation, so it runs in its own thread and hands
each item to the event loop through a queue. When the consumer stops early (the async generator is
closed, or the task iterating it is cancelled), a stop flag is set; the producer checks it between
items and closes its iterator, which ends the generation within one token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

__all__ = ["iterate_in_thread"]

T = TypeVar("T")

_ITEM, _END, _ERROR = 0, 1, 2


async def iterate_in_thread(
    produce: Callable[[threading.Event], Iterator[T]], *, name: str = "realtalk-engine"
) -> AsyncIterator[T]:
    """Yield what `produce(stop)` yields, computed in a dedicated daemon thread.

    `produce` receives the stop event so it can also give up before starting (for instance after
    waiting for a model lock); between items the stop event is checked here.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(kind: int, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            items = produce(stop)
            try:
                for item in items:
                    if stop.is_set():
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

    threading.Thread(target=work, name=name, daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
