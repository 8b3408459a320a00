"""``realtalk worker`` and ``realtalk gateway``: command-line options and main loops."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from typing import Any

from realtalk.errors import ConfigurationError
from realtalk.scale.registry import DEFAULT_PREFIX, Registry, RegistryUnavailable

__all__ = ["add_gateway_arguments", "add_worker_arguments", "gateway_main", "worker_main"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        default=os.environ.get("REALTALK_REDIS_URL"),
        help="Redis address: redis://[:password@]host:6379/0, rediss://... (TLS) or "
        "unix:///path/redis.sock (default: $REALTALK_REDIS_URL, which keeps a password out of "
        "the process list)",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="prefix of every Redis key")
    parser.add_argument(
        "--ice-servers",
        metavar="JSON",
        default=os.environ.get("REALTALK_ICE_SERVERS"),
        help='STUN/TURN servers as JSON, e.g. \'[{"urls": "turn:turn.example.com:3478", '
        '"username": "u", "credential": "p"}]\' (default: $REALTALK_ICE_SERVERS; give gateways '
        "and workers the same list)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent_file", help="a Python file that defines `async def entrypoint(ctx)`")
    _common(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0 picks a free one)")
    parser.add_argument(
        "--advertise",
        metavar="HOST",
        help="address gateways reach this worker at (default: --host); needed with 0.0.0.0",
    )
    parser.add_argument("--capacity", type=int, default=8, help="sessions at most (default 8)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, how long running sessions may go on before they move to another "
        "worker (default 30)",
    )
    parser.add_argument(
        "--heartbeat", type=float, default=1.0, metavar="S", help="heartbeat period (default 1)"
    )
    parser.add_argument(
        "--conversation-ttl",
        type=float,
        default=3600.0,
        metavar="S",
        help="how long a stored conversation can be resumed after its last turn (default 3600)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "scripted"),
        default="local",
        help="engines of the local server started when no OPENAI_API_KEY is set",
    )
    parser.add_argument("--voice", choices=("piper", "espeak"), default=None)


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve the page on")
    parser.add_argument("--port", type=int, default=8080, help="port (0 picks a free one)")


def _ice_servers(text: str | None) -> list[dict[str, Any]] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--ice-servers is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, dict) and "urls" in v for v in value):
        raise ValueError('--ice-servers must be a JSON list of {"urls": ...} objects')
    return value


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def worker_main(args: argparse.Namespace) -> int:
    _logging(args.verbose)
    if not args.redis:
        print("realtalk worker: --redis URL (or REALTALK_REDIS_URL) is required", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run_worker(args))
    except (RegistryUnavailable, ConfigurationError, ValueError, OSError) as exc:
        print(f"realtalk worker: {exc}", file=sys.stderr, flush=True)
        return 1


def gateway_main(args: argparse.Namespace) -> int:
    _logging(args.verbose)
    if not args.redis:
        print("realtalk gateway: --redis URL (or REALTALK_REDIS_URL) is required", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run_gateway(args))
    except (RegistryUnavailable, ValueError, OSError) as exc:
        print(f"realtalk gateway: {exc}", file=sys.stderr, flush=True)
        return 1


async def _check_redis(url: str, prefix: str) -> None:
    """Fail fast, before a model loads, with the reason Redis cannot be used."""
    registry = Registry(url, prefix=prefix)
    try:
        await registry.ping()
    except RegistryUnavailable as exc:
        raise RegistryUnavailable(f"cannot start: {exc}") from None
    finally:
        await registry.aclose()


async def _run_worker(args: argparse.Namespace) -> int:
    from realtalk.runner import JobContext, _model_endpoint, load_entrypoint
    from realtalk.scale.worker import Worker

    entrypoint = load_entrypoint(args.agent_file)
    ice_servers = _ice_servers(args.ice_servers)
    await _check_redis(args.redis, args.prefix)
    async with _model_endpoint(args.engine, args.voice) as base_url:
        api_key = os.environ.get("OPENAI_API_KEY") or None
        worker = Worker(
            entrypoint,
            redis_url=args.redis,
            context_factory=lambda t, record: JobContext(
                transport=t,
                base_url=base_url,
                api_key=api_key,
                session_id=record.session_id,
                resumed=record.resumed,
            ),
            host=args.host,
            port=args.port,
            advertise=args.advertise,
            capacity=args.capacity,
            heartbeat_s=args.heartbeat,
            conversation_ttl_s=args.conversation_ttl,
            prefix=args.prefix,
            ice_servers=ice_servers,
        )
        try:
            await worker.start()
        except RegistryUnavailable as exc:
            raise RegistryUnavailable(f"cannot start: {exc}") from None
        print(f"WORKER {worker.worker_id} {worker.url} capacity {worker.capacity}", flush=True)
        signals = _Signals()
        try:
            which = await signals.wait()
            if which == signal.SIGTERM:
                moved = await worker.drain(args.drain_timeout)
                print(f"Drained ({moved} sessions moved to other workers).", file=sys.stderr)
        finally:
            signals.close()
            await worker.aclose()
    return 0


async def _run_gateway(args: argparse.Namespace) -> int:
    from realtalk.scale.gateway import Gateway

    ice_servers = _ice_servers(args.ice_servers)
    await _check_redis(args.redis, args.prefix)
    gateway = Gateway(
        redis_url=args.redis,
        host=args.host,
        port=args.port,
        prefix=args.prefix,
        ice_servers=ice_servers,
    )
    await gateway.start()
    print(f"GATEWAY {gateway.url}", flush=True)
    print(f"Open {gateway.url} in a browser to talk to the agent.", file=sys.stderr, flush=True)
    signals = _Signals()
    try:
        await signals.wait()
    finally:
        signals.close()
        await gateway.aclose()
    return 0


class _Signals:
    """SIGINT and SIGTERM, awaited; a second signal exits at once."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._got: asyncio.Future[Any] = self._loop.create_future()
        self._installed: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                self._loop.add_signal_handler(sig, self._on_signal, sig)
                self._installed.append(sig)

    def _on_signal(self, sig: int) -> None:
        if self._got.done():
            os._exit(130)
        self._got.set_result(sig)

    async def wait(self) -> int:
        return int(await self._got)

    def close(self) -> None:
        for sig in self._installed:
            self._loop.remove_signal_handler(sig)
        # A second signal during the close still ends the process.
        for sig in self._installed:
            signal.signal(sig, lambda *_: os._exit(130))
