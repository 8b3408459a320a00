"""An agent that starts no session: what is measured with it is the dispatch path alone."""

from __future__ import annotations

from realtalk import JobContext


async def entrypoint(ctx: JobContext) -> None:
    return None
