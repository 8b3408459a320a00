"""Tests for realtalk.tools: schemas from signatures and docstrings, and tool invocation."""

import asyncio
import dataclasses
import enum
import json
import threading
from typing import Annotated, Any, Literal, Optional

import pytest
from pydantic import BaseModel, Field

from realtalk.tools import (
    DEFAULT_MAX_OUTPUT_CHARS,
    DEFAULT_TIMEOUT_S,
    NONE_OUTPUT,
    FunctionTool,
    ToolResult,
    build_tool_schema,
    function_tool,
    serialize_result,
)


def walk(node: Any) -> list[dict[str, Any]]:
    """Every dict in a JSON-like tree."""
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(walk(value))
    return found


def assert_openai_clean(schema: dict[str, Any]) -> None:
    """No pydantic leftovers OpenAI does not want: titles, $defs, $ref."""
    for node in walk(schema):
        assert "$defs" not in node
        assert "$ref" not in node
        assert "title" not in node or isinstance(node["title"], dict)  # a property named title


# -- schema: docstring styles ---------------------------------------------------------------


def google_style(city: str, units: str = "metric") -> str:
    """Current weather for a city.

    Uses the forecast service.

    Args:
        city: City name, e.g. "Paris".
        units: "metric" or "imperial".
    """
    return city


def numpy_style(city: str, units: str = "metric") -> str:
    """Current weather for a city.

    Parameters
    ----------
    city : str
        City name, e.g. "Paris".
    units : str
        "metric" or "imperial".
    """
    return city


def rest_style(city: str, units: str = "metric") -> str:
    """Current weather for a city.

    :param city: City name, e.g. "Paris".
    :param units: "metric" or "imperial".
    """
    return city


@pytest.mark.parametrize("func", [google_style, numpy_style, rest_style])
def test_docstring_styles_give_descriptions_and_defaults(func: Any) -> None:
    tool = function_tool(func)
    schema = tool.parameters
    assert tool.description.startswith("Current weather for a city.")
    assert schema["type"] == "object"
    assert schema["properties"]["city"] == {
        "type": "string",
        "description": 'City name, e.g. "Paris".',
    }
    assert schema["properties"]["units"] == {
        "type": "string",
        "description": '"metric" or "imperial".',
        "default": "metric",
    }
    # The seed lost this on pydantic >= 2.12: optional parameters became required.
    assert schema["required"] == ["city"]
    assert_openai_clean(schema)


def test_long_description_is_kept_and_args_section_is_not() -> None:
    tool = function_tool(google_style)
    assert tool.description == "Current weather for a city.\n\nUses the forecast service."


def test_explicit_name_and_description_win() -> None:
    tool = function_tool(name="weather", description="Weather now.")(google_style)
    assert tool.name == "weather"
    assert tool.description == "Weather now."
    assert tool.parameters["properties"]["city"]["description"] == 'City name, e.g. "Paris".'


def test_no_docstring_gives_empty_description() -> None:
    def ping() -> str:
        return "pong"

    tool = function_tool(ping)
    assert tool.description == ""
    assert tool.parameters == {"type": "object", "properties": {}, "additionalProperties": False}


def test_to_openai_is_the_ga_tool_shape() -> None:
    tool = function_tool(google_style)
    assert tool.to_openai() == {
        "type": "function",
        "name": "google_style",
        "description": tool.description,
        "parameters": tool.parameters,
    }
    json.dumps(tool.to_openai())  # serialisable as is


def test_parameters_is_a_copy() -> None:
    tool = function_tool(google_style)
    tool.parameters["properties"].clear()
    assert "city" in tool.parameters["properties"]


# -- schema: types ----------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    """A postal address."""

    street: str = Field(description="Street and number.")
    zip_code: str | None = None


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


def test_literal_becomes_enum() -> None:
    def f(units: Literal["metric", "imperial"], mode: Literal["fast"] = "fast") -> None: ...

    props = build_tool_schema(f)["properties"]
    assert props["units"] == {"type": "string", "enum": ["metric", "imperial"]}
    assert props["mode"] == {"type": "string", "enum": ["fast"], "default": "fast"}


def test_enum_is_inlined() -> None:
    def f(color: Color = Color.RED) -> None: ...

    schema = build_tool_schema(f)
    assert schema["properties"]["color"] == {
        "type": "string",
        "enum": ["red", "blue"],
        "default": "red",
    }
    assert_openai_clean(schema)


