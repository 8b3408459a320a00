"""Function calls: run as tasks, every call answered, ONE response.create after response.done."""

from __future__ import annotations

import asyncio
import json

from realtalk.tools import function_tool
from tests.unit.plugins.harness import Harness, settle

release = asyncio.Event()


@function_tool
def get_weather(city: str) -> dict:
    """Current weather.

    Args:
        city: the city.
    """
    return {"city": city, "temp_c": 18}


@function_tool
async def lookup(query: str) -> str:
    """Look something up.

    Args:
        query: what to find.
    """
    await asyncio.sleep(0)
    return f"found {query}"


@function_tool
def broken() -> str:
    """Always fails."""
    raise RuntimeError("database down")


@function_tool(timeout=10)
async def slow(n: int) -> str:
    """Waits until released.

    Args:
        n: a number.
    """
    await release.wait()
    return f"slow {n}"


TOOLS = [get_weather, lookup, broken, slow]


def outputs(sent: list[dict]) -> list[dict]:
    return [
        e["item"]
        for e in sent
        if e["type"] == "conversation.item.create" and e["item"]["type"] == "function_call_output"
    ]


def creates(sent: list[dict]) -> list[dict]:
    return [e for e in sent if e["type"] == "response.create"]


async def run_call(h: Harness, name: str, arguments: str, call_id: str = "call_1") -> list[dict]:
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", call_id, name, arguments))
    await settle(h.model)
    before_done = h.sent()
    assert creates(before_done) == [], "response.create before response.done"
    h.feed(h.done("resp_fc"))
    await settle(h.model)
    return before_done + h.sent()


async def test_sync_tool_result_then_exactly_one_reply() -> None:
    h = Harness(tools=TOOLS)
    sent = await run_call(h, "get_weather", '{"city": "Paris"}')
    (output,) = outputs(sent)
    assert output["call_id"] == "call_1"
    assert json.loads(output["output"]) == {"city": "Paris", "temp_c": 18}
    (create,) = creates(sent)
    assert create["response"]["metadata"]["kind"] == "tool_followup"
    assert [e["type"] for e in sent].index("response.create") > [e["type"] for e in sent].index(
        "conversation.item.create"
    )
    (call,) = h.of("function_call")
    assert call["name"] == "get_weather" and call["is_error"] is False


async def test_async_tool_string_result_is_not_json_quoted() -> None:
    h = Harness(tools=TOOLS)
    sent = await run_call(h, "lookup", '{"query": "tea"}')
    assert outputs(sent)[0]["output"] == "found tea"
    assert len(creates(sent)) == 1


async def test_raising_tool_reports_the_error_to_the_model_and_goes_on() -> None:
    h = Harness(tools=TOOLS)
    sent = await run_call(h, "broken", "{}")
    (output,) = outputs(sent)
    assert "database down" in output["output"]
    assert h.of("function_call")[0]["is_error"] is True
    assert len(creates(sent)) == 1


async def test_bad_arguments_and_unknown_tools_get_readable_errors() -> None:
    h = Harness(tools=TOOLS)
    sent = await run_call(h, "get_weather", "{not json", call_id="c1")
    assert h.of("function_call")[0]["is_error"] is True
    assert outputs(sent)[0]["output"].startswith("Error")
    assert len(creates(sent)) == 1

    h2 = Harness(tools=TOOLS)
    sent = await run_call(h2, "launch_rocket", "{}", call_id="c2")
    text = outputs(sent)[0]["output"]
    assert "launch_rocket" in text and "get_weather" in text
    assert len(creates(sent)) == 1


async def test_a_tool_done_before_response_done_waits_for_it() -> None:
    h = Harness(tools=TOOLS)
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", "call_1", "lookup", '{"query": "x"}'))
    await settle(h.model)
    assert creates(h.sent()) == []
    h.feed(h.done("resp_fc"))
    assert len(creates(h.sent())) == 1


