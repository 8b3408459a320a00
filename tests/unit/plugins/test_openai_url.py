"""Endpoint URLs (OpenAI, Azure GA, local), headers, and the API-key rule of the constructor."""

from __future__ import annotations

import pytest

from realtalk.errors import ConfigurationError, FatalServerError
from realtalk.plugins.openai import OpenAIRealtime, process_base_url
from realtalk.plugins.openai.connection import handshake_error
from realtalk.plugins.openai.url import auth_headers, needs_api_key, redact_url


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("https://api.openai.com/v1/", "wss://api.openai.com/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime"),
        ("ws://127.0.0.1:8765", "ws://127.0.0.1:8765/realtime?model=gpt-realtime"),
        (
            "https://gw.example.com/openai",
            "wss://gw.example.com/openai/realtime?model=gpt-realtime",
        ),
        ("wss://gw.example.com/custom/rt", "wss://gw.example.com/custom/rt?model=gpt-realtime"),
        (
            "wss://gw.example.com/v1/realtime?model=other",
            "wss://gw.example.com/v1/realtime?model=other",
        ),
        (
            "https://gw.example.com/v1?region=eu",
            "wss://gw.example.com/v1/realtime?region=eu&model=gpt-realtime",
        ),
    ],
)
def test_process_base_url_keeps_the_seed_rules(base: str, expected: str) -> None:
    assert process_base_url(base, "gpt-realtime") == expected


@pytest.mark.parametrize(
    "base",
    [
        "https://res.openai.azure.com",
        "https://res.openai.azure.com/",
        "https://res.openai.azure.com/openai",
        "https://res.openai.azure.com/openai/v1",
        "https://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=dep",
    ],
)
def test_azure_urls_use_the_ga_form(base: str) -> None:
    assert (
        process_base_url(base, "dep") == "wss://res.openai.azure.com/openai/v1/realtime?model=dep"
    )


def test_headers_bearer_plus_azure_api_key_and_never_beta() -> None:
    openai = auth_headers("sk-1", "wss://api.openai.com/v1/realtime")
    assert openai == {"Authorization": "Bearer sk-1"}
    azure = auth_headers("k2", "wss://res.openai.azure.com/openai/v1/realtime?model=d")
    assert azure == {"Authorization": "Bearer k2", "api-key": "k2"}
    assert auth_headers(None, "ws://127.0.0.1:1/v1") == {}
    assert not any("beta" in k.lower() for k in {**openai, **azure})


def test_missing_key_for_openai_is_a_clear_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY") as info:
        OpenAIRealtime(model="gpt-realtime")
    assert isinstance(info.value, ConfigurationError)
    assert "realtalk serve" in str(info.value)
    with pytest.raises(ConfigurationError):
        OpenAIRealtime(model="dep", base_url="https://res.openai.azure.com")


def test_local_and_custom_servers_need_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = OpenAIRealtime(model="gpt-realtime", base_url="http://127.0.0.1:8765/v1")
    assert model.api_key is None
    OpenAIRealtime(model="gpt-realtime", base_url="https://gateway.example.com/v1")
    assert not needs_api_key("http://localhost:1/v1")


def test_key_and_base_url_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1")
    model = OpenAIRealtime(model="gpt-realtime")
    assert model.api_key == "sk-env"
    assert model.base_url == "http://127.0.0.1:9999/v1"
    explicit = OpenAIRealtime(model="m", api_key="sk-arg", base_url="http://127.0.0.1:1/v1")
    assert explicit.api_key == "sk-arg"
    assert explicit.process_base_url(explicit.base_url, "m").endswith("/v1/realtime?model=m")


def test_empty_model_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="model"):
        OpenAIRealtime(model=" ", api_key="k")


def test_handshake_errors_tell_fatal_from_retryable() -> None:
    url = "wss://api.openai.com/v1/realtime?model=m"
    auth = handshake_error(url, 401, b'{"error": {"code": "invalid_api_key", "message": "bad"}}')
    assert isinstance(auth, FatalServerError)
    assert auth.code == "invalid_api_key"
    assert "OPENAI_API_KEY" in str(auth)
    quota = handshake_error(url, 429, b'{"error": {"code": "insufficient_quota", "message": "x"}}')
    assert isinstance(quota, FatalServerError)
    busy = handshake_error(url, 503, b"overloaded")
    assert not isinstance(busy, FatalServerError)
    assert "503" in str(busy)
    assert "model=" not in redact_url(url)