def test_lists_and_dicts() -> None:
    def f(tags: list[str], scores: dict[str, int], points: list[Point]) -> None: ...

    props = build_tool_schema(f)["properties"]
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["scores"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert props["points"]["items"] == {
        "type": "object",
        "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
        "required": ["x"],
    }


def test_nested_pydantic_model_is_inlined_with_field_description_winning() -> None:
    def ship(address: Address) -> None:
        """Ship it.

        Args:
            address: Where to deliver.
        """

    schema = build_tool_schema(ship)
    assert_openai_clean(schema)
    address = schema["properties"]["address"]
    assert address["description"] == "Where to deliver."  # not the class docstring
    assert address["type"] == "object"
    assert address["properties"]["street"] == {
        "type": "string",
        "description": "Street and number.",
    }
    # Optional model field: plain optional property, no anyOf/null noise.
    assert address["properties"]["zip_code"] == {"type": "string"}
    assert address["required"] == ["street"]


def test_model_docstring_used_when_field_has_no_description() -> None:
    def ship(address: Address) -> None: ...

    assert build_tool_schema(ship)["properties"]["address"]["description"] == "A postal address."


def test_optional_with_none_default_is_optional_without_noise() -> None:
    def f(query: str, limit: Optional[int] = None, lang: str | None = None) -> None:  # noqa: UP045
        """Search.

        Args:
            query: Words.
            limit: Max results.
            lang: Language code.
        """

    schema = build_tool_schema(f)
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"] == {"type": "integer", "description": "Max results."}
    assert schema["properties"]["lang"] == {"type": "string", "description": "Language code."}


def test_optional_without_default_stays_required_and_nullable() -> None:
    def f(note: str | None) -> None: ...

    schema = build_tool_schema(f)
    assert schema["required"] == ["note"]
    assert {"type": "null"} in schema["properties"]["note"]["anyOf"]


def test_annotated_field_description_beats_docstring() -> None:
    def f(
        city: Annotated[str, Field(description="From Annotated.")],
        days: Annotated[int, Field(ge=1, le=7)] = 3,
    ) -> None:
        """Forecast.

        Args:
            city: From the docstring.
            days: Number of days.
        """

    props = build_tool_schema(f)["properties"]
    assert props["city"]["description"] == "From Annotated."
    assert props["days"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 7,
        "default": 3,
        "description": "Number of days.",
    }


def test_parameter_named_title_or_json_is_kept() -> None:
    def f(title: str, json: int, model_config: str = "x") -> None: ...

    schema = build_tool_schema(f)
    assert set(schema["properties"]) == {"title", "json", "model_config"}
    assert schema["properties"]["title"] == {"type": "string"}
    assert schema["required"] == ["title", "json"]


def test_default_values_are_data_not_schemas() -> None:
    def f(meta: dict[str, str] = {"title": "kept"}) -> None: ...  # noqa: B006

    assert build_tool_schema(f)["properties"]["meta"]["default"] == {"title": "kept"}


def test_unannotated_parameter_accepts_anything() -> None:
    def f(value) -> None: ...

    assert build_tool_schema(f)["properties"]["value"] == {}


def test_self_is_left_out_of_method_schema() -> None:
    class Box:
        @function_tool
        def put(self, item: str) -> str:
            return item

    assert list(Box.put.parameters["properties"]) == ["item"]
    assert Box.put.is_method


def test_kwargs_allow_extra_properties() -> None:
    def f(a: int, **rest: Any) -> None: ...

    schema = build_tool_schema(f)
    assert schema["additionalProperties"] is True
    assert list(schema["properties"]) == ["a"]


def test_var_positional_is_rejected() -> None:
    def f(*items: str) -> None: ...

    with pytest.raises(TypeError, match=r"\*items"):
        function_tool(f)


def test_recursive_model_is_a_clear_error() -> None:
    class Node(BaseModel):
        children: list["Node"] = []

    def f(tree: Node) -> None: ...

    with pytest.raises(TypeError, match="recursive"):
        function_tool(f)


def test_unsupported_type_is_a_clear_error() -> None:
    class Opaque:
        pass

    def f(thing: Opaque) -> None: ...

    with pytest.raises(TypeError, match="tool 'f'"):
        function_tool(f)


def test_invalid_name_and_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="tool name"):
        function_tool(name="has space")(google_style)
    with pytest.raises(ValueError, match="timeout"):
        function_tool(timeout=0)(google_style)
    with pytest.raises(ValueError, match="max_output_chars"):
        function_tool(max_output_chars=0)(google_style)


