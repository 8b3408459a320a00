"""The pytest plugin (entry point ``pytest11``: ``realtalk``): fixtures and markers for agent tests.

Fixtures:

- ``agent_test``: ``t = await agent_test(MyAgent())`` (or an agent file's path) starts an
  :class:`~realtalk.testing.AgentTest` on the chosen backend and closes it after the test,
  checking that nothing leaked (only for a test that passed, so a failure keeps its own message).
- ``realtalk_backend``: "scripted" unless ``--realtalk-backend`` or ``REALTALK_TEST_BACKEND``
  says otherwise; override it (e.g. parametrize it) to run the same tests on several backends.

Markers:

- ``@pytest.mark.realtalk(backend=..., speed=..., timeout_s=...)``: options for ``agent_test``.
- ``@pytest.mark.realtalk_judge``: the test asks an LLM judge (non-deterministic).

Async fixtures need pytest-asyncio (``asyncio_mode = "auto"`` or ``@pytest.mark.asyncio``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from realtalk.testing.harness import AgentTest

__all__ = ["agent_test", "ensure_registered", "realtalk_backend"]

_BACKENDS = ("scripted", "local", "openai")
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()

try:
    import pytest_asyncio

    _async_fixture: Callable[..., Any] = pytest_asyncio.fixture
except ImportError:  # the fixture then says what is missing when a test asks for it
    _async_fixture = pytest.fixture


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("realtalk", "realtalk agent tests")
    group.addoption(
        "--realtalk-backend",
        choices=_BACKENDS,
        default=None,
        help="where agent_test runs agents: scripted (default), local (offline models), "
        "openai (needs OPENAI_API_KEY); also REALTALK_TEST_BACKEND",
    )
    group.addoption(
        "--realtalk-speed",
        type=float,
        default=None,
        help="speak and play audio at this multiple of real time (default 1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "realtalk(backend=None, speed=None, timeout_s=None): options for the agent_test fixture",
    )
    config.addinivalue_line(
        "markers", "realtalk_judge: the test asks an LLM judge; its outcome is non-deterministic"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report, so agent_test's teardown knows whether the test passed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture
def realtalk_backend(request: pytest.FixtureRequest) -> str:
    """The backend agent_test uses: the marker, the option, the environment, else scripted."""
    marker = request.node.get_closest_marker("realtalk")
    if marker is not None and marker.kwargs.get("backend"):
        return str(marker.kwargs["backend"])
    chosen = request.config.getoption("--realtalk-backend", default=None)
    chosen = chosen or os.environ.get("REALTALK_TEST_BACKEND") or "scripted"
    if chosen not in _BACKENDS:
        raise pytest.UsageError(
            f"REALTALK_TEST_BACKEND={chosen!r}: expected one of {', '.join(_BACKENDS)}"
        )
    return str(chosen)


@_async_fixture
async def agent_test(
    request: pytest.FixtureRequest, realtalk_backend: str
) -> AsyncIterator[Callable[..., Awaitable[AgentTest]]]:
    """``await agent_test(agent_or_file, **options)`` → a started AgentTest, closed after."""
    from realtalk.testing.harness import AgentTest

    marker = request.node.get_closest_marker("realtalk")
    defaults: dict[str, Any] = {"backend": realtalk_backend}
    speed = request.config.getoption("--realtalk-speed", default=None)
    if speed is not None:
        defaults["speed"] = speed
    if marker is not None:
        defaults.update({k: v for k, v in marker.kwargs.items() if v is not None})
        defaults["backend"] = realtalk_backend
    started: list[AgentTest] = []

    async def start(agent: Any, **options: Any) -> AgentTest:
        merged = {**defaults, **options}
        if isinstance(agent, str | os.PathLike):
            test = AgentTest.from_file(Path(agent), **merged)
        else:
            test = AgentTest(agent, **merged)
        started.append(test)
        await test.start()
        return test

    yield start
    reports = request.node.stash.get(_REPORTS, {})
    passed = all(r.passed for r in reports.values()) if reports else True
    for test in reversed(started):
        await test.aclose(check_leaks=passed and test.check_leaks)


def ensure_registered(config: pytest.Config) -> None:
    """Register this plugin unless its entry point already did (a checkout whose installed
    metadata predates the entry point); call it from a conftest's ``pytest_configure``."""
    import sys

    if not config.pluginmanager.has_plugin("realtalk"):
        config.pluginmanager.register(sys.modules[__name__], "realtalk")
