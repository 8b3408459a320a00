"""The pytest plugin, run as a user runs it: a separate pytest on a test file of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def load_plugin() -> list[str]:
    """Installed realtalk brings the plugin through its entry point (loading it again with -p
    would register it twice); a checkout whose installed metadata predates it needs -p."""
    if any(ep.name == "realtalk" for ep in entry_points(group="pytest11")):
        return []
    return ["-p", "realtalk.testing.pytest_plugin"]


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
            sys.executable, "-m", "pytest", *load_plugin(), "-p", "no:cacheprovider",
            "-o", "asyncio_mode=auto", "--strict-markers",
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
        [sys.executable, "-m", "pytest", *load_plugin(), "--realtalk-backend", "cloud",
         str(tmp_path)],
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


def test_the_declared_entry_point_loads_the_plugin_without_p(tmp_path: Path) -> None:
    # An installed distribution carrying exactly the entry point pyproject.toml declares.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [(name, target)] = project["project"]["entry-points"]["pytest11"].items()
    site = tmp_path / "site"
    info = site / "realtalk_probe-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: realtalk-probe\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{name} = {target}\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_probe.py").write_text(
        "async def test_fixtures_exist(agent_test, realtalk_backend):\n"
        "    assert callable(agent_test) and realtalk_backend == 'scripted'\n"
    )
    paths = [str(site), str(ROOT / "src")] if load_plugin() else [str(ROOT / "src")]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-o", "asyncio_mode=auto", str(tests)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )  # fmt: skip
    assert "1 passed" in result.stdout, result.stdout + result.stderr
