"""MCP tools without a server: names, schemas, results and the unavailable server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from realtalk.mcp import MCPServer, _result_text


class Offline(MCPServer):
    def _make_client(self) -> Any:
        raise AssertionError("not used")


def spec(name: str, schema: dict[str, Any] | None = None) -> Any:
    schema = schema or {"type": "object", "title": "Args", "properties": {}}
    return SimpleNamespace(name=name, description="Reads.", title=None, input_schema=schema)


async def test_names_are_made_usable_and_schemas_cleaned() -> None:
    server = Offline(name="files", tool_prefix="fs.")
    tool = server._tool(spec("read/file"))
    assert tool is not None and tool.name == "fs_read_file"
    assert tool.parameters == {"type": "object", "properties": {}}
    assert server._tool(spec("x" * 80)).name == "fs_" + "x" * 61  # type: ignore[union-attr]
    recursive = {"$ref": "#/$defs/N", "$defs": {"N": {"items": {"$ref": "#/$defs/N"}}}}
    assert server._tool(spec("loop", recursive)) is None  # skipped, not fatal


async def test_a_call_while_the_server_is_down_is_an_error_the_model_reads() -> None:
    server = Offline(name="files")
    tool = server._tool(spec("read"))
    assert tool is not None
    result = await tool.invoke("{}")
    assert result.is_error
    assert result.output == (
        "Error: MCP server files is unavailable: it is restarting; try again in a moment"
    )
    server.failed = "stopped; gave up after 3 restarts"
    assert "gave up after 3 restarts" in (await tool.invoke("{}")).output


def test_result_content_becomes_text() -> None:
    def block(**fields: Any) -> Any:
        return SimpleNamespace(**fields)

    result = SimpleNamespace(
        content=[
            block(type="text", text="hello"),
            block(type="image", mime_type="image/png", data="..."),
            block(type="resource", resource=SimpleNamespace(text="file body")),
        ],
        structured_content={"ignored": True},
    )
    assert _result_text(result) == "hello\n[image: image/png]\nfile body"
    structured = SimpleNamespace(content=[], structured_content={"a": 1})
    assert _result_text(structured) == '{"a":1}'
