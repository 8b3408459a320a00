"""Pick and load the engines for `realtalk serve`, each model once per process.

Models are large and immutable once loaded, and every connection shares them, so each loader is
cached by its arguments: a second `load_engines` call (another server in the same process, a test)
costs nothing. The scripted engines hold per-test state (queued transcripts) and load instantly, so
they are built fresh on every call.

Progress goes to `progress` as short lines for the CLI ("loading Whisper tiny.en…", then "Whisper
tiny.en ready in 0.42 s"). If Silero is not installed the energy VAD stands in, with a warning line.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from realtalk.server.engines.base import (
    LLM,
    VAD,
    EndOfTurn,
    Engines,
    EngineUnavailableError,
    Transcriber,
    Voice,
)

__all__ = ["load_engines"]

logger = logging.getLogger("realtalk.server")

Progress = Callable[[str], None]
T = TypeVar("T")


def load_engines(
    kind: Literal["local", "scripted"] = "local",
    *,
    voice: Literal["piper", "espeak"] = "piper",
    llm_url: str | None = None,
    llm_model: str | None = None,
    llm_api_key: str | None = None,
    progress: Progress | None = None,
) -> Engines:
    """The engines for `kind`.

    "local": Silero VAD, Whisper tiny.en, SmolLM2-135M on llama.cpp, and Piper (or espeak-ng).
    "scripted": EnergyVAD, ScriptedTranscriber, ScriptedLLM, ToneVoice (`voice` is ignored).
    With `llm_url`, either kind talks to that OpenAI-compatible endpoint instead of its own LLM
    (`llm_model` names the model there; `llm_api_key` is sent as a bearer token, never logged).
    """
    report = progress or (lambda line: None)
    if kind not in ("local", "scripted"):
        raise ValueError(f"unknown engine kind {kind!r} (expected 'local' or 'scripted')")
    if voice not in ("piper", "espeak"):
        raise ValueError(f"unknown voice {voice!r} (expected 'piper' or 'espeak')")
    if llm_url is None and (llm_model or llm_api_key):
        raise ValueError("llm_model and llm_api_key need llm_url")

    llm: LLM
    if llm_url is not None:
        from realtalk.server.engines.openai_compat import OpenAICompatLLM

        remote = OpenAICompatLLM(llm_url, llm_model or "default", llm_api_key)
        report(f"LLM: {remote.model} at {remote.url}")
        llm = remote

    if kind == "scripted":
        from realtalk.server.engines.energy import EnergyVAD
        from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice

        return Engines(
            vad=EnergyVAD(),
            transcriber=ScriptedTranscriber(),
            llm=llm if llm_url is not None else ScriptedLLM(),
            voice=ToneVoice(),
            name="scripted" if llm_url is None else "scripted+remote-llm",
        )

    vad, vad_name = _vad(report)
    transcriber = _timed("Whisper tiny.en", _whisper, report)
    if not getattr(transcriber, "hash_ok", True):
        report("warning: the Whisper model file is not the one realtalk was tested with")
    if llm_url is None:
        llm = _timed("SmolLM2-135M-Instruct", _llama, report)
    tts = (
        _timed("Piper voice en_US-joe-medium", _piper, report)
        if voice == "piper"
        else _timed("espeak-ng", _espeak, report)
    )
    end_of_turn = _end_of_turn(report)
    parts = [
        vad_name,
        "whisper-tiny.en",
        "smollm2-135m" if llm_url is None else "remote-llm",
        voice,
    ]
    return Engines(
        vad, transcriber, llm, tts, name="local:" + "+".join(parts), end_of_turn=end_of_turn
    )


def _timed(label: str, load: Callable[[], T], report: Progress) -> T:
    if _is_cached(load):
        return load()
    report(f"loading {label}…")
    start = time.perf_counter()
    value = load()
    report(f"{label} ready in {time.perf_counter() - start:.2f} s")
    return value


def _is_cached(load: Callable[[], object]) -> bool:
    info = getattr(load, "cache_info", None)
    return info is not None and info().currsize > 0


def _vad(report: Progress) -> tuple[VAD, str]:
    try:
        return _timed("Silero VAD", _silero, report), "silero"
    except EngineUnavailableError as exc:
        from realtalk.server.engines.energy import EnergyVAD

        logger.warning("Silero VAD unavailable (%s); using the energy VAD", exc)
        report(f"Silero VAD unavailable ({exc}); using the energy VAD instead")
        return EnergyVAD(), "energy-vad"


def _end_of_turn(report: Progress) -> EndOfTurn | None:
    try:
        return _timed("Smart Turn v3.2", _smart_turn, report)
    except EngineUnavailableError as exc:
        logger.warning("Smart Turn unavailable (%s); semantic_vad ends turns on silence", exc)
        report(f"Smart Turn unavailable ({exc}); semantic_vad will end turns on silence alone")
        return None


@functools.cache
def _smart_turn() -> EndOfTurn:
    from realtalk.server.engines.smart_turn import SmartTurn

    return SmartTurn()


@functools.cache
def _silero() -> VAD:
    from realtalk.server.engines.silero import SileroVAD

    return SileroVAD()


@functools.cache
def _whisper() -> Transcriber:
    from realtalk.server.engines.whisper import WhisperTranscriber

    return WhisperTranscriber()


@functools.cache
def _llama() -> LLM:
    from realtalk.server.engines.llama import LlamaLLM

    return LlamaLLM()


@functools.cache
def _piper() -> Voice:
    from realtalk.server.engines.piper import PiperVoice

    return PiperVoice()


@functools.cache
def _espeak() -> Voice:
    from realtalk.server.engines.espeak import EspeakVoice

    return EspeakVoice()
