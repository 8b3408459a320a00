"""The local Realtime server in its own process, for benchmarks that must not share a CPU loop
with the client they measure.

``python -m bench.serve --engine scripted`` prints ``READY <base_url>`` once listening, then
serves until its stdin closes (the parent ended, even by a crash) or ``--max-seconds`` pass, so it
always stops by itself. :class:`ServerProcess` starts and stops it from a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from types import TracebackType

from realtalk.server import LocalServer
from realtalk.server.engines import load_engines


class ServerProcess:
    """``with ServerProcess("scripted") as server: server.base_url, server.pid``."""

    def __init__(
        self,
        engine: str = "scripted",
        *,
        voice: str = "piper",
        max_seconds: float = 900.0,
        partial_transcripts: bool = False,
        baseline: bool = False,
        start_timeout_s: float = 120.0,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.voice = voice
        self.max_seconds = max_seconds
        self.partial_transcripts = partial_transcripts
        self.baseline = baseline
        self.start_timeout_s = start_timeout_s
        self.extra_env = extra_env or {}
        self.base_url = ""
        self.llm_threads = 0  # llama.cpp threads the server's LLM took (0: none, or not llama.cpp)
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "ORT_DISABLE_TELEMETRY": "1", **self.extra_env}
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.serve",
                "--engine",
                self.engine,
                "--voice",
                self.voice,
                "--max-seconds",
                str(self.max_seconds),
                *(["--partial-transcripts"] if self.partial_transcripts else []),
                *(["--baseline"] if self.baseline else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        deadline = time.monotonic() + self.start_timeout_s
        assert self._proc.stdout is not None
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                fields = line.split()
                self.base_url = fields[1]
                self.llm_threads = int(fields[2].partition("=")[2]) if len(fields) > 2 else 0
                return self
        self.__exit__(None, None, None)
        raise RuntimeError(f"the {self.engine} server process did not start")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scripted_llm_if_asked() -> None:
    """``REALTALK_BENCH_SCRIPTED_LLM=1``: the local engines with the scripted LLM in place of the
    local one, to measure everything else where no local LLM is installed. Figures taken so say
    it."""
    if os.environ.get("REALTALK_BENCH_SCRIPTED_LLM") == "1":
        from realtalk.server.engines import loader
        from realtalk.server.engines.scripted import ScriptedLLM

        loader._local_llm = lambda _name: ScriptedLLM()


async def _serve(
    engine: str, voice: str, max_seconds: float, partial: bool, baseline: bool
) -> None:
    scripted_llm_if_asked()
    log_to = os.environ.get("REALTALK_BENCH_SERVER_LOG")
    if log_to:  # the server's own DEBUG timeline, to see where a turn's time goes
        import logging

        logging.basicConfig(
            filename=log_to, level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s"
        )
    engines = None
    if baseline:  # the pipeline before issue 9: Whisper's 30 s window, silence alone, no guesses
        engines = load_engines(engine, voice=voice)  # type: ignore[arg-type]
        from realtalk.server.engines.whisper import WhisperTranscriber

        if isinstance(engines.transcriber, WhisperTranscriber):
            # as it ran then: on two threads (the 30 s window's encoder gains from the second)
            engines.transcriber = WhisperTranscriber(cpu_threads=2)
            engines.transcriber.full_window = True
    server = LocalServer(
        "127.0.0.1",
        0,
        engines=engines,
        engine=engine,
        voice=voice,
        partial_transcripts=partial,
        max_connections_per_client=100_000,
        speculative_transcripts=not baseline,
        smart_turn=not baseline,
        speculative_replies=not baseline,
    )
    async with server:
        runtime = getattr(server.engines.llm, "runtime", None) if server.engines else None
        threads = getattr(runtime, "n_threads", 0)
        print(f"READY {server.base_url} llm_threads={threads}", flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stdin_closed, max_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", default="scripted", choices=["scripted", "local"])
    parser.add_argument("--voice", default="piper", choices=["piper", "espeak"])
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--partial-transcripts", action="store_true")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="the pipeline before issue 9: full Whisper window, no Smart Turn, no speculation",
    )
    args = parser.parse_args()
    asyncio.run(
        _serve(args.engine, args.voice, args.max_seconds, args.partial_transcripts, args.baseline)
    )
    os._exit(0)  # a stdin reader thread may still block; nothing is left to clean up


if __name__ == "__main__":
    main()
