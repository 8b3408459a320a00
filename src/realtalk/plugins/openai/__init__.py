"""The OpenAI Realtime (GA) plugin: the seed's public surface on the current protocol.

::

    from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig

    model = OpenAIRealtime(model="gpt-realtime", config=OpenAIRealtimeConfig(voice="alloy"))

Modules: ``client`` (the sans-I/O core, :class:`OpenAIRealtimeClient`), ``link`` (its
``LinkState`` machine and actions), ``handlers`` (one per server event), ``barge_in`` (cuts),
``responses`` (active response and reply requests), ``tools_runner`` (function calls),
``conversation`` (the mirror replayed after a reconnect), ``audio`` (input batching, output),
``config`` (settings → GA session), ``url`` (endpoint, Azure, headers), ``connection``
(handshake and fatal/retryable errors), ``redact`` (no credential in a log line), and
``realtime`` (the asyncio driver: the model itself).
"""

from .client import OpenAIRealtimeClient
from .config import (
    OpenAIRealtimeConfig,
    ReconnectPolicy,
    build_session,
    semantic_vad,
    server_vad,
)
from .conversation import ConversationMirror
from .link import LinkState
from .realtime import SAY_INSTRUCTIONS, OpenAIRealtime, OpenAISession
from .url import OPENAI_BASE_URL, process_base_url

__all__ = [
    "OPENAI_BASE_URL",
    "SAY_INSTRUCTIONS",
    "ConversationMirror",
    "LinkState",
    "OpenAIRealtime",
    "OpenAIRealtimeClient",
    "OpenAIRealtimeConfig",
    "OpenAISession",
    "ReconnectPolicy",
    "build_session",
    "process_base_url",
    "semantic_vad",
    "server_vad",
]
