"""``realtalk run AGENT --workers N``: Redis, N workers and a gateway on this machine.

Redis listens only on a unix socket in a private temporary folder (no TCP port, nothing saved to
disk); the workers bind 127.0.0.1 on free ports; the gateway serves the page on ``--host``/
``--port``. Each child runs in its own process group, so Ctrl+C reaches this process only, which
then stops the gateway, the workers and Redis in that order (a second Ctrl+C kills them).

The pieces are reusable: tests and benchmarks start the same :class:`RedisServer` and children.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

__all__ = ["Child", "RedisServer", "run_local", "spawn_gateway", "spawn_worker"]

_PYTHON_CLI = "import sys; from realtalk.cli import main; sys.exit(main())"


class RedisServer:
    """A ``redis-server`` child on a unix socket in its own temporary folder."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        if shutil.which("redis-server") is None:
            raise RuntimeError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        # unix socket paths are limited to ~107 bytes: keep the folder short.
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="realtalk-redis-"))
        self.socket = self.directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout_s: float = 20.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", "0",
                "--unixsocket", str(self.socket),
                "--unixsocketperm", "700",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                raise RuntimeError(f"redis-server exited at start: {err.strip()[:500]}")
            if _pings(self.socket):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on {self.socket} in {timeout_s:g} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _pings(path: Path) -> bool:
    import socket

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Child:
    """A ``realtalk`` child process whose stdout lines are collected by a thread."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None,
                 stderr: IO[bytes] | int | None = None) -> None:  # fmt: skip
        self.args = args
        self.process = subprocess.Popen(
            [sys.executable, "-c", _PYTHON_CLI, *args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, prefix: str, timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (self.process.poll() is not None and self.lines.empty()):
                raise RuntimeError(
                    f"{' '.join(self.args[:2])}: no {prefix!r} line "
                    f"(exit status {self.process.poll()})"
                )
            try:
                line = self.lines.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            if line.startswith(prefix):
                return line

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_signal(self, sig: int) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self, timeout_s: float = 15.0, sig: int = signal.SIGINT) -> int:
        self.send_signal(sig)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def spawn_worker(
    agent_file: str | os.PathLike[str],
    redis_url: str,
    *,
    capacity: int = 8,
    engine: str = "local",
    voice: str | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    stderr: IO[bytes] | int | None = None,
) -> Child:
    """Start ``realtalk worker``; ``child.wait_line("WORKER")`` says ``WORKER <id> <url> ...``."""
    args = ["worker", str(agent_file), "--redis", redis_url, "--capacity", str(capacity)]
    args += ["--engine", engine, *(["--voice", voice] if voice else []), *(extra or [])]
    return Child(args, env=env, stderr=stderr)


def spawn_gateway(
    redis_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    stderr: IO[bytes] | int | None = None,
) -> Child:
    """Start ``realtalk gateway``; ``child.wait_line("GATEWAY")`` says ``GATEWAY <url>``."""
    args = ["gateway", "--redis", redis_url, "--host", host, "--port", str(port), *(extra or [])]
    return Child(args, env=env, stderr=stderr)


def run_local(
    agent_file: str,
    *,
    workers: int,
    host: str,
    port: int,
    engine: str,
    voice: str | None,
    capacity: int = 8,
) -> int:
    """Run the whole set until Ctrl+C (or SIGTERM); returns the exit status."""
    count = workers or os.cpu_count() or 1
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            print("\nForced exit.", file=sys.stderr)
            os._exit(130)
        print("\nStopping the gateway, workers and Redis (Ctrl+C again to force)...",
              file=sys.stderr)  # fmt: skip
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    redis = RedisServer()
    try:
        redis.start()
        _note(f"Redis on {redis.socket}")
        for _ in range(count):
            children.append(
                spawn_worker(agent_file, redis.url, capacity=capacity, engine=engine, voice=voice)
            )
        for child in children:
            _note(f"  {child.wait_line('WORKER', timeout_s=600)}")
        gateway = spawn_gateway(redis.url, host=host, port=port)
        children.append(gateway)
        url = gateway.wait_line("GATEWAY").split()[1]
        print(
            f"Open {url} in a browser to talk to the agent ({count} workers; Ctrl+C to stop).",
            flush=True,
        )
        while not stop.is_set():
            if any(child.process.poll() is not None for child in children):
                dead = [c for c in children if c.process.poll() is not None]
                _note(f"{dead[0].args[0]} exited with status {dead[0].process.returncode}; "
                      "stopping")  # fmt: skip
                return 1
            stop.wait(0.5)
        return 0
    except RuntimeError as exc:
        print(f"realtalk run: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in reversed(children):  # the gateway first: no new sessions
            child.send_signal(signal.SIGINT)
        for child in reversed(children):
            child.stop()
        redis.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _note(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
