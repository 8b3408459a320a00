"""docs/testing.md quotes the example tests: its code must be their code, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE_TESTS = ["test_assistant.py", "test_receptionist.py"]


def test_the_guide_quotes_the_example_tests_verbatim() -> None:
    guide = (ROOT / "docs" / "testing.md").read_text()
    sources = [(ROOT / "examples" / "tests" / name).read_text() for name in EXAMPLE_TESTS]
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    quoted = [b for b in blocks if "agent_test(" in b and "realtalk_judge" not in b]
    quoted += [b for b in blocks if b.startswith("# The user's microphone")]
    assert len(quoted) == 6
    for block in quoted:
        assert any(block in source for source in sources), (
            f"docs/testing.md quotes code that is not in the example tests:\n{block}"
        )
    for source in sources:
        for name in re.findall(r"^async def (test_\w+)", source, re.M):
            assert f"async def {name}(" in guide, f"{name} is not in docs/testing.md"
