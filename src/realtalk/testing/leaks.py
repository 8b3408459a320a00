"""What a test leaves behind: asyncio tasks still running and sockets still open.

A :class:`Snapshot` taken when a test conversation starts is compared with the process after it
closed. Sockets are read from ``/proc/self/fd`` (Linux); elsewhere only tasks are checked.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

__all__ = ["LeakError", "Snapshot"]

#: How long closed things get to finish closing before they count as leaked.
GRACE_S = 5.0


class LeakError(AssertionError):
    """A test left tasks, sockets or server sessions behind; the message lists them."""


def _socket_inodes() -> set[str] | None:
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found = set()
    for name in names:
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@dataclass
class Snapshot:
    tasks: set[asyncio.Task[object]]
    sockets: set[str] | None

    @classmethod
    def take(cls) -> Snapshot:
        return cls(set(asyncio.all_tasks()), _socket_inodes())

    def new_tasks(self) -> list[asyncio.Task[object]]:
        current = asyncio.current_task()
        return [
            t
            for t in asyncio.all_tasks()
            if t not in self.tasks and t is not current and not t.done()
        ]

    def new_sockets(self) -> set[str]:
        now = _socket_inodes()
        if now is None or self.sockets is None:
            return set()
        return now - self.sockets

    async def leaks(self, grace_s: float = GRACE_S) -> list[str]:
        """What is still alive that was not before, after up to ``grace_s`` to wind down."""
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and (self.new_tasks() or self.new_sockets()):
            await asyncio.sleep(0.02)
        problems = [
            f"task {t.get_name()!r} still running: {t.get_coro()!r}" for t in self.new_tasks()
        ]
        sockets = self.new_sockets()
        if sockets:
            problems.append(f"{len(sockets)} socket(s) still open: {', '.join(sorted(sockets))}")
        return problems
