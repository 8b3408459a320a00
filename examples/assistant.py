"""A voice assistant with tools: the time and date, a calculator and a unit converter.

Run it (see examples/README.md):

    realtalk run examples/assistant.py                      # browser page
    realtalk run examples/assistant.py --transport console  # microphone/speaker, or --text
    realtalk run examples/assistant.py --transport files --input question.wav --output reply.wav

With OPENAI_API_KEY set it talks to OpenAI; without it, to a local realtalk server started in
the same process.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from realtalk import Agent, AgentSession, JobContext, function_tool
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

INSTRUCTIONS = (
    "You are a friendly, concise voice assistant. Answer in one or two short sentences.\n"
    "You do not know what time, day, date or month it is now: call get_time for any of them.\n"
    "For a quantity with units (miles, kilograms, degrees, liters...) call convert_units, "
    "never calculate.\n"
    "For arithmetic on plain numbers call calculate; never do sums in your head.\n"
    "Say numbers the way a person would."
)
GREETING = "Hi! I can tell the time, do sums and convert units. Ask away."


#: The units convert_units takes, as the names a user says. As an enum in the tool's schema they
#: keep a model from inventing or misspelling one (a local model's decoding is constrained to
#: them; "How many feet are in ten meters?" had been converted from miles). The parameter
#: descriptions keep their examples: reworded to these names, a replay of `bench answers`'
#: questions through Qwen 0.5B lost 6 right tools of 42 (a 0.5B model is that sensitive).
Unit = Literal[
    "meters", "kilometers", "centimeters", "millimeters", "miles", "yards", "feet", "inches",
    "kilograms", "grams", "pounds", "ounces", "liters", "milliliters", "gallons", "cups",
    "meters per second", "kilometers per hour", "miles per hour", "knots",
    "celsius", "fahrenheit", "kelvin",
]  # fmt: skip


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)

    async def on_enter(self) -> None:
        await self.session.say(GREETING)

    @function_tool
    async def get_time(self, timezone: str | None = None) -> dict[str, str]:
        """Get the current time and date (weekday, day, month and year), here or in a place
        the user names. Call this for any question about the time, today, the date, the day
        or the month: you cannot know them.

        Args:
            timezone: The IANA time zone ("Continent/City") of a place the user names;
                leave it out for the user's own time.
        """
        return current_time(timezone)

    @function_tool
    async def calculate(self, expression: str) -> str:
        """Evaluate an arithmetic expression on plain numbers exactly. Not for quantities
        with units: use convert_units for those.

        Args:
            expression: Numbers with + - * / // % ** and parentheses, and sqrt(), abs(),
                round(), pi, e. For example "(17 + 4) * 3".
        """
        return format_number(evaluate(expression))

    @function_tool
    async def convert_units(self, value: float, from_unit: Unit, to_unit: Unit) -> str:
        """Convert a quantity from one unit to another: length, mass, volume, speed or
        temperature (miles, kilometers, pounds, kilograms, liters, gallons, degrees...).
        Always use this, never calculate, when the question names units.

        Args:
            value: The amount to convert, e.g. 5.
            from_unit: The unit it is in, e.g. "km", "miles", "lb", "celsius", "mph".
            to_unit: The unit wanted, e.g. "mi", "kg", "fahrenheit", "km/h".
        """
        result = convert(value, from_unit, to_unit)
        return f"{format_number(value)} {from_unit} = {format_number(result)} {to_unit}"


async def entrypoint(ctx: JobContext) -> None:
    model = OpenAIRealtime(model="gpt-realtime", config=OpenAIRealtimeConfig(voice="alloy"))
    session = AgentSession(agent=Assistant(), model=model)
    await session.start(ctx.transport)


# -- the tools' logic, kept as plain functions so it can be tested and reused ------------------


def current_time(timezone: str | None = None) -> dict[str, str]:
    """The date and time now, in ``timezone`` (IANA name) or the local zone."""
    if timezone:
        try:
            now = datetime.now(ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {timezone!r}, try Europe/Paris") from exc
    else:
        now = datetime.now().astimezone()
    return {
        "time": now.strftime("%H:%M"),
        "date": now.strftime("%A %d %B %Y"),
        "timezone": timezone or now.tzname() or "local",
    }


_MAX_EXPRESSION = 200
_MAX_BITS = 4096  # results beyond ~1200 digits are refused before they are computed
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"sqrt": math.sqrt, "abs": abs, "round": round}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> float | int:
    """Evaluate arithmetic safely: only numbers, operators, a few functions; never ``eval``.

    Raises:
        ValueError: anything that is not plain arithmetic, or a result too large to compute.
    """
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    if not text:
        raise ValueError("empty expression")
    if len(text) > _MAX_EXPRESSION:
        raise ValueError(f"expression longer than {_MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from exc
    try:
        return _eval(tree.body)
    except ZeroDivisionError as exc:
        raise ValueError("division by zero") from exc
    except OverflowError as exc:
        raise ValueError("the result is too large") from exc


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _BINARY[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        return _FUNCTIONS[node.func.id](*(_eval(arg) for arg in node.args))
    raise ValueError(f"unsupported in arithmetic: {ast.unparse(node)!r}")


def _check_power(base: Any, exponent: Any) -> None:
    """Refuse 9 ** 9 ** 9 and the like before spending minutes and gigabytes on it."""
    if abs(base) > 1 and abs(exponent) > 1 and abs(exponent) * math.log2(abs(base)) > _MAX_BITS:
        raise ValueError("the result is too large")


def format_number(x: float | int) -> str:
    """At most 6 decimals, no trailing zeros: 4, 0.333333, 1e+20."""
    if isinstance(x, complex):  # e.g. (-8) ** 0.5
        raise ValueError("the result is not a real number")
    if isinstance(x, int) or (float(x).is_integer() and abs(x) < 1e15):
        return str(int(x))
    return f"{x:.6g}" if abs(x) >= 1e15 or abs(x) < 1e-4 else f"{x:.6f}".rstrip("0").rstrip(".")


# Units: factor to the dimension's base unit (metre, kilogram, litre, metre per second).
_UNITS: dict[str, tuple[str, float]] = {
    "m": ("length", 1.0),
    "km": ("length", 1000.0),
    "cm": ("length", 0.01),
    "mm": ("length", 0.001),
    "mi": ("length", 1609.344),
    "yd": ("length", 0.9144),
    "ft": ("length", 0.3048),
    "in": ("length", 0.0254),
    "kg": ("mass", 1.0),
    "g": ("mass", 0.001),
    "lb": ("mass", 0.45359237),
    "oz": ("mass", 0.028349523125),
    "l": ("volume", 1.0),
    "ml": ("volume", 0.001),
    "gal": ("volume", 3.785411784),
    "cup": ("volume", 0.2365882365),
    "m/s": ("speed", 1.0),
    "km/h": ("speed", 1000.0 / 3600.0),
    "mph": ("speed", 1609.344 / 3600.0),
    "kn": ("speed", 1852.0 / 3600.0),
}
_ALIASES = {
    "meter": "m", "metre": "m", "kilometer": "km", "kilometre": "km", "centimeter": "cm",
    "centimetre": "cm", "millimeter": "mm", "millimetre": "mm", "mile": "mi", "yard": "yd",
    "foot": "ft", "feet": "ft", "inch": "in", "inches": "in", "kilogram": "kg", "kilo": "kg",
    "gram": "g", "pound": "lb", "lbs": "lb", "ounce": "oz", "liter": "l", "litre": "l",
    "milliliter": "ml", "millilitre": "ml", "gallon": "gal", "cups": "cup", "kph": "km/h",
    "kmh": "km/h", "kilometers per hour": "km/h", "kilometres per hour": "km/h",
    "miles per hour": "mph", "meters per second": "m/s", "metres per second": "m/s",
    "knot": "kn", "knots": "kn", "c": "celsius", "°c": "celsius", "f": "fahrenheit",
    "°f": "fahrenheit", "k": "kelvin",
}  # fmt: skip
_TEMPERATURES = ("celsius", "fahrenheit", "kelvin")


def _unit(name: str) -> str:
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _UNITS or key in _TEMPERATURES:
        return key
    singular = key[:-1] if key.endswith("s") else key
    if singular in _ALIASES:
        return _ALIASES[singular]
    if singular in _UNITS or singular in _TEMPERATURES:
        return singular
    raise ValueError(f"unknown unit {name!r}")


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert ``value`` between two units of the same dimension.

    Raises:
        ValueError: an unknown unit, or units of different dimensions (km to kg).
    """
    source, target = _unit(from_unit), _unit(to_unit)
    if source in _TEMPERATURES or target in _TEMPERATURES:
        if source not in _TEMPERATURES or target not in _TEMPERATURES:
            raise ValueError(f"cannot convert {from_unit} to {to_unit}")
        return _from_kelvin(_to_kelvin(value, source), target)
    (source_dim, source_factor), (target_dim, target_factor) = _UNITS[source], _UNITS[target]
    if source_dim != target_dim:
        raise ValueError(f"cannot convert {from_unit} ({source_dim}) to {to_unit} ({target_dim})")
    return value * source_factor / target_factor


def _to_kelvin(value: float, unit: str) -> float:
    if unit == "celsius":
        return value + 273.15
    if unit == "fahrenheit":
        return (value - 32.0) * 5.0 / 9.0 + 273.15
    return value


def _from_kelvin(kelvin: float, unit: str) -> float:
    if unit == "celsius":
        return kelvin - 273.15
    if unit == "fahrenheit":
        return (kelvin - 273.15) * 9.0 / 5.0 + 32.0
    return kelvin


if __name__ == "__main__":  # `python examples/assistant.py [options]` = `realtalk run` on this file
    import sys

    from realtalk.cli import main

    sys.exit(main(["run", __file__, *sys.argv[1:]]))
