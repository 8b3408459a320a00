"""The local Realtime server (`realtalk serve`): the GA protocol from the other side.

``LocalServer`` speaks the OpenAI Realtime GA protocol over WebSocket, fully offline, with local
engines (Silero VAD, Whisper, a llama.cpp LLM, Piper) or deterministic scripted ones for tests.
"""

from realtalk.server.app import LocalServer
from realtalk.server.connection import Connection

__all__ = ["Connection", "LocalServer"]
