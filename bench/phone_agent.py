"""The agent side of the phone benchmark, in its own process (the process whose CPU is counted).

``python -m bench.phone_agent BASE_URL --transport twilio|sip`` serves phone calls with one
``AgentSession`` + ``OpenAIRealtime`` (G.711 µ-law both ways, an 8 kHz playout, as
``examples/phone_assistant.py``) per call, as ``realtalk run --transport twilio|sip`` would.
With ``--talk`` each session asks for a reply every 4 s, so the agent's voice streams back
continuously (as in the WebRTC benchmark). Prints ``READY <port>`` once serving; exits when stdin
closes or after ``--max-seconds``. ``sessions`` on stdin answers ``{"sessions": n}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
from typing import Any

from bench.common import commands
from realtalk.agent import Agent
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.session import AgentSession

TEXT = "one two three four five six seven eight nine ten eleven twelve"
TALK_EVERY_S = 4.0


async def _main(base_url: str, transport: str, talk: bool, max_seconds: float) -> None:
    sessions: list[AgentSession] = []
    rng = random.Random(3)

    async def talker(session: AgentSession) -> None:
        await asyncio.sleep(rng.uniform(0, TALK_EVERY_S))
        while not session.closed:
            with contextlib.suppress(Exception):
                await session.send_text(TEXT)
            await asyncio.sleep(TALK_EVERY_S)

    async def on_call(phone: Any) -> None:
        config = OpenAIRealtimeConfig(
            input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"
        )
        model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, config=config)
        model.audio_output = AudioOutput(8000)
        session = AgentSession(agent=Agent(instructions="You are a benchmark."), model=model)
        await session.start(phone)
        sessions.append(session)
        task = asyncio.ensure_future(talker(session)) if talk else None
        await session.wait_closed()
        if task is not None:
            task.cancel()

    server: Any
    if transport == "twilio":
        from realtalk.transports.telephony.server import MediaStreamServer, TwilioCredentials

        credentials = TwilioCredentials(from_env=False)  # never the real REST API
        server = MediaStreamServer(on_call, port=0, max_calls=10_000, credentials=credentials)
    else:
        from realtalk.transports.telephony.sip.endpoint import SipServer

        server = SipServer(on_call, port=0, max_calls=10_000)
    await server.start()
    print(f"READY {server.port}", flush=True)
    try:
        async for _ in commands(max_seconds):  # any line asks how many sessions are alive
            alive = sum(1 for s in sessions if not s.closed)
            print(json.dumps({"sessions": alive}), flush=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.aclose(), 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base_url")
    parser.add_argument("--transport", choices=("twilio", "sip"), required=True)
    parser.add_argument("--talk", action="store_true", help="a reply every 4 s per session")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(_main(args.base_url, args.transport, args.talk, args.max_seconds))
    os._exit(0)  # the stdin reader thread may still block


if __name__ == "__main__":
    main()
