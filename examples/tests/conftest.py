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


@pytest.fixture(params=["scripted", pytest.param("local", marks=pytest.mark.slow)])
def realtalk_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
