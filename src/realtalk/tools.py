"""Function tools: turn a Python function into something the realtime model can call.

``@function_tool`` reads a function's signature and docstring once, at decoration time
(:mod:`realtalk.tool_schema`: the argument model and the schema the model sees), and makes a
:class:`FunctionTool`, which binds to instances like a method and calls the function.

:meth:`FunctionTool.invoke` never raises for anything the model or the tool did wrong: bad JSON,
invalid arguments, a timeout or an exception all come back as a :class:`ToolResult` with
``is_error=True`` and a message the model can read, so the conversation goes on. What a return
value becomes is :mod:`realtalk.tool_result`'s (serialised once, cut at ``max_output_chars``).
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import re
import types
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, overload

from pydantic import BaseModel, ValidationError

from realtalk.tool_result import (
    DEFAULT_MAX_OUTPUT_CHARS,
    NONE_OUTPUT,
    ToolResult,
    serialize_result,
    truncate_output,
)
from realtalk.tool_schema import ToolSignature, build_tool_schema, clean_schema, read_signature

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT_S",
    "NONE_OUTPUT",
    "FunctionTool",
    "ResultInterpreter",
    "ToolResult",
    "build_tool_schema",
    "function_tool",
    "serialize_result",
]

logger = logging.getLogger("realtalk.session")

DEFAULT_TIMEOUT_S = 30.0

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI accepts as a function name

#: Turns a return value its caller gives a meaning to (a handoff, :mod:`realtalk.handoff`) into
#: the call's result; None for an ordinary value, which is serialised.
ResultInterpreter = Callable[[object], ToolResult | None]


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
        self._sig = read_signature(func, tool_name, description)
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
        cleaned = clean_schema(copy.deepcopy(parameters), name)
        cleaned.setdefault("type", "object")
        cleaned.setdefault("properties", {})
        tool._sig = ToolSignature(
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

    async def invoke(
        self, arguments_json: str, *, interpret: ResultInterpreter | None = None
    ) -> ToolResult:
        """Validate the model's JSON arguments, call the function, serialise the result.

        Never raises for bad input or a failing tool (see the module docstring); cancelling the
        awaiting task cancels an async tool. A sync tool runs in a worker thread; when it times
        out the thread cannot be stopped and finishes in the background. ``interpret`` reads
        the return value first (the session's handoffs); its result's output is cut too.
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
        special = interpret(result) if interpret is not None else None
        if special is not None:
            return replace(special, output=truncate_output(special.output, self._max_output_chars))
        try:
            output = serialize_result(result)
        except Exception as exc:
            logger.exception("tool %s returned a value that cannot be serialised", self._name)
            return self._failure(f"the result could not be serialised: {type(exc).__name__}: {exc}")
        return ToolResult(output=truncate_output(output, self._max_output_chars))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def _failure(self, message: str) -> ToolResult:
        return ToolResult.failure(truncate_output(message, self._max_output_chars))

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


def _describe_validation_error(tool_name: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
        ).lstrip(".")
        message = "required argument is missing" if error["type"] == "missing" else error["msg"]
        problems.append(f"{where or 'arguments'}: {message}")
    return f"invalid arguments for {tool_name}: " + "; ".join(problems)


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
