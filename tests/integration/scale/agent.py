"""The agent the scale-out tests run on their workers. It greets a new conversation with
``GREETING`` and a resumed one with ``WELCOME_BACK`` (``ctx.resumed``), so a test sees that the
worker told the agent; the rest of the conversation is the scripted engine's."""

from __future__ import annotations

from realtalk import Agent, AgentSession, JobContext
from realtalk.plugins.openai import OpenAIRealtime

GREETING = "Hello."
WELCOME_BACK = "Welcome back."


class Echo(Agent):
    def __init__(self, greeting: str) -> None:
        super().__init__(instructions="You are the scale-out test agent.")
        self.greeting = greeting

    async def on_enter(self) -> None:
        await self.session.say(self.greeting)


async def entrypoint(ctx: JobContext) -> None:
    model = OpenAIRealtime(model="gpt-realtime")
    agent = Echo(WELCOME_BACK if getattr(ctx, "resumed", False) else GREETING)
    session = AgentSession(agent=agent, model=model)
    await session.start(ctx.transport)
