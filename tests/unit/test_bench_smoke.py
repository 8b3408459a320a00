"""Smoke test of the benchmarks: the cheap figures run in --quick mode and produce numbers.

No timing is asserted (the machine may be busy); only that each figure yields rows with finite
numbers where numbers are due, that the command line works end to end, and that the helpers
compute what they say.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.common import better_ratio, percentile, table
from bench.run import CHEAP, FIGURES, main, run_figure


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_downlink_quick_rows_have_numbers() -> None:
    rows = run_figure("downlink", quick=True)
    assert [r["figure"] for r in rows if "FAILED" in r["figure"]] == []
    cost, share = rows
    assert _is_number(cost["ours"]) and cost["ours"] > 0
    assert _is_number(cost["baseline"]) and cost["baseline"] > 0
    assert _is_number(cost["ratio"]) and cost["ratio"] > 0
    assert 0 < share["ours"] < 100  # parsing is part of the cost, never all of it


def test_cli_runs_the_cheap_figures_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rows.json"
    assert main(["cheap", "--quick", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "machine:" in printed and "downlink cost" in printed
    data = json.loads(out.read_text())
    assert data["quick"] is True
    rows = data["rows"]
    assert not [r for r in rows if "FAILED" in r["figure"]]
    uplink = [r for r in rows if "uplink" in r["figure"]]
    assert uplink, "the uplink figure produced no rows"
    for r in rows:
        assert set(r) >= {"figure", "ours", "baseline", "ratio", "goal", "met"}
        assert _is_number(r["ours"]) or r["ours"] is None
    cost = next(r for r in uplink if "cost" in r["figure"])
    assert _is_number(cost["ours"]) and cost["ours"] > 0
    assert cost["met"] in (True, False)  # judged against the goal


def test_cli_rejects_an_unknown_figure() -> None:
    with pytest.raises(SystemExit):
        main(["no-such-figure"])


def test_cheap_figures_are_registered() -> None:
    assert set(CHEAP) <= set(FIGURES)


def test_a_failing_figure_becomes_a_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FIGURES, "broken", ("bench.no_such_module", "broken on purpose"))
    (r,) = run_figure("broken", quick=True)
    assert "FAILED" in r["figure"] and r["met"] is False


def test_percentile_matches_numpy() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 25, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))


def test_better_ratio_direction() -> None:
    assert better_ratio(10.0, 30.0, lower_is_better=True) == pytest.approx(3.0)
    assert better_ratio(300.0, 100.0, lower_is_better=False) == pytest.approx(3.0)
    assert better_ratio(0.0, 30.0, lower_is_better=True) is None
    assert better_ratio(1.0, None, lower_is_better=True) is None


def test_table_lists_every_row() -> None:
    rows = [
        {"figure": "a", "ours": 1.5, "baseline": None, "ratio": None, "goal": "g", "met": True},
        {
            "figure": "b",
            "ours": float("inf"),
            "baseline": 2.0,
            "ratio": 3.0,
            "goal": "",
            "met": None,
        },
    ]
    text = table(rows)
    assert len(text.splitlines()) == 3
    assert "inf" in text and "yes" in text
    md = table(rows, markdown=True)
    assert md.splitlines()[1].startswith("|---")


def test_answers_accepts_the_time_the_tool_read_a_minute_ago_but_not_earlier() -> None:
    from datetime import datetime, timedelta

    from bench.bench_answers import Question, _clock, answer_ok

    question = Question("time", "What time is it?", "get_time", _clock(None, "time"))
    now = datetime.now().astimezone()
    for moment, right in ((now, True), (now - timedelta(minutes=1), True)):
        assert answer_ok(question, f"It is {moment:%H:%M} now.", ["get_time"]) is right
    wrong = now - timedelta(minutes=5)
    assert not answer_ok(question, f"It is {wrong:%H:%M} now.", ["get_time"])


def test_call_bias_holds_out_its_questions_and_picks_the_best_mean() -> None:
    from bench.bench_answers import QUESTIONS as ANSWERS
    from bench.bench_call_bias import QUESTIONS, Choice, best_bias, score, vain_share

    asked = {text.lower().rstrip("?.!") for text, _ in QUESTIONS}
    assert not asked & {q.text.lower().rstrip("?.!") for q in ANSWERS}
    choices = [
        Choice("own call", "calculate", 1.0, "calculate", grounded=False),
        Choice("just behind", "get_time", -0.6, "get_time", grounded=True),
        Choice("made up", None, -0.4, "calculate", grounded=False),
        Choice("tempted", None, -1.1, "get_time", grounded=True),
        *(Choice(f"plain {i}", None, -50.0, None, grounded=False) for i in range(7)),
    ]
    assert score(choices, 0.0) == (0.5, 1.0)
    assert score(choices, 0.75) == (1.0, 1.0)  # "made up" is not called: its numbers are not said
    assert score(choices, 1.25) == (1.0, 8 / 9)
    assert vain_share(choices, 0.25) == 0.0
    assert vain_share(choices, 0.5) == 1 / 11  # "made up" is written, then dropped
    assert best_bias(choices) == 1.0  # 0.75 and 1.0 tie: the larger keeps an edge case
    # a second question leaning in vain puts a bias beyond the budget however right it is
    choices.append(Choice("costly", None, -0.9, "calculate", grounded=False))
    assert vain_share(choices, 1.0) == 2 / 12
    assert best_bias(choices) == 0.75
