"""Fluent expectations over one turn's events, and the failure that tells the story.

In the spirit of LiveKit's ``result.expect``::

    turn.expect.next_event().is_function_call(name="calculate", arguments={"expression": "17*3"})
    turn.expect.next_event().is_function_call_output(contains="51")
    turn.expect.next_event().is_agent_message(contains="51")
    turn.expect.no_more_events()

The cursor walks the *conversation* events of the turn (agent messages, function calls and their
outputs, interruptions, handoffs, errors); the user's own words are checked with
:meth:`Expectations.heard`. Every failure is an :class:`ExpectationFailed` (an AssertionError)
whose message holds what was expected, what came instead, and the whole turn as a timed story.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from realtalk.testing.story import CONVERSATION_TYPES, Event, format_story

__all__ = ["EventAssert", "ExpectationFailed", "Expectations", "TurnResult"]


class ExpectationFailed(AssertionError):
    """An expectation did not hold; the message is the readable story of the turn."""


@dataclass
class TurnResult:
    """One turn of a test conversation: what was said or played, and what happened until the
    agent was listening again.

    Attributes:
        title: what the test did ("speak 'what is seventeen times three'").
        events: every event of the turn, in arrival order (times from the conversation start).
        heard: the user's words as the server transcribed them (spoken turns), else the text.
        done: the agent finished the turn (False when it was cut short by the next input).
    """

    title: str
    events: list[Event] = field(default_factory=list)
    heard: str = ""
    done: bool = False
    input_end_t: float | None = None

    _cursor: Expectations | None = field(default=None, repr=False, compare=False)

    @property
    def expect(self) -> Expectations:
        """The turn's cursor: each ``next_event()`` moves it on (``expect.reset()`` rewinds)."""
        if self._cursor is None or self._cursor.stale:
            self._cursor = Expectations(self)
        return self._cursor

    @property
    def conversation(self) -> list[Event]:
        return [e for e in self.events if e.type in CONVERSATION_TYPES]

    def events_of(self, type: str) -> list[Event]:
        """The turn's events of one type ("interruption", "agent_started_speaking", ...)."""
        return [e for e in self.events if e.type == type]

    @property
    def agent_text(self) -> str:
        """Everything the agent said in the turn, joined."""
        return " ".join(e.text for e in self.events if e.type == "agent_message")

    @property
    def function_calls(self) -> list[Event]:
        return [e for e in self.events if e.type == "function_call"]

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events if e.type == "metrics"]

    @property
    def latency_ms(self) -> float | None:
        """End of the user's input (text sent, or the server heard the end of speech) → the
        agent's first audio played; None when the agent never spoke."""
        if self.input_end_t is None:
            return None
        for e in self.events:
            if e.type == "agent_started_speaking" and e.t >= self.input_end_t:
                return (e.t - self.input_end_t) * 1000.0
        return None

    @property
    def spoken_ms(self) -> float:
        """How much of the agent's voice was played in the turn."""
        return sum(
            float(e.data.get("played_ms") or 0)
            for e in self.events
            if e.type == "agent_stopped_speaking"
        )

    @property
    def tokens(self) -> int:
        return sum(int((m.get("usage") or {}).get("total_tokens", 0)) for m in self.metrics)

    @property
    def cost_usd(self) -> float:
        return sum(float(m.get("cost_usd") or 0.0) for m in self.metrics)

    def story(self, *, mark_event: Event | None = None) -> str:
        mark = None
        if mark_event is not None:
            mark = next((i for i, e in enumerate(self.events) if e is mark_event), None)
        title = f"What happened in {self.title}:"
        text = format_story(self.events, mark=mark, title=title)
        facts = [f"heard: {self.heard!r}"] if self.heard else []
        latency = self.latency_ms
        facts.append(f"latency: {latency:.0f} ms" if latency is not None else "latency: n/a")
        facts.append(f"tokens: {self.tokens}")
        facts.append(f"cost: ${self.cost_usd:.4f}")
        if not self.done:
            facts.append("the turn had not finished")
        return text + "\n    (" + "; ".join(facts) + ")"


def _fail(turn: TurnResult, expected: str, got: str, at: Event | None = None) -> ExpectationFailed:
    return ExpectationFailed(
        f"\nExpected: {expected}\n     Got: {got}\n\n{turn.story(mark_event=at)}"
    )


def _args(**kwargs: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None)


