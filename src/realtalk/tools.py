"""Function tools: turn a Python function into something the realtime model can call.

``@function_tool`` reads a function's signature and docstring once, at decoration time, and keeps:

- a pydantic model of the arguments, used both to write the JSON schema the model sees and to
  validate the arguments the model sends back (one source of truth, so the two cannot disagree);
- the schema, cleaned for OpenAI: no ``title`` keywords, ``$defs``/``$ref`` inlined, ``const``
  written as a one-value ``enum``, and optional parameters shown as plain optional properties
  without ``anyOf [..., null]`` / ``default: null`` noise.

:meth:`FunctionTool.invoke` never raises for anything the model or the tool did wrong: bad JSON,
invalid arguments, a timeout or an exception all come back as a :class:`ToolResult` with
``is_error=True`` and a message the model can read, so the conversation goes on.

Result serialisation, done exactly once:

==========================  ===========================================================
tool returns                ``ToolResult.output``
==========================  ===========================================================
``str``                     the string itself (never JSON-quoted)
``None``                    ``"ok"`` (the call succeeded and has nothing to report)
a pydantic model            ``model.model_dump_json()``
anything else               compact JSON (dicts, lists, numbers, dataclasses, enums,
                            datetimes...); objects JSON cannot express become ``str(obj)``
``bytes`` (also nested)     their text when they are UTF-8, else ``"base64:<base64>"``
                            (binary data the model can at least see the size and kind of)
==========================  ===========================================================

Outputs longer than ``max_output_chars`` (default 16 KiB) are cut, ending with a marker that says
so, because a huge tool output costs tokens on every later turn.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, overload

import docstring_parser
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT_S",
    "NONE_OUTPUT",
    "FunctionTool",
    "ToolResult",
    "build_tool_schema",
    "function_tool",
    "serialize_result",
]

logger = logging.getLogger("realtalk.session")

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_OUTPUT_CHARS = 16 * 1024
NONE_OUTPUT = "ok"
"""What a tool that returns ``None`` reports to the model."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name


@dataclass(frozen=True, slots=True)
class ToolResult:
    """The outcome of one tool call.

    Attributes:
        output: the text for the ``function_call_output`` item (for errors, ``"Error: ..."``).
        is_error: True when the tool was not called, failed, or timed out.
        error: the error message alone, or None on success.
    """

    output: str
    is_error: bool = False
    error: str | None = None
    #: The tool handed the conversation to another agent (a :class:`realtalk.handoff.Handoff`).
    handoff: Any = None
    #: False: send the output but ask for no follow-up reply; whoever set it (the session, after
    #: a handoff) asks for the next reply itself.
    reply: bool = True

    @classmethod
    def failure(cls, message: str) -> ToolResult:
        return cls(output=f"Error: {message}", is_error=True, error=message)


@dataclass(frozen=True, slots=True)
class _Signature:
    """What decoration learnt about the function; shared by a tool and its bound copies."""

    description: str
    model: type[BaseModel]
    parameters: dict[str, Any]
    field_to_param: dict[str, str]  # pydantic field name -> Python parameter name
    positional_only: tuple[str, ...]
    accepts_extra: bool  # the function has **kwargs
    is_method: bool  # first parameter is ``self``: bind before calling
    is_async: bool
    #: A tool made from a given schema (:meth:`FunctionTool.from_schema`): the function gets
    #: the argument object as it came, and the schema's owner validates it.
    passthrough: bool = False


