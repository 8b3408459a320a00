"""A spoken arithmetic question in a real browser is answered with the right number, through the
calculator tool: Chromium (its microphone a WAV of Piper asking), WebRTC both ways, the example
assistant, and the local server with its real engines (``engine="local"``: whatever LLM the
server selects). Skips, saying why, where the local engines cannot load (no local LLM installed).
"""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtalk.server.engines.base import EngineUnavailableError
from tests.e2e.test_browser import connect, open_page, page_story
from tests.integration.test_examples import load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

QUESTION = "What is seventeen times three?"
ANSWER = re.compile(r"\b51\b|fifty[- ]one", re.I)
LEAD_S = 8.0  # the greeting plays first; the question comes after it


def _microphone(folder: Path) -> Path:
    from realtalk.media.resample import resample_oneshot
    from realtalk.server.engines.piper import PiperVoice

    voice = PiperVoice(repeatable=True)
    pcm = np.concatenate(list(voice.synthesize(QUESTION))).astype(np.int16)
    speech = np.asarray(resample_oneshot(pcm, voice.sample_rate, 48000), np.int16)
    lead, tail = np.zeros(int(48000 * LEAD_S), np.int16), np.zeros(48000 * 20, np.int16)
    path = folder / "arithmetic.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(48000)
        wav.writeframes(np.concatenate([lead, speech, tail]).tobytes())
    return path


async def test_a_spoken_sum_is_answered_with_the_right_number_through_the_tool(
    browser_launcher: Any, tmp_path: Path
) -> None:
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.server import LocalServer
    from realtalk.session import AgentSession
    from realtalk.transports.webrtc import WebRTCServer

    assistant = load("assistant")
    local = LocalServer("127.0.0.1", port=0, engine="local")
    try:
        await local.start()
    except EngineUnavailableError as exc:
        pytest.skip(f"the local engines cannot load here ({exc}); this test needs a local LLM")
    calls: list[tuple[str, str]] = []

    async def entrypoint(ctx: Any) -> None:
        model = OpenAIRealtime(model="gpt-realtime", base_url=local.base_url, api_key=None)
        model.on(
            "function_call", lambda call: calls.append((call.get("name"), call.get("arguments")))
        )
        session = AgentSession(agent=assistant.Assistant(), model=model)
        await session.start(ctx.transport)

    webrtc = WebRTCServer(entrypoint, "127.0.0.1", port=0)
    await webrtc.start()
    try:
        browser = await browser_launcher(_microphone(tmp_path), loop=False)
        page = await open_page(browser, str(webrtc.url))
        await connect(page)
        deadline = asyncio.get_running_loop().time() + 180
        answer = ""
        while asyncio.get_running_loop().time() < deadline:
            agent: list[str] = await page.evaluate(
                "window.realtalk.state.transcripts.filter(t => t.role === 'agent').map(t => t.text)"
            )
            answer = next((t for t in agent if ANSWER.search(t)), "")
            if answer and calls:
                break
            await asyncio.sleep(0.5)
        story = await page_story(page)
        assert calls, f"no tool was called; the page saw:\n{story}"
        assert any(name == "calculate" for name, _ in calls), calls
        assert answer, f"no agent reply with 51; calls {calls}; the page saw:\n{story}"
        tools = await page.evaluate(
            "[...document.querySelectorAll('#transcript .msg.tool .text')].map(e => e.textContent)"
        )
        assert any("calculate" in t and "51" in t for t in tools), tools  # shown readably
        assert not any(t.lstrip().startswith("{") for t in tools), tools
    finally:
        await webrtc.aclose()
        await local.aclose()


async def test_the_page_shows_a_tool_call_readably_and_no_dollars_for_a_local_server(
    browser_launcher: Any, silence_wav: Path
) -> None:
    """Scripted engines (fast): a typed "call calculate {...}" makes the scripted LLM call the
    example's calculator; the page shows the call in words, the reply, and no dollar figure."""
    from realtalk.plugins.openai import OpenAIRealtime
    from realtalk.server import LocalServer
    from realtalk.session import AgentSession
    from realtalk.transports.webrtc import WebRTCServer

    assistant = load("assistant")
    local = LocalServer("127.0.0.1", port=0, engine="scripted")
    await local.start()

    async def entrypoint(ctx: Any) -> None:
        model = OpenAIRealtime(model="gpt-realtime", base_url=local.base_url, api_key=None)
        session = AgentSession(agent=assistant.Assistant(), model=model)
        await session.start(ctx.transport)

    webrtc = WebRTCServer(entrypoint, "127.0.0.1", port=0)
    await webrtc.start()
    try:
        browser = await browser_launcher(silence_wav)
        page = await open_page(browser, str(webrtc.url))
        await connect(page)
        # the greeting is the agent's own turn, not a numbered user turn
        await page.wait_for_function("window.realtalk.state.metrics.length > 0", timeout=30_000)
        first_row = await page.locator("#metrics tbody tr th").first.inner_text()
        assert first_row == "agent"
        await page.get_by_label("Message to the agent").fill(
            'call calculate {"expression": "17 * 3"}'
        )
        await page.get_by_role("button", name="Send").click()
        await page.wait_for_function(
            "window.realtalk.state.transcripts.some(t => t.role === 'agent' && /51/.test(t.text))",
            timeout=30_000,
        )
        tool = await page.locator("#transcript .msg.tool .text").first.inner_text()
        assert tool == "calculate (expression 17 * 3) → 51", tool
        await page.wait_for_function("window.realtalk.state.metrics.length > 1", timeout=30_000)
        costs = await page.locator("#metrics tbody tr td:last-child").all_inner_texts()
        assert costs and all("$" not in c for c in costs), costs
        assert "$" not in await page.locator("#total-cost").inner_text()
    finally:
        await webrtc.aclose()
        await local.aclose()
