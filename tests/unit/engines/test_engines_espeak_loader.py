"""espeak-ng's streaming WAV parsing and missing-binary error; the loader's choices."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from realtalk.server.engines import loader
from realtalk.server.engines.base import EngineError, EngineUnavailableError
from realtalk.server.engines.energy import EnergyVAD
from realtalk.server.engines.espeak import EspeakVoice, parse_streaming_wav
from realtalk.server.engines.openai_compat import OpenAICompatLLM
from realtalk.server.engines.scripted import ScriptedLLM, ScriptedTranscriber, ToneVoice


def streaming_wav(samples: np.ndarray, rate: int = 22050, extra_chunk: bool = False) -> bytes:
    """A WAV as espeak-ng --stdout writes it: placeholder sizes, since it cannot seek back."""
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    odd = struct.pack("<4sI", b"LIST", 3) + b"abc\x00" if extra_chunk else b""
    data = struct.pack("<4sI", b"data", 0x7FFFF000) + samples.astype("<i2").tobytes()
    return b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVE" + fmt + odd + data


def test_streaming_wav_with_placeholder_sizes_is_read_to_the_end() -> None:
    samples = np.arange(-500, 500, dtype=np.int16)
    rate, pcm = parse_streaming_wav(streaming_wav(samples, extra_chunk=True))
    assert rate == 22050
    np.testing.assert_array_equal(pcm, samples)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"not a wav file at all", "not a WAV"),
        (streaming_wav(np.zeros(4, np.int16))[:36], "no data chunk"),
    ],
)
def test_broken_wav_output_is_an_engine_error(data: bytes, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        parse_streaming_wav(data)


def test_missing_espeak_binary_says_how_to_install_it() -> None:
    with pytest.raises(EngineUnavailableError, match="apt-get install espeak-ng"):
        EspeakVoice(binary="espeak-ng-that-does-not-exist")


def test_scripted_engines_are_fresh_per_call_and_need_no_models() -> None:
    lines: list[str] = []
    a = loader.load_engines("scripted", progress=lines.append)
    b = loader.load_engines("scripted")
    assert (a.name, type(a.vad), type(a.transcriber)) == (
        "scripted",
        EnergyVAD,
        ScriptedTranscriber,
    )
    assert isinstance(a.llm, ScriptedLLM) and isinstance(a.voice, ToneVoice)
    assert a.transcriber is not b.transcriber  # queued transcripts never leak between tests
    assert lines == []


def test_llm_url_replaces_the_llm_and_is_reported_without_the_key() -> None:
    lines: list[str] = []
    engines = loader.load_engines(
        "scripted",
        llm_url="http://127.0.0.1:9/v1",
        llm_model="m",
        llm_api_key="sk-x",
        progress=lines.append,
    )
    assert isinstance(engines.llm, OpenAICompatLLM)
    assert engines.llm.url == "http://127.0.0.1:9/v1/chat/completions"
    assert lines and not any("sk-x" in line for line in lines)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "cloud"}, "unknown engine kind"),
        ({"voice": "kokoro"}, "unknown voice"),
        ({"llm_model": "m"}, "need llm_url"),
        ({"llm": "gpt-9"}, "unknown LLM"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        loader.load_engines(**kwargs)  # type: ignore[arg-type]


def test_local_engines_fall_back_to_the_energy_vad_without_silero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_silero() -> None:
        raise EngineUnavailableError("silero-vad is not installed")

    monkeypatch.setattr(loader, "_silero", no_silero)
    monkeypatch.setattr(loader, "_whisper", ScriptedTranscriber)
    monkeypatch.setattr(loader, "_local_llm", lambda name: ScriptedLLM())
    monkeypatch.setattr(loader, "_espeak", ToneVoice)
    lines: list[str] = []
    engines = loader.load_engines("local", voice="espeak", progress=lines.append)
    assert isinstance(engines.vad, EnergyVAD)
    assert engines.name == "local:energy-vad+whisper-tiny.en+qwen-0.5b+espeak"
    assert any("energy VAD" in line for line in lines)
    assert any(line.startswith("loading Whisper") for line in lines)
    assert any("ready in" in line for line in lines)


def test_the_local_llm_is_qwen_unless_chosen_by_argument_or_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REALTALK_LLM", raising=False)
    assert loader.resolve_llm(None) == "qwen-0.5b"
    assert loader.resolve_llm("smollm2") == "smollm2"
    monkeypatch.setenv("REALTALK_LLM", "qwen-1.5b")
    assert loader.resolve_llm(None) == "qwen-1.5b"
    assert loader.resolve_llm("~/m.gguf").endswith("/m.gguf")
