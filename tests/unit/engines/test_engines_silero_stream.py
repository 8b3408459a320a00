"""SileroVADStream's bookkeeping (context, state, partial windows) with a fake onnx session."""

from __future__ import annotations

from typing import Any

import numpy as np

from realtalk.server.engines.silero import SileroVADStream


class FakeSession:
    """Records what the model would see; prob = index of the call, state counts calls."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []
        self.states: list[np.ndarray] = []

    def run(self, _outputs: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert feed["input"].shape == (1, 576) and feed["input"].dtype == np.float32
        assert feed["sr"] == 16000 and feed["sr"].dtype == np.int64
        self.inputs.append(feed["input"].copy())
        self.states.append(feed["state"].copy())
        prob = np.array([[len(self.inputs) / 100]], dtype=np.float32)
        return [prob, feed["state"] + 1.0]


def test_each_window_is_sent_with_the_previous_windows_last_64_samples() -> None:
    session = FakeSession()
    stream = SileroVADStream(session)
    audio = np.arange(1600, dtype=np.float32) / 1600  # 3 windows + 64 samples
    probs = np.concatenate([stream.feed(audio[i : i + 320]) for i in range(0, 1600, 320)])
    np.testing.assert_allclose(probs, [0.01, 0.02, 0.03])
    first, second, third = (x[0] for x in session.inputs)
    assert not first[:64].any()  # no context before the first window
    np.testing.assert_array_equal(first[64:], audio[:512])
    np.testing.assert_array_equal(second[:64], audio[448:512])
    np.testing.assert_array_equal(second[64:], audio[512:1024])
    np.testing.assert_array_equal(third[:64], audio[960:1024])
    assert [s.max() for s in session.states] == [0.0, 1.0, 2.0]  # state carried between calls


def test_reset_clears_context_state_and_partial_window() -> None:
    session = FakeSession()
    stream = SileroVADStream(session)
    stream.feed(np.ones(700, np.float32))  # one window, 188 samples pending
    stream.reset()
    assert stream.feed(np.full(512, 0.5, np.float32)).size == 1
    last = session.inputs[-1][0]
    assert not last[:64].any() and (last[64:] == 0.5).all()
    assert session.states[-1].max() == 0.0


def test_streams_sharing_a_session_keep_separate_state() -> None:
    session = FakeSession()
    a, b = SileroVADStream(session), SileroVADStream(session)
    a.feed(np.ones(512, np.float32))
    b.feed(np.full(512, 0.25, np.float32))
    assert session.states[1].max() == 0.0  # b started from its own zero state
    assert not session.inputs[1][0][:64].any()
