"""One way to load the small ONNX models (Silero VAD, Smart Turn) on onnxruntime.

Each session runs on one intra-op thread: these models take a few milliseconds to ~100 ms a
call, and on 2 cores a session that spread over both would stall Whisper, Piper and the LLM
for no gain. onnxruntime's ``run`` is thread-safe, so one session serves every connection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from realtalk.server.engines.base import EngineUnavailableError

__all__ = ["load_session"]


def load_session(path: Path, what: str) -> Any:
    """An onnxruntime session for the model file ``path`` (``what`` names it in errors)."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailableError("onnxruntime is not installed (pip install .[local])") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # a truncated or corrupt file
        raise EngineUnavailableError(f"cannot load the {what} model {path}: {exc}") from exc
