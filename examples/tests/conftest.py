"""The example tests run on the scripted local server by default; the same tests run on the
offline models in the slow suite (`realtalk_backend` is parametrized)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from realtalk.testing.pytest_plugin import ensure_registered

EXAMPLES = Path(__file__).resolve().parents[1]
if str(EXAMPLES) not in sys.path:  # `import assistant`, as the agent file imports itself
    sys.path.insert(0, str(EXAMPLES))


def pytest_configure(config: pytest.Config) -> None:
    ensure_registered(config)  # a checkout whose installed entry points predate the plugin


# On the offline models these flows depend on the model choosing the calculator with clean
# arguments, which the 0.5B default does for about 7 spoken questions in 10 (docs/benchmarks.md,
# `bench answers`): they run in the slow suite to catch crashes and regressions, and a wrong choice
# of the model is an expected failure, not a broken build.
_LOCAL = pytest.param(
    "local",
    marks=[
        pytest.mark.slow,
        pytest.mark.xfail(reason="the offline LLM's tool choice is not yet reliable", strict=False),
    ],
)


@pytest.fixture(params=["scripted", _LOCAL])
def realtalk_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
