"""A voice assistant that can see: it describes what the camera shows.

    realtalk run examples/vision_assistant.py     # then allow the camera in the browser page

The session is created with ``vision=True``, so camera frames from the transport reach the model,
at most ``max_video_fps`` per second (each image costs tokens: keep it low). Vision needs a model
that accepts images (gpt-realtime does); the offline local server hears and speaks but cannot see.
"""

from __future__ import annotations

from realtalk import Agent, AgentSession, JobContext
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

INSTRUCTIONS = """\
You are a helpful voice assistant that can see through the user's camera: images from it arrive
in the conversation. When the user asks what you see, describe the most recent image in two or
three short sentences: the main subject first, then notable details (text, colours, people's
expressions). If no image has arrived yet, say the camera seems to be off. Never make up details
you cannot see."""

GREETING = "Hi! Turn on your camera and ask me what I can see."


class VisionAssistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)

    async def on_enter(self) -> None:
        await self.session.say(GREETING)


async def entrypoint(ctx: JobContext) -> None:
    model = OpenAIRealtime(model="gpt-realtime", config=OpenAIRealtimeConfig(voice="alloy"))
    session = AgentSession(agent=VisionAssistant(), model=model, vision=True, max_video_fps=0.5)
    await session.start(ctx.transport)


if __name__ == "__main__":  # `python examples/vision_assistant.py` = `realtalk run` on this file
    import sys

    from realtalk.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
