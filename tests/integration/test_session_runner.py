"""The runner (`realtalk run`): loading agent files, the local server, transports, Ctrl+C."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from realtalk import runner
from realtalk.runner import JobContext, RunnerError, load_entrypoint
from realtalk.transports.console import ConsoleTransport

ROOT = Path(__file__).resolve().parents[2]

AGENT = textwrap.dedent(
    """
    import sys
    from realtalk.agent import Agent
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.session import AgentSession

    class Echo(Agent):
        async def on_exit(self):
            print("on_exit ran", flush=True)

    async def entrypoint(ctx):
        print(f"base_url={ctx.base_url}", flush=True)
        session = AgentSession(agent=Echo(instructions="x"), model=OpenAIRealtime(model="m"))
        await session.start(ctx.transport)

    if __name__ == "__main__":
        sys.exit("the agent file ran as __main__")
    """
)


@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo_agent.py"
    path.write_text(AGENT)
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_load_entrypoint_imports_the_file_as_a_module_not_as_main(agent_file: Path) -> None:
    entrypoint = load_entrypoint(agent_file)
    assert entrypoint.__name__ == "entrypoint"
    assert entrypoint.__module__ == "realtalk_agent_echo_agent"


def test_an_agent_file_can_import_its_neighbours(tmp_path: Path) -> None:
    (tmp_path / "helpers_for_agent.py").write_text("GREETING = 'hi'\n")
    path = tmp_path / "with_helper.py"
    path.write_text(
        "from helpers_for_agent import GREETING\n\nasync def entrypoint(ctx):\n    return None\n"
    )
    assert load_entrypoint(path).__globals__["GREETING"] == "hi"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, "not found"),
        ("x = 1\n", "defines no `async def entrypoint"),
        ("def entrypoint(ctx):\n    pass\n", "must be an async function"),
    ],
)
def test_load_entrypoint_says_what_is_wrong(
    tmp_path: Path, source: str | None, message: str
) -> None:
    path = tmp_path / "agent.py"
    if source is not None:
        path.write_text(source)
    with pytest.raises(RunnerError, match=message):
        load_entrypoint(path)


async def test_run_starts_the_local_server_when_there_is_no_key(
    agent_file: Path, offline: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    status = await runner.run(
        load_entrypoint(agent_file),
        transport="console",
        make_transport=lambda: ConsoleTransport(
            audio=False, stdin=io.StringIO("hello\n"), stdout=out
        ),
        engine="scripted",
    )
    printed, notes = capsys.readouterr()
    assert status == 0
    assert "No OPENAI_API_KEY: using the local realtalk server at http://127.0.0.1:" in notes
    assert "base_url=http://127.0.0.1:" in printed
    assert "on_exit ran" in printed
    assert "agent: You said: hello." in out.getvalue()
    assert "OPENAI_BASE_URL" not in os.environ  # put back as it was


async def test_an_entrypoint_that_starts_no_session_is_an_error(offline: None) -> None:
    async def lazy(ctx: JobContext) -> None:
        return None

    with pytest.raises(RunnerError, match=r"session\.start"):
        await runner.run(
            lazy,
            transport="console",
            make_transport=lambda: ConsoleTransport(audio=False, stdin=io.StringIO("")),
            engine="scripted",
        )


async def test_webrtc_without_its_module_fails_clearly(
    agent_file: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = runner.importlib.import_module

    def no_webrtc(name: str, package: str | None = None) -> object:
        if name == "realtalk.transports.webrtc":
            raise ImportError("No module named 'aiortc'")
        return real_import(name, package)

    monkeypatch.setattr(runner.importlib, "import_module", no_webrtc)
    with pytest.raises(RunnerError, match=r"WebRTC transport is not available.*aiortc"):
        await runner.run(load_entrypoint(agent_file), transport="webrtc", engine="scripted")


def spawn(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.Popen(
        [sys.executable, "-m", "realtalk.cli", "run", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def read_until(process: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} in {seen!r}"
        line = process.stdout.readline()
        assert line, f"the process ended before {marker!r}: {seen!r}"
        seen += line
    return seen


def test_ctrl_c_closes_the_session_cleanly(agent_file: Path) -> None:
    process = spawn(str(agent_file), "--transport", "console", "--text", "--engine", "scripted")
    try:
        read_until(process, "Text mode")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "on_exit ran" in out
    assert "Closing" in err


def test_the_webrtc_page_is_served_and_ctrl_c_stops_it(agent_file: Path) -> None:
    process = spawn(str(agent_file), "--engine", "scripted", "--port", "0")
    try:
        seen = read_until(process, "in a browser")
        url = seen.split("Open ", 1)[1].split(" ", 1)[0]
        with urllib.request.urlopen(url, timeout=10) as page:
            assert page.status == 200
            assert "<html" in page.read().decode().lower()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
