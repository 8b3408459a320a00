"""The ``realtalk`` command: ``realtalk serve`` (the local Realtime server), ``realtalk run``
(an agent file with a transport), ``realtalk worker`` and ``realtalk gateway`` (scale-out)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="realtalk", description="Realtime voice and vision agents, online or fully offline."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    from realtalk.server import cli as server_cli

    server_cli.add_arguments(
        sub.add_parser("serve", help="run the local OpenAI-Realtime-compatible server")
    )
    try:
        from realtalk import runner
    except ImportError:  # the runner lands separately; `serve` must work without it
        runner = None  # type: ignore[assignment]
    if runner is not None:
        runner.add_arguments(sub.add_parser("run", help="run an agent file with a transport"))
    from realtalk.scale import cli as scale_cli

    scale_cli.add_worker_arguments(
        sub.add_parser("worker", help="serve sessions handed over by gateways (Redis)")
    )
    scale_cli.add_gateway_arguments(
        sub.add_parser("gateway", help="serve the page and dispatch sessions to workers (Redis)")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from realtalk.server import cli as server_cli

        return server_cli.main(args)
    if args.command in ("worker", "gateway"):
        from realtalk.scale import cli as scale_cli

        return (
            scale_cli.worker_main(args)
            if args.command == "worker"
            else scale_cli.gateway_main(args)
        )
    from realtalk import runner

    return runner.main(args)


if __name__ == "__main__":
    sys.exit(main())
