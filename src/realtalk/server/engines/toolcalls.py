"""Qwen2.5's own tool-call format, built by us: the prompt, the grammar, the parser, the checks.

No I/O here. Qwen2.5 was trained on ChatML with the session's tools listed in the system message
inside `<tools></tools>`, calls written as `<tool_call>{"name": …, "arguments": …}</tool_call>`
and results returned in a user turn inside `<tool_response></tool_response>`. The GGUF files we
ship carry a chat template without that part (the calls came back as bare JSON in varying shapes),
so `render_prompt` writes the format itself.

Decoding is constrained by a grammar (llguidance syntax, which llama.cpp accepts in the
`grammar` field): the reply is either plain speech, which may not start with `<` or `{` and never
contains `<`, or exactly one `<tool_call>` whose name is one of the session's tools and whose
arguments follow that tool's JSON schema (no extra keys, strings capped). The choice between the
two is the model's. `parse_reply` reads what came out; `check_arguments` validates the arguments
again (the grammar is the first line of defence, not the only one).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from realtalk.server.engines.base import ChatMessage, ToolCall
from realtalk.server.engines.sentences import split_sentences

__all__ = [
    "ANSWER_FROM_RESULT",
    "CALL_CLOSE",
    "CALL_OPEN",
    "REPLY_START",
    "SPEECH_GOES_ON",
    "USER_START",
    "ParsedCall",
    "call_grammar",
    "call_lag",
    "call_text",
    "call_written",
    "check_arguments",
    "function_tools",
    "leans_to_call",
    "parse_reply",
    "render_prompt",
    "starts_call",
    "strict_schema",
    "system_block",
    "system_turn",
]

CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
#: Where the assistant's reply starts: every prompt ends with it.
REPLY_START = "<|im_start|>assistant\n"
#: What a user's turn starts with (known before their words are).
USER_START = "<|im_start|>user\n"
#: Closes the turn of fresh tool results, so the model answers from them in words.
ANSWER_FROM_RESULT = "Reply to my question in one short sentence, using this result."
MAX_STRING_CHARS = 80  # a runaway string argument ends here instead of at max_tokens

_TOOLS_HEADER = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
# Speech: words and punctuation, never markup or code (no tags, braces, brackets, backticks,
# asterisks, hashes, underscores or equals signs), so a model that would write a call as code
# (a JSON block, `convert_units("2", ...)`) cannot do so as speech.
_SPEECH = "/[^<>{}\\[\\]`*#|_=\\s][^<>{}\\[\\]`*#|_=]*/"
#: The rest of a reply that has started as speech (a second request that continues it).
SPEECH_GOES_ON = "%llguidance {}\nstart: /[^<>{}\\[\\]`*#|_=]*/\n"


def function_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function tools of a session (GA Realtime shape), the ones a model may call."""
    return [t for t in tools if t.get("type", "function") == "function" and t.get("name")]


def _signature(tool: dict[str, Any]) -> str:
    function = {
        "name": tool["name"],
        "description": str(tool.get("description") or ""),
        "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
    }
    return json.dumps({"type": "function", "function": function}, ensure_ascii=False)


def system_block(system: str, tools: Sequence[dict[str, Any]]) -> str:
    """The ChatML system turn: the instructions, then the tools in Qwen's layout."""
    text = system
    if tools:
        text += _TOOLS_HEADER + "".join("\n" + _signature(t) for t in tools) + _TOOLS_FOOTER
    return f"<|im_start|>system\n{text}<|im_end|>\n"


def call_text(call: ToolCall) -> str:
    """How a prompt shows `call`: Qwen's `<tool_call>` block."""
    try:
        arguments: Any = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        arguments = {}
    body = json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"


def system_turn(
    system: str, messages: Sequence[ChatMessage], tools: Sequence[dict[str, Any]]
) -> str:
    """The prompt's system turn: `system`, the conversation's system messages, what the
    greeting asked, and the tools."""
    # What the assistant said before the user's first turn (a greeting) is not quoted to the
    # model: as an assistant turn the chat had Qwen 0.5B answer every later question in words
    # (34 held-out questions: 13 right tool against 30 with no greeting); quoted in the system
    # turn, it copied the greeting into its answers ("Here's the JSON response: Mark the time,
    # do sums…"; 24 right tool). A question the greeting asked stays, as the user's first words
    # may answer it ("Paris." to "Which city are you in?").
    extra = [m.content for m in messages if m.role == "system" and m.content]
    said = " ".join(_opening(messages))
    asked = [s for s in split_sentences(said, max_chars=len(said)) if s.endswith("?")]
    if asked:
        extra.append("You have greeted the user and asked: " + " ".join(asked))
    return system_block("\n".join([system, *extra]) if extra else system, tools)


