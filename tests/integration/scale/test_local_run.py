"""``realtalk run AGENT --workers N``: Redis, N workers and a gateway, all gone after Ctrl+C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import aiohttp
import pytest

from tests.integration.scale.conftest import AGENT, child_env
from tests.integration.scale.peer import make_offer_sdp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def children_of(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    pairs = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    return {child for child, parent in pairs if parent == pid}


async def test_run_with_workers_serves_through_a_gateway_and_stops_on_ctrl_c() -> None:
    cli = "import sys; from realtalk.cli import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", cli, "run", str(AGENT), "--workers", "2", "--engine", "scripted",
         "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"Open (http://\S+) in a browser .*\(2 workers", line)
        assert match, line
        url = match.group(1)
        assert len(children_of(process.pid)) == 4  # redis-server, 2 workers, the gateway
        sdp = await make_offer_sdp()
        workers = set()
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.post(f"{url}api/offer", json={"sdp": sdp, "type": "offer"}) as r:
                    assert r.status == 200
                    workers.add((await r.json())["worker"])
            async with http.get(f"{url}api/health") as r:
                assert len((await r.json())["workers"]) == 2
        assert len(workers) == 2  # one each: least-loaded first
        kids = children_of(process.pid)
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
        for pid in kids:  # every child is gone (stopped and reaped)
            assert not os.path.exists(f"/proc/{pid}")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
