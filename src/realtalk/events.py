"""A small event emitter for sessions, models and transports.

Each object that emits events owns its own :class:`EventEmitter` (there is no global one), so many
sessions can share a process without hearing each other.

Handlers may be plain functions or coroutine functions:

- a plain handler runs inside :meth:`EventEmitter.emit`; if it raises, the error is logged and the
  remaining handlers still run;
- a coroutine handler is started as a task on the running loop. The emitter keeps a reference to
  the task until it finishes (asyncio holds tasks only weakly) and logs its exception, if any.

Nothing a handler does ever propagates into the code that called ``emit``: a buggy UI callback must
not take down the audio pipeline.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

__all__ = ["EventEmitter"]

T = TypeVar("T", bound=str)
H = TypeVar("H", bound=Callable[..., Any])

_default_logger = logging.getLogger("realtalk")


@dataclass(slots=True)
class _Listener:
    handler: Callable[..., Any]
    once: bool


class EventEmitter(Generic[T]):
    """Register handlers for named events and call them on :meth:`emit`.

    ``T`` is usually a ``Literal`` of the event names, so a type checker catches a misspelt name::

        SessionEvent = Literal["user_transcript", "agent_transcript", "error"]
        events: EventEmitter[SessionEvent] = EventEmitter()

        @events.on("user_transcript")
        def show(text: str) -> None: ...

        events.emit("user_transcript", "hello")

    Args:
        logger: where handler errors are logged; defaults to the ``realtalk`` logger. Pass the
            owner's layer logger (``realtalk.session``, ``realtalk.client``, ...).
    """

    # Attributes and helpers are prefixed ``_emitter_`` so that classes which inherit from the
    # emitter (AgentSession, RealtimeBaseModel) keep ``_tasks``, ``_logger``... for themselves.

    def __init__(self, *, logger: logging.Logger | None = None) -> None:
        self._emitter_listeners: dict[str, list[_Listener]] = {}
        self._emitter_tasks: set[asyncio.Task[Any]] = set()
        self._emitter_logger = logger or _default_logger

    @overload
    def on(self, event: T) -> Callable[[H], H]: ...
    @overload
    def on(self, event: T, handler: H) -> H: ...
    def on(self, event: T, handler: H | None = None) -> H | Callable[[H], H]:
        """Call ``handler`` on every ``emit(event, ...)``; usable as ``@emitter.on("event")``."""
        return self._emitter_register(event, handler, once=False)

    @overload
    def once(self, event: T) -> Callable[[H], H]: ...
    @overload
    def once(self, event: T, handler: H) -> H: ...
    def once(self, event: T, handler: H | None = None) -> H | Callable[[H], H]:
        """Like :meth:`on`, but the handler is removed before its first call."""
        return self._emitter_register(event, handler, once=True)

    def off(self, event: T, handler: Callable[..., Any]) -> None:
        """Remove every registration of ``handler`` for ``event``; unknown ones are ignored."""
        listeners = self._emitter_listeners.get(event)
        if not listeners:
            return
        remaining = [listener for listener in listeners if listener.handler != handler]
        if remaining:
            self._emitter_listeners[event] = remaining
        else:
            del self._emitter_listeners[event]

    def remove_all_listeners(self, event: T | None = None) -> None:
        """Remove the handlers of ``event``, or of every event when ``event`` is None."""
        if event is None:
            self._emitter_listeners.clear()
        else:
            self._emitter_listeners.pop(event, None)

    def listener_count(self, event: T) -> int:
        """How many handlers ``event`` has (lets an emitter skip building costly arguments)."""
        return len(self._emitter_listeners.get(event, ()))

    def emit(self, event: T, *args: Any) -> None:
        """Call the handlers of ``event`` with ``args``, in registration order.

        Handlers registered while this call runs are not called by it. Coroutine handlers need a
        running event loop; without one their coroutine is closed and an error is logged.
        """
        listeners = self._emitter_listeners.get(event)
        if not listeners:
            return
        if any(listener.once for listener in listeners):
            kept = [listener for listener in listeners if not listener.once]
            if kept:
                self._emitter_listeners[event] = kept
            else:
                del self._emitter_listeners[event]
        for listener in tuple(listeners):
            try:
                result = listener.handler(*args)
            except Exception:
                self._emitter_logger.exception(
                    "handler %r for event %r raised", listener.handler, event
                )
                continue
            if inspect.isawaitable(result):
                self._emitter_schedule(event, listener.handler, result)

    async def wait_idle(self) -> None:
        """Wait until the coroutine handlers started so far (and any they start) have finished.

        Their exceptions are already logged, so they are not raised here. Useful on shutdown and
        in tests.
        """
        while self._emitter_tasks:
            await asyncio.gather(*tuple(self._emitter_tasks), return_exceptions=True)

    def _emitter_register(self, event: T, handler: H | None, *, once: bool) -> H | Callable[[H], H]:
        if handler is None:

            def decorator(func: H) -> H:
                self._emitter_add(event, func, once)
                return func

            return decorator
        self._emitter_add(event, handler, once)
        return handler

    def _emitter_add(self, event: str, handler: Callable[..., Any], once: bool) -> None:
        if not callable(handler):
            raise TypeError(f"handler for event {event!r} must be callable, got {handler!r}")
        self._emitter_listeners.setdefault(event, []).append(_Listener(handler, once))

    def _emitter_schedule(self, event: str, handler: Callable[..., Any], awaitable: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # avoid "coroutine was never awaited" on top of our error
            self._emitter_logger.error(
                "async handler %r for event %r needs a running event loop; it was not run",
                handler,
                event,
            )
            return
        task: asyncio.Task[Any] = loop.create_task(_await(awaitable))
        self._emitter_tasks.add(task)
        task.add_done_callback(lambda done: self._emitter_task_done(done, event, handler))

    def _emitter_task_done(
        self, task: asyncio.Task[Any], event: str, handler: Callable[..., Any]
    ) -> None:
        self._emitter_tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._emitter_logger.error(
                "async handler %r for event %r raised",
                handler,
                event,
                exc_info=(type(error), error, error.__traceback__),
            )


async def _await(awaitable: Any) -> Any:
    """Wrap any awaitable (not only coroutines) so it can become a task."""
    return await awaitable
