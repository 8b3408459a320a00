"""Where ``realtalk serve`` takes its API key from (issue 11: ``--api-key`` shows in ``ps``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from realtalk.server.cli import add_arguments, resolve_api_key


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_key_comes_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTALK_API_KEY", "from-env")
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert resolve_api_key(_args("--api-key-file", str(key_file))) == "from-file"


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REALTALK_API_KEY", "from-env")
    args = _args()
    assert "from-env" not in repr(vars(args))  # not a default that argparse would show
    assert resolve_api_key(args) == "from-env"
    monkeypatch.delenv("REALTALK_API_KEY")
    assert resolve_api_key(_args()) is None


def test_a_key_on_the_command_line_warns_that_ps_shows_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REALTALK_API_KEY", raising=False)
    assert resolve_api_key(_args("--api-key", "sk-cmdline")) == "sk-cmdline"
    err = capsys.readouterr().err
    assert "ps" in err and "sk-cmdline" not in err


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_or_missing_key_file_is_an_error(tmp_path: Path, content: str) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(content)
    with pytest.raises(ValueError, match="empty"):
        resolve_api_key(_args("--api-key-file", str(key_file)))
    with pytest.raises(ValueError, match="cannot read"):
        resolve_api_key(_args("--api-key-file", str(tmp_path / "missing")))
