"""The OpenAI Realtime (GA) plugin: the seed's public surface on the current protocol.

::

    from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

    model = OpenAIRealtime(model="gpt-realtime", config=OpenAIRealtimeConfig(voice="alloy"))

Modules: ``config`` (settings → GA session), ``url`` (endpoint, Azure, headers), ``connection``
(handshake and fatal/retryable errors), ``audio`` (input batching, output, barge-in cuts),
``responses`` (active response and reply requests), ``tools_runner`` (function calls),
``conversation`` (the mirror replayed after a reconnect), ``realtime`` (the model itself).
"""

from .config import (
    OpenAIRealtimeConfig,
    ReconnectPolicy,
    build_session,
    semantic_vad,
    server_vad,
)
from .conversation import ConversationMirror
from .realtime import SAY_INSTRUCTIONS, OpenAIRealtime, OpenAISession
from .url import OPENAI_BASE_URL, process_base_url

__all__ = [
    "OPENAI_BASE_URL",
    "SAY_INSTRUCTIONS",
    "ConversationMirror",
    "OpenAIRealtime",
    "OpenAIRealtimeConfig",
    "OpenAISession",
    "ReconnectPolicy",
    "build_session",
    "process_base_url",
    "semantic_vad",
    "server_vad",
]