class FunctionTool:
    """A function the model can call. Create it with :func:`function_tool`.

    Calling the tool object directly (``tool(...)``) calls the function, so decorated methods
    stay usable from your own code. On a class, a method tool binds to the instance it is read
    from, like a method; :class:`~realtalk.agent.Agent` collects those bound tools.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> None:
        if not callable(func):
            raise TypeError(f"function_tool needs a callable, got {func!r}")
        tool_name = name if name is not None else getattr(func, "__name__", None)
        if not isinstance(tool_name, str) or not _NAME_RE.match(tool_name):
            raise ValueError(
                f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-'"
                + ("" if name is not None else " (pass name=...)")
            )
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout}")
        if max_output_chars < 1:
            raise ValueError(f"max_output_chars must be at least 1, got {max_output_chars}")
        self._func = func
        self._name = tool_name
        self._sig = _inspect_function(func, tool_name, description)
        self._timeout = timeout
        self._max_output_chars = max_output_chars
        self._instance: object | None = None
        self._attr_name: str | None = None
        self._invoker: Callable[[str], Awaitable[ToolResult]] | None = None

    @classmethod
    def from_schema(
        cls,
        call: Callable[[dict[str, Any]], Awaitable[Any]],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        timeout: float | None = DEFAULT_TIMEOUT_S,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    ) -> FunctionTool:
        """A tool whose schema comes from elsewhere (an MCP server), cleaned like ours.

        ``call`` receives the model's argument object unvalidated (its owner validates it) and
        may return a :class:`ToolResult` to report an error itself.

        Raises:
            ValueError: an invalid name.
            TypeError: a schema that cannot be cleaned (a recursive ``$ref``).
        """
        tool = cls(call, name=name, timeout=timeout, max_output_chars=max_output_chars)
        cleaned = _clean_schema(copy.deepcopy(parameters), name)
        cleaned.setdefault("type", "object")
        cleaned.setdefault("properties", {})
        tool._sig = _Signature(
            description=description,
            model=BaseModel,
            parameters=cleaned,
            field_to_param={},
            positional_only=(),
            accepts_extra=True,
            is_method=False,
            is_async=True,
            passthrough=True,
        )
        return tool

    # -- what the model sees ------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def description(self) -> str:
        return self._sig.description

    @property
    def parameters(self) -> dict[str, Any]:
        """The JSON schema of the arguments (a copy: change it freely)."""
        return copy.deepcopy(self._sig.parameters)

    @property
    def timeout(self) -> float | None:
        """Seconds a call may take before it is reported as timed out; None: no limit."""
        return self._timeout

    @property
    def max_output_chars(self) -> int:
        return self._max_output_chars

    @property
    def is_method(self) -> bool:
        """True for a method tool (first parameter ``self``) whether bound or not."""
        return self._sig.is_method

    @property
    def is_bound(self) -> bool:
        """False only for a method tool read from the class rather than from an instance."""
        return not self._sig.is_method or self._instance is not None

    @property
    def func(self) -> Callable[..., Any]:
        """The function that is called, bound to its instance for a bound method tool."""
        if self._sig.is_method and self._instance is not None:
            return types.MethodType(self._func, self._instance)
        return self._func

    def to_openai(self) -> dict[str, Any]:
        """The tool in the GA Realtime ``session.tools`` shape."""
        return {
            "type": "function",
            "name": self._name,
            "description": self._sig.description,
            "parameters": self.parameters,
        }

    # -- calling ------------------------------------------------------------------------------

    async def invoke(self, arguments_json: str) -> ToolResult:
        """Validate the model's JSON arguments, call the function, serialise the result.

        Never raises for bad input or a failing tool (see the module docstring); cancelling the
        awaiting task cancels an async tool. A sync tool runs in a worker thread; when it times
        out the thread cannot be stopped and finishes in the background.
        """
        if self._invoker is not None:
            return await self._invoker(arguments_json)
        if not self.is_bound:
            raise TypeError(
                f"tool {self._name!r} is an unbound method; use the tool from an instance "
                "(for example agent.tools)"
            )
        try:
            args, kwargs = self._parse_arguments(arguments_json)
        except _ArgumentsError as exc:
            return self._failure(str(exc))

        try:
            if self._timeout is None:
                result = await self._call(args, kwargs)
            else:
                result = await asyncio.wait_for(self._call(args, kwargs), self._timeout)
        except TimeoutError:
            logger.warning("tool %s timed out after %gs", self._name, self._timeout)
            return self._failure(f"tool {self._name} timed out after {self._timeout:g}s")
        except Exception as exc:
            logger.exception("tool %s raised", self._name)
            return self._failure(f"{type(exc).__name__}: {exc}")

        if isinstance(result, ToolResult):  # the tool reported its own outcome
            return result
        handoff = _as_handoff(result)
        if handoff is not None:  # the session performs the switch (realtalk.handoff)
            return ToolResult(
                output=_truncate(handoff.output_text(), self._max_output_chars), handoff=handoff
            )
        try:
            output = serialize_result(result)
        except Exception as exc:
            logger.exception("tool %s returned a value that cannot be serialised", self._name)
            return self._failure(f"the result could not be serialised: {type(exc).__name__}: {exc}")
        return ToolResult(output=_truncate(output, self._max_output_chars))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def _failure(self, message: str) -> ToolResult:
        return ToolResult.failure(_truncate(message, self._max_output_chars))

    def _parse_arguments(self, arguments_json: str) -> tuple[list[Any], dict[str, Any]]:
        raw: Any = {}
        if arguments_json.strip():
            try:
                raw = json.loads(arguments_json)
            except json.JSONDecodeError as exc:
                raise _ArgumentsError(
                    f"arguments for {self._name} are not valid JSON ({exc.msg} at position "
                    f"{exc.pos}); send a JSON object"
                ) from None
        if not isinstance(raw, dict):
            raise _ArgumentsError(
                f"arguments for {self._name} must be a JSON object, got {type(raw).__name__}"
            )
        if self._sig.passthrough:
            return [raw], {}
        try:
            validated = self._sig.model.model_validate(raw)
        except ValidationError as exc:
            raise _ArgumentsError(_describe_validation_error(self._name, exc)) from None

        sig = self._sig
        unknown = set(raw) - set(sig.field_to_param.values())
        if unknown and not sig.accepts_extra:
            logger.warning("tool %s: ignoring unknown arguments %s", self._name, sorted(unknown))
        # Read attributes rather than model_dump(): nested models and dataclasses stay objects.
        values = {param: getattr(validated, field) for field, param in sig.field_to_param.items()}
        args = [values.pop(param) for param in sig.positional_only]
        if sig.accepts_extra:
            values.update({key: raw[key] for key in unknown})
        return args, values

    async def _call(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        func = self.func
        if self._sig.is_async:
            return await func(*args, **kwargs)
        result = await asyncio.to_thread(func, *args, **kwargs)
        if inspect.isawaitable(result):  # a plain function that returned a coroutine
            result = await result
        return result

    # -- binding to an instance (method tools) ------------------------------------------------

    def __set_name__(self, owner: type, name: str) -> None:
        self._attr_name = name

    def __get__(self, instance: object | None, owner: type | None = None) -> FunctionTool:
        if instance is None or not self._sig.is_method:
            return self
        bound = self.bind(instance)
        if self._attr_name is not None:
            try:  # cache, so agent.my_tool is the same object every time
                vars(instance)[self._attr_name] = bound
            except TypeError:  # no __dict__ (slots): skip the cache
                pass
        return bound

    def with_invoker(self, invoker: Callable[[str], Awaitable[ToolResult]]) -> FunctionTool:
        """A copy (same name, schema and timeout) whose :meth:`invoke` is ``invoker``.

        The session hands the model such copies, so that each call goes through it (it tells
        calls apart by agent and performs handoffs); ``invoker`` usually calls this tool's own
        :meth:`invoke`.
        """
        wrapped = copy.copy(self)
        wrapped._invoker = invoker
        return wrapped

    def bind(self, instance: object) -> FunctionTool:
        """This method tool bound to ``instance`` (a new tool; the schema is shared)."""
        if not self._sig.is_method:
            raise TypeError(f"tool {self._name!r} is not a method and cannot be bound")
        bound = copy.copy(self)
        bound._instance = instance
        return bound

    def __repr__(self) -> str:
        state = "" if self.is_bound else " (unbound method)"
        return f"<FunctionTool {self._name}{state}>"


class _ArgumentsError(Exception):
    """The model's arguments were unusable; the message is for the model."""


