"""Tests for realtalk.events.EventEmitter."""

import asyncio
import logging
from typing import Literal

import pytest

from realtalk.events import EventEmitter

Name = Literal["a", "b"]


def test_sync_handlers_run_in_order_with_arguments() -> None:
    emitter: EventEmitter[Name] = EventEmitter()
    calls: list[tuple[str, tuple[object, ...]]] = []
    emitter.on("a", lambda *args: calls.append(("first", args)))
    emitter.on("a", lambda *args: calls.append(("second", args)))
    emitter.on("b", lambda *args: calls.append(("other", args)))

    emitter.emit("a", 1, "x")

    assert calls == [("first", (1, "x")), ("second", (1, "x"))]


def test_on_as_decorator_returns_the_function() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []

    @emitter.on("hello")
    def handler(value: int) -> None:
        seen.append(value)

    emitter.emit("hello", 3)
    handler(4)  # still a plain function
    assert seen == [3, 4]


def test_emit_without_handlers_is_a_no_op() -> None:
    EventEmitter[str]().emit("nothing", 1)


def test_once_runs_a_single_time() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []
    emitter.once("e", seen.append)

    @emitter.once("e")
    def twice(value: int) -> None:
        seen.append(value * 2)

    emitter.emit("e", 1)
    emitter.emit("e", 5)
    assert seen == [1, 2]
    assert emitter.listener_count("e") == 0


def test_off_removes_handlers_including_once_ones() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []
    keep = seen.append

    def drop(value: int) -> None:
        seen.append(-value)

    emitter.on("e", keep)
    emitter.once("e", drop)
    emitter.off("e", drop)
    emitter.off("e", print)  # unknown handler: ignored
    emitter.off("missing", keep)  # unknown event: ignored
    emitter.emit("e", 1)
    assert seen == [1]


def test_remove_all_listeners() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    emitter.on("a", print)
    emitter.on("b", print)
    emitter.remove_all_listeners("a")
    assert (emitter.listener_count("a"), emitter.listener_count("b")) == (0, 1)
    emitter.remove_all_listeners()
    assert emitter.listener_count("b") == 0


def test_handler_added_during_emit_runs_next_time() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []

    def add_another() -> None:
        seen.append("outer")
        emitter.on("e", lambda: seen.append("inner"))

    emitter.once("e", add_another)
    emitter.emit("e")
    assert seen == ["outer"]
    emitter.emit("e")
    assert seen == ["outer", "inner"]


def test_raising_sync_handler_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []

    def broken(value: int) -> None:
        raise RuntimeError("handler bug")

    emitter.on("tick", broken)
    emitter.on("tick", seen.append)

    emitter.emit("tick", 7)  # does not raise

    assert seen == [7]
    assert "'tick'" in caplog.text and "handler bug" in caplog.text


def test_non_callable_handler_is_rejected() -> None:
    with pytest.raises(TypeError, match="callable"):
        EventEmitter[str]().on("e", 42)  # type: ignore[call-overload]


async def test_async_handler_runs_as_a_task() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    seen = []

    @emitter.on("e")
    async def handler(value: int) -> None:
        await asyncio.sleep(0)
        seen.append(value)

    emitter.emit("e", 1)
    assert seen == []  # scheduled, not run inside emit
    await emitter.wait_idle()
    assert seen == [1]


async def test_async_handler_task_is_kept_alive_until_done() -> None:
    emitter: EventEmitter[str] = EventEmitter()
    finished = asyncio.Event()

    async def handler() -> None:
        await asyncio.sleep(0.01)
        finished.set()

    emitter.on("e", handler)
    emitter.emit("e")
    assert len(emitter._emitter_tasks) == 1  # a strong reference, so the task is not collected
    await asyncio.wait_for(finished.wait(), 5)
    await emitter.wait_idle()
    assert not emitter._emitter_tasks


async def test_raising_async_handler_is_logged_with_the_event_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("realtalk.test_events")
    emitter: EventEmitter[str] = EventEmitter(logger=logger)
    seen = []

    async def broken() -> None:
        raise ValueError("async bug")

    emitter.on("user_transcript", broken)
    emitter.on("user_transcript", lambda: seen.append("sync"))
    emitter.emit("user_transcript")  # does not raise
    await emitter.wait_idle()  # nor does waiting

    assert seen == ["sync"]
    records = [r for r in caplog.records if r.name == "realtalk.test_events"]
    assert len(records) == 1
    assert "'user_transcript'" in records[0].getMessage()
    assert records[0].exc_info is not None and "async bug" in str(records[0].exc_info[1])


def test_async_handler_without_running_loop_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emitter: EventEmitter[str] = EventEmitter()

    async def handler() -> None:
        raise AssertionError("must not run")

    emitter.on("e", handler)
    emitter.emit("e")
    assert "needs a running event loop" in caplog.text


async def test_emitters_are_independent() -> None:
    first: EventEmitter[str] = EventEmitter()
    second: EventEmitter[str] = EventEmitter()
    seen = []
    first.on("e", seen.append)
    second.emit("e", 1)
    assert seen == []


async def test_subclass_attributes_do_not_clash_with_the_emitter() -> None:
    class Owner(EventEmitter[str]):
        def __init__(self) -> None:
            super().__init__()
            self._tasks: dict[str, int] = {}
            self._logger = "mine"
            self._listeners = None
            self._handlers: list[int] = []

    owner = Owner()
    seen = []

    async def handler(value: int) -> None:
        seen.append(value)

    owner.on("e", handler)
    owner.emit("e", 1)
    await owner.wait_idle()
    assert seen == [1]
    assert owner._tasks == {} and owner._logger == "mine"
