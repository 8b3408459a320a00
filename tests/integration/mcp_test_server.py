"""An MCP server made with the official SDK, for the MCP tests: over stdio or streamable HTTP.

    python mcp_test_server.py            # stdio
    python mcp_test_server.py --http     # streamable HTTP on 127.0.0.1, a free port; prints
                                         # "PORT <n>" once it listens

Tools: ``add``, ``fail`` (reports an error), ``crash`` (the process exits mid-call), ``hang``
(never answers), ``unlock_extra`` (adds the ``extra`` tool and announces the changed list).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("realtalk-test")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def fail(reason: str = "no reason") -> str:
    """Always fails."""
    raise ValueError(f"failed on purpose: {reason}")


@server.tool()
async def crash() -> str:
    """The server process dies while answering."""
    os._exit(3)


@server.tool()
async def hang() -> str:
    """Never answers."""
    await asyncio.sleep(3600)
    return "woke up"


def extra(word: str) -> str:
    """Echo a word back, shouting."""
    return word.upper()


@server.tool()
async def unlock_extra(ctx: Context) -> str:
    """Make the extra tool available."""
    server.add_tool(extra)
    await ctx.notify_tools_changed()  # subscriptions/listen streams (2026-07-28 connections)
    try:  # and the notification older connections get
        await ctx.session.send_tool_list_changed()
    except Exception:  # a 2026-07-28 connection has no such notification
        pass
    return "extra unlocked"


async def serve_http() -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections wait in the backlog until uvicorn serves: no start-up race
    app = server.streamable_http_app(host="127.0.0.1")
    config = uvicorn.Config(app, log_level="warning")
    runner = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    await runner.serve(sockets=[sock])


if __name__ == "__main__":
    if "--http" in sys.argv:
        asyncio.run(serve_http())
    else:
        server.run()
