"""Fixtures of the reliability suite: the fault proxy, a ledger of faults tried, resource counts.

Every test that injects a fault or feeds bad input records it in the ``ledger``: what was tried,
how many times, how many times everything survived, and what was lost. ``report.py`` runs the
suite with ``REALTALK_RELIABILITY_LEDGER`` set and turns the ledger into the table in
``docs/reliability.md``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.proxy import FaultProxy

LEDGER_ENV = "REALTALK_RELIABILITY_LEDGER"


@dataclass
class LedgerRow:
    """One fault or bad input and how the system fared, over all the times it was tried."""

    area: str
    fault: str
    tries: int = 0
    survived: int = 0
    lost: list[str] = field(default_factory=list)
    note: str = ""  # a measured figure (memory per turn, cuts made): the latest run's


class Ledger:
    """Counts per fault, shared by the whole test session (written out at its end)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], LedgerRow] = {}

    def record(
        self,
        area: str,
        fault: str,
        *,
        tries: int = 1,
        survived: int | None = None,
        lost: str | None = None,
        note: str | None = None,
    ) -> None:
        row = self.rows.setdefault((area, fault), LedgerRow(area, fault))
        if note:
            row.note = note
        row.tries += tries
        row.survived += tries if survived is None else survived
        if lost and lost not in row.lost:
            row.lost.append(lost)

    def dump(self, path: Path) -> None:
        merged: dict[str, dict[str, Any]] = {}
        if path.exists():  # several pytest runs may feed one ledger
            for row in json.loads(path.read_text()):
                merged[f"{row['area']}|{row['fault']}"] = row
        for row in self.rows.values():
            key = f"{row.area}|{row.fault}"
            old = merged.get(key)
            if old is not None:
                row.tries += int(old["tries"])
                row.survived += int(old["survived"])
                row.lost = list(dict.fromkeys([*old["lost"], *row.lost]))
                row.note = row.note or str(old.get("note", ""))
            merged[key] = asdict(row)
        path.write_text(json.dumps(list(merged.values()), indent=1))


_LEDGER = Ledger()


@pytest.fixture(scope="session")
def ledger() -> Iterator[Ledger]:
    yield _LEDGER
    target = os.environ.get(LEDGER_ENV)
    if target:
        _LEDGER.dump(Path(target))


@pytest.fixture
async def make_proxy() -> AsyncIterator[Callable[[int], Awaitable[FaultProxy]]]:
    """A factory: ``proxy = await make_proxy(server_port)``; every proxy closes at teardown."""
    proxies: list[FaultProxy] = []

    async def make(port: int) -> FaultProxy:
        proxy = await FaultProxy("127.0.0.1", port, max_lifetime_s=300).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        await proxy.aclose()


def open_fds() -> int:
    """File descriptors this process holds (Linux), to prove nothing leaks."""
    return len(os.listdir("/proc/self/fd"))


def live_tasks() -> int:
    """Asyncio tasks alive on the running loop, minus the caller."""
    return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])


async def settle(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll until ``predicate()`` holds or ``timeout`` passes (tasks and sockets wind down
    asynchronously); returns the final value instead of sleeping a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            return predicate()
        await asyncio.sleep(0.02)
    return True
