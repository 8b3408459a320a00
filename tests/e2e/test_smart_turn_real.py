"""Smart Turn v3.2 on real speech (Piper): a finished question sounds finished, a sentence cut
off mid-way does not. Slow: loads the model and Piper."""

from __future__ import annotations

import numpy as np
import pytest

from realtalk.media.resample import resample_oneshot
from realtalk.server.engines.smart_turn import SmartTurn
from realtalk.testing.audio import speak

pytestmark = pytest.mark.slow

FINISHED = ["What is the capital of France?", "How many kilometers are in ten miles?"]
UNFINISHED = ["Can you tell me, um, what"]


@pytest.fixture(scope="module")
def speech() -> dict[str, np.ndarray]:
    out = {}
    for text in FINISHED + UNFINISHED:
        frame = speak(text)  # the test user's voice: the same samples every run
        at16k = np.asarray(resample_oneshot(frame.to_array(), frame.sample_rate, 16000), np.float32)
        at16k /= 32768
        out[text] = np.concatenate([at16k, np.zeros(3200, np.float32)])  # 200 ms of pause
    return out


def test_finished_questions_outscore_an_unfinished_one(speech: dict[str, np.ndarray]) -> None:
    model = SmartTurn()  # the set-up put it in the cache
    finished = [model.probability(speech[t]) for t in FINISHED]
    unfinished = [model.probability(speech[t]) for t in UNFINISHED]
    assert min(finished) >= 0.5, finished
    assert max(unfinished) < 0.5, unfinished
