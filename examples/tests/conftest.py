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
def realtalk_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "local":
        # These flows expect a deterministic choice of tool, which SmolLM2's keyword router
        # makes; Qwen 0.5B (the default local LLM) chooses for itself and answered some of these
        # sums without the calculator (issue 9's report), so they pin the router-driven model.
        monkeypatch.setenv("REALTALK_LLM", "smollm2")
    return str(request.param)
