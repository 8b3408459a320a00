"""A phone receptionist: answers calls from Twilio or a SIP trunk, greets the caller by number,
reacts to key presses, and hangs up when the conversation is over.

Run it (see docs/telephony.md for wiring a Twilio number or a SIP trunk):

    realtalk run examples/phone_assistant.py --transport twilio --public-url https://abc.example.com
    realtalk run examples/phone_assistant.py --transport sip --host 0.0.0.0 --port 5060

The model hears and speaks G.711 µ-law at 8 kHz, the phone's own format: no resampling on the
way in or out (``g711_ulaw`` both ways and an 8 kHz playout).
"""

from __future__ import annotations

import asyncio

from realtalk import Agent, AgentSession, JobContext, function_tool
from realtalk.media.playout import AudioOutput
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.transports.telephony import PhoneTransport

INSTRUCTIONS = """\
You are the receptionist of Harbor Dental, on the phone. Be brief: one or two short sentences.
Opening hours: Monday to Friday, 8 am to 6 pm. To book, take the caller's name and preferred day.
When the caller says goodbye, say goodbye and call end_call."""

OPENING_HOURS = "We are open Monday to Friday, from 8 am to 6 pm."


class Receptionist(Agent):
    def __init__(self, caller: str | None = None) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self.caller = caller

    async def on_enter(self) -> None:
        await self.session.say(
            "Harbor Dental, good day! Press 1 for our opening hours, or just talk to me."
        )

    async def on_dtmf(self, digit: str) -> None:
        if digit == "1":
            await self.session.say(OPENING_HOURS)
        elif digit == "0":
            await self.hang_up()

    @function_tool
    async def end_call(self) -> str:
        """End the phone call, after the goodbye has been said."""
        asyncio.get_running_loop().create_task(self.hang_up(after_speech=True))
        return "The call ends once your goodbye has been heard."

    async def hang_up(self, *, after_speech: bool = False) -> None:
        session = self.session
        if after_speech:  # let the goodbye play out first
            await asyncio.sleep(0.5)
            while session.agent_state in ("thinking", "speaking") and not session.closed:
                await asyncio.sleep(0.1)
        transport = session.transport
        if isinstance(transport, PhoneTransport):
            await transport.end_call("the receptionist hung up")
        else:
            await session.close(reason="the receptionist hung up")


async def entrypoint(ctx: JobContext) -> None:
    config = OpenAIRealtimeConfig(
        voice="alloy", input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"
    )
    model = OpenAIRealtime(model="gpt-realtime", config=config)
    model.audio_output = AudioOutput(sample_rate=8000)  # the phone's rate: nothing to resample
    caller = ctx.call.from_number if ctx.call is not None else None
    session = AgentSession(agent=Receptionist(caller), model=model)
    await session.start(ctx.transport)
