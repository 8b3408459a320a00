"""LiveKit's OpenAI Realtime plugin against ``realtalk serve`` (issue 11).

``RealtimeSession.generate_reply()`` sends ``response.create`` with ``"instructions": null``
(and its own ``metadata.client_event_id``, by which it finds its ``response.created``); the
server used to refuse the null, so every typed turn and tool follow-up of a LiveKit agent
failed. This runs the real plugin (``pip install .[livekit]``) against the real CLI server.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

lk_openai = pytest.importorskip("livekit.plugins.openai")
http_context = pytest.importorskip("livekit.agents.utils.http_context")

pytestmark = pytest.mark.slow

# ISSUE11_SRC: run the server from another source tree (e.g. an older checkout, to see it fail).
SRC = Path(os.environ.get("ISSUE11_SRC", str(Path(__file__).resolve().parents[3] / "src")))


@pytest.fixture
async def serve() -> AsyncIterator[str]:
    """``realtalk serve --engine scripted --port 0`` in its own process; yields its base URL."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("REALTALK_API_KEY", None)
    code = "import sys; from realtalk.cli import main; sys.exit(main())"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "serve",
        "--engine",
        "scripted",
        "--port",
        "0",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    assert proc.stdout is not None
    base_url = None
    try:
        async with asyncio.timeout(60):
            while base_url is None:
                line = (await proc.stdout.readline()).decode()
                assert line, "realtalk serve exited before listening"
                found = re.search(r"base_url='([^']+)'", line)
                base_url = found.group(1) if found else None
        yield base_url
    finally:
        proc.terminate()
        await proc.wait()


async def test_generate_reply_works_against_realtalk_serve(serve: str) -> None:
    async with http_context.open():
        model = lk_openai.realtime.RealtimeModel(
            model="gpt-realtime", base_url=serve, api_key="unused", modalities=["text"]
        )
        session = model.session()
        try:
            await session.update_instructions("You are a test assistant.")
            generation = await asyncio.wait_for(
                session.generate_reply(instructions="Say hello."), 30
            )
            assert generation.user_initiated
            text = ""
            async with asyncio.timeout(30):
                async for message in generation.message_stream:
                    async for piece in message.text_stream:
                        text += str(piece)
            assert text.strip(), "the reply had no text"
            # The plugin's tool follow-up and typed turns go the same way: a second one works.
            again = await asyncio.wait_for(session.generate_reply(), 30)
            assert again.user_initiated
        finally:
            await session.aclose()