class Expectations:
    """A cursor over a turn's conversation events (see the module docstring)."""

    def __init__(self, turn: TurnResult) -> None:
        self.turn = turn
        self._source = turn.events
        self._events = turn.conversation
        self._count = len(turn.events)
        self._pos = 0

    @property
    def stale(self) -> bool:
        """The turn's events were replaced (it went on after this cursor was made)."""
        return self._source is not self.turn.events or len(self._source) != self._count

    def reset(self) -> Expectations:
        """Back to the first event."""
        self._pos = 0
        return self

    # -- walking ------------------------------------------------------------------------------

    def next_event(self, *, type: str | None = None) -> EventAssert:
        """The next event; with ``type``, the next one of that type (others are skipped)."""
        described = f"next_event({_args(type=type)})"
        while self._pos < len(self._events):
            event = self._events[self._pos]
            self._pos += 1
            if type is None or event.type == type:
                return EventAssert(self.turn, event, described)
        return EventAssert(self.turn, None, described)

    def skip_next(self, count: int = 1) -> Expectations:
        """Skip ``count`` events, which must exist."""
        for _ in range(count):
            if self._pos >= len(self._events):
                raise _fail(self.turn, f"skip_next({count}): {count} more event(s)", "no more")
            self._pos += 1
        return self

    def skip_next_event_if(self, *, type: str) -> Event | None:
        """Skip the next event if it has ``type`` (something that may or may not happen)."""
        if self._pos < len(self._events) and self._events[self._pos].type == type:
            self._pos += 1
            return self._events[self._pos - 1]
        return None

    def no_more_events(self) -> None:
        """Nothing else happened in the turn."""
        if self._pos < len(self._events):
            event = self._events[self._pos]
            raise _fail(self.turn, "no more events", event.describe(), event)

    def __getitem__(self, index: int) -> EventAssert:
        """An event by position (negative from the end), without moving the cursor."""
        try:
            event: Event | None = self._events[index]
        except IndexError:
            event = None
        return EventAssert(self.turn, event, f"expect[{index}]")

    # -- searching ----------------------------------------------------------------------------

    def contains_agent_message(
        self, *, contains: str | None = None, regex: str | None = None,
        any_of: Sequence[str] | None = None,
    ) -> EventAssert:  # fmt: skip
        """Some agent message of the turn matches."""
        described = (
            f"contains_agent_message({_args(contains=contains, regex=regex, any_of=any_of)})"
        )
        return self._find(
            "agent_message",
            described,
            lambda a: a.is_agent_message(contains=contains, regex=regex, any_of=any_of),
        )

    def contains_function_call(
        self, *, name: str | None = None, arguments: dict[str, Any] | None = None
    ) -> EventAssert:
        """Some function call of the turn matches (``arguments``: a subset of the call's)."""
        return self._find(
            "function_call",
            f"contains_function_call({_args(name=name, arguments=arguments)})",
            lambda a: a.is_function_call(name=name, arguments=arguments),
        )

    def contains_interruption(self) -> EventAssert:
        return self._find("interruption", "contains_interruption()", lambda a: a)

    def contains_handoff(self, *, to: str | None = None) -> EventAssert:
        return self._find(
            "handoff", f"contains_handoff({_args(to=to)})", lambda a: a.is_handoff(to=to)
        )

    def _find(self, type_: str, described: str, check: Any) -> EventAssert:
        for event in self._events:
            if event.type != type_:
                continue
            try:
                return check(EventAssert(self.turn, event, described))
            except ExpectationFailed:
                continue
        raise _fail(self.turn, described, f"no such {type_.replace('_', ' ')} in the turn")

    # -- the user's words and the budgets -----------------------------------------------------

    def heard(
        self, *, contains: str | None = None, regex: str | None = None,
        any_of: Sequence[str] | None = None,
    ) -> Expectations:  # fmt: skip
        """The server understood the user's words like this (Whisper on the local engine)."""
        described = f"heard({_args(contains=contains, regex=regex, any_of=any_of)})"
        if not _text_matches(self.turn.heard, contains, regex, any_of):
            raise _fail(self.turn, described, f"heard {self.turn.heard!r}")
        return self

    def within_budget(
        self,
        *,
        latency_ms: float | None = None,
        tokens: int | None = None,
        cost_usd: float | None = None,
    ) -> Expectations:
        """The turn stayed within these limits (latency as :attr:`TurnResult.latency_ms`)."""
        over = []
        turn = self.turn
        if latency_ms is not None:
            measured = turn.latency_ms
            if measured is None:
                over.append(
                    f"latency not measured (the agent never spoke), budget {latency_ms:g} ms"
                )
            elif measured > latency_ms:
                over.append(f"latency {measured:.0f} ms > budget {latency_ms:g} ms")
        if tokens is not None and turn.tokens > tokens:
            over.append(f"tokens {turn.tokens} > budget {tokens}")
        if cost_usd is not None and turn.cost_usd > cost_usd:
            over.append(f"cost ${turn.cost_usd:.4f} > budget ${cost_usd:.4f}")
        if over:
            limits = _args(latency_ms=latency_ms, tokens=tokens, cost_usd=cost_usd)
            raise _fail(turn, f"within_budget({limits})", "; ".join(over))
        return self


