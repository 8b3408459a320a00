"""The pytest plugin, run as a user runs it: a separate pytest on a test file of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

USER_TESTS = """
import pytest
from realtalk import Agent


class Echo(Agent):
    def __init__(self):
        super().__init__(instructions="Repeat.")


async def test_passes(agent_test, realtalk_backend):
    assert realtalk_backend == "scripted"
    t = await agent_test(Echo())
    turn = await t.send_text("hello")
    turn.expect.next_event().is_agent_message(contains="You said: hello.")
    turn.expect.no_more_events()


@pytest.mark.realtalk(speed=3.0, timeout_s=7.0)
async def test_marker_options(agent_test):
    t = await agent_test(Echo())
    assert (t.speed, t.timeout_s) == (3.0, 7.0)


async def test_meant_to_fail(agent_test):
    t = await agent_test(Echo())
    t.when("weather").say("It is sunny.")
    turn = await t.send_text("what is the weather")
    turn.expect.next_event().is_agent_message(contains="raining")


@pytest.mark.realtalk_judge
def test_markers_are_registered(request):
    assert request.node.get_closest_marker("realtalk_judge") is not None
"""


def test_the_plugin_gives_fixtures_markers_and_story_failures(tmp_path: Path) -> None:
    (tmp_path / "test_user_agent.py").write_text(USER_TESTS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("REALTALK_TEST_BACKEND", None)
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "realtalk.testing.pytest_plugin",
            "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", "--strict-markers",
            "-q", "-rf", str(tmp_path),
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = result.stdout + result.stderr
    assert "1 failed, 3 passed" in out, out
    assert "Expected: next_event().is_agent_message(contains='raining')" in out
    assert "Got: agent: 'It is sunny.'" in out
    assert "What happened in turn 1: send_text('what is the weather'):" in out


def test_an_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "realtalk.testing.pytest_plugin",
         "--realtalk-backend", "cloud", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid choice: 'cloud'" in result.stderr


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["pytest11"]
    assert entry_points == {"realtalk": "realtalk.testing.pytest_plugin"}
    assert "examples/tests" in project["tool"]["pytest"]["ini_options"]["testpaths"]