def _opening(messages: Sequence[ChatMessage]) -> list[str]:
    """What the assistant said before the user's first turn."""
    said = []
    for m in messages:
        if m.role == "user":
            break
        if m.role == "assistant" and m.content and not m.tool_calls:
            said.append(m.content)
    return said


def render_prompt(
    system: str,
    messages: Sequence[ChatMessage],
    tools: Sequence[dict[str, Any]],
    *,
    last_turn_only: bool = False,
) -> str:
    """The whole prompt, ending where the assistant's reply starts.

    System messages of the conversation join the instructions; tool results that follow each
    other share one user turn, as Qwen's own template does. ``last_turn_only``: of the
    conversation, only the user's last turn and what follows it (the system turn unchanged).
    """
    prompt = system_turn(system, messages, tools)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if last_turn_only and users:
        start = users[-1]
    elif _opening(messages):  # the greeting is left out (see system_turn)
        start = users[0] if users else len(messages)
    else:
        start = 0
    previous = ""
    for m in messages[start:]:
        if m.role == "user":
            prompt += f"{USER_START}{m.content}<|im_end|>\n"
        elif m.role == "assistant":
            parts = [m.content] if m.content else []
            parts += [call_text(c) for c in m.tool_calls]
            if parts:
                prompt += "<|im_start|>assistant\n" + "\n".join(parts) + "<|im_end|>\n"
        elif m.role == "tool":
            response = f"<tool_response>\n{m.content}\n</tool_response>"
            if previous == "tool":  # join the open user turn
                prompt = prompt[: -len("<|im_end|>\n")] + "\n" + response + "<|im_end|>\n"
            else:
                prompt += f"{USER_START}{response}<|im_end|>\n"
        previous = m.role
    if previous == "tool":  # say how to use the results: a small model otherwise comments on them
        prompt = prompt[: -len("<|im_end|>\n")] + "\n" + ANSWER_FROM_RESULT + "<|im_end|>\n"
    return prompt + REPLY_START


