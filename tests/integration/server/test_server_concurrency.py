"""Many sessions at once: each has its own conversation; a misbehaving one disturbs nobody."""

from __future__ import annotations

import asyncio
import base64

from realtalk.protocol import events as ev
from realtalk.server import LocalServer
from tests.integration.server.conftest import raw_client, sdk_client


async def converse(server: LocalServer, n: int) -> list[str]:
    """Two turns; the second reply must come from this session's own conversation."""
    async with sdk_client(server) as client:
        await client.send(ev.session_update({"output_modalities": ["text"]}))
        replies = []
        for turn in range(2):
            await client.send(
                ev.conversation_item_create(ev.user_text_item(f"session {n} turn {turn}"))
            )
            await client.send(ev.response_create())
            done = await client.until("response.done")
            replies.append(done["response"]["output"][0]["content"][0]["text"])
        await client.send(
            ev.conversation_item_retrieve(client.of("conversation.item.added")[0]["item"]["id"])
        )
        first = await client.until("conversation.item.retrieved")
        assert first["item"]["content"][0]["text"] == f"session {n} turn 0"
        assert len(client.of("conversation.item.added")) == 4  # 2 user + 2 assistant items, ours
        return replies


async def misbehave(server: LocalServer) -> None:
    """Garbage, a huge append, a response started, then the socket dropped without a close."""
    async with raw_client(server) as client:
        await client.recv()
        await client.send_raw("{not json")
        await client.send_raw(b"\xff\xfe binary garbage")
        await client.send({"type": "input_audio_buffer.append", "audio": "!!!"})
        await client.send(ev.input_audio_buffer_append(base64.b64encode(bytes(480_000)).decode()))
        await client.send(ev.conversation_item_create(ev.user_text_item("a b c d e f g h")))
        await client.send(ev.response_create())
        await client.until("response.output_audio.delta")
        client.websocket.transport.abort()  # no closing handshake


async def test_ten_sessions_at_once_each_with_its_own_conversation(
    scripted_server: LocalServer,
) -> None:
    results = await asyncio.wait_for(
        asyncio.gather(
            *(converse(scripted_server, n) for n in range(10)),
            misbehave(scripted_server),
            return_exceptions=True,
        ),
        timeout=60,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, failures
    for n, replies in enumerate(results[:10]):
        assert replies == [f"You said: session {n} turn 0.", f"You said: session {n} turn 1."]
    # and the server still takes new sessions
    assert await converse(scripted_server, 99) == [
        "You said: session 99 turn 0.",
        "You said: session 99 turn 1.",
    ]
