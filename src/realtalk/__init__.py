"""realtalk: realtime voice and vision AI agents.

What a user writes comes from here::

    from realtalk import Agent, AgentSession, function_tool
    from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
"""

import logging

from realtalk.agent import Agent
from realtalk.errors import (
    ConfigurationError,
    ConnectionLostError,
    FatalServerError,
    LocalError,
    NotConnectedError,
    ProtocolViolation,
    RealtalkError,
    RemoteError,
    ServerError,
)
from realtalk.events import EventEmitter
from realtalk.handoff import Handoff
from realtalk.job import JobContext
from realtalk.metrics import PriceTable, SessionMetrics, TurnMetrics, Usage
from realtalk.realtime.base import ModelError, RealtimeBaseModel, RealtimeCapabilities
from realtalk.session import AgentSession
from realtalk.tools import FunctionTool, ToolResult, function_tool
from realtalk.transports import ConsoleTransport, FilesTransport, Transport

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentSession",
    "ConfigurationError",
    "ConnectionLostError",
    "ConsoleTransport",
    "EventEmitter",
    "FatalServerError",
    "FilesTransport",
    "FunctionTool",
    "Handoff",
    "JobContext",
    "LocalError",
    "ModelError",
    "NotConnectedError",
    "PriceTable",
    "ProtocolViolation",
    "RealtalkError",
    "RealtimeBaseModel",
    "RealtimeCapabilities",
    "RemoteError",
    "ServerError",
    "SessionMetrics",
    "ToolResult",
    "Transport",
    "TurnMetrics",
    "Usage",
    "__version__",
    "function_tool",
]

# A library never configures logging for its user; this only keeps "no handler" warnings away.
logging.getLogger("realtalk").addHandler(logging.NullHandler())
