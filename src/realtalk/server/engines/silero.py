"""Silero VAD (v5/v6 ONNX) on onnxruntime, from the model file inside the `silero-vad` wheel.

The `silero_vad` package is never imported (its import pulls in torch); `find_spec` only locates
the wheel's folder. Each call to the model takes 512 new samples plus the last 64 samples of the
previous window as context, and carries an LSTM-like state of shape [2, 1, 128]; both are per
connection, the onnxruntime session is shared (its `run` is thread-safe).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from realtalk.server.engines.base import VAD, EngineUnavailableError, VADStream, check_pcm16k
from realtalk.server.engines.onnx import load_session

__all__ = ["SileroVAD", "SileroVADStream", "silero_model_path"]

_CONTEXT = 64
_WINDOW = 512
_STATE_SHAPE = (2, 1, 128)


def silero_model_path() -> Path:
    """Where the installed silero-vad wheel keeps `silero_vad.onnx` (without importing it)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise EngineUnavailableError(
            "silero-vad is not installed: pip install --no-deps silero-vad==6.2.3 "
            "(or run scripts/setup)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise EngineUnavailableError(f"silero-vad is installed but {path} is missing")
    return path


class SileroVADStream:
    """One connection's Silero state: recurrent state, 64 samples of context, partial window."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._input = np.zeros((1, _CONTEXT + _WINDOW), dtype=np.float32)  # context + window
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._sr = np.array(16000, dtype=np.int64)
        self._filled = 0  # samples of the current window already in self._input[0, 64:]

    def feed(self, pcm16k: np.ndarray) -> np.ndarray:
        pcm = check_pcm16k(pcm16k, "SileroVAD.feed")
        row = self._input[0]
        probs = np.empty((self._filled + pcm.size) // _WINDOW, dtype=np.float32)
        pos = 0
        for i in range(probs.size):
            take = _WINDOW - self._filled
            row[_CONTEXT + self._filled :] = pcm[pos : pos + take]
            pos += take
            out, self._state = self._session.run(
                None, {"input": self._input, "state": self._state, "sr": self._sr}
            )
            probs[i] = float(out.reshape(-1)[0])
            row[:_CONTEXT] = row[-_CONTEXT:]  # the window's tail is the next window's context
            self._filled = 0
        rest = pcm.size - pos
        row[_CONTEXT + self._filled : _CONTEXT + self._filled + rest] = pcm[pos:]
        self._filled += rest
        return probs

    def reset(self) -> None:
        self._input.fill(0.0)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._filled = 0


class SileroVAD(VAD):
    """The shared Silero model; checks at load that it takes the inputs this code feeds it."""

    def __init__(self, model_path: Path | None = None) -> None:
        path = model_path or silero_model_path()
        self._session = load_session(path, "Silero VAD")
        self._check_inputs()
        self.model_path = path

    def _check_inputs(self) -> None:
        inputs = {i.name: i for i in self._session.get_inputs()}
        expected = {"input": "tensor(float)", "state": "tensor(float)", "sr": "tensor(int64)"}
        found = {name: i.type for name, i in inputs.items()}
        if found != expected:
            raise EngineUnavailableError(f"unexpected Silero model inputs {found}, need {expected}")
        state_shape = list(inputs["state"].shape)  # [2, batch, 128], batch often symbolic
        if len(state_shape) != 3 or [state_shape[0], state_shape[2]] != [2, 128]:
            raise EngineUnavailableError(f"unexpected Silero state shape {state_shape}")

    def create_stream(self) -> VADStream:
        return SileroVADStream(self._session)