async def test_parallel_calls_share_one_reply() -> None:
    h = Harness(tools=TOOLS)
    h.feed(
        h.created("resp_fc"),
        *h.function_call("resp_fc", "call_a", "get_weather", '{"city": "Oslo"}', index=0),
        *h.function_call("resp_fc", "call_b", "lookup", '{"query": "fjords"}', index=1),
        h.done("resp_fc"),
    )
    await settle(h.model)
    sent = h.sent()
    assert sorted(o["call_id"] for o in outputs(sent)) == ["call_a", "call_b"]
    assert len(creates(sent)) == 1
    assert [e["type"] for e in sent][-1] == "response.create"


async def test_calls_only_in_response_done_are_still_run() -> None:
    from realtalk.protocol import events

    h = Harness(tools=TOOLS)
    call = events.function_call_item(
        call_id="call_z",
        name="lookup",
        arguments='{"query": "q"}',
        item_id="item_z",
        status="completed",
    )
    h.feed(h.created("resp_fc"), h.done("resp_fc", output=[call]))
    await settle(h.model)
    sent = h.sent()
    assert outputs(sent)[0]["output"] == "found q"
    assert len(creates(sent)) == 1


async def test_slow_tool_keeps_barge_in_working_and_reply_follows_the_users_turn() -> None:
    release.clear()
    h = Harness(tools=TOOLS)
    h.feed(*h.audio_response("resp_talk", "item_a", 800))
    h.play(100)
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", "call_s", "slow", '{"n": 1}'))
    h.feed(h.done("resp_fc"))
    await settle(h.model)
    assert h.sent() == []  # the tool still runs: no output, no reply yet

    h.feed(h.speech_started("item_u2"))  # the user barges in while the tool runs
    assert h.next_frame_silent()
    assert [e["type"] for e in h.sent()] == ["conversation.item.truncate"]
    h.feed(h.speech_stopped("item_u2"), h.created("resp_user"))  # server answers the user

    release.set()
    await settle(h.model)
    sent = h.sent()
    assert len(outputs(sent)) == 1  # the output is never lost...
    assert creates(sent) == []  # ...but the reply waits: a response is active
    h.feed(*h.ack(next(e for e in sent if e["type"] == "conversation.item.create")))
    h.feed(h.done("resp_user"))
    assert len(creates(h.sent())) == 1  # resp_user did not see the output: one follow-up
    await settle(h.model)
    assert h.sent() == []


async def test_output_seen_by_the_next_response_needs_no_extra_reply() -> None:
    release.clear()
    h = Harness(tools=TOOLS)
    h.feed(h.created("resp_fc"), *h.function_call("resp_fc", "call_s", "slow", '{"n": 2}'))
    h.feed(h.speech_started("item_u"))  # user talks before the call's response is over
    h.feed(h.done("resp_fc"))
    release.set()
    await settle(h.model)
    sent = h.sent()
    (create_item,) = [e for e in sent if e["type"] == "conversation.item.create"]
    assert creates(sent) == []  # the user's turn goes first
    h.feed(*h.ack(create_item))
    h.feed(h.speech_stopped("item_u"), h.created("resp_user"), h.done("resp_user"))
    await settle(h.model)
    assert creates(h.sent()) == []  # resp_user was created after the output: it saw it


async def test_a_refused_reply_is_sent_again_after_the_active_response() -> None:
    h = Harness(tools=TOOLS)
    sent = await run_call(h, "lookup", '{"query": "x"}')
    (create,) = creates(sent)
    # The server had just started a response of its own (VAD): ours is refused.
    h.feed(h.created("resp_vad"))
    h.feed(
        h.error(
            "conversation_already_has_active_response",
            "Conversation already has an active response",
            client_event_id=create["event_id"],
        )
    )
    (error,) = h.of("error")
    assert error.fatal is False and error.event_id == create["event_id"]
    assert creates(h.sent()) == []
    h.feed(h.done("resp_vad"))
    (again,) = creates(h.sent())
    assert again["response"]["metadata"] == create["response"]["metadata"]
    assert again["event_id"] != create["event_id"]