def test_defaults() -> None:
    tool = function_tool(google_style)
    assert tool.timeout == DEFAULT_TIMEOUT_S == 30.0
    assert tool.max_output_chars == DEFAULT_MAX_OUTPUT_CHARS == 16 * 1024


# -- invoking ---------------------------------------------------------------------------------


async def test_sync_tool_runs_in_a_worker_thread() -> None:
    seen: list[threading.Thread] = []

    @function_tool
    def where(city: str) -> str:
        seen.append(threading.current_thread())
        return f"in {city}"

    result = await where.invoke('{"city": "Paris"}')
    assert result == ToolResult(output="in Paris", is_error=False, error=None)
    assert seen and seen[0] is not threading.main_thread()


async def test_sync_tool_does_not_block_the_loop() -> None:
    release = threading.Event()

    @function_tool
    def wait_for_release() -> str:
        release.wait(5)
        return "released"

    task = asyncio.create_task(wait_for_release.invoke("{}"))
    await asyncio.sleep(0)  # the tool is now blocked in its thread; the loop still runs
    release.set()
    assert (await task).output == "released"


async def test_async_tool_is_awaited() -> None:
    @function_tool
    async def add(a: int, b: int = 1) -> int:
        await asyncio.sleep(0)
        return a + b

    assert (await add.invoke('{"a": 2}')).output == "3"
    assert (await add.invoke('{"a": 2, "b": "5"}')).output == "7"  # lax coercion of "5"


async def test_string_result_is_not_json_quoted() -> None:
    @function_tool
    def say() -> str:
        return 'He said "hi"'

    assert (await say.invoke("{}")).output == 'He said "hi"'


async def test_none_result_reports_ok() -> None:
    @function_tool
    def lights_on() -> None:
        return None

    assert (await lights_on.invoke("")).output == NONE_OUTPUT == "ok"


async def test_structured_results_are_serialised_once() -> None:
    @function_tool
    def weather() -> dict[str, Any]:
        return {"temp_c": 18, "sky": "clear", "city": "Zürich"}

    output = (await weather.invoke("{}")).output
    assert json.loads(output) == {"temp_c": 18, "sky": "clear", "city": "Zürich"}
    assert "Zürich" in output  # not escaped to \\u00fc: fewer tokens


def test_serialize_result_variants() -> None:
    assert serialize_result(Address(street="Main 1")) == '{"street":"Main 1","zip_code":null}'
    assert json.loads(serialize_result([1, 2.5, True])) == [1, 2.5, True]
    assert json.loads(serialize_result(Point(1, 2))) == {"x": 1, "y": 2}
    assert json.loads(serialize_result({"c": Color.BLUE})) == {"c": "blue"}

    class Odd:
        def __str__(self) -> str:
            return "odd!"

    assert json.loads(serialize_result({"o": Odd()})) == {"o": "odd!"}


async def test_huge_result_is_truncated_with_marker() -> None:
    @function_tool(max_output_chars=100)
    def dump() -> str:
        return "x" * 1000

    output = (await dump.invoke("{}")).output
    assert len(output) == 100
    assert output.startswith("xxx")
    assert "truncated" in output and "1000" in output


async def test_raising_tool_reports_the_error() -> None:
    @function_tool
    def boom(x: int) -> int:
        raise ValueError(f"bad x {x}")

    result = await boom.invoke('{"x": 4}')
    assert result.is_error
    assert result.error == "ValueError: bad x 4"
    assert result.output == "Error: ValueError: bad x 4"


async def test_raising_async_tool_reports_the_error(caplog: pytest.LogCaptureFixture) -> None:
    @function_tool
    async def boom() -> None:
        raise KeyError("nope")

    result = await boom.invoke("{}")
    assert result.error == "KeyError: 'nope'"
    assert "tool boom raised" in caplog.text  # the traceback is logged for the developer


async def test_bad_json_does_not_call_the_tool() -> None:
    calls = []

    @function_tool
    def f(x: int) -> None:
        calls.append(x)

    result = await f.invoke('{"x": 1')
    assert result.is_error and "not valid JSON" in (result.error or "")
    result = await f.invoke("[1]")
    assert result.is_error and "JSON object" in (result.error or "")
    assert calls == []


