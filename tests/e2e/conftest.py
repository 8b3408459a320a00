"""Fixtures for real-browser tests: Debian's Chromium driven by the pip ``playwright`` package.

Chromium gets a WAV file as its microphone (``--use-file-for-fake-audio-capture``; it loops the
file) and a synthetic camera. The stack under test is the real one: ``realtalk.server.LocalServer``
(scripted engines for speed, or the local models), a :class:`WebRTCServer` whose entrypoint builds
``AgentSession(agent=Agent(...), model=OpenAIRealtime(..., base_url=local_server.base_url))``,
and the page it serves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_speech_wav

CHROMIUM = os.environ.get("REALTALK_CHROMIUM", "/usr/bin/chromium")
QUESTION = "What is the weather like in Paris today?"
INSTRUCTIONS = "You are a friendly voice assistant. Answer in one short sentence."


def chromium_args(microphone_wav: Path, *, loop: bool = True) -> list[str]:
    """Flags for a headless Chromium that uses ``microphone_wav`` as its microphone (looped, or
    played once then silence) and never reaches the network on its own."""
    suffix = "" if loop else "%noloop"
    return [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone_wav}{suffix}",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]


def _sox(*args: str) -> None:
    exe = shutil.which("sox")
    if exe is None:
        pytest.skip("sox is not installed (scripts/setup installs it)")
    subprocess.run([exe, *args], check=True, capture_output=True)


def _question_wav(folder: Path, trailing_silence_s: float) -> Path:
    raw = make_speech_wav(QUESTION, folder / "question_raw.wav")
    out = folder / f"question_{trailing_silence_s:g}s.wav"
    _sox(
        str(raw),
        "-r",
        "48000",
        "-c",
        "1",
        "-b",
        "16",
        str(out),
        "pad",
        "0.5",
        str(trailing_silence_s),
    )
    return out


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spoken question at 48 kHz mono, with 0.5 s of silence before and 2.5 s after, so the
    server's VAD ends the turn before Chromium loops the file."""
    return _question_wav(tmp_path_factory.mktemp("mic"), 2.5)


@pytest.fixture(scope="session")
def silence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A silent microphone, for tests that talk through the text box."""
    out = tmp_path_factory.mktemp("mic") / "silence.wav"
    _sox("-n", "-r", "48000", "-c", "1", "-b", "16", str(out), "trim", "0", "3")
    return out


@pytest.fixture
async def browser_launcher() -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """``await launch(microphone_wav, loop=True)`` starts a headless Chromium; all are closed
    afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (scripts/setup installs Debian's chromium)")
    playwright_api = pytest.importorskip("playwright.async_api")
    browsers: list[Any] = []
    async with playwright_api.async_playwright() as pw:

        async def launch(microphone_wav: Path, *, loop: bool = True) -> Any:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=chromium_args(microphone_wav, loop=loop)
            )
            browsers.append(browser)
            return browser

        yield launch
        for browser in browsers:
            await browser.close()


@dataclass
class AgentStack:
    """The local Realtime server and the WebRTC server in front of it, plus what they made."""

    local_server: Any
    webrtc: Any
    sessions: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.webrtc.url)


async def start_stack(engine: str, *, vision: bool = False) -> AgentStack:
    from realtalk.agent import Agent
    from realtalk.plugins.openai.realtime import OpenAIRealtime
    from realtalk.server import LocalServer
    from realtalk.session import AgentSession
    from realtalk.transports.webrtc import WebRTCServer

    local_server = LocalServer("127.0.0.1", port=0, engine=engine)
    await local_server.start()
    sessions: list[Any] = []
    base_url = local_server.base_url

    async def entrypoint(ctx: Any) -> None:
        model = OpenAIRealtime(model="gpt-realtime", base_url=base_url, api_key=None)
        session = AgentSession(agent=Agent(instructions=INSTRUCTIONS), model=model, vision=vision)
        sessions.append(session)
        await session.start(ctx.transport)

    webrtc = WebRTCServer(entrypoint, "127.0.0.1", port=0)
    await webrtc.start()
    return AgentStack(local_server, webrtc, sessions)


async def stop_stack(stack: AgentStack) -> None:
    await stack.webrtc.aclose()
    await stack.local_server.aclose()


@pytest.fixture
async def scripted_stack() -> AsyncIterator[AgentStack]:
    """Scripted engines: the agent answers "You said: <what it heard>." in a tone voice."""
    stack = await start_stack("scripted", vision=True)
    try:
        yield stack
    finally:
        await stop_stack(stack)
