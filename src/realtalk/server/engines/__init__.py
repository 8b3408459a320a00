"""Engines behind `realtalk serve`: VAD, Transcriber, LLM and Voice, real or scripted.

The interfaces live in `base`; `load_engines` picks and loads a set. Model-backed modules
(silero, whisper, llama, piper) import their packages only when loaded, so importing this package
needs nothing beyond numpy.
"""

import os

# onnxruntime (Silero, Piper, faster-whisper) reads this when imported; set it before any engine
# module can import it. Its disable_telemetry_events() alone did not stop the lookups.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from realtalk.server.engines.base import (
    LLM,
    VAD,
    ChatMessage,
    EndOfTurn,
    EngineError,
    Engines,
    EngineUnavailableError,
    LLMChunk,
    LLMUsage,
    TextDelta,
    ToolCall,
    Transcriber,
    Transcript,
    VADStream,
    Voice,
)
from realtalk.server.engines.loader import load_engines

__all__ = [
    "LLM",
    "VAD",
    "ChatMessage",
    "EndOfTurn",
    "EngineError",
    "EngineUnavailableError",
    "Engines",
    "LLMChunk",
    "LLMUsage",
    "TextDelta",
    "ToolCall",
    "Transcriber",
    "Transcript",
    "VADStream",
    "Voice",
    "load_engines",
]
