"""The agent the scale-out tests run on their workers: no greeting, so a resumed conversation
holds exactly what the user and the agent said."""

from __future__ import annotations

from realtalk import Agent, AgentSession, JobContext
from realtalk.plugins.openai import OpenAIRealtime


class Echo(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the scale-out test agent.")


async def entrypoint(ctx: JobContext) -> None:
    model = OpenAIRealtime(model="gpt-realtime")
    session = AgentSession(agent=Echo(), model=model)
    await session.start(ctx.transport)
