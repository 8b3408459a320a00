"""OpenAIRealtimeConfig: the seed's settings, the GA options, and their translation to a GA session.

The seed took the SDK's *beta* pydantic types (``openai.types.beta.realtime.session.TurnDetection``
and ``InputAudioTranscription``) and sent beta fields that GA servers reject. Here every setting is
accepted in any of three spellings — a beta SDK object, a GA SDK object (``openai.types.realtime``)
or a plain dict — and normalised to one GA dict when the config is built, so a mistake is reported
at construction time, not as a server error half-way through a call. The ``openai`` package is never
imported: SDK objects are read through their ``model_dump()``.

Settings that GA no longer has are kept for compatibility and documented as such:

- ``temperature``: GA Realtime has no temperature. The field stays (the seed's users set it) but it
  is never sent.
- ``modalities``: GA's ``output_modalities`` is either ``["audio"]`` (speech with a transcript) or
  ``["text"]``. ``"audio"`` in ``modalities`` maps to ``["audio"]``, anything else to ``["text"]``.
  Input audio is accepted in both cases.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtalk.errors import ConfigurationError
from realtalk.media.frame import check_format
from realtalk.protocol import AudioFormat
from realtalk.protocol.session import validate_session

if TYPE_CHECKING:
    from realtalk.metrics import PriceTable

__all__ = [
    "DEFAULT_INSTRUCTIONS",
    "DEFAULT_TRANSCRIPTION_MODEL",
    "OpenAIRealtimeConfig",
    "ReconnectPolicy",
    "build_session",
    "normalize_audio_format",
    "normalize_noise_reduction",
    "normalize_transcription",
    "normalize_turn_detection",
    "semantic_vad",
    "server_vad",
]

DEFAULT_VOICE = "alloy"
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOOL_CHOICE = "auto"
DEFAULT_TRANSCRIPTION_MODEL = "gpt-4o-mini-transcribe"
#: What the seed sent when the agent had no instructions.
DEFAULT_INSTRUCTIONS = "You are a helpful assistant that can answer questions and help with tasks."

_SERVER_VAD_KEYS = frozenset(
    {
        "type",
        "threshold",
        "prefix_padding_ms",
        "silence_duration_ms",
        "idle_timeout_ms",
        "create_response",
        "interrupt_response",
    }
)
_SEMANTIC_VAD_KEYS = frozenset({"type", "eagerness", "create_response", "interrupt_response"})
_EAGERNESS = ("low", "medium", "high", "auto")
_TRANSCRIPTION_KEYS = frozenset({"model", "language", "languages", "prompt", "keywords", "delay"})
_NOISE_REDUCTION = ("near_field", "far_field")
_TOOL_CHOICES = ("auto", "none", "required")


def server_vad(
    *,
    threshold: float = 0.5,
    prefix_padding_ms: int = 300,
    silence_duration_ms: int = 200,
    idle_timeout_ms: int | None = None,
    create_response: bool = True,
    interrupt_response: bool = True,
) -> dict[str, Any]:
    """Server voice activity detection (the default): a turn ends after a silence."""
    td: dict[str, Any] = {
        "type": "server_vad",
        "threshold": threshold,
        "prefix_padding_ms": prefix_padding_ms,
        "silence_duration_ms": silence_duration_ms,
        "create_response": create_response,
        "interrupt_response": interrupt_response,
    }
    if idle_timeout_ms is not None:
        td["idle_timeout_ms"] = idle_timeout_ms
    return td


def semantic_vad(
    *, eagerness: str = "auto", create_response: bool = True, interrupt_response: bool = True
) -> dict[str, Any]:
    """Semantic VAD: the model judges whether the user finished; ``eagerness`` trades latency
    ("high") against cutting the user off less often ("low")."""
    return {
        "type": "semantic_vad",
        "eagerness": eagerness,
        "create_response": create_response,
        "interrupt_response": interrupt_response,
    }


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How an unexpected disconnect is retried: exponential backoff with jitter.

    Attempt ``n`` (from 1) waits a random time in ``[d/2, d]`` with
    ``d = min(backoff_max_s, backoff_base_s * 2 ** (n - 1))``; ``max_attempts=0`` turns
    reconnection off. The attempt count starts again only once a link stayed open
    ``stable_s`` seconds: a server that confirms the session and drops at once uses up the
    attempts instead of being retried forever.
    """

    max_attempts: int = 6
    backoff_base_s: float = 0.25
    backoff_max_s: float = 8.0
    stable_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 0:
            raise ConfigurationError(
                f"reconnect.max_attempts must be >= 0, got {self.max_attempts}"
            )
        if not 0 <= self.backoff_base_s <= self.backoff_max_s:
            raise ConfigurationError(
                "reconnect needs 0 <= backoff_base_s <= backoff_max_s, got "
                f"{self.backoff_base_s} and {self.backoff_max_s}"
            )
        if not self.stable_s >= 0:
            raise ConfigurationError(f"reconnect.stable_s must be >= 0, got {self.stable_s}")

    def delay_s(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempt - 1))
        return cap * (0.5 + 0.5 * rand())