async def test_invalid_arguments_name_the_field_and_do_not_call_the_tool() -> None:
    calls = []

    @function_tool
    def forecast(city: str, units: Literal["metric", "imperial"] = "metric") -> None:
        calls.append(city)

    result = await forecast.invoke('{"units": "kelvin"}')
    assert result.is_error
    error = result.error or ""
    assert error.startswith("invalid arguments for forecast:")
    assert "city: required argument is missing" in error
    assert "units:" in error and "'metric' or 'imperial'" in error
    assert calls == []


async def test_nested_argument_errors_name_the_path() -> None:
    @function_tool
    def route(points: list[Point]) -> None: ...

    result = await route.invoke('{"points": [{"x": 1}, {"x": "far"}]}')
    assert "points[1].x" in (result.error or "")


async def test_nested_models_and_dataclasses_arrive_as_objects() -> None:
    received: dict[str, Any] = {}

    @function_tool
    def ship(address: Address, at: Point, color: Color = Color.RED) -> str:
        received.update(address=address, at=at, color=color)
        return "shipped"

    args = {"address": {"street": "Main 1"}, "at": {"x": 1.5}, "color": "blue"}
    assert (await ship.invoke(json.dumps(args))).output == "shipped"
    assert received == {"address": Address(street="Main 1"), "at": Point(1.5), "color": Color.BLUE}


async def test_parameters_with_awkward_names_are_passed_through() -> None:
    @function_tool
    def f(title: str, json: int, model_config: str = "d") -> str:
        return f"{title}/{json}/{model_config}"

    assert (await f.invoke('{"title": "t", "json": 2}')).output == "t/2/d"


async def test_unknown_arguments_are_ignored_without_kwargs() -> None:
    @function_tool
    def f(a: int) -> int:
        return a

    assert (await f.invoke('{"a": 1, "extra": 2}')).output == "1"


async def test_unknown_arguments_go_to_kwargs() -> None:
    @function_tool
    def f(a: int, **rest: Any) -> dict[str, Any]:
        return {"a": a, **rest}

    assert json.loads((await f.invoke('{"a": 1, "extra": 2}')).output) == {"a": 1, "extra": 2}


async def test_positional_only_parameters() -> None:
    @function_tool
    def f(a: int, /, b: int) -> int:
        return a - b

    assert (await f.invoke('{"a": 5, "b": 2}')).output == "3"


async def test_timeout_reports_an_error() -> None:
    @function_tool(timeout=0.01)
    async def slow() -> str:
        await asyncio.sleep(10)
        return "late"

    result = await slow.invoke("{}")
    assert result.is_error
    assert result.error == "tool slow timed out after 0.01s"


async def test_no_timeout_when_none() -> None:
    @function_tool(timeout=None)
    async def quick() -> str:
        return "done"

    assert quick.timeout is None
    assert (await quick.invoke("{}")).output == "done"


