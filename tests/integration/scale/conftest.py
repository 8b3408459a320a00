"""A real cluster for the scale-out tests: redis-server on a unix socket in a temporary folder,
``realtalk worker`` and ``realtalk gateway`` child processes (scripted engines), torn down after
each test whatever happened."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from realtalk.scale.local import Child, RedisServer, spawn_gateway, spawn_worker

ROOT = Path(__file__).resolve().parents[3]
AGENT = Path(__file__).with_name("agent.py")
HEARTBEAT_S = 0.5  # registrations lapse after 1.5 s


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env["ORT_DISABLE_TELEMETRY"] = "1"
    return env


class Cluster:
    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.redis = RedisServer()
        self.redis.start()
        self.workers: dict[str, Child] = {}
        self.urls: dict[str, str] = {}
        self.gateways: list[Child] = []
        self._files: list[Any] = []

    def _log(self, name: str) -> Any:
        handle = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in close()
        self._files.append(handle)
        return handle

    def start_worker(self, capacity: int = 4, extra: list[str] | None = None) -> str:
        child = spawn_worker(
            AGENT,
            self.redis.url,
            capacity=capacity,
            engine="scripted",
            extra=["--heartbeat", str(HEARTBEAT_S), "-v", *(extra or [])],
            env=child_env(),
            stderr=self._log(f"worker-{len(self.workers)}"),
        )
        _, worker_id, url, *_ = child.wait_line("WORKER", timeout_s=90).split()
        self.workers[worker_id] = child
        self.urls[worker_id] = url
        return worker_id

    def start_gateway(self) -> str:
        child = spawn_gateway(
            self.redis.url, env=child_env(), stderr=self._log(f"gateway-{len(self.gateways)}")
        )
        self.gateways.append(child)
        return child.wait_line("GATEWAY", timeout_s=90).split()[1]

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.redis.socket), decode_responses=True)

    def live_workers(self) -> set[str]:
        with self.client() as r:
            return {w for w in r.smembers("realtalk:workers") if r.exists(f"realtalk:worker:{w}")}

    def wait_workers(self, expected: set[str], timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.live_workers() != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"live workers {self.live_workers()} != {expected}")
            time.sleep(0.1)

    def conversation(self, session_id: str) -> str:
        with self.client() as r:
            return str(r.get(f"realtalk:conversation:{session_id}") or "")

    def close(self) -> None:
        for child in [*self.gateways, *self.workers.values()]:
            child.send_signal(2)
        for child in [*self.gateways, *self.workers.values()]:
            child.stop(timeout_s=10)
        self.redis.close()
        for handle in self._files:
            handle.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
