"""Per-session metrics: latency of each turn, tokens and cost of each response.

A session owns one :class:`SessionMetrics` (there is no global one) and calls its methods as
events happen; each finished turn comes back as a :class:`TurnMetrics`. The two latencies of a
turn are measured from the end of the user's speech on the audio clock (when the last spoken
sample was captured, mapped back from the server's ``audio_end_ms``; not when ``speech_stopped``
arrived, which is a silence rule later):

- ``model_latency_ms``: until the first audio of the reply is *received* (model + network);
- ``latency_ms``: until that audio is *played* (what the user actually waits for).

Token usage is read from each ``response.done`` and kept per response, so a turn with a tool call
and a follow-up response counts both. Cached input tokens are a subset of the input tokens: they
are billed at the cached price *instead of* the input price, never on top of it. Input
transcription is billed separately (``conversation.item.input_audio_transcription.completed``
carries its usage) and is included in the turn's cost.

Prices are USD per 1M tokens. The defaults below were taken from published price lists when this
was written; check https://openai.com/api/pricing and pass your own :class:`PriceTable` when they
differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_PRICES",
    "DEFAULT_TRANSCRIPTION_PRICES",
    "PriceTable",
    "ResponseMetrics",
    "SessionMetrics",
    "TranscriptionPrices",
    "TranscriptionUsage",
    "TurnMetrics",
    "Usage",
    "cost",
    "transcription_cost",
]

_PER_TOKEN = 1e-6  # prices are per 1M tokens


def _count(value: Any) -> int:
    """A token count from JSON: missing, null or malformed fields count as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _details(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# -- usage ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Token usage of one or more responses. Cached counts are part of the input counts."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    input_image_tokens: int = 0
    cached_tokens: int = 0
    cached_text_tokens: int = 0
    cached_audio_tokens: int = 0
    cached_image_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0

    @classmethod
    def from_response_usage(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read the ``usage`` object of a GA ``response.done`` (None or {} gives zero usage).

        When a server leaves out the per-modality details, input and output count as text, and
        cached tokens are assigned to text, then audio, then image.
        """
        if not usage:
            return cls()
        input_tokens = _count(usage.get("input_tokens"))
        output_tokens = _count(usage.get("output_tokens"))
        total_tokens = _count(usage.get("total_tokens")) or input_tokens + output_tokens

        input_details = _details(usage.get("input_token_details"))
        if input_details:
            text = _count(input_details.get("text_tokens"))
            audio = _count(input_details.get("audio_tokens"))
            image = _count(input_details.get("image_tokens"))
        else:
            text, audio, image = input_tokens, 0, 0

        cached = _count(input_details.get("cached_tokens"))
        cached_details = _details(input_details.get("cached_tokens_details"))
        if cached_details:
            cached_text = _count(cached_details.get("text_tokens"))
            cached_audio = _count(cached_details.get("audio_tokens"))
            cached_image = _count(cached_details.get("image_tokens"))
        else:
            cached_text = min(cached, text)
            cached_audio = min(cached - cached_text, audio)
            cached_image = min(cached - cached_text - cached_audio, image)

        output_details = _details(usage.get("output_token_details"))
        if output_details:
            output_text = _count(output_details.get("text_tokens"))
            output_audio = _count(output_details.get("audio_tokens"))
        else:
            output_text, output_audio = output_tokens, 0

        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total_tokens,
            input_text_tokens=text,
            input_audio_tokens=audio,
            input_image_tokens=image,
            cached_tokens=cached,
            cached_text_tokens=cached_text,
            cached_audio_tokens=cached_audio,
            cached_image_tokens=cached_image,
            output_text_tokens=output_text,
            output_audio_tokens=output_audio,
        )

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Usage)))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class TranscriptionUsage:
    """Usage of input audio transcription: tokens, or seconds for per-minute models."""

    input_tokens: int = 0
    input_audio_tokens: int = 0
    input_text_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0

    @classmethod
    def from_dict(cls, usage: Mapping[str, Any] | None) -> TranscriptionUsage:
        """Read ``usage`` of ``conversation.item.input_audio_transcription.completed``.

        It is either ``{"type": "tokens", input_tokens, output_tokens, input_token_details}`` or
        ``{"type": "duration", "seconds": ...}``.
        """
        if not usage:
            return cls()
        seconds = usage.get("seconds")
        if usage.get("type") == "duration" or (seconds is not None and "input_tokens" not in usage):
            return cls(seconds=float(seconds) if isinstance(seconds, int | float) else 0.0)
        input_tokens = _count(usage.get("input_tokens"))
        details = _details(usage.get("input_token_details"))
        if details:
            audio = _count(details.get("audio_tokens"))
            text = _count(details.get("text_tokens"))
        else:
            audio, text = input_tokens, 0
        return cls(
            input_tokens=input_tokens,
            input_audio_tokens=audio,
            input_text_tokens=text,
            output_tokens=_count(usage.get("output_tokens")),
        )

    def __add__(self, other: TranscriptionUsage) -> TranscriptionUsage:
        if not isinstance(other, TranscriptionUsage):
            return NotImplemented
        return TranscriptionUsage(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(TranscriptionUsage))
        )

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


# -- prices -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TranscriptionPrices:
    """Prices of an input transcription model: USD per 1M tokens, or per minute of audio."""

    audio_input: float = 0.0
    text_input: float = 0.0
    output: float = 0.0
    per_minute: float = 0.0
    known: bool = True


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Prices of a realtime model in USD per 1M tokens, plus its input transcription prices.

    ``known`` is False for a table made up for a model we have no prices for (costs are then 0).
    Build your own (or use :func:`dataclasses.replace`) to override any figure.
    """

    text_input: float = 0.0
    text_cached_input: float = 0.0
    text_output: float = 0.0
    audio_input: float = 0.0
    audio_cached_input: float = 0.0
    audio_output: float = 0.0
    image_input: float = 0.0
    image_cached_input: float = 0.0
    transcription: TranscriptionPrices = TranscriptionPrices(known=False)
    known: bool = True

    @classmethod
    def for_model(
        cls,
        model: str,
        *,
        transcription_model: str | None = None,
        prices: Mapping[str, PriceTable] | None = None,
        transcription_prices: Mapping[str, TranscriptionPrices] | None = None,
    ) -> PriceTable:
        """The prices of ``model``: the entry with the longest name that ``model`` starts with.

        So ``gpt-realtime-2025-08-28`` uses ``gpt-realtime`` and ``gpt-realtime-mini-...`` uses
        ``gpt-realtime-mini``. An unknown model gets zero prices and ``known=False``; so does an
        unknown transcription model (in ``transcription``). Pass ``prices`` /
        ``transcription_prices`` to use your own tables, e.g. ``{**DEFAULT_PRICES, ...}``.
        """
        found = _longest_prefix(model, DEFAULT_PRICES if prices is None else prices)
        table = found if found is not None else cls(known=False)
        if transcription_model is None:
            return table
        transcription = _longest_prefix(
            transcription_model,
            DEFAULT_TRANSCRIPTION_PRICES if transcription_prices is None else transcription_prices,
        )
        return replace(table, transcription=transcription or TranscriptionPrices(known=False))


V = TypeVar("V")


def _longest_prefix(name: str, table: Mapping[str, V]) -> V | None:
    matches = [key for key in table if name.startswith(key)]
    return table[max(matches, key=len)] if matches else None


_MINI_PRICES = PriceTable(
    text_input=0.60,
    text_cached_input=0.06,
    text_output=2.40,
    audio_input=10.00,
    audio_cached_input=0.30,
    audio_output=20.00,
    image_input=0.80,
    image_cached_input=0.08,
)

DEFAULT_PRICES: Mapping[str, PriceTable] = MappingProxyType(
    {
        "gpt-realtime": PriceTable(
            text_input=4.00,
            text_cached_input=0.40,
            text_output=16.00,
            audio_input=32.00,
            audio_cached_input=0.40,
            audio_output=64.00,
            image_input=5.00,
            image_cached_input=0.50,
        ),
        "gpt-realtime-mini": _MINI_PRICES,
        # Successor of gpt-realtime-mini; assumed to keep its prices.
        "gpt-realtime-2.1-mini": _MINI_PRICES,
    }
)
"""Realtime model prices by model-name prefix (read-only; copy it to change it)."""

DEFAULT_TRANSCRIPTION_PRICES: Mapping[str, TranscriptionPrices] = MappingProxyType(
    {
        "whisper-1": TranscriptionPrices(per_minute=0.006),
        "gpt-4o-transcribe": TranscriptionPrices(audio_input=6.00, text_input=2.50, output=10.00),
        "gpt-4o-mini-transcribe": TranscriptionPrices(
            audio_input=3.00, text_input=1.25, output=5.00
        ),
        "gpt-realtime-whisper": TranscriptionPrices(per_minute=0.017),
    }
)
"""Input transcription prices by model-name prefix (read-only)."""


def cost(usage: Usage, prices: PriceTable) -> float:
    """USD cost of ``usage``: uncached input at the input price, cached at the cached price."""
    return _PER_TOKEN * (
        max(usage.input_text_tokens - usage.cached_text_tokens, 0) * prices.text_input
        + usage.cached_text_tokens * prices.text_cached_input
        + max(usage.input_audio_tokens - usage.cached_audio_tokens, 0) * prices.audio_input
        + usage.cached_audio_tokens * prices.audio_cached_input
        + max(usage.input_image_tokens - usage.cached_image_tokens, 0) * prices.image_input
        + usage.cached_image_tokens * prices.image_cached_input
        + usage.output_text_tokens * prices.text_output
        + usage.output_audio_tokens * prices.audio_output
    )


def transcription_cost(usage: TranscriptionUsage, prices: TranscriptionPrices) -> float:
    """USD cost of input transcription, per token or per minute as the usage says."""
    return (
        _PER_TOKEN
        * (
            usage.input_audio_tokens * prices.audio_input
            + usage.input_text_tokens * prices.text_input
            + usage.output_tokens * prices.output
        )
        + usage.seconds / 60.0 * prices.per_minute
    )


# -- turns ------------------------------------------------------------------------------------


@dataclass(slots=True)
class ResponseMetrics:
    """One model response. ``status`` stays None until its ``response.done`` arrives."""

    response_id: str
    created_at: float | None = None
    done_at: float | None = None
    status: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "response_id": self.response_id,
            "created_at": self.created_at,
            "done_at": self.done_at,
            "status": self.status,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
        }


def _ms(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else (end - start) * 1000.0


@dataclass(slots=True)
class TurnMetrics:
    """One turn: the user speaks (or not, for a greeting), the agent answers in one or more
    responses (a tool call and its follow-up are two). Timestamps come from the session's clock.
    """

    index: int
    user_speech_started_at: float | None = None
    user_speech_end_at: float | None = None
    first_audio_received_at: float | None = None
    first_audio_played_at: float | None = None
    responses: list[ResponseMetrics] = field(default_factory=list)
    input_transcription_usage: TranscriptionUsage = field(default_factory=TranscriptionUsage)
    transcription_cost_usd: float = 0.0
    tool_calls: list[str] = field(default_factory=list)
    interrupted: bool = False
    #: False when the model has no prices (a local server): its cost is not a dollar figure
    priced: bool = True

    @property
    def latency_ms(self) -> float | None:
        """End of user speech → first reply audio played: what the user waits for."""
        return _ms(self.user_speech_end_at, self.first_audio_played_at)

    @property
    def model_latency_ms(self) -> float | None:
        """End of user speech → first reply audio received from the model."""
        return _ms(self.user_speech_end_at, self.first_audio_received_at)

    @property
    def usage(self) -> Usage:
        """Token usage summed over all responses of the turn."""
        return sum((response.usage for response in self.responses), Usage())

    @property
    def cost_usd(self) -> float:
        """Cost of all responses of the turn plus its input transcription."""
        return sum(r.cost_usd for r in self.responses) + self.transcription_cost_usd

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (for logs, the browser page, benchmarks)."""
        return {
            "index": self.index,
            "user_speech_started_at": self.user_speech_started_at,
            "user_speech_end_at": self.user_speech_end_at,
            "first_audio_received_at": self.first_audio_received_at,
            "first_audio_played_at": self.first_audio_played_at,
            "latency_ms": self.latency_ms,
            "model_latency_ms": self.model_latency_ms,
            "usage": self.usage.to_dict(),
            "input_transcription_usage": self.input_transcription_usage.to_dict(),
            "cost_usd": self.cost_usd,
            "responses": [response.to_dict() for response in self.responses],
            "tool_calls": list(self.tool_calls),
            "interrupted": self.interrupted,
            "priced": self.priced,
        }


class SessionMetrics:
    """Collects the turns of one session; the session calls one method per event.

    Every method that records a time takes ``t`` (from the same clock) or reads the injected
    ``clock`` (default :func:`time.monotonic`). A turn starts with the first event after the
    previous :meth:`turn_completed`. A ``response.done`` that arrives after its turn was
    completed still updates that turn's response, so no usage is lost.

    Args:
        prices: prices used for costs; ``PriceTable.for_model(model)``. Default: zero prices.
        clock: the time source, in seconds.
    """

    def __init__(
        self, prices: PriceTable | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.prices = prices if prices is not None else PriceTable(known=False)
        self._clock = clock
        self._turns: list[TurnMetrics] = []
        self._current: TurnMetrics | None = None
        self._pending: dict[str, ResponseMetrics] = {}  # created, not yet done

    @property
    def turns(self) -> list[TurnMetrics]:
        """Completed turns, oldest first."""
        return list(self._turns)

    @property
    def current_turn(self) -> TurnMetrics | None:
        return self._current

    # -- events ---------------------------------------------------------------------------------

    def user_speech_started(self, t: float | None = None) -> None:
        turn = self._turn()
        if turn.user_speech_started_at is None:
            turn.user_speech_started_at = self._now(t)

    def user_speech_ended(self, t: float | None = None) -> None:
        """Record the end of user speech; the latest one in a turn counts."""
        self._turn().user_speech_end_at = self._now(t)

    def response_created(self, response_id: str, t: float | None = None) -> None:
        response = ResponseMetrics(response_id=response_id, created_at=self._now(t))
        self._pending[response_id] = response
        self._turn().responses.append(response)

    def first_audio_received(self, t: float | None = None) -> None:
        """Record reply audio arriving; only the first call of a turn counts."""
        turn = self._turn()
        if turn.first_audio_received_at is None:
            turn.first_audio_received_at = self._now(t)

    def first_audio_played(self, t: float | None = None) -> None:
        """Record reply audio starting to play; only the first call of a turn counts."""
        turn = self._turn()
        if turn.first_audio_played_at is None:
            turn.first_audio_played_at = self._now(t)

    def response_done(self, response: Mapping[str, Any], t: float | None = None) -> ResponseMetrics:
        """Record a ``response.done``'s ``response`` object: status, usage and cost."""
        response_id = str(response.get("id") or "")
        metrics = self._pending.pop(response_id, None)
        if metrics is None:  # its response.created was not seen
            metrics = ResponseMetrics(response_id=response_id)
            self._turn().responses.append(metrics)
        metrics.done_at = self._now(t)
        status = response.get("status")
        metrics.status = status if isinstance(status, str) else None
        usage = response.get("usage")
        metrics.usage = Usage.from_response_usage(usage if isinstance(usage, Mapping) else None)
        metrics.cost_usd = cost(metrics.usage, self.prices)
        return metrics

    def transcription_usage(self, usage: Mapping[str, Any] | None) -> None:
        """Record the usage of one input transcription (billed separately from responses)."""
        parsed = TranscriptionUsage.from_dict(usage)
        turn = self._turn()
        turn.input_transcription_usage = turn.input_transcription_usage + parsed
        turn.transcription_cost_usd += transcription_cost(parsed, self.prices.transcription)

    def tool_called(self, name: str) -> None:
        self._turn().tool_calls.append(name)

    def interrupted(self) -> None:
        self._turn().interrupted = True

    def turn_completed(self) -> TurnMetrics:
        """Close the current turn (an empty one if nothing happened) and return it."""
        turn = self._turn()
        self._turns.append(turn)
        self._current = None
        return turn

    # -- totals ---------------------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        """Token usage of every response so far, the current turn included."""
        return sum((turn.usage for turn in self._all_turns()), Usage())

    @property
    def transcription(self) -> TranscriptionUsage:
        return sum(
            (turn.input_transcription_usage for turn in self._all_turns()), TranscriptionUsage()
        )

    @property
    def cost_usd(self) -> float:
        return sum(turn.cost_usd for turn in self._all_turns())

    def to_dict(self) -> dict[str, Any]:
        return {
            "turns": [turn.to_dict() for turn in self._all_turns()],
            "usage": self.usage.to_dict(),
            "input_transcription_usage": self.transcription.to_dict(),
            "cost_usd": self.cost_usd,
            "prices_known": self.prices.known,
        }

    def _all_turns(self) -> Iterable[TurnMetrics]:
        yield from self._turns
        if self._current is not None:
            yield self._current

    def _turn(self) -> TurnMetrics:
        if self._current is None:
            self._current = TurnMetrics(index=len(self._turns), priced=self.prices.known)
        return self._current

    def _now(self, t: float | None) -> float:
        return self._clock() if t is None else t
