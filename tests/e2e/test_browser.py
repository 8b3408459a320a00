"""The browser experience end to end: a real Chromium, the page, WebRTC, AgentSession, the model
client and the local Realtime server, all in this process.

What must hold: the page connects; a spoken question (a WAV as the microphone) or a typed message
gets an answer; the page shows the user's and the agent's transcripts and the turn's latency; the
browser really receives the agent's voice (inbound RTP audio energy and a WebAudio analyser on
the remote stream); two pages are two independent sessions; leaving the page releases its
session.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import QUESTION, AgentStack, start_stack, stop_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SCREENSHOT = Path("/tmp/realtalk-page.png")
SCREENSHOT_PHONE = Path("/tmp/realtalk-page-phone.png")


async def open_page(browser: Any, url: str, **context_options: Any) -> Any:
    # bypass_csp: Playwright evaluates its wait predicates as strings, which the page's strict
    # Content-Security-Policy (no eval) would otherwise refuse.
    context = await browser.new_context(bypass_csp=True, **context_options)
    page = await context.new_page()
    await page.goto(url)
    return page


async def connect(page: Any) -> None:
    await page.get_by_role("button", name="Connect").click()
    await page.wait_for_function(
        "window.realtalk.state.connected && "
        "document.querySelector('#conn-status').dataset.status === 'connected'",
        timeout=20_000,
    )


async def final_transcripts(page: Any, role: str) -> list[str]:
    result: list[str] = await page.evaluate(
        "(role) => window.realtalk.state.transcripts"
        "  .filter(t => t.role === role && !t.typed).map(t => t.text)",
        role,
    )
    return result


async def page_story(page: Any) -> str:
    """The page's last events, for a failure message that says what did happen."""
    lines: list[str] = await page.evaluate(
        "window.realtalk.state.events.slice(-25)"
        "  .map(e => `${e.t % 100000} ${e.kind} ${JSON.stringify(e.detail).slice(0, 160)}`)"
    )
    return "\n".join(lines)


async def wait_for_transcript(page: Any, role: str, timeout_ms: int = 30_000) -> None:
    try:
        await page.wait_for_function(
            "(role) => window.realtalk.state.transcripts"
            "  .some(t => t.role === role && !t.typed && t.text.length > 0)",
            arg=role,
            timeout=timeout_ms,
        )
    except Exception as exc:
        if "Timeout" not in type(exc).__name__:
            raise
        story = await page_story(page)
        raise AssertionError(
            f"no {role} transcript in {timeout_ms} ms; the page saw:\n{story}"
        ) from None