@overload
def function_tool(func: Callable[..., Any], /) -> FunctionTool: ...
@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> Callable[[Callable[..., Any]], FunctionTool]: ...
def function_tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Make a function (sync or async, plain or a method) callable by the model.

    Use it bare (``@function_tool``) or with options
    (``@function_tool(name="lookup", timeout=5)``). The description comes from ``description``
    or else the docstring (Google, NumPy or reST style); parameter descriptions come from the
    docstring or from ``Annotated[X, Field(description=...)]``, which wins over the docstring.

    Args:
        func: the function, when used bare.
        name: the tool name the model sees; defaults to the function name.
        description: overrides the docstring's description.
        timeout: seconds before a call is reported as timed out; None for no limit.
        max_output_chars: longer outputs are truncated with a marker.
    """

    def make(target: Callable[..., Any]) -> FunctionTool:
        if isinstance(target, FunctionTool):
            target = target._func
        return FunctionTool(
            target,
            name=name,
            description=description,
            timeout=timeout,
            max_output_chars=max_output_chars,
        )

    if func is None:
        return make
    return make(func)


def build_tool_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The cleaned JSON schema of ``func``'s parameters, as used in a tool's ``parameters``.

    A leading ``self`` parameter is left out, as for a method tool.
    """
    name = getattr(func, "__name__", type(func).__name__)
    return copy.deepcopy(_inspect_function(func, name, None).parameters)