def _factory_server_vad() -> dict[str, Any] | None:
    return server_vad()


def _factory_transcription() -> dict[str, Any] | None:
    return {"model": DEFAULT_TRANSCRIPTION_MODEL}


def _factory_modalities() -> list[str]:
    return ["text", "audio"]


@dataclass
class OpenAIRealtimeConfig:
    """Configuration for the OpenAI Realtime (GA) model.

    Seed settings (same names and defaults):
        voice: voice for audio output ("alloy", "marin", ... or ``{"id": "voice_..."}``).
        temperature: kept for compatibility; GA Realtime has no temperature, so it is never sent.
        turn_detection: server VAD by default (threshold 0.5, 300 ms prefix, 200 ms silence,
            create_response and interrupt_response on). Accepts a beta or GA SDK object, a dict,
            :func:`server_vad` / :func:`semantic_vad`, or ``None`` to switch server VAD off
            (sent as ``null``: push-to-talk, the app commits audio and asks for replies).
        input_audio_transcription: transcription of the user's audio (default model
            ``gpt-4o-mini-transcribe``); ``None`` turns it off (no user transcripts).
        tool_choice: "auto", "none", "required" or ``{"type": "function", "name": ...}``.
        modalities: ``"audio"`` in the list → spoken replies (``output_modalities=["audio"]``),
            otherwise text replies (``["text"]``).

    GA options (``None`` leaves the server's default):
        noise_reduction: "near_field" (headsets), "far_field" (laptops, rooms), a dict or None.
        speed: speech speed 0.25–1.5.
        max_output_tokens: 1–4096 or "inf".
        input_audio_format / output_audio_format: "pcm16" (24 kHz), "g711_ulaw", "g711_alaw", or a
            GA object (``{"type": "audio/pcmu"}``). With G.711 (phone audio) the plugin encodes
            and decodes at the edges: :meth:`handle_audio_input` still takes PCM frames, and the
            model's AudioOutput receives 8 kHz PCM when the plugin creates it (no resampling on a
            phone path); a given AudioOutput receives audio at its own rate.
        tracing: "auto" or ``{"workflow_name", "group_id", "metadata"}``.
        truncation: "auto", "disabled" or a retention-ratio dict.

    Client settings (never sent):
        input_sample_rate / input_channels: the format of raw ``bytes`` given to
            ``handle_audio_input`` (an AudioFrame carries its own).
        append_batch_ms: input audio is sent in appends of this many milliseconds (a WebRTC
            or microphone frame each by default: the server's VAD hears the end of speech up
            to a batch late, so the end of a turn waits half a batch on average).
        max_image_fps / image_max_size: video frames kept per second and their bounding box
            (the aspect ratio is kept).
        tool_timeout_s: an overall limit per tool call on top of each tool's own timeout.
        reconnect: the :class:`ReconnectPolicy` after an unexpected disconnect.
        session_recycle_s: open a fresh session (replaying the conversation) after this long,
            once the current reply is done, before OpenAI's 60-minute limit; None disables.
        connect_timeout_s: limit for the handshake plus the server's ``session.updated``.
        response_timeout_s: a ``response.create`` unanswered, or a response with no event,
            for this long is reported (``response_timeout``) and the queue moves on.
        max_output_buffer_s: agent audio queued ahead of playout at most; deltas beyond it are
            dropped and reported (``audio_overflow``).
        prices: a :class:`realtalk.metrics.PriceTable` overriding the built-in prices.
    """

    voice: str | dict[str, str] = DEFAULT_VOICE
    temperature: float = DEFAULT_TEMPERATURE
    turn_detection: Any = field(default_factory=_factory_server_vad)
    input_audio_transcription: Any = field(default_factory=_factory_transcription)
    tool_choice: Any = DEFAULT_TOOL_CHOICE
    modalities: list[str] = field(default_factory=_factory_modalities)
    noise_reduction: Any = None
    speed: float | None = None
    max_output_tokens: int | str | None = None
    input_audio_format: Any = "pcm16"
    output_audio_format: Any = "pcm16"
    tracing: Any = None
    truncation: Any = None
    input_sample_rate: int = 48000
    input_channels: int = 1
    append_batch_ms: int = 20
    max_image_fps: float = 1.0
    image_max_size: tuple[int, int] = (1024, 1024)
    tool_timeout_s: float | None = None
    reconnect: ReconnectPolicy = field(default_factory=ReconnectPolicy)
    session_recycle_s: float | None = 55 * 60.0
    connect_timeout_s: float = 15.0
    response_timeout_s: float = 45.0
    max_output_buffer_s: float = 300.0
    prices: PriceTable | None = None

    def __post_init__(self) -> None:
        # Normalise once now, so a bad value fails here with a message naming the field.
        build_session(self, instructions=None, tools=[])
        try:
            check_format(self.input_sample_rate, self.input_channels)
        except ValueError as exc:
            raise ConfigurationError(f"input_sample_rate/input_channels: {exc}") from exc
        if not isinstance(self.append_batch_ms, int) or not 10 <= self.append_batch_ms <= 1000:
            raise ConfigurationError(
                f"append_batch_ms must be an int in 10..1000, got {self.append_batch_ms!r}"
            )
        if not self.max_image_fps > 0:
            raise ConfigurationError(f"max_image_fps must be > 0, got {self.max_image_fps}")
        if len(self.image_max_size) != 2 or min(self.image_max_size) < 16:
            raise ConfigurationError(
                "image_max_size must be (width, height) of at least 16 px, "
                f"got {self.image_max_size}"
            )
        for name in ("tool_timeout_s", "session_recycle_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be > 0 or None, got {value}")
        for name in ("response_timeout_s", "max_output_buffer_s"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.connect_timeout_s > 0:
            raise ConfigurationError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s}")
        if not isinstance(self.reconnect, ReconnectPolicy):
            raise ConfigurationError("reconnect must be a ReconnectPolicy")

    # -- derived values the plugin uses --------------------------------------------------------

    @property
    def output_modalities(self) -> list[str]:
        return ["audio"] if "audio" in self.modalities else ["text"]

    @property
    def turn_detection_dict(self) -> dict[str, Any] | None:
        return normalize_turn_detection(self.turn_detection)

    @property
    def input_format(self) -> AudioFormat:
        return normalize_audio_format(self.input_audio_format, "input_audio_format")

    @property
    def output_format(self) -> AudioFormat:
        return normalize_audio_format(self.output_audio_format, "output_audio_format")

    @property
    def interrupt_response(self) -> bool:
        """Whether the user's speech interrupts the agent (server VAD with interrupt_response)."""
        td = self.turn_detection_dict
        return bool(td and td.get("interrupt_response", True))


