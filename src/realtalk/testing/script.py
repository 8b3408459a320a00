"""Rules for the scripted engine, written fluently in a test.

``t.when("seventeen times three").call("calculate", {"expression": "17 * 3"}).then_say(
"Seventeen times three is {output}.")`` becomes a
:class:`~realtalk.server.engines.scripted.ScriptRule` in the test's scripted LLM the moment each
part is given, so rules may be added between turns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from realtalk.server.engines.scripted import ScriptRule

__all__ = ["RuleBuilder"]


class RuleBuilder:
    """One rule under construction; every method returns the builder."""

    def __init__(self, pattern: str, changed: Callable[[], None]) -> None:
        ScriptRule(pattern, say="")  # validate the regex now, where the test wrote it
        self.pattern = pattern
        self._say: str | None = None
        self._call: str | None = None
        self._arguments: dict[str, Any] | str = {}
        self._then_say: str | None = None
        self._on_error: str | None = None
        self._changed = changed

    def say(self, text: str) -> RuleBuilder:
        """Reply with ``text`` (before the call, when there is one)."""
        self._say = text
        return self._update()

    def call(self, tool: str, arguments: dict[str, Any] | str | None = None) -> RuleBuilder:
        """Call ``tool`` with ``arguments`` (a dict, or raw JSON text to test bad arguments)."""
        self._call = tool
        self._arguments = {} if arguments is None else arguments
        return self._update()

    def then_say(self, text: str) -> RuleBuilder:
        """After the tool's result: say ``text``; ``{output}`` stands for the output."""
        self._then_say = text
        return self._update()

    def on_error(self, text: str) -> RuleBuilder:
        """After the tool failed: say ``text``; ``{error}`` stands for the error message."""
        self._on_error = text
        return self._update()

    def rule(self) -> ScriptRule | None:
        """The rule so far, or None while it has neither something to say nor a call."""
        if self._say is None and self._call is None:
            return None
        return ScriptRule(
            self.pattern,
            say=self._say,
            call=self._call,
            arguments=self._arguments,
            then_say=self._then_say,
            on_error=self._on_error,
        )

    def _update(self) -> RuleBuilder:
        self.rule()  # raise here, at the line that made it invalid
        self._changed()
        return self