def strict_schema(schema: Any) -> Any:
    """`schema` with no extra keys allowed in objects and every free string capped."""
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
            schema.setdefault("properties", {})
        free = not ({"enum", "const", "maxLength", "pattern", "format"} & set(schema))
        if schema.get("type") == "string" and free:
            schema["maxLength"] = MAX_STRING_CHARS
        for key, value in schema.items():
            if key != "properties":
                strict_schema(value)
        for value in (schema.get("properties") or {}).values():
            strict_schema(value)
    elif isinstance(schema, list):
        for value in schema:
            strict_schema(value)
    return schema


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    parameters = copy.deepcopy(tool.get("parameters") or {"type": "object", "properties": {}})
    return {
        "type": "object",
        "properties": {"name": {"const": tool["name"]}, "arguments": strict_schema(parameters)},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def call_grammar(tools: Sequence[dict[str, Any]], *, speech: bool = True) -> str | None:
    """A grammar for plain speech (if `speech`) or one call of one of `tools`; None: anything."""
    calls = [_call_schema(t) for t in tools]
    if not calls:
        return f"%llguidance {{}}\nstart: {_SPEECH}\n" if speech else None
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    call = f'"{CALL_OPEN}\\n" %json {json.dumps(schema)} "\\n{CALL_CLOSE}"'
    start = f"speech | call\nspeech: {_SPEECH}" if speech else "call"
    return f"%llguidance {{}}\nstart: {start}\ncall: {call}\n"


def starts_call(text: str) -> bool | None:
    """Whether a reply that begins with `text` is a call (True), speech (False) or unknown yet.

    llama.cpp leaves the special token `<tool_call>` out of the text, so a call shows as JSON.
    """
    head = text.lstrip()
    if not head:
        return None
    return head[0] in "<{"


def leans_to_call(chosen: float, likeliest: Mapping[str, float], bias: float) -> bool:
    """Whether a reply whose first token was speech, with log-probability `chosen`, starts a
    call once calls are favoured by `bias` (natural log): whether its `call_lag` is under it.

    The grammar makes the first token the likeliest of speech and the plain-text call start;
    a small model spreads its wish to call over the forms it saw in training (Qwen's special
    token, bare JSON, a code fence), which the grammar keeps out, so the plain start often
    loses to speech by a little (docs/models.md, "Leaning towards a call")."""
    return call_lag(chosen, likeliest) < bias


def call_lag(chosen: float, likeliest: Mapping[str, float]) -> float:
    """How far (natural log) the likeliest token that begins `<tool_call>` in plain text lies
    behind a first token of log-probability `chosen` (`likeliest`: the model's likeliest first
    tokens, before the grammar); infinite if none of them begins it."""
    starts = [p for token, p in likeliest.items() if token and CALL_OPEN.startswith(token)]
    return chosen - max(starts) if starts else math.inf


def call_written(text: str) -> bool:
    """Whether a call that begins with `text` has its whole JSON object written (what may
    follow, the closing tag, is fixed)."""
    body = _call_body(text)
    if not body.startswith("{"):
        return False
    try:
        _read_call(body)
    except json.JSONDecodeError:
        return False
    return True


def _call_body(text: str) -> str:
    """The JSON of a call: `text` without its tags and the space around them."""
    body = text.strip().removeprefix(CALL_OPEN).strip()
    end = body.find(CALL_CLOSE)
    return body if end < 0 else body[:end].strip()


def _read_call(body: str) -> Any:
    """The JSON value `body` holds (raises JSONDecodeError); a call stopped once its JSON was
    written may end with the start of its closing tag."""
    value, used = json.JSONDecoder().raw_decode(body)
    rest = body[used:].strip()
    if rest and not CALL_CLOSE.startswith(rest):
        raise json.JSONDecodeError("Extra data", body, used)
    return value


@dataclass
class ParsedCall:
    """A call read from the model's reply: either `call` or the `error` that makes it unusable."""

    call: ToolCall | None
    error: str | None
    name: str | None = None


def parse_reply(text: str, tools: Sequence[dict[str, Any]]) -> ParsedCall:
    """Read one `<tool_call>` (tags optional) out of `text` and check it against `tools`."""
    body = _call_body(text)
    try:
        value = _read_call(body)
    except json.JSONDecodeError as exc:
        return ParsedCall(None, f"the call is not JSON ({exc.msg})", _guess_name(body))
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return ParsedCall(None, "the call has no function name")
    name = value["name"]
    tool = next((t for t in tools if t["name"] == name), None)
    if tool is None:
        return ParsedCall(None, f"there is no tool named {name!r}", name)
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):  # some models write the arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return ParsedCall(None, "the arguments are not JSON", name)
    problem = check_arguments(tool.get("parameters") or {}, arguments)
    if problem is not None:
        return ParsedCall(None, problem, name)
    return ParsedCall(ToolCall(name, json.dumps(arguments, ensure_ascii=False)), None, name)


def _guess_name(body: str) -> str | None:
    marker = '"name": "'
    start = body.find(marker)
    if start < 0:
        return None
    start += len(marker)
    end = body.find('"', start)
    return body[start:end] if end > start else None


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def check_arguments(schema: dict[str, Any], value: Any, where: str = "arguments") -> str | None:
    """Why `value` does not follow `schema` (types, required, enum, no unknown keys), or None.

    A subset of JSON Schema: what function-tool schemas use. Unknown keywords are ignored.
    """
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        allowed = tuple(t for n in names for t in _TYPES.get(n, (object,)))
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and "boolean" not in names):
            return f"{where} should be {' or '.join(names)}, not {json.dumps(value)}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} should be one of {json.dumps(schema['enum'])}"
    if "const" in schema and value != schema["const"]:
        return f"{where} should be {json.dumps(schema['const'])}"
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key in schema.get("required") or []:
            if key not in value:
                return f"{where} lack the required {key!r}"
        for key, item in value.items():
            if key in properties:
                problem = check_arguments(properties[key], item, f"{where}.{key}")
                if problem is not None:
                    return problem
            elif properties and schema.get("additionalProperties", True) is False:
                return f"{where} has an unknown key {key!r}"
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = check_arguments(schema["items"], item, f"{where}[{i}]")
            if problem is not None:
                return problem
    return None