# --- normalisation ---------------------------------------------------------------------------


def _as_dict(value: Any, name: str) -> dict[str, Any]:
    """A dict from a dict or a pydantic SDK object (beta or GA), dropping unset/None fields."""
    if isinstance(value, Mapping):
        return {k: v for k, v in value.items() if v is not None}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump(exclude_none=True)
        if isinstance(dumped, dict):
            return dumped
    raise ConfigurationError(
        f"{name} must be a dict or an openai SDK object, got {type(value).__name__}"
    )


def _check_keys(d: Mapping[str, Any], allowed: frozenset[str], name: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ConfigurationError(f"{name}: unknown field(s) {extra}; allowed: {sorted(allowed)}")


def normalize_turn_detection(value: Any) -> dict[str, Any] | None:
    """GA turn detection dict, or None (server VAD off)."""
    if value is None:
        return None
    td = _as_dict(value, "turn_detection")
    kind = td.setdefault("type", "server_vad")
    if kind == "server_vad":
        _check_keys(td, _SERVER_VAD_KEYS, "turn_detection (server_vad)")
    elif kind == "semantic_vad":
        _check_keys(td, _SEMANTIC_VAD_KEYS, "turn_detection (semantic_vad)")
        if td.get("eagerness", "auto") not in _EAGERNESS:
            raise ConfigurationError(
                f"turn_detection.eagerness must be one of {_EAGERNESS}, got {td['eagerness']!r}"
            )
    else:
        raise ConfigurationError(
            f"turn_detection.type must be 'server_vad' or 'semantic_vad', got {kind!r}"
        )
    _check_session({"audio": {"input": {"turn_detection": td}}}, "turn_detection")
    return td


def _check_session(session: dict[str, Any], name: str) -> None:
    """The protocol's own rules (:mod:`realtalk.protocol.session`): one source of limits for
    what we send and what the local server accepts."""
    problem = validate_session({"type": "realtime", **session})
    if problem is not None:
        where = (problem.param or "").removeprefix("session.audio.input.").removeprefix("session.")
        raise ConfigurationError(f"{name}: {problem.message} ({where or 'session'})")


def normalize_transcription(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    tr = _as_dict(value, "input_audio_transcription")
    _check_keys(tr, _TRANSCRIPTION_KEYS, "input_audio_transcription")
    if not isinstance(tr.get("model"), str) or not tr["model"]:
        raise ConfigurationError(
            "input_audio_transcription needs a model, e.g. {'model': 'gpt-4o-mini-transcribe'}"
        )
    return tr


def normalize_noise_reduction(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    nr = {"type": value} if isinstance(value, str) else _as_dict(value, "noise_reduction")
    _check_keys(nr, frozenset({"type", "strength"}), "noise_reduction")
    if nr.get("type") not in _NOISE_REDUCTION:
        raise ConfigurationError(
            f"noise_reduction must be 'near_field', 'far_field' or None, got {nr.get('type')!r}"
        )
    return nr


def normalize_audio_format(value: Any, name: str = "audio format") -> AudioFormat:
    raw = value if isinstance(value, str) else _as_dict(value, name)
    try:
        return AudioFormat.parse(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{name}: {exc} (use 'pcm16', 'g711_ulaw', 'g711_alaw' or a GA format object)"
        ) from exc


def _normalize_voice(value: Any) -> str | dict[str, str]:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return {"id": value["id"]}
    raise ConfigurationError(f"voice must be a name or {{'id': 'voice_...'}}, got {value!r}")


def _normalize_tool_choice(value: Any) -> str | dict[str, Any]:
    if isinstance(value, str):
        if value not in _TOOL_CHOICES:
            raise ConfigurationError(f"tool_choice must be one of {_TOOL_CHOICES}, got {value!r}")
        return value
    choice = _as_dict(value, "tool_choice")
    if choice.get("type") != "function" or not isinstance(choice.get("name"), str):
        raise ConfigurationError(
            "tool_choice as an object must be {'type': 'function', 'name': '<tool name>'}"
        )
    return choice


def _normalize_modalities(value: Any) -> list[str]:
    if (
        not isinstance(value, list | tuple)
        or not value
        or any(m not in ("text", "audio") for m in value)
    ):
        raise ConfigurationError(
            f"modalities must be a non-empty list of 'text'/'audio', got {value!r}"
        )
    return ["audio"] if "audio" in value else ["text"]


def _normalize_max_output_tokens(value: Any) -> int | str | None:
    if value is None or value == "inf":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
        raise ConfigurationError(f"max_output_tokens must be 1..4096 or 'inf', got {value!r}")
    return value


def _normalize_choice_or_dict(value: Any, name: str, choices: tuple[str, ...]) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        if value not in choices:
            raise ConfigurationError(f"{name} must be one of {choices} or an object, got {value!r}")
        return value
    return _as_dict(value, name)


def build_session(
    config: OpenAIRealtimeConfig, *, instructions: str | None, tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """The GA ``session`` object of a ``session.update`` (without ``type``, which the protocol
    builder adds). Every client-side setting is left out; ``temperature`` is never sent."""
    speed = config.speed
    if speed is not None and not 0.25 <= speed <= 1.5:
        raise ConfigurationError(f"speed must be in 0.25..1.5, got {speed}")
    output: dict[str, Any] = {
        "format": normalize_audio_format(
            config.output_audio_format, "output_audio_format"
        ).to_dict(),
        "voice": _normalize_voice(config.voice),
    }
    if speed is not None:
        output["speed"] = float(speed)
    session: dict[str, Any] = {
        "output_modalities": _normalize_modalities(config.modalities),
        "instructions": instructions or DEFAULT_INSTRUCTIONS,
        "tools": tools,
        "tool_choice": _normalize_tool_choice(config.tool_choice),
        "audio": {
            "input": {
                "format": normalize_audio_format(
                    config.input_audio_format, "input_audio_format"
                ).to_dict(),
                "transcription": normalize_transcription(config.input_audio_transcription),
                "noise_reduction": normalize_noise_reduction(config.noise_reduction),
                "turn_detection": normalize_turn_detection(config.turn_detection),
            },
            "output": output,
        },
    }
    max_tokens = _normalize_max_output_tokens(config.max_output_tokens)
    if max_tokens is not None:
        session["max_output_tokens"] = max_tokens
    tracing = _normalize_choice_or_dict(config.tracing, "tracing", ("auto",))
    if tracing is not None:
        session["tracing"] = tracing
    truncation = _normalize_choice_or_dict(config.truncation, "truncation", ("auto", "disabled"))
    if truncation is not None:
        session["truncation"] = truncation
    _check_session(session, "session settings")
    return session