async def wait_for_agent_audio(page: Any, timeout_s: float = 20.0) -> dict[str, Any]:
    """Wait until the browser has decoded agent audio that is not silence, and return the
    inbound-rtp stats. Both the RTP receiver's energy and a WebAudio analyser must see it."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    stats: dict[str, Any] | None = None
    peak = 0.0
    while asyncio.get_running_loop().time() < deadline:
        stats = await page.evaluate("window.realtalk.inboundAudio()")
        peak = await page.evaluate("window.realtalk.state.remotePeak")
        if stats and stats["totalAudioEnergy"] > 0 and peak > 0:
            return stats
        await asyncio.sleep(0.25)
    raise AssertionError(f"no agent audio reached the browser: stats={stats}, analyser peak={peak}")


async def screenshot_both(page: Any) -> None:
    """Desktop and phone-sized screenshots of a page after a conversation."""
    await page.set_viewport_size({"width": 1280, "height": 860})
    await page.screenshot(path=str(SCREENSHOT), full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await page.screenshot(path=str(SCREENSHOT_PHONE), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 860})


async def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


# -- scripted engines (fast, deterministic) ---------------------------------------------------


async def test_spoken_question_gets_a_spoken_answer_with_transcripts_and_latency(
    scripted_stack: AgentStack, browser_launcher: Any, question_wav: Path
) -> None:
    browser = await browser_launcher(question_wav)
    page = await open_page(browser, scripted_stack.url, viewport={"width": 1280, "height": 860})
    await connect(page)

    await wait_for_transcript(page, "user")
    await wait_for_transcript(page, "agent")
    stats = await wait_for_agent_audio(page)
    assert stats["packetsReceived"] > 0

    # The scripted transcriber describes what it heard; the scripted LLM repeats it.
    user = (await final_transcripts(page, "user"))[0]
    agent = (await final_transcripts(page, "agent"))[0]
    assert re.search(r"speech [0-9.]+ s", user), user
    assert agent.startswith("You said:"), agent

    # What the page shows, not just what it stored.
    await page.wait_for_selector(".msg.user:not(.interim) .text")
    await page.wait_for_selector(".msg.agent:not(.interim) .text")
    shown_agent = await page.locator(".msg.agent .text").first.inner_text()
    assert shown_agent.startswith("You said:")
    await page.wait_for_function(
        "window.realtalk.state.metrics.some(m => m.latency_ms !== null && m.latency_ms > 0)",
        timeout=20_000,
    )
    latency_cell = await page.locator("#metrics tbody tr td").first.inner_text()
    assert re.fullmatch(r"\d+ ms", latency_cell), latency_cell
    assert "ms" in await page.locator("#last-latency").inner_text()
    # ...and the page timed the user's wait itself, from its own audio (the level probe's
    # AudioWorklet): end of the speech at its microphone to the reply's first sound here.
    await page.wait_for_function("window.realtalk.waits().length > 0", timeout=20_000)
    (wait,) = (await page.evaluate("window.realtalk.waits()"))[:1]
    assert 0 < wait["wait_ms"] < 20_000, wait
    assert wait["agent_audio_wall_ms"] - wait["speech_end_wall_ms"] == pytest.approx(
        wait["wait_ms"], abs=50
    )
    assert (await page.locator("#last-latency").inner_text()) == f"{round(wait['wait_ms'])} ms"

    # The microphone really reached the session: it heard speech (a user turn happened) and
    # the page shows a live input level.
    session = scripted_stack.sessions[0]
    assert session.metrics, "the session recorded no completed turn"
    await page.wait_for_function(
        "Number(document.querySelector('#level').getAttribute('aria-valuenow')) > 0",
        timeout=10_000,
    )
    assert await page.locator("#orb").get_attribute("data-state") in (
        "listening",
        "thinking",
        "speaking",
    )
    # Listening, the page runs no endless animation: the agent may share the machine, and
    # without GPU compositing each animated frame costs it CPU.
    await page.wait_for_function("document.querySelector('#orb').dataset.state === 'listening'")
    endless = await page.evaluate(
        "document.getAnimations().filter(a => a.playState === 'running'"
        " && a.effect.getTiming().iterations === Infinity).map(a => a.animationName)"
    )
    assert endless == [], endless

    await screenshot_both(page)


async def test_typed_message_and_camera(
    scripted_stack: AgentStack, browser_launcher: Any, silence_wav: Path
) -> None:
    browser = await browser_launcher(silence_wav)
    page = await open_page(browser, scripted_stack.url)
    await connect(page)

    message = "hello from the keyboard"
    await page.get_by_label("Message to the agent").fill(message)
    await page.get_by_role("button", name="Send").click()

    await page.wait_for_function(
        "(m) => window.realtalk.state.transcripts"
        "  .some(t => t.role === 'agent' && t.text.includes(m))",
        arg=message,
        timeout=20_000,
    )
    agent = await final_transcripts(page, "agent")
    assert agent == [f"You said: {message}."]
    await wait_for_agent_audio(page)
    await page.wait_for_function("window.realtalk.state.metrics.length > 0", timeout=20_000)
    assert await page.locator("#metrics tbody tr").count() >= 1
    # The typed text is shown once, as the user's message.
    assert await page.locator(".msg.user .text", has_text=message).count() == 1

    # The camera adds a video track without renegotiation; its frames reach the transport.
    transport = next(iter(scripted_stack.webrtc.connections.values()))
    await page.get_by_role("button", name="Camera").click()
    await page.wait_for_function("!document.querySelector('#preview').hidden", timeout=10_000)
    await wait_until(lambda: transport.frames_in["video"] > 0)
    await page.get_by_role("button", name="Camera").click()
    await page.wait_for_function("document.querySelector('#preview').hidden", timeout=10_000)
    await wait_until(lambda: not transport.video_enabled)


async def test_two_pages_are_two_independent_sessions(
    scripted_stack: AgentStack, browser_launcher: Any, silence_wav: Path
) -> None:
    browser = await browser_launcher(silence_wav)
    first = await open_page(browser, scripted_stack.url)
    second = await open_page(browser, scripted_stack.url)
    await asyncio.gather(connect(first), connect(second))
    assert len(scripted_stack.webrtc.connections) == 2

    async def ask(page: Any, text: str) -> None:
        await page.get_by_label("Message to the agent").fill(text)
        await page.get_by_role("button", name="Send").click()

    await asyncio.gather(ask(first, "first page here"), ask(second, "second page here"))
    for page, text in ((first, "first page here"), (second, "second page here")):
        await page.wait_for_function(
            "window.realtalk.state.transcripts.some(t => t.role === 'agent')", timeout=20_000
        )
        assert await final_transcripts(page, "agent") == [f"You said: {text}."]
        await wait_for_agent_audio(page)

    sessions = scripted_stack.sessions
    assert len(sessions) == 2 and sessions[0] is not sessions[1]

    # Leaving one page closes its session and releases its connection; the other goes on.
    await first.context.close()
    await wait_until(lambda: len(scripted_stack.webrtc.connections) == 1, timeout_s=15)
    closed = [s for s in sessions if s.closed]
    assert len(closed) == 1
    await ask(second, "still here")
    await second.wait_for_function(
        "window.realtalk.state.transcripts.some(t => t.role === 'agent' && "
        "t.text.includes('still here'))",
        timeout=20_000,
    )


async def test_agent_that_cannot_start_is_reported_on_the_page(
    browser_launcher: Any, silence_wav: Path
) -> None:
    stack = await start_stack("scripted")
    await stack.local_server.aclose()  # the model has nowhere to connect
    try:
        browser = await browser_launcher(silence_wav)
        page = await open_page(browser, stack.url)
        await page.get_by_role("button", name="Connect").click()
        banner = page.locator("#banner")
        await banner.wait_for(state="visible", timeout=20_000)
        assert "failed to start" in await banner.inner_text()
        await wait_until(lambda: not stack.webrtc.connections, timeout_s=15)
        assert stack.sessions and stack.sessions[0].closed
        await page.wait_for_function("!window.realtalk.state.connected", timeout=10_000)
    finally:
        await stop_stack(stack)


# -- the real local engines ---------------------------------------------------------------------


async def test_spoken_question_with_the_local_engines(
    browser_launcher: Any, question_wav: Path
) -> None:
    pytest.importorskip("faster_whisper")
    stack = await start_stack("local")
    try:
        # Said once, then silence: the local models on two busy cores may need seconds to
        # answer, and a looping microphone would barge in on every answer.
        browser = await browser_launcher(question_wav, loop=False)
        page = await open_page(browser, stack.url)
        await connect(page)
        await wait_for_transcript(page, "user", timeout_ms=90_000)
        await wait_for_transcript(page, "agent", timeout_ms=90_000)
        await wait_for_agent_audio(page, timeout_s=60)
        heard = (await final_transcripts(page, "user"))[0].lower()
        words = {w.strip("?,.").lower() for w in QUESTION.split()}
        assert words & set(re.findall(r"[a-z]+", heard)), heard
    finally:
        await stop_stack(stack)