async def test_cancelling_the_caller_cancels_an_async_tool() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @function_tool
    async def long() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(long.invoke("{}"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


# -- methods ----------------------------------------------------------------------------------


class Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    @function_tool
    def increment(self, by: int = 1) -> int:
        """Add to the counter.

        Args:
            by: How much to add.
        """
        self.value += by
        return self.value

    @function_tool(name="peek")
    async def current(self) -> int:
        return self.value


async def test_method_tool_binds_to_its_instance() -> None:
    a, b = Counter(10), Counter(100)
    assert (await a.increment.invoke('{"by": 5}')).output == "15"
    assert (await b.increment.invoke("{}")).output == "101"
    assert (a.value, b.value) == (15, 101)
    assert (await a.current.invoke("")).output == "15"
    assert a.current.name == "peek"


def test_bound_method_tool_is_cached_and_callable() -> None:
    counter = Counter(1)
    assert counter.increment is counter.increment
    assert counter.increment(by=2) == 3  # still usable as a method
    assert counter.increment.parameters["properties"]["by"]["description"] == "How much to add."


async def test_unbound_method_tool_cannot_be_invoked() -> None:
    assert not Counter.increment.is_bound
    with pytest.raises(TypeError, match="unbound method"):
        await Counter.increment.invoke("{}")


async def test_plain_bound_method_can_become_a_tool() -> None:
    class Greeter:
        def greet(self, name: str) -> str:
            return f"hi {name}"

    tool = function_tool(Greeter().greet)
    assert not tool.is_method
    assert list(tool.parameters["properties"]) == ["name"]
    assert (await tool.invoke('{"name": "Ann"}')).output == "hi Ann"


def test_bind_rejects_plain_function_tools() -> None:
    with pytest.raises(TypeError, match="not a method"):
        function_tool(google_style).bind(object())


def test_function_tool_is_idempotent_and_reconfigurable() -> None:
    tool = function_tool(google_style)
    assert isinstance(tool, FunctionTool)
    renamed = function_tool(name="other")(tool)
    assert renamed.name == "other"
    assert renamed.parameters == tool.parameters


# -- other callables ----------------------------------------------------------------------------


def test_string_annotations_are_resolved() -> None:
    def f(point: "Point", n: "int" = 1) -> None: ...

    props = build_tool_schema(f)["properties"]
    assert props["point"]["required"] == ["x"]
    assert props["n"] == {"type": "integer", "default": 1}


def test_unresolvable_annotation_is_a_clear_error() -> None:
    def f(thing: "NoSuchType") -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match="type hints of tool 'f'"):
        function_tool(f)


async def test_partial_needs_a_name_and_uses_the_wrapped_docstring() -> None:
    import functools

    partial = functools.partial(google_style, units="imperial")
    with pytest.raises(ValueError, match="name="):
        function_tool(partial)
    tool = function_tool(name="weather")(partial)
    assert tool.description.startswith("Current weather for a city.")
    assert tool.parameters["properties"]["city"]["description"] == 'City name, e.g. "Paris".'
    assert (await tool.invoke('{"city": "Rome"}')).output == "Rome"


async def test_callable_object_with_async_call() -> None:
    class Lookup:
        """Look a word up."""

        async def __call__(self, word: str) -> str:
            return word.upper()

    tool = function_tool(name="lookup")(Lookup())
    assert tool.description == "Look a word up."
    assert (await tool.invoke('{"word": "hi"}')).output == "HI"


async def test_plain_function_returning_a_coroutine_is_awaited() -> None:
    async def inner(word: str) -> str:
        return word * 2

    def outer(word: str) -> Any:
        return inner(word)

    assert (await function_tool(outer).invoke('{"word": "ab"}')).output == "abab"


async def test_unserialisable_result_is_an_error() -> None:
    @function_tool
    def loop() -> dict[str, Any]:
        cyclic: dict[str, Any] = {}
        cyclic["self"] = cyclic
        return cyclic

    result = await loop.invoke("{}")
    assert result.is_error and "could not be serialised" in (result.error or "")


def test_serialize_result_describes_binary_data() -> None:
    """Bytes that are not UTF-8 have no JSON form: the tool still succeeded, so say what it
    returned instead of failing the call."""
    assert json.loads(serialize_result(b"\xff\x00raw")) == "base64:/wByYXc="
    assert json.loads(serialize_result(b"plain text")) == "plain text"
    nested = {"png": bytearray(b"\x89PNG\r\n\x1a\n"), "name": b"logo", "parts": [b"\xfe", 3]}
    assert json.loads(serialize_result(nested)) == {
        "png": "base64:iVBORw0KGgo=",
        "name": "logo",
        "parts": ["base64:/g==", 3],
    }


async def test_a_tool_returning_binary_data_succeeds() -> None:
    @function_tool
    def snapshot() -> bytes:
        """Raw sensor bytes."""
        return bytes(range(250, 256))

    result = await snapshot.invoke("{}")
    assert result.is_error is False
    assert json.loads(result.output) == "base64:+vv8/f7/"


def test_a_wrapped_summary_is_one_sentence_and_paragraphs_and_lists_stay() -> None:
    def get_time(timezone: str | None = None) -> str:
        """The current time and date. You cannot know these
        yourself, so call this for any question about the time.

        Returns one of:
        - the time, as 13:05
        - the date, as Sunday 6 December

        Args:
            timezone: The IANA time zone of a place the user
                names; leave it out for the user's own.
        """
        return ""

    tool = function_tool(get_time)
    assert tool.description == (
        "The current time and date. You cannot know these yourself, so call this for any "
        "question about the time.\n\nReturns one of:\n- the time, as 13:05\n"
        "- the date, as Sunday 6 December"
    )
    assert tool.parameters["properties"]["timezone"]["description"] == (
        "The IANA time zone of a place the user names; leave it out for the user's own."
    )
