"""The page behind a gateway, in a real Chromium: its worker is killed with SIGKILL mid-call and
the page resumes on the other worker, through the gateway, with the conversation intact."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_browser import connect, open_page, page_story
from tests.integration.scale.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


async def type_and_wait(page: Any, text: str, reply: str) -> None:
    await page.get_by_label("Message to the agent").fill(text)
    await page.get_by_role("button", name="Send").click()
    try:
        await page.wait_for_function(
            "(m) => window.realtalk.state.transcripts"
            "  .some(t => t.role === 'agent' && t.text === m)",
            arg=reply,
            timeout=30_000,
        )
    except Exception as exc:
        if "Timeout" not in type(exc).__name__:
            raise
        raise AssertionError(f"no {reply!r}; the page saw:\n{await page_story(page)}") from None


async def test_the_page_resumes_on_another_worker_after_kill_9(
    cluster: Cluster, browser_launcher: Any, silence_wav: Path
) -> None:
    workers = [cluster.start_worker(capacity=2) for _ in range(2)]
    gateway = cluster.start_gateway()
    browser = await browser_launcher(silence_wav)
    page = await open_page(browser, gateway)
    await connect(page)
    await type_and_wait(page, "my name is Ada", "You said: my name is Ada.")
    session_id = await page.evaluate("window.realtalk.state.sessionId")
    assert isinstance(session_id, str) and session_id

    deadline = time.monotonic() + 60
    while "my name is Ada" not in await asyncio.to_thread(cluster.conversation, session_id):
        assert time.monotonic() < deadline, "the conversation was never stored"
        await asyncio.sleep(0.2)
    with cluster.client() as r:
        (serving,) = [w for w in workers if r.zcard(f"realtalk:worker:{w}:slots")]
    cluster.workers[serving].send_signal(signal.SIGKILL)

    try:
        await page.wait_for_function(
            "window.realtalk.state.resumes >= 1 && window.realtalk.state.connected && "
            "document.querySelector('#conn-status').dataset.status === 'connected'",
            timeout=60_000,
        )
    except Exception as exc:
        if "Timeout" not in type(exc).__name__:
            raise
        raise AssertionError(f"no resume; the page saw:\n{await page_story(page)}") from None
    assert await page.evaluate("window.realtalk.state.sessionId") == session_id
    await type_and_wait(page, "what did I say before?", "Before that you said: my name is Ada.")
    (other,) = set(workers) - {serving}
    with cluster.client() as r:
        assert r.zcard(f"realtalk:worker:{other}:slots") == 1
