"""The connection drops in the middle of a reply: the model reconnects, replays the conversation
into the new server session, and the conversation goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from realtalk.plugins.openai import OpenAIRealtimeConfig, ReconnectPolicy
from realtalk.server import LocalServer
from tests.reliability.proxy import FaultProxy


async def through_proxy(server: LocalServer) -> FaultProxy:
    return await FaultProxy("127.0.0.1", server.port, max_lifetime_s=120).start()


def texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        for part in item.get("content") or ():
            text = part.get("text") or part.get("transcript")
            if text:
                out.append((item["role"], text))
    return out


async def test_drop_mid_reply_reconnects_with_the_conversation(
    make_rig: Callable[..., Any],
) -> None:
    config = OpenAIRealtimeConfig(
        reconnect=ReconnectPolicy(max_attempts=4, backoff_base_s=0.05, backoff_max_s=0.2)
    )
    rig = await make_rig(config=config, via=through_proxy, word_delay_s=0.05)
    await rig.model.send_text_message("first question")
    await rig.log.wait(lambda: "You said: first question." in rig.log.finals("agent"))

    long = " ".join(f"word{i}." for i in range(30))  # a sentence a word: the voice starts at once
    await rig.model.send_text_message(long)
    await rig.log.next("agent_speech_started")
    assert len(rig.log.of("response_done")) == 1  # the reply is still being generated
    first = rig.connection
    rig.proxy.cut()  # both sockets reset: no close frame, like a dropped network

    await rig.log.next("reconnected")
    assert rig.log.of("reconnecting")[0]["attempt"] == 1
    second = rig.connection
    assert second is not first

    # The new server session holds a text copy of what was said before the drop.
    await rig.log.wait(lambda: len(second.items()) >= 4)
    replayed = texts(second.items())
    assert replayed[:3] == [
        ("user", "first question"),
        ("assistant", "You said: first question."),
        ("user", long),
    ]
    assert replayed[3][0] == "assistant"  # the part of the cut reply that had arrived
    assert replayed[3][1].startswith("You said: word0.")

    # ... and the conversation goes on.
    await rig.model.send_text_message("after the drop")
    await rig.log.wait(lambda: "You said: after the drop." in rig.log.finals("agent"))
    assert [e for e in rig.log.of("error") if e.fatal] == []
