"""`realtalk serve` as a user runs it: a subprocess that prints where it listens and stops on ^C."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

from websockets.asyncio.client import connect


async def test_realtalk_serve_listens_serves_and_stops_on_sigint() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "realtalk.cli",
        "serve",
        "--engine",
        "scripted",
        "--port",
        "0",
        "--api-key",
        "sk-cli-secret",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    printed: list[str] = []
    try:
        url = None
        while url is None:
            line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
            assert line, f"server exited early: {printed}"
            printed.append(line)
            match = re.search(r"listening on (ws://\S+)", line)
            url = match.group(1) if match else None
        async with connect(
            url + "?model=gpt-realtime", additional_headers={"api-key": "sk-cli-secret"}
        ) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
    finally:
        process.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(process.stdout.read(), 30)
        code = await asyncio.wait_for(process.wait(), 30)
    output = "".join(printed) + rest.decode()
    assert code == 0, output
    assert "engines scripted" in output
    assert "sk-cli-secret" not in output  # the key is never printed
