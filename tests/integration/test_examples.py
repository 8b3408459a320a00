"""The examples: they import, their tools compute the right things, and `realtalk run` runs them
(scripted engines in the fast tests, the real offline engines in the slow one)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from realtalk.media.wav import read_wav, write_wav
from realtalk.runner import JobContext
from realtalk.server import LocalServer
from realtalk.transports.base import Transport
from tests.conftest import make_speech_wav

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def assistant() -> ModuleType:
    return load("assistant")


# -- the assistant's tools -------------------------------------------------------------------


async def test_the_assistant_offers_its_three_tools_with_described_parameters(
    assistant: ModuleType,
) -> None:
    agent = assistant.Assistant()
    schemas = {tool.name: tool.to_openai() for tool in agent.tools}
    assert set(schemas) == {"get_time", "calculate", "convert_units"}
    convert = schemas["convert_units"]["parameters"]
    assert convert["required"] == ["value", "from_unit", "to_unit"]
    assert "km" in convert["properties"]["from_unit"]["description"]
    # the units it knows, by name: a model cannot send one the converter would refuse
    assert {"kilometers", "miles", "celsius"} <= set(convert["properties"]["to_unit"]["enum"])
    for unit in convert["properties"]["from_unit"]["enum"]:
        assistant.convert(1.0, unit, unit)
    assert "timezone" not in schemas["get_time"]["parameters"].get("required", [])


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 2", "4"),
        ("(17 + 4) * 3", "63"),
        ("7 / 2", "3.5"),
        ("1 / 3", "0.333333"),
        ("2 ^ 10", "1024"),
        ("sqrt(16) + abs(-3)", "7"),
        ("round(pi, 2)", "3.14"),
        ("-5 // 2", "-3"),
        ("10 % 4", "2"),
        ("12 × 3 ÷ 4", "9"),
    ],
)
async def test_calculate_evaluates_arithmetic(
    assistant: ModuleType, expression: str, expected: str
) -> None:
    agent = assistant.Assistant()
    assert await agent.calculate(expression) == expected
    # The way the model calls it: JSON arguments in, text out.
    result = await agent.calculate.invoke(json.dumps({"expression": expression}))
    assert (result.output, result.is_error) == (expected, False)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "open('/etc/passwd')",
        "(1).__class__",
        "x + 1",
        "[1, 2]",
        "'a' * 3",
        "9 ** 9 ** 9",
        "10 ** 5000",
        "1 / 0",
        "lambda: 1",
        "",
        "1" * 300,
    ],
)
async def test_calculate_refuses_anything_but_arithmetic(
    assistant: ModuleType, expression: str
) -> None:
    with pytest.raises(ValueError):
        assistant.evaluate(expression)
    result = await assistant.Assistant().calculate.invoke(json.dumps({"expression": expression}))
    assert result.is_error and result.output.startswith("Error")


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (10, "km", "mi", 6.213712),
        (100, "celsius", "fahrenheit", 212.0),
        (32, "F", "C", 0.0),
        (0, "kelvin", "celsius", -273.15),
        (5, "kilograms", "pounds", 11.023113),
        (1, "gallon", "liters", 3.785412),
        (100, "km/h", "mph", 62.137119),
        (6, "feet", "meters", 1.8288),
    ],
)
def test_convert_handles_units_and_their_spoken_names(
    assistant: ModuleType, value: float, source: str, target: str, expected: float
) -> None:
    assert assistant.convert(value, source, target) == pytest.approx(expected, abs=1e-5)


async def test_convert_units_tool_reports_the_result_and_refuses_nonsense(
    assistant: ModuleType,
) -> None:
    agent = assistant.Assistant()
    assert await agent.convert_units(3, "km", "m") == "3 km = 3000 m"
    for bad in ({"value": 1, "from_unit": "kilometers", "to_unit": "kilograms"},
                {"value": 1, "from_unit": "furlong", "to_unit": "meters"}):  # fmt: skip
        result = await agent.convert_units.invoke(json.dumps(bad))
        assert result.is_error


async def test_get_time_gives_the_time_in_the_asked_zone(assistant: ModuleType) -> None:
    before = datetime.now(UTC)
    now = await assistant.Assistant().get_time("UTC")
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d\d:\d\d", now["time"])
    assert now["time"] in {before.strftime("%H:%M"), after.strftime("%H:%M")}
    assert now["date"] in {before.strftime("%A %d %B %Y"), after.strftime("%A %d %B %Y")}
    tokyo = await assistant.Assistant().get_time("Asia/Tokyo")
    expected = {(t + timedelta(hours=9)).strftime("%H:%M") for t in (before, after)}
    assert tokyo["time"] in expected
    result = await assistant.Assistant().get_time.invoke('{"timezone": "Mars/Olympus"}')
    assert result.is_error and "Mars/Olympus" in result.output


# -- the entrypoints -------------------------------------------------------------------------


class Idle(Transport):
    async def attach(self, session: Any) -> None:
        self.session = session

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("name", "vision"), [("assistant", False), ("vision_assistant", True)])
async def test_entrypoints_start_a_greeting_session_on_the_given_transport(
    name: str, vision: bool, scripted_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", scripted_server.base_url)
    transport = Idle()
    await load(name).entrypoint(JobContext(transport=transport, base_url=scripted_server.base_url))
    session = transport.session
    assert session is not None
    try:
        assert session.vision is vision
        assert session.agent_state == "thinking"  # on_enter asked for the greeting
    finally:
        await session.close()
    assert session.agent_state == "closed"


# -- `realtalk run` --------------------------------------------------------------------------


def realtalk_run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["ORT_DISABLE_TELEMETRY"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "realtalk.cli", "run", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )


def test_realtalk_run_answers_a_wav_with_the_scripted_local_server(tmp_path: Path) -> None:
    question = make_speech_wav("What time is it?", tmp_path / "q.wav")
    output = tmp_path / "out.wav"
    done = realtalk_run(
        "examples/assistant.py",
        "--transport", "files",
        "--engine", "scripted",
        "--input", str(question),
        "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "No OPENAI_API_KEY: using the local realtalk server at http://127.0.0.1:" in done.stderr
    report = json.loads(output.with_suffix(".json").read_text())
    greeting, answer = report["turns"]
    assert greeting["input"] is None and greeting["agent"]
    assert answer["agent"] == f"You said: {answer['user']}."
    assert f"agent: {answer['agent']}" in done.stdout
    assert read_wav(output).duration_ms > 1000


def test_realtalk_run_explains_bad_usage(tmp_path: Path) -> None:
    done = realtalk_run("examples/assistant.py", "--transport", "files")
    assert done.returncode == 1 and "--input" in done.stderr
    done = realtalk_run(str(tmp_path / "nope.py"), "--transport", "files", "--input", "x.wav")
    assert done.returncode == 1 and "not found" in done.stderr
    (tmp_path / "empty.py").write_text("x = 1\n")
    done = realtalk_run(str(tmp_path / "empty.py"), "--transport", "console", "--text")
    assert done.returncode == 1 and "entrypoint" in done.stderr


@pytest.mark.slow
def test_realtalk_run_answers_a_spoken_question_with_the_real_local_engines(
    tmp_path: Path,
) -> None:
    """Whisper hears a Piper-spoken question, the local LLM answers (calling get_time), Piper
    speaks the answer; the whole chain offline."""
    pytest.importorskip("piper")
    from realtalk.server.engines.piper import PiperVoice

    voice = PiperVoice(repeatable=True)
    question = tmp_path / "question.wav"
    pcm = np.concatenate(list(voice.synthesize("What time is it?")))
    write_wav(question, pcm.astype(np.int16), voice.sample_rate)
    output = tmp_path / "answer.wav"

    done = realtalk_run(
        "examples/assistant.py",
        "--transport", "files",
        "--engine", "local",
        "--voice", "piper",
        "--input", str(question),
        "--output", str(output),
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(output.with_suffix(".json").read_text())
    answer = report["turns"][-1]
    assert "time" in answer["user"].lower()
    assert answer["agent"].strip()
    called = [call["name"] for call in answer["function_calls"]]
    assert "get_time" in called or re.search(r"\d|o'clock|time", answer["agent"], re.IGNORECASE)
    assert answer["agent_audio_ms"] > 500
    assert np.abs(read_wav(output).to_array()).max() > 1000
