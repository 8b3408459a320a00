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
import os
import time
from collections.abc import Callable
from pathlib import Path
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

__all__ = ["LLM_CHOICES", "load_engines", "local_llm", "resolve_llm"]

#: The local LLMs by name (`realtalk serve --llm`); any path to a .gguf file works too.
LLM_CHOICES = ("qwen-0.5b", "qwen-1.5b", "smollm2")
_LLM_TITLES = {
    "qwen-0.5b": "Qwen2.5-Coder-0.5B-Instruct",
    "qwen-1.5b": "Qwen2.5-Coder-1.5B-Instruct",
    "smollm2": "SmolLM2-135M-Instruct",
}

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
    llm: str | None = None,
    progress: Progress | None = None,
) -> Engines:
    """The engines for `kind`.

    "local": Silero VAD, Whisper tiny.en, a local LLM on llama.cpp, and Piper (or espeak-ng).
    `llm` picks the local LLM: "qwen-0.5b" (the default, or $REALTALK_LLM), "qwen-1.5b",
    "smollm2" (the fast toy fallback) or a path to a ChatML .gguf file.
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
    local_llm = resolve_llm(llm)

    chat: LLM
    if llm_url is not None:
        from realtalk.server.engines.openai_compat import OpenAICompatLLM

        remote = OpenAICompatLLM(llm_url, llm_model or "default", llm_api_key)
        report(f"LLM: {remote.model} at {remote.url}")
        chat = remote

    if kind == "scripted":
        from realtalk.server.engines.energy import EnergyVAD
        from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice

        return Engines(
            vad=EnergyVAD(),
            transcriber=ScriptedTranscriber(),
            llm=chat if llm_url is not None else ScriptedLLM(),
            voice=ToneVoice(),
            name="scripted" if llm_url is None else "scripted+remote-llm",
        )

    vad, vad_name = _vad(report)
    transcriber = _timed("Whisper tiny.en", _whisper, report)
    if not getattr(transcriber, "hash_ok", True):
        report("warning: the Whisper model file is not the one realtalk was tested with")
    if llm_url is None:
        title = _LLM_TITLES.get(local_llm, Path(local_llm).name)
        chat = _timed(title, functools.partial(_local_llm, local_llm), report)
    tts = (
        _timed("Piper voice en_US-joe-medium", _piper, report)
        if voice == "piper"
        else _timed("espeak-ng", _espeak, report)
    )
    end_of_turn = _end_of_turn(report)
    parts = [
        vad_name,
        "whisper-tiny.en",
        _llm_label(local_llm) if llm_url is None else "remote-llm",
        voice,
    ]
    return Engines(
        vad, transcriber, chat, tts, name="local:" + "+".join(parts), end_of_turn=end_of_turn
    )


def resolve_llm(llm: str | None) -> str:
    """The local LLM to load: `llm`, else $REALTALK_LLM, else "qwen-0.5b"; checked."""
    choice = llm or os.environ.get("REALTALK_LLM") or "qwen-0.5b"
    if choice in LLM_CHOICES:
        return choice
    if choice.endswith(".gguf"):
        return str(Path(choice).expanduser())
    raise ValueError(
        f"unknown LLM {choice!r} (expected {', '.join(LLM_CHOICES)} or a path to a .gguf file)"
    )


def local_llm(llm: str | None = None) -> LLM:
    """The local LLM `llm` (see `resolve_llm`), loaded once per process."""
    return _local_llm(resolve_llm(llm))


def _llm_label(llm: str) -> str:
    return {"smollm2": "smollm2-135m"}.get(llm, llm if llm in LLM_CHOICES else "gguf")


def _timed(label: str, load: Callable[[], T], report: Progress) -> T:
    if _is_cached(load):
        return load()
    report(f"loading {label}…")
    start = time.perf_counter()
    value = load()
    report(f"{label} ready in {time.perf_counter() - start:.2f} s")
    return value


def _is_cached(load: Callable[[], object]) -> bool:
    if isinstance(load, functools.partial):
        return _local_llm_loaded(*load.args)
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


_LOCAL_LLMS: dict[str, LLM] = {}


def _local_llm_loaded(name: str) -> bool:
    return name in _LOCAL_LLMS


def _local_llm(name: str) -> LLM:
    loaded = _LOCAL_LLMS.get(name)
    if loaded is not None:
        return loaded
    model: LLM
    if name == "smollm2":
        from realtalk.server.engines.llama import LlamaLLM

        model = LlamaLLM()
    else:
        from realtalk.server.engines.qwen import QwenLLM

        model = QwenLLM(model=name) if name in LLM_CHOICES else QwenLLM(Path(name))
    _LOCAL_LLMS[name] = model
    return model


@functools.cache
def _piper() -> Voice:
    from realtalk.server.engines.piper import PiperVoice

    return PiperVoice()


@functools.cache
def _espeak() -> Voice:
    from realtalk.server.engines.espeak import EspeakVoice

    return EspeakVoice()
