"""The GA OpenAI Realtime protocol, sans I/O: event shapes, session rules, validation, errors.

Both the client plugin (``realtalk.plugins.openai``) and the local server (``realtalk.server``)
build and read events through this package, so every shape is written once. Nothing here opens a
socket, reads a clock or starts a task.
"""

from . import events
from .audio_formats import PCM24K, PCMA, PCMU, AudioFormat
from .errors import BENIGN_CODES, FATAL_CODES, ProtocolError
from .events import BETA_TO_GA, CLIENT_EVENT_TYPES, SERVER_EVENT_TYPES, parse_event
from .ids import IdGenerator, new_id
from .say import SAY_PREFIX, parse_say_instructions, say_instructions
from .session import default_session, merge_session, validate_session
from .validate import decode_audio, validate_client_event, validate_item

__all__ = [
    "BENIGN_CODES",
    "BETA_TO_GA",
    "CLIENT_EVENT_TYPES",
    "FATAL_CODES",
    "PCM24K",
    "PCMA",
    "PCMU",
    "SAY_PREFIX",
    "SERVER_EVENT_TYPES",
    "AudioFormat",
    "IdGenerator",
    "ProtocolError",
    "decode_audio",
    "default_session",
    "events",
    "merge_session",
    "new_id",
    "parse_event",
    "parse_say_instructions",
    "say_instructions",
    "validate_client_event",
    "validate_item",
    "validate_session",
]
