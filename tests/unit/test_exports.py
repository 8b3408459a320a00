"""The public names the README and docs promise are importable from where they say."""

from __future__ import annotations

import importlib

import pytest

import realtalk

PROMISED = {
    "realtalk": ["Agent", "AgentSession", "function_tool", "JobContext", "RealtalkError"],
    "realtalk.plugins.openai": ["OpenAIRealtime", "OpenAIRealtimeConfig", "OpenAISession"],
    "realtalk.server": ["LocalServer"],
    "realtalk.testing": ["AgentTest", "ExpectationFailed", "Judge", "TurnResult", "WavInputError"],
    "realtalk.transports.webrtc": ["serve", "WebRTCServer"],
}


@pytest.mark.parametrize("module", sorted(PROMISED))
def test_promised_names_exist(module: str) -> None:
    mod = importlib.import_module(module)
    for name in PROMISED[module]:
        assert hasattr(mod, name), f"{module}.{name} is promised by the docs"
        assert name in getattr(mod, "__all__", [name]), f"{name} missing from {module}.__all__"


def test_all_lists_only_real_names() -> None:
    for name in realtalk.__all__:
        assert hasattr(realtalk, name), name
