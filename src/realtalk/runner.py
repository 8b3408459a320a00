"""``realtalk run AGENT_FILE``: load an agent file and run its ``entrypoint`` with a transport.

An agent file is a Python file that defines ``async def entrypoint(ctx: JobContext)``; it builds a
model and an :class:`~realtalk.session.AgentSession` and starts the session on ``ctx.transport``.
The runner brings the transport (a browser page over WebRTC, the console, or WAV files) and, with
neither ``OPENAI_API_KEY`` nor ``OPENAI_BASE_URL`` set, a local realtalk server started in this
process: ``OPENAI_BASE_URL`` then points at it, so ``OpenAIRealtime(model=...)`` in the agent file
reaches it unchanged and the same file runs online or fully offline.

Ctrl+C (SIGINT) or SIGTERM closes every session (``on_exit`` runs, the model and the transport are
released) before the process exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from realtalk.errors import ConfigurationError
from realtalk.job import JobContext

if TYPE_CHECKING:
    from realtalk.session import AgentSession
    from realtalk.transports.base import Transport

__all__ = ["JobContext", "add_arguments", "load_entrypoint", "main", "run"]

logger = logging.getLogger("realtalk.session")

Entrypoint = Callable[["JobContext"], Awaitable[None]]


class RunnerError(ConfigurationError):
    """The agent file or the command line cannot work; the message says what to change."""


# -- command line ----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``realtalk run`` (the ``realtalk`` command builds the parser)."""
    parser.add_argument("agent_file", help="a Python file that defines `async def entrypoint(ctx)`")
    parser.add_argument(
        "--transport",
        choices=("webrtc", "console", "files", "twilio", "sip"),
        default="webrtc",
        help="webrtc: a browser page (default); console: microphone/speaker or text; "
        "files: WAV files in, WAV + JSON out; twilio: phone calls over Twilio Media Streams "
        "(also Telnyx/Plivo streams); sip: a SIP endpoint answering calls",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="webrtc/twilio/sip: address to listen on"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="webrtc/twilio: HTTP port (default 8080), sip: SIP port (default 5060); "
        "0 picks a free one",
    )
    parser.add_argument(
        "--public-url",
        default=None,
        help="twilio: the https URL Twilio reaches this server at (a tunnel, a load balancer)",
    )
    parser.add_argument(
        "--twilio-auth-token",
        default=None,
        help="twilio: check X-Twilio-Signature with this token (default: $TWILIO_AUTH_TOKEN)",
    )
    parser.add_argument(
        "--twilio-account-sid",
        default=None,
        help="twilio: account SID, to end calls through the REST API "
        "(default: $TWILIO_ACCOUNT_SID)",
    )
    parser.add_argument(
        "--twilio-api-base",
        default=None,
        help="twilio: REST API base URL (default https://api.twilio.com or $TWILIO_API_BASE)",
    )
    parser.add_argument(
        "--stream-providers",
        default="twilio",
        help="twilio: whose media streams to serve, comma-separated: twilio, telnyx, plivo "
        "(only Twilio's are signed; put the others behind your own authentication)",
    )
    parser.add_argument(
        "--sip-user",
        default=None,
        help="sip: require digest authentication as this user "
        "(password from $REALTALK_SIP_PASSWORD)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="webrtc: a name the page is reached by besides loopback ones (repeatable; e.g. the "
        "host a reverse proxy forwards); requests naming other hosts are refused",
    )
    parser.add_argument(
        "--input",
        action="extend",
        nargs="+",
        metavar="WAV",
        help="files: input WAV files, one user turn each, in order",
    )
    parser.add_argument(
        "--output",
        metavar="WAV",
        help="files: where the agent's audio goes; the report goes next to it as .json "
        "(without --output the report is printed)",
    )
    parser.add_argument(
        "--realtime", action="store_true", help="files: feed and record at real speed"
    )
    parser.add_argument("--text", action="store_true", help="console: text only, no audio devices")
    parser.add_argument(
        "--engine",
        choices=("local", "scripted"),
        default="local",
        help="engines of the local server started when no OPENAI_API_KEY is set "
        "(scripted: deterministic replies for tests)",
    )
    parser.add_argument(
        "--voice", choices=("piper", "espeak"), default=None, help="voice of the local server"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    parser.add_argument(
        "--workers",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="N",
        help="webrtc: run N worker processes behind a gateway, with a local Redis (N defaults "
        "to one per core); see docs/scaling.md",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``realtalk run`` with parsed arguments; returns the process exit status."""
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.port is None:  # each transport's usual port
        args.port = 5060 if args.transport == "sip" else 8080
    if getattr(args, "workers", None) is not None:
        return _run_workers(args)
    try:
        entrypoint = load_entrypoint(args.agent_file)
        transport_factory = _transport_factory(args)
        return asyncio.run(
            run(
                entrypoint,
                transport=args.transport,
                make_transport=transport_factory,
                host=args.host,
                port=args.port,
                engine=args.engine,
                voice=args.voice,
                report_to_stdout=args.transport == "files" and not args.output,
                phone_options=_phone_options(args),
                allowed_hosts=getattr(args, "allowed_host", ()),
            )
        )
    except (ConfigurationError, ValueError, RuntimeError, OSError) as exc:
        print(f"realtalk run: {exc}", file=sys.stderr)
        return 1


def _run_workers(args: argparse.Namespace) -> int:
    """``--workers``: Redis, the workers and a gateway as child processes (realtalk.scale)."""
    if args.transport != "webrtc":
        print("realtalk run: --workers needs --transport webrtc", file=sys.stderr)
        return 1
    if args.workers < 0:
        print("realtalk run: --workers must be 0 (one per core) or more", file=sys.stderr)
        return 1
    try:
        load_entrypoint(args.agent_file)  # a bad file fails here, not in N children
    except (ConfigurationError, ValueError, OSError) as exc:
        print(f"realtalk run: {exc}", file=sys.stderr)
        return 1
    from realtalk.scale.local import run_local

    return run_local(
        args.agent_file,
        workers=args.workers,
        host=args.host,
        port=args.port,
        engine=args.engine,
        voice=args.voice,
        allowed_hosts=getattr(args, "allowed_host", None),
    )


def _transport_factory(args: argparse.Namespace) -> Callable[[], Transport] | None:
    """Build the transport's constructor now, so bad options fail before anything starts."""
    if args.transport == "files":
        if not args.input:
            raise RunnerError("--transport files needs at least one --input WAV file")
        from realtalk.transports.files import FilesTransport

        transport = FilesTransport(args.input, args.output, realtime=args.realtime)
        return lambda: transport
    if args.input or args.output:
        raise RunnerError("--input/--output only apply to --transport files")
    if args.transport == "console":
        from realtalk.transports.console import ConsoleTransport

        return lambda: ConsoleTransport(audio=False if args.text else None)
    return None  # webrtc: one transport per browser connection, made by the WebRTC server


def _phone_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.transport == "twilio":
        from realtalk.transports.telephony.server import TwilioCredentials

        options["public_url"] = args.public_url
        options["providers"] = tuple(
            p.strip() for p in args.stream_providers.split(",") if p.strip()
        )
        options["credentials"] = TwilioCredentials(
            args.twilio_auth_token, args.twilio_account_sid, args.twilio_api_base
        )
    elif args.transport == "sip" and args.sip_user:
        password = os.environ.get("REALTALK_SIP_PASSWORD")
        if not password:
            raise RunnerError("--sip-user needs the password in $REALTALK_SIP_PASSWORD")
        options["auth"] = (args.sip_user, password)
    return options


# -- agent files -----------------------------------------------------------------------------------


def load_entrypoint(path: str | os.PathLike[str]) -> Entrypoint:
    """Import an agent file by path and return its ``async def entrypoint(ctx)``.

    The file's folder is put on ``sys.path`` so it can import modules next to it, and it runs
    under its own module name (not ``__main__``), so an ``if __name__ == "__main__"`` block in it
    does not run again.

    Raises:
        RunnerError: the file does not exist, or defines no async ``entrypoint``.
    """
    module = _import_file(Path(path))
    entrypoint = getattr(module, "entrypoint", None)
    if entrypoint is None:
        raise RunnerError(f"{path} defines no `async def entrypoint(ctx)`")
    if not inspect.iscoroutinefunction(entrypoint):
        raise RunnerError(f"`entrypoint` in {path} must be an async function (async def)")
    return entrypoint


def _import_file(file: Path) -> ModuleType:
    if not file.is_file():
        raise RunnerError(f"agent file {str(file)!r} not found")
    name = "realtalk_agent_" + re.sub(r"\W", "_", file.stem)
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RunnerError(f"cannot import {str(file)!r} as Python")
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses, pickling and typing look modules up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


# -- running ---------------------------------------------------------------------------------------


async def run(
    entrypoint: Entrypoint,
    *,
    transport: str = "webrtc",
    make_transport: Callable[[], Transport] | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    engine: str = "local",
    voice: str | None = None,
    report_to_stdout: bool = False,
    phone_options: dict[str, Any] | None = None,
    allowed_hosts: Iterable[str] = (),
) -> int:
    """Run ``entrypoint`` until its conversation ends (console, files) or until Ctrl+C."""
    stop = asyncio.Event()
    async with _model_endpoint(engine, voice) as base_url, _stop_on_signals(stop):
        api_key = os.environ.get("OPENAI_API_KEY") or None
        if transport == "webrtc":
            return await _serve_webrtc(
                entrypoint, host, port, base_url, api_key, stop, allowed_hosts
            )
        if transport in ("twilio", "sip"):
            from realtalk.transports.telephony.serve import serve_phone

            return await serve_phone(
                transport,
                entrypoint,
                lambda t: JobContext(transport=t, base_url=base_url, api_key=api_key, call=t.call),
                host=host,
                port=port,
                stop=stop,
                **(phone_options or {}),
            )
        if make_transport is None:
            raise RunnerError(f"no transport for {transport!r}")
        ctx = JobContext(transport=make_transport(), base_url=base_url, api_key=api_key)
        return await _run_one(entrypoint, ctx, stop, report_to_stdout)


@contextlib.asynccontextmanager
async def _model_endpoint(engine: str, voice: str | None) -> AsyncIterator[str | None]:
    """Start the local server unless an API key or a base URL says where the model is."""
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        yield None
        return
    from realtalk.server import LocalServer

    options: dict[str, Any] = {"engine": engine}
    if voice is not None:
        options["voice"] = voice
    if engine == "local":
        _note("No OPENAI_API_KEY: loading the local realtalk engines...")
        options["progress"] = lambda line: _note(f"  {line}")
    server = LocalServer("127.0.0.1", port=0, **options)
    await server.start()
    base_url: str = server.base_url
    described = f"engine {engine}" + (f", voice {voice}" if voice else "")
    _note(f"No OPENAI_API_KEY: using the local realtalk server at {base_url} ({described})")
    os.environ["OPENAI_BASE_URL"] = base_url
    try:
        yield base_url
    finally:
        os.environ.pop("OPENAI_BASE_URL", None)
        await server.aclose()


def _note(line: str) -> None:
    """What the runner tells the user goes to stderr, so stdout stays the conversation's."""
    print(line, file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def _stop_on_signals(stop: asyncio.Event) -> AsyncIterator[None]:
    """SIGINT/SIGTERM set ``stop`` (a clean close follows); a second Ctrl+C exits at once."""
    loop = asyncio.get_running_loop()
    installed = []

    def on_signal() -> None:
        if stop.is_set():
            print("\nForced exit.", file=sys.stderr)
            os._exit(130)
        print("\nClosing (Ctrl+C again to force)...", file=sys.stderr)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _run_one(
    entrypoint: Entrypoint, ctx: JobContext, stop: asyncio.Event, report_to_stdout: bool
) -> int:
    """One conversation on a local transport: until the session closes or a signal arrives."""
    job = asyncio.create_task(_job(entrypoint, ctx))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({job, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        session = ctx.transport.session
        if session is not None:
            await session.close(reason="stopped by signal" if stop.is_set() else "done")
        if not job.done():
            job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job  # re-raises what the agent's entrypoint raised
    session = ctx.transport.session
    if session is not None and (session.close_reason or "").startswith("fatal error"):
        print(f"realtalk run: the session ended with a {session.close_reason}", file=sys.stderr)
        return 1
    return _summarize(ctx.transport, report_to_stdout)


async def _job(entrypoint: Entrypoint, ctx: JobContext) -> None:
    await entrypoint(ctx)
    session = ctx.transport.session
    if session is None:
        raise RunnerError(
            "entrypoint returned without starting a session on ctx.transport; "
            "call `await session.start(ctx.transport)`"
        )
    await session.wait_closed()


def _summarize(transport: Transport, report_to_stdout: bool) -> int:
    """Print a files run's transcripts; exit status 1 when a turn got no answer."""
    from realtalk.transports.files import FilesTransport

    if not isinstance(transport, FilesTransport) or transport.report is None:
        return 0
    report = transport.report
    if report_to_stdout:
        print(json.dumps(report, indent=2, default=str))
    else:
        for turn in report["turns"]:
            if turn["user"]:
                print(f"you: {turn['user']}")
            if turn["agent"]:
                print(f"agent: {turn['agent']}")
            if turn["error"]:
                print(f"[{turn['input']}: {turn['error']}]")
        written = [p for p in (transport.output, transport.report_path) if p is not None]
        print(
            f"Wrote {' and '.join(map(str, written))}: {report['output_audio_ms'] / 1000:.1f} s "
            f"of agent audio in {report['elapsed_s']:.1f} s"
        )
    return 1 if any(turn["error"] for turn in report["turns"]) else 0


async def _serve_webrtc(
    entrypoint: Entrypoint,
    host: str,
    port: int,
    base_url: str | None,
    api_key: str | None,
    stop: asyncio.Event,
    allowed_hosts: Iterable[str] = (),
) -> int:
    """Serve the browser page; the entrypoint runs once per browser connection."""
    try:
        webrtc = importlib.import_module("realtalk.transports.webrtc")
    except ImportError as exc:
        raise RunnerError(
            f"the WebRTC transport is not available ({exc}); "
            "use --transport console or --transport files"
        ) from exc
    sessions: set[AgentSession] = set()

    async def connection(ctx_or_transport: Any) -> None:
        # The WebRTC server hands over its own context (with `.transport`) or the transport.
        transport: Transport = getattr(ctx_or_transport, "transport", ctx_or_transport)
        await entrypoint(JobContext(transport=transport, base_url=base_url, api_key=api_key))
        session = transport.session
        if session is not None and not session.closed:
            sessions.add(session)
            session.once("closed", lambda _payload: sessions.discard(session))

    def on_ready(url: str) -> None:
        print(f"Open {url} in a browser to talk to the agent (Ctrl+C to stop).", flush=True)

    server = asyncio.create_task(
        webrtc.serve(
            connection, host=host, port=port, on_ready=on_ready, allowed_hosts=allowed_hosts
        )
    )
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({server, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        await asyncio.gather(
            *(s.close(reason="server stopping") for s in list(sessions)), return_exceptions=True
        )
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server  # re-raises a failure to start (port in use, ...)
    return 0
