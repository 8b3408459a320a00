"""Tool schemas: what a Python function's signature and docstring say its arguments are.

:func:`read_signature` reads a function once and keeps a pydantic model of its arguments, used
both to write the JSON schema the model sees and to validate the arguments the model sends back
(one source of truth, so the two cannot disagree). :func:`clean_schema` turns pydantic's schema
(or one given by an MCP server) into what OpenAI wants: no ``title`` keywords, ``$defs``/``$ref``
inlined, ``const`` written as a one-value ``enum``, and optional parameters shown as plain
optional properties without ``anyOf [..., null]`` / ``default: null`` noise.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

__all__ = ["ToolSignature", "build_tool_schema", "clean_schema", "read_signature"]


@dataclass(frozen=True, slots=True)
class ToolSignature:
    """What reading a function learnt about it; shared by a tool and its bound copies."""

    description: str
    model: type[BaseModel]
    parameters: dict[str, Any]
    field_to_param: dict[str, str]  # pydantic field name -> Python parameter name
    positional_only: tuple[str, ...]
    accepts_extra: bool  # the function has **kwargs
    is_method: bool  # first parameter is ``self``: bind before calling
    is_async: bool
    #: A tool made from a given schema (``FunctionTool.from_schema``): the function gets the
    #: argument object as it came, and the schema's owner validates it.
    passthrough: bool = False


def build_tool_schema(func: Callable[..., Any]) -> dict[str, Any]:
    """The cleaned JSON schema of ``func``'s parameters, as used in a tool's ``parameters``.

    A leading ``self`` parameter is left out, as for a method tool.
    """
    name = getattr(func, "__name__", type(func).__name__)
    return copy.deepcopy(read_signature(func, name, None).parameters)


def read_signature(
    func: Callable[..., Any], tool_name: str, description: str | None
) -> ToolSignature:
    """Read ``func`` (a function, a method, a partial or a callable object) as tool ``tool_name``.

    The description is ``description`` or else the docstring's (Google, NumPy or reST style).

    Raises:
        TypeError: ``*args``, unresolvable type hints, or types no JSON schema can describe.
    """
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
        description = _unwrapped(doc.description or "")
    param_docs = {
        p.arg_name.lstrip("*"): _unwrapped(p.description) for p in doc.params if p.description
    }

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

    parameters = clean_schema(schema, tool_name)
    parameters.setdefault("properties", {})
    if not accepts_extra:
        parameters["additionalProperties"] = False
    return ToolSignature(
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


_LIST_ITEM = re.compile(r"\s*([-*•]|\d+[.)])\s")


def _unwrapped(text: str) -> str:
    """A docstring's text as the model should read it: paragraphs kept, each paragraph's line
    wraps undone (a summary wrapped over two lines is one sentence, not two paragraphs; a
    local model shown "these\\nyourself" in a JSON tool list may say the escape aloud), and
    list items kept on lines of their own."""
    paragraphs = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        lines = [line.strip() for line in paragraph.splitlines() if line.strip()]
        joined = ""
        for line in lines:
            if not joined:
                joined = line
            elif _LIST_ITEM.match(line):
                joined += "\n" + line
            else:
                joined += " " + line
        if joined:
            paragraphs.append(joined)
    return "\n\n".join(paragraphs)


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


def clean_schema(schema: dict[str, Any], tool_name: str) -> dict[str, Any]:
    """``schema`` as OpenAI wants it (see the module docstring); ``schema`` itself is consumed.

    Raises:
        TypeError: a recursive or unresolvable ``$ref``.
    """
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
