"""``realtalk serve``: run the local Realtime server until Ctrl-C.

Prints a progress line per model while the engines load, then where it listens and how to point
a client at it. The API key may come from ``--api-key`` or ``REALTALK_API_KEY``; it is never
printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from .app import LocalServer

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 = any)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("REALTALK_API_KEY"),
        help="require this key from clients (default: $REALTALK_API_KEY, else no key)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "scripted"),
        default="local",
        help="local: offline models; scripted: deterministic test engines (default local)",
    )
    parser.add_argument("--voice", choices=("piper", "espeak"), default="piper")
    parser.add_argument(
        "--llm",
        default=None,
        help="local LLM: qwen-0.5b (default, or $REALTALK_LLM), qwen-1.5b (fetch it first: "
        "python -m realtalk.server.engines.models fetch qwen-1.5b), smollm2, or a .gguf path",
    )
    parser.add_argument("--llm-url", help="an OpenAI-compatible chat endpoint to use as the LLM")
    parser.add_argument("--llm-model", help="the model name at --llm-url")
    parser.add_argument(
        "--session-max-seconds",
        type=float,
        default=3600.0,
        help="end sessions after this long, as OpenAI does after 60 minutes (default 3600)",
    )
    parser.add_argument(
        "--partial-transcripts",
        choices=("auto", "on", "off"),
        default="auto",
        help="transcribe while the user speaks (when a client asks for transcription); "
        "auto: only with 4 or more CPUs, as it competes with the reply on small machines",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every session")


def main(args: argparse.Namespace) -> int:
    if args.llm_model and not args.llm_url:
        print("realtalk serve: --llm-model needs --llm-url", file=sys.stderr)
        return 2
    if args.session_max_seconds <= 0:
        print("realtalk serve: --session-max-seconds must be positive", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # port in use, address not available
        print(f"realtalk serve: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    server = LocalServer(
        args.host,
        args.port,
        api_key=args.api_key or None,
        engine=args.engine,
        voice=args.voice,
        llm_url=args.llm_url,
        llm_model=args.llm_model,
        llm=args.llm,
        llm_api_key=os.environ.get("REALTALK_LLM_API_KEY"),
        session_max_seconds=args.session_max_seconds,
        partial_transcripts={"auto": None, "on": True, "off": False}[args.partial_transcripts],
        progress=lambda line: print(f"  {line}", flush=True),
    )
    print(f"realtalk serve: loading {args.engine} engines…", flush=True)
    await server.start()
    assert server.engines is not None
    print(f"realtalk serve: engines {server.engines.name}", flush=True)
    print(f"realtalk serve: listening on {server.ws_url}", flush=True)
    key_hint = " (the server's API key)" if args.api_key else ""
    print(
        f"  clients: AsyncOpenAI(base_url={server.base_url!r}, api_key=...{key_hint}) or "
        f"OPENAI_BASE_URL={server.base_url}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("realtalk serve: stopping", flush=True)
        await server.aclose()
