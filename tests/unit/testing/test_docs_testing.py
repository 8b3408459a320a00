"""docs/testing.md quotes the example tests: its code must be their code, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_guide_quotes_the_example_tests_verbatim() -> None:
    guide = (ROOT / "docs" / "testing.md").read_text()
    source = (ROOT / "examples" / "tests" / "test_assistant.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    quoted = [b for b in blocks if "def test_a_" in b or "pytestmark" in b]
    assert len(quoted) == 5
    for block in quoted:
        assert block in source, f"docs/testing.md quotes code that is not in the tests:\n{block}"
    names = re.findall(r"^async def (test_\w+)", source, re.M)
    for name in names:
        assert f"async def {name}(" in guide, f"{name} is not in docs/testing.md"
