"""One way to load the ONNX models (Silero VAD, Smart Turn, Piper's voice) on onnxruntime.

The small models (Silero, Smart Turn) run on one intra-op thread: they take a few milliseconds
to ~100 ms a call, and on 2 cores a session that spread over both would stall Whisper, Piper and
the LLM for no gain. Piper's voice takes both cores, its threads waiting without spinning.
onnxruntime's ``run`` is thread-safe, so one session serves every connection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from realtalk.server.engines.base import EngineUnavailableError

__all__ = ["load_session"]


def load_session(path: Path, what: str, *, threads: int = 1, spin: bool = True) -> Any:
    """An onnxruntime session for the model file ``path`` (``what`` names it in errors), on
    ``threads`` intra-op threads (0: onnxruntime's choice, one per core) that spin while they
    wait for work unless ``spin`` is False."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before onnxruntime is imported
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailableError("onnxruntime is not installed (pip install .[local])") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # a truncated or corrupt file
        raise EngineUnavailableError(f"cannot load the {what} model {path}: {exc}") from exc
