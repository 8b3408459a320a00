"""Tools from Model Context Protocol servers, through the official ``mcp`` package.

::

    from realtalk.mcp import MCPServerHTTP, MCPServerStdio

    booking = MCPServerStdio("python", ["booking_server.py"], name="booking")
    agent = Agent(instructions="...", mcp_servers=[booking])

The session connects an agent's servers while the agent is active (before its first
``session.update``, so their tools arrive with it) and closes them when it leaves. Each server's
tools become :class:`~realtalk.tools.FunctionTool` objects: the schema as the server gives it,
cleaned for OpenAI like ours; the calls go through the same runner as any tool (a timeout per
call, errors as text the model reads, barge-in unaffected).

Rules:

- A changed tool list (``notifications/tools/list_changed`` on older servers, a
  ``subscriptions/listen`` event on 2026-07-28 ones) is fetched again and sent to the model in one
  ``session.update``.
- A server that stops (its process exits, the connection drops) is restarted, at most
  ``max_restarts`` times in a row without a successful call in between; a call in flight when it
  stops gets an error output saying so. Once the restarts are spent the server is reported
  (``on_error``; the session emits a non-fatal ``error``) and calls of its tools answer that it
  is unavailable.
- A call that takes longer than ``timeout_s`` gets a timeout error output and is cancelled
  (the SDK tells the server).
- Limits a server cannot exceed: ``max_tools`` tools are taken from it, each output is cut at
  ``max_output_chars``.

``mcp`` is an optional dependency (``pip install realtalk[mcp]``); this module imports it only
when a server starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from realtalk.tools import DEFAULT_MAX_OUTPUT_CHARS, FunctionTool, ToolResult

__all__ = ["MCPServer", "MCPServerHTTP", "MCPServerStdio"]

logger = logging.getLogger("realtalk.mcp")

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MCPServer:
    """One MCP server an agent may use. Use :class:`MCPServerStdio` or :class:`MCPServerHTTP`.

    Args:
        name: for logs, errors and events.
        timeout_s: the most one tool call may take; None for no limit.
        connect_timeout_s: the most connecting (and each restart) may take.
        max_restarts: restarts in a row (without a call succeeding in between) before the server
            is reported as failed.
        max_tools: tools beyond this many are left out (with a warning).
        max_output_chars: longer outputs are cut, with a marker.
        tool_prefix: put before each tool name (``"booking_"``) to keep servers' names apart.
        protocol: ``"auto"`` (the newest both sides speak) or ``"legacy"`` (the pre-2026
            initialize handshake, for servers that need it).
    """

    def __init__(
        self,
        *,
        name: str,
        timeout_s: float | None = 30.0,
        connect_timeout_s: float = 20.0,
        max_restarts: int = 3,
        max_tools: int = 64,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        tool_prefix: str = "",
        protocol: str = "auto",
    ) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s must be positive or None, got {timeout_s}")
        if max_restarts < 0 or max_tools < 1:
            raise ValueError("max_restarts must be >= 0 and max_tools >= 1")
        self.name = name
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_restarts = max_restarts
        self.max_tools = max_tools
        self.max_output_chars = max_output_chars
        self.tool_prefix = tool_prefix
        self.protocol = protocol
        #: Called (with this server) after the tool list changed; the session sets it.
        self.on_tools_changed: Callable[[MCPServer], None] | None = None
        #: Called (with this server and a message) when the server failed for good.
        self.on_error: Callable[[MCPServer, str], None] | None = None
        #: Starts (the first one included) and restarts so far.
        self.connections = 0
        self.failed: str | None = None
        self._tools: list[FunctionTool] = []
        self._client: Any = None
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._lost = asyncio.Event()
        self._closing = False
        self._restarts = 0

    @property
    def tools(self) -> list[FunctionTool]:
        """The server's tools as function tools (empty before :meth:`start`)."""
        return list(self._tools)

    def _make_client(self) -> Any:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and fetch the tools; returns once they are known. Idempotent.

        Raises:
            ImportError: the ``mcp`` package is not installed.
            ConnectionError: the server could not be started or did not answer in time.
        """
        if self._owner is not None and not self._owner.done():
            assert self._ready is not None
            await asyncio.shield(self._ready)
            return
        _require_mcp()
        self._closing = False
        self.failed = None
        self._restarts = 0
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._owner = loop.create_task(self._own(), name=f"mcp:{self.name}")
        await asyncio.shield(self._ready)

    async def aclose(self) -> None:
        """Disconnect (a stdio server's process is stopped). Safe to call twice."""
        self._closing = True
        self._lost.set()
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if self._client is None:  # still connecting (or waiting to restart): nothing to close
            owner.cancel()
        try:
            await asyncio.wait_for(asyncio.shield(owner), self.connect_timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)
        except Exception:
            logger.exception("MCP server %s: closing failed", self.name)

    async def _own(self) -> None:
        """Keeps the server connected: one attempt after another until closed or given up."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._lost.clear()
            # Each connection lives in a task of its own: the SDK's anyio task groups may cancel
            # the task that entered them when the transport dies, and that must not be us.
            attempt = loop.create_task(self._connect_and_watch(), name=f"mcp:{self.name}:conn")
            try:
                await asyncio.wait([attempt])
            except asyncio.CancelledError:
                attempt.cancel()
                await asyncio.gather(attempt, return_exceptions=True)
                if self._ready is not None and not self._ready.done():
                    self._ready.set_exception(ConnectionError(f"MCP server {self.name} was closed"))
                    self._ready.exception()
                raise
            finally:
                self._client = None
            if attempt.cancelled():
                error = "the connection was torn down"
            elif attempt.exception() is not None:
                leaf = _leaf(attempt.exception())  # type: ignore[arg-type]
                error = f"{type(leaf).__name__}: {leaf}"
            else:
                error = "the connection ended"
            if self._closing:
                break
            if self._ready is not None and not self._ready.done():  # start() raises it
                self.failed = f"could not connect: {error}"
                self._ready.set_exception(ConnectionError(f"MCP server {self.name}: {error}"))
                return
            if self._restarts >= self.max_restarts:
                self._fail(f"stopped ({error}); gave up after {self._restarts} restarts")
                return
            self._restarts += 1
            logger.warning(
                "MCP server %s stopped (%s); restart %d of %d",
                self.name,
                error,
                self._restarts,
                self.max_restarts,
            )
            await asyncio.sleep(min(0.2 * 2**self._restarts, 5.0))
        if self._ready is not None and not self._ready.done():  # closed while connecting
            self._ready.set_exception(ConnectionError(f"MCP server {self.name} was closed"))
            self._ready.exception()  # whoever still waits gets it; nobody else must

    async def _connect_and_watch(self) -> None:
        client = self._make_client()
        async with asyncio.timeout(self.connect_timeout_s):
            await client.__aenter__()
        try:
            self._client = client
            self.connections += 1
            await self._refresh(notify=self._ready is not None and self._ready.done())
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            logger.info("MCP server %s: %d tools", self.name, len(self._tools))
            listener = asyncio.get_running_loop().create_task(self._listen(client))
            try:
                await self._lost.wait()
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
        finally:
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _listen(self, client: Any) -> None:
        """Tool-list changes on a 2026-07-28 connection; older servers notify through
        :meth:`_on_message`. A listen stream that breaks means the server is gone."""
        from mcp.client.subscriptions import ListenNotSupportedError

        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    await self._refresh(notify=True)
        except (ListenNotSupportedError, NotImplementedError):
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _refused(exc):  # a server without subscriptions: nothing to watch
                return
            logger.info("MCP server %s: listen stream ended (%s)", self.name, exc)
            self._lost.set()

    async def _on_message(self, message: Any) -> None:
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            with contextlib.suppress(Exception):
                await self._refresh(notify=True)

    def _fail(self, message: str) -> None:
        self.failed = message
        logger.error("MCP server %s: %s", self.name, message)
        if self.on_error is not None:
            try:
                self.on_error(self, message)
            except Exception:
                logger.exception("MCP server %s: on_error failed", self.name)

    # -- tools -----------------------------------------------------------------------------------

    async def _refresh(self, *, notify: bool) -> None:
        client = self._client
        if client is None:
            return
        listed: list[Any] = []
        cursor: str | None = None
        while len(listed) <= self.max_tools:
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            listed += page.tools
            cursor = page.next_cursor
            if cursor is None:
                break
        if len(listed) > self.max_tools:
            logger.warning("MCP server %s: only the first %d tools", self.name, self.max_tools)
        tools = []
        for spec in listed[: self.max_tools]:
            tool = self._tool(spec)
            if tool is not None:
                tools.append(tool)
        self._tools = tools
        if notify and self.on_tools_changed is not None:
            self.on_tools_changed(self)

    def _tool(self, spec: Any) -> FunctionTool | None:
        remote_name = str(spec.name)
        # OpenAI accepts 1-64 of [A-Za-z0-9_-]; MCP names may also hold dots or slashes.
        name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.tool_prefix}{remote_name}")[:64]
        if not _NAME_RE.match(name):
            logger.warning("MCP server %s: tool name %r is not usable; skipped", self.name, name)
            return None

        async def call(arguments: dict[str, Any]) -> ToolResult:
            return await self._call(remote_name, arguments)

        try:
            return FunctionTool.from_schema(
                call,
                name=name,
                description=str(spec.description or spec.title or ""),
                parameters=dict(spec.input_schema or {}),
                timeout=self.timeout_s,
                max_output_chars=self.max_output_chars,
            )
        except (TypeError, ValueError) as exc:
            logger.warning("MCP server %s: tool %s skipped: %s", self.name, name, exc)
            return None

    async def _call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        client = self._client
        if client is None:
            why = self.failed or "it is restarting; try again in a moment"
            return ToolResult.failure(f"MCP server {self.name} is unavailable: {why}")
        try:
            result = await client.call_tool(name, arguments)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if _connection_gone(exc):
                self._lost.set()  # the owner restarts it
                return ToolResult.failure(
                    f"MCP server {self.name} stopped during the call ({exc}); it is being restarted"
                )
            return ToolResult.failure(f"{name} failed: {exc}")
        self._restarts = 0
        text = _result_text(result)
        if getattr(result, "is_error", False):
            return ToolResult.failure(_cut(text or "the tool reported an error", self))
        return ToolResult(output=_cut(text or "ok", self))


class MCPServerStdio(MCPServer):
    """A server started as a subprocess, spoken to over its stdin and stdout.

    Args:
        command: the program (``sys.executable`` for a Python server).
        args: its arguments.
        env: its environment (the SDK's safe default set when None).
        cwd: its working directory.
        name: defaults to the command's last argument or the command.
        **options: see :class:`MCPServer`.
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        default = os.path.basename(list(args)[-1] if args else command)
        super().__init__(name=name or default, **options)
        self.command = command
        self.args = list(args)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd

    def _make_client(self) -> Any:
        from mcp import Client
        from mcp.client.stdio import StdioServerParameters

        params = StdioServerParameters(
            command=self.command, args=self.args, env=self.env, cwd=self.cwd
        )
        return Client(params, message_handler=self._on_message, cache=None, mode=self.protocol)


class MCPServerHTTP(MCPServer):
    """A server reached over streamable HTTP (``http://host:port/mcp``).

    Args:
        url: the endpoint. Credentials belong in ``headers``, never in the URL (it is logged).
        headers: sent with every request (e.g. ``{"Authorization": "Bearer ..."}``).
        name: defaults to the URL.
        **options: see :class:`MCPServer`.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(name=name or url, **options)
        self.url = url
        self.headers = dict(headers or {})

    def _make_client(self) -> Any:
        from mcp import Client

        server: Any = self.url
        if self.headers:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            server = streamable_http_client(
                self.url, http_client=httpx2.AsyncClient(headers=self.headers)
            )
        return Client(server, message_handler=self._on_message, cache=None, mode=self.protocol)


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError as exc:
        raise ImportError("MCP servers need the mcp package: pip install 'realtalk[mcp]'") from exc


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, which anyio raises."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _connection_gone(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, ConnectionError | EOFError | OSError) or any(
        word in text for word in ("connection closed", "closed resource", "broken", "eof")
    )


def _refused(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "not found" in text or "not supported" in text or "unsupported" in text


def _result_text(result: Any) -> str:
    parts = []
    for block in getattr(result, "content", None) or ():
        kind = getattr(block, "type", None)
        if kind == "text":
            parts.append(str(block.text))
        elif kind == "resource" and hasattr(getattr(block, "resource", None), "text"):
            parts.append(str(block.resource.text))
        else:  # images, audio, links: the model hears that they exist
            parts.append(f"[{kind or 'content'}: {getattr(block, 'mime_type', '') or ''}]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, separators=(",", ":")))
    return "\n".join(parts)


def _cut(text: str, server: MCPServer) -> str:
    limit = server.max_output_chars
    if len(text) <= limit:
        return text
    marker = f"\n…[truncated: {len(text)} characters in total]"
    return text[: max(limit - len(marker), 0)] + marker
