"""Engines behind `realtalk serve`: VAD, Transcriber, LLM and Voice, real or scripted.

The interfaces live in `base`; `load_engines` picks and loads a set. Model-backed modules
(silero, whisper, llama, piper) import their packages only when loaded, so importing this package
needs nothing beyond numpy.
"""

from realtalk.server.engines.base import (
    LLM,
    VAD,
    ChatMessage,
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