def serialize_result(value: object) -> str:
    """Turn a tool's return value into the ``function_call_output`` text (see module docstring)."""
    if isinstance(value, str):
        return value
    if value is None:
        return NONE_OUTPUT
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return pydantic_core.to_json(value, fallback=str).decode()
    except pydantic_core.PydanticSerializationError:
        # Bytes have a JSON form (their UTF-8 text), so the str fallback never sees them, and
        # bytes that are not UTF-8 fail instead: describe those. Any left where the walk does not
        # reach (inside a dataclass) are base64 too, without the prefix.
        readable = _describe_binary(value)
        return pydantic_core.to_json(readable, fallback=str, bytes_mode="base64").decode()


def _as_handoff(value: object) -> Any:
    from realtalk.handoff import as_handoff  # handoff imports Agent, which imports this module

    return as_handoff(value)


def _describe_binary(value: object) -> object:
    """``value`` with each non-UTF-8 ``bytes``/``bytearray`` in it (through dicts, lists,
    tuples and sets) replaced by ``"base64:<base64>"``."""
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {
            (_describe_binary(k) if isinstance(k, bytes) else k): _describe_binary(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_describe_binary(v) for v in value]
    return value


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    marker = f"\n…[truncated: {len(text)} characters in total]"
    if max_chars <= len(marker):
        return text[:max_chars]
    return text[: max_chars - len(marker)] + marker


def _describe_validation_error(tool_name: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        message = "required argument is missing" if error["type"] == "missing" else error["msg"]
        problems.append(f"{where or 'arguments'}: {message}")
    return f"invalid arguments for {tool_name}: " + "; ".join(problems)


# -- reading a function -----------------------------------------------------------------------


def _inspect_function(
    func: Callable[..., Any], tool_name: str, description: str | None
) -> _Signature:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot read the signature of tool {tool_name!r}: {exc}") from exc
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    is_method = bool(params) and params[0].name == "self" and params[0].kind in positional
    if is_method:
        params = params[1:]

    try:
        hints = typing.get_type_hints(_annotated_target(func), include_extras=True)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of tool {tool_name!r}: {exc}") from exc

    doc = docstring_parser.parse(inspect.getdoc(_unwrap_partial(func)) or "")
    if description is None:
        description = "\n\n".join(
            part for part in (doc.short_description, doc.long_description) if part
        )
    param_docs = {p.arg_name.lstrip("*"): p.description for p in doc.params if p.description}

    fields: dict[str, Any] = {}
    field_to_param: dict[str, str] = {}
    positional_only: list[str] = []
    accepts_extra = False
    for index, param in enumerate(params):
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError(
                f"tool {tool_name!r}: *{param.name} is not supported; the model passes "
                "arguments by name"
            )
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_extra = True
            continue
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional_only.append(param.name)
        annotation = hints.get(param.name, Any)
        if param.name not in hints and param.annotation is not inspect.Parameter.empty:
            annotation = param.annotation
        doc_text = param_docs.get(param.name)
        if doc_text and not _has_description(annotation):
            annotation = Annotated[annotation, Field(description=doc_text)]
        default = ... if param.default is inspect.Parameter.empty else param.default
        # Internal field names plus aliases: any parameter name works, even ``json`` or
        # ``model_config``, which would clash with BaseModel attributes.
        field_name = f"arg{index}"
        fields[field_name] = (annotation, Field(default, alias=param.name))
        field_to_param[field_name] = param.name

    try:
        model = create_model(
            f"{tool_name}_arguments",
            __config__=ConfigDict(extra="allow" if accepts_extra else "ignore"),
            **fields,
        )
        schema = model.model_json_schema()
    except Exception as exc:
        raise TypeError(f"cannot build a JSON schema for tool {tool_name!r}: {exc}") from exc

    parameters = _clean_schema(schema, tool_name)
    parameters.setdefault("properties", {})
    if not accepts_extra:
        parameters["additionalProperties"] = False
    return _Signature(
        description=description,
        model=model,
        parameters=parameters,
        field_to_param=field_to_param,
        positional_only=tuple(positional_only),
        accepts_extra=accepts_extra,
        is_method=is_method,
        is_async=_is_async_callable(func),
    )


def _unwrap_partial(func: Callable[..., Any]) -> Callable[..., Any]:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _annotated_target(func: Callable[..., Any]) -> Any:
    """The object whose ``__annotations__`` describe ``func``'s parameters."""
    func = _unwrap_partial(func)
    if inspect.isroutine(func):
        return func
    return type(func).__call__  # a callable object


def _has_description(annotation: Any) -> bool:
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(isinstance(meta, FieldInfo) and meta.description for meta in annotation.__metadata__)


def _is_async_callable(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004  (callable objects)
    return call is not None and inspect.iscoroutinefunction(call)


# -- cleaning pydantic's schema for OpenAI ----------------------------------------------------

# Keywords whose value maps names to schemas: the names are data (a property may be called
# "title"), the values are schemas.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Keywords whose value is data, never a schema: copied untouched.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples", "required"})


def _clean_schema(schema: dict[str, Any], tool_name: str) -> dict[str, Any]:
    defs = schema.pop("$defs", {})
    cleaned = _clean_node(schema, defs, (), tool_name)
    assert isinstance(cleaned, dict)
    return cleaned


def _clean_node(node: Any, defs: dict[str, Any], expanding: tuple[str, ...], tool: str) -> Any:
    if isinstance(node, list):
        return [_clean_node(item, defs, expanding, tool) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        name = ref.rsplit("/", 1)[-1]
        if name in expanding:
            raise TypeError(
                f"tool {tool!r}: recursive type {name!r} cannot be used in a tool schema"
            )
        if name not in defs:
            raise TypeError(f"tool {tool!r}: unresolvable schema reference {ref!r}")
        target = _clean_node(defs[name], defs, (*expanding, name), tool)
        siblings = _clean_node(
            {k: v for k, v in node.items() if k != "$ref"}, defs, expanding, tool
        )
        return {**target, **siblings}  # the field's own description beats the type's docstring

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in _DATA_KEYWORDS:
            out[key] = value
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {
                name: _clean_node(sub, defs, expanding, tool) for name, sub in value.items()
            }
        else:
            out[key] = _clean_node(value, defs, expanding, tool)

    if "const" in out and "enum" not in out:
        out["enum"] = [out.pop("const")]
    all_of = out.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del out["allOf"]
        out = {**all_of[0], **out}
    if isinstance(out.get("properties"), dict):
        _simplify_optional_properties(out)
    return out


def _simplify_optional_properties(obj: dict[str, Any]) -> None:
    """Show ``x: X | None = None`` as an optional ``X``: no ``anyOf [X, null]``, no ``default``.

    The property is already optional (absent from ``required``); validation still accepts null.
    """
    required = set(obj.get("required", ()))
    properties: dict[str, Any] = obj["properties"]
    for name, prop in list(properties.items()):
        if name in required or not isinstance(prop, dict):
            continue
        if "default" not in prop or prop["default"] is not None:
            continue
        prop = {k: v for k, v in prop.items() if k != "default"}
        any_of = prop.get("anyOf")
        if isinstance(any_of, list):
            kept = [branch for branch in any_of if branch != {"type": "null"}]
            if len(kept) == 1 and len(kept) < len(any_of) and isinstance(kept[0], dict):
                del prop["anyOf"]
                prop = {**kept[0], **prop}
        properties[name] = prop
