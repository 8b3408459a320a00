"""Run the reliability suite and print the table of docs/reliability.md from what it counted.

    .venv/bin/python -m tests.reliability.report            # the default (short) suite
    .venv/bin/python -m tests.reliability.report --soak     # the soak tests as well
    .venv/bin/python -m tests.reliability.report --from ledger.json   # just format a ledger

Every test records in the ledger (tests/reliability/conftest.py) what it tried, how many
times, how often everything survived and what was lost; this script only runs pytest with
``REALTALK_RELIABILITY_LEDGER`` pointing at a fresh file and formats that file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LEDGER_ENV = "REALTALK_RELIABILITY_LEDGER"


def run_suite(ledger: Path, *, soak: bool, extra: list[str]) -> int:
    marker = "soak or not soak" if soak else "not soak"
    cmd = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-m", marker, *extra]
    env = {**os.environ, LEDGER_ENV: str(ledger)}
    return subprocess.run(cmd, env=env, check=False).returncode


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Area | Fault or bad input | Tries | Survived | Lost |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for row in sorted(rows, key=lambda r: (r["area"], r["fault"])):
        lost = "; ".join(row["lost"]) or "nothing"
        if row.get("note"):
            lost += f" ({row['note']})"
        lines.append(
            f"| {row['area']} | {row['fault']} | {row['tries']} | {row['survived']} | {lost} |"
        )
    tries = sum(r["tries"] for r in rows)
    survived = sum(r["survived"] for r in rows)
    lines.append(f"| **all** | {len(rows)} kinds | **{tries}** | **{survived}** | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--soak", action="store_true", help="include the @pytest.mark.soak tests")
    parser.add_argument("--from", dest="source", type=Path, help="format this ledger, run nothing")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args(argv)
    code = 0
    if args.source is not None:
        ledger = args.source
    else:
        ledger = Path(tempfile.mkdtemp(prefix="reliability-")) / "ledger.json"
        code = run_suite(ledger, soak=args.soak, extra=args.pytest_args)
        print(f"\nledger: {ledger} (pytest exit code {code})\n")
    if not ledger.exists():
        print("no ledger was written (did any test run?)", file=sys.stderr)
        return code or 1
    print(table(json.loads(ledger.read_text())))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
