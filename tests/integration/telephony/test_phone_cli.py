"""`realtalk run AGENT --transport twilio|sip` end to end, and the phone example over Twilio."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from realtalk.runner import JobContext
from realtalk.server import LocalServer
from realtalk.transports.telephony.phone import PhoneTransport
from realtalk.transports.telephony.serve import run_call
from realtalk.transports.telephony.server import MediaStreamServer, TwilioCredentials
from realtalk.transports.telephony.signature import twilio_signature
from tests.conftest import make_engines
from tests.integration.telephony.twilio_standin import TwilioCall

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "phone_assistant.py"


def start_cli(transport: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    private = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_API_BASE")
    env = {k: v for k, v in os.environ.items() if k not in private}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtalk.cli",
            "run",
            str(EXAMPLE),
            "--transport",
            transport,
            "--port",
            "0",
            "--engine",
            "scripted",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line


def stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_realtalk_run_transport_sip_answers_options() -> None:
    process, line = start_cli("sip")
    try:
        match = re.search(r"sip:agent@127\.0\.0\.1:(\d+)", line)
        assert match, line
        options = (
            b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK1\r\n"
            b"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: cli-1\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(20)
            sock.sendto(options, ("127.0.0.1", int(match.group(1))))
            assert sock.recv(65536).startswith(b"SIP/2.0 200 OK")
    finally:
        assert stop(process) == 0


async def test_realtalk_run_transport_twilio_checks_signatures() -> None:
    process, line = await asyncio.to_thread(
        start_cli,
        "twilio",
        "--twilio-auth-token",
        "tok",
        "--public-url",
        "https://phone.example.com",
    )
    try:
        assert "POST https://phone.example.com/twilio/voice" in line, line
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        port = int(match.group(1))
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/twilio/voice", data={"From": "x"}) as r:
                assert r.status == 403
            call = TwilioCall("https://phone.example.com", auth_token="tok")
            form = call._form()
            signature = twilio_signature("tok", "https://phone.example.com/twilio/voice", form)
            async with http.post(
                f"http://127.0.0.1:{port}/twilio/voice",
                data=form,
                headers={"X-Twilio-Signature": signature},
            ) as r:
                assert r.status == 200
                assert 'url="wss://phone.example.com/twilio/media"' in await r.text()
    finally:
        assert await asyncio.to_thread(stop, process) == 0


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_phone_assistant", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_phone_example_greets_answers_a_key_and_hangs_up_on_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = load_example()
    async with LocalServer(port=0, engines=make_engines()) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        sessions: list[Any] = []

        def make_context(transport: PhoneTransport) -> JobContext:
            return JobContext(transport=transport, call=transport.call)

        async def entrypoint(ctx: JobContext) -> None:
            await example.entrypoint(ctx)
            sessions.append(ctx.transport.session)

        async def on_call(transport: Any) -> None:
            await run_call(entrypoint, make_context, transport)

        credentials = TwilioCredentials(from_env=False)
        async with MediaStreamServer(on_call, port=0, credentials=credentials) as media:
            call = TwilioCall(media.base_url, sign=False)
            await call.webhook()
            await call.connect()
            async with asyncio.timeout(30):
                while not sessions or sessions[0].agent_state != "listening":
                    await asyncio.sleep(0.02)
                greeting_ms = len(call.played.audio) / 8
                await call.press("1")
                while len(call.played.audio) / 8 < greeting_ms + 500:
                    await asyncio.sleep(0.02)
                await call.press("0")
                await call.closed.wait()  # the receptionist hung up: the stream closed
            assert greeting_ms > 1000
            assert sessions[0].close_reason == "the receptionist hung up"
            await call.close()


def test_phone_options_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from realtalk import runner

    parser = argparse.ArgumentParser()
    runner.add_arguments(parser)
    monkeypatch.delenv("REALTALK_SIP_PASSWORD", raising=False)
    args = parser.parse_args(["a.py", "--transport", "sip", "--sip-user", "alice"])
    with pytest.raises(runner.RunnerError, match="REALTALK_SIP_PASSWORD"):
        runner._phone_options(args)
    monkeypatch.setenv("REALTALK_SIP_PASSWORD", "pw")
    assert runner._phone_options(args) == {"auth": ("alice", "pw")}
    twilio = ["a.py", "--transport", "twilio", "--stream-providers", "twilio, telnyx"]
    args = parser.parse_args([*twilio, "--twilio-auth-token", "secret-token-123"])
    options = runner._phone_options(args)
    assert options["providers"] == ("twilio", "telnyx")
    assert options["credentials"].auth_token == "secret-token-123"
    assert "secret-token-123" not in repr(options["credentials"])  # never printed or logged
