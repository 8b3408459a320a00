"""The LLM judge against a fake OpenAI-compatible endpoint on loopback: the prompt it sends, the
verdict it reads, and a failure that says it is non-deterministic."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from realtalk.testing import Event, ExpectationFailed, Judge, TurnResult


class Endpoint:
    def __init__(self) -> None:
        self.reply = ""
        self.requests: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for word in self.reply.split(" "):
            chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    fake = Endpoint()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


def answered() -> TurnResult:
    return TurnResult(
        "turn 1: speak('what is seventeen times three')",
        [
            Event("function_call_output", 1.0, {"name": "calculate", "output": "51"}),
            Event("agent_message", 1.1, {"text": "That is 51."}),
        ],
        heard="what is seventeen times three",
        done=True,
    )


async def test_a_pass_verdict_and_the_prompt_it_was_given(endpoint: tuple[Endpoint, str]) -> None:
    fake, url = endpoint
    fake.reply = "PASS\nIt answers the question politely."
    judge = Judge.openai_compatible(url, "judge-model", api_key="sk-judge")
    verdict = await judge.check(answered(), "answers the question")
    assert verdict.passed and verdict.reason.startswith("It answers the question politely")
    prompt = fake.requests[0]["messages"][0]["content"]
    assert "Criterion: answers the question" in prompt
    assert "User: what is seventeen times three" in prompt
    assert "(tool calculate returned: 51)" in prompt
    assert "Assistant: That is 51." in prompt
    assert fake.requests[0]["model"] == "judge-model"


async def test_a_fail_verdict_is_an_expectation_failure_marked_non_deterministic(
    endpoint: tuple[Endpoint, str],
) -> None:
    fake, url = endpoint
    fake.reply = "FAIL: the reply is curt."
    with pytest.raises(ExpectationFailed) as failure:
        await Judge.openai_compatible(url, "m").check(answered(), "is warm and polite")
    message = str(failure.value)
    assert "Expected (LLM judge, non-deterministic): is warm and polite" in message
    assert "Got: FAIL: the reply is curt" in message
    assert "agent: 'That is 51.'" in message


async def test_an_answer_without_a_verdict_does_not_pass(endpoint: tuple[Endpoint, str]) -> None:
    fake, url = endpoint
    fake.reply = "Hmm, hard to say."
    verdict = await Judge.openai_compatible(url, "m").verdict(answered(), "is polite")
    assert not verdict.passed and verdict.reason == "Hmm, hard to say."