def _text_matches(
    text: str, contains: str | None, regex: str | None, any_of: Iterable[str] | None
) -> bool:
    folded = text.casefold()
    if contains is not None and contains.casefold() not in folded:
        return False
    if regex is not None and re.search(regex, text, re.IGNORECASE) is None:
        return False
    return any_of is None or any(option.casefold() in folded for option in any_of)


def _subset(expected: Any, actual: Any) -> bool:
    """``expected`` is contained in ``actual``: dict keys recursively, other values equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(v, actual[k]) for k, v in expected.items()
        )
    return bool(expected == actual)


class EventAssert:
    """One event under test; each ``is_*`` raises :class:`ExpectationFailed` or returns self."""

    def __init__(self, turn: TurnResult, event: Event | None, described: str) -> None:
        self.turn = turn
        self._event = event
        self._described = described

    @property
    def event(self) -> Event:
        if self._event is None:
            raise _fail(self.turn, f"{self._described}: an event", "no more events")
        return self._event

    def _check(self, type_: str, described: str, ok: bool, got: str | None = None) -> EventAssert:
        expected = f"{self._described}.{described}"
        event = self._event
        if event is None:
            raise _fail(self.turn, expected, "no more events (the turn ended there)")
        if event.type != type_:
            raise _fail(self.turn, expected, event.describe(), event)
        if not ok:
            raise _fail(self.turn, expected, got or event.describe(), event)
        return self

    def _is(self, type_: str) -> bool:
        return self._event is not None and self._event.type == type_

    def is_agent_message(
        self, *, contains: str | None = None, regex: str | None = None,
        any_of: Sequence[str] | None = None,
    ) -> EventAssert:  # fmt: skip
        """Something the agent said: containing ``contains``, matching ``regex``, or containing
        one of ``any_of`` (all case-insensitive; all given must hold)."""
        ok = self._is("agent_message") and _text_matches(self.event.text, contains, regex, any_of)
        return self._check(
            "agent_message",
            f"is_agent_message({_args(contains=contains, regex=regex, any_of=any_of)})",
            ok,
        )

    def is_function_call(
        self, *, name: str | None = None, arguments: dict[str, Any] | None = None,
        exact: bool = False,
    ) -> EventAssert:  # fmt: skip
        """A function call, by ``name``; ``arguments`` must be contained in the call's (or equal
        to them with ``exact=True``)."""
        ok = self._is("function_call")
        if ok and name is not None:
            ok = self.event.name == name
        if ok and arguments is not None:
            actual = self.event.arguments
            ok = actual == arguments if exact else _subset(arguments, actual)
        return self._check(
            "function_call",
            f"is_function_call({_args(name=name, arguments=arguments)}"
            + (", exact=True)" if exact else ")"),
            ok,
        )

    def is_function_call_output(
        self, *, name: str | None = None, contains: str | None = None,
        is_error: bool | None = None,
    ) -> EventAssert:  # fmt: skip
        """A tool's output (as the model received it): from ``name``, containing ``contains``;
        ``is_error`` True for a tool that raised, timed out or was called wrongly."""
        ok = self._is("function_call_output")
        if ok and name is not None:
            ok = self.event.name == name
        if ok and contains is not None:
            ok = contains.casefold() in self.event.output.casefold()
        if ok and is_error is not None:
            ok = self.event.is_error == is_error
        return self._check(
            "function_call_output",
            f"is_function_call_output({_args(name=name, contains=contains, is_error=is_error)})",
            ok,
        )

    def is_interruption(self) -> EventAssert:
        """The agent's voice was cut off (the user barged in, or the code interrupted it)."""
        return self._check("interruption", "is_interruption()", True)

    def is_handoff(self, *, to: str | None = None, from_agent: str | None = None) -> EventAssert:
        """The conversation was handed to another agent (the session's ``handoff`` event):
        ``to`` and ``from_agent`` match the agents' names."""
        ok = True
        if self._is("handoff"):
            data = self.event.data
            ok = (to is None or data.get("to") == to) and (
                from_agent is None or data.get("from") == from_agent
            )
        return self._check("handoff", f"is_handoff({_args(to=to, from_agent=from_agent)})", ok)

    def is_error(self, *, contains: str | None = None) -> EventAssert:
        """An error the session reported."""
        ok = self._is("error") and (
            contains is None
            or contains.casefold() in str(self.event.data.get("message")).casefold()
        )
        return self._check("error", f"is_error({_args(contains=contains)})", ok)
