"""Transports: where a session's media comes from and goes to.

- :class:`~realtalk.transports.console.ConsoleTransport`: microphone and speaker, or a text chat.
- :class:`~realtalk.transports.files.FilesTransport`: WAV files in, a WAV and a JSON report out.
- ``realtalk.transports.webrtc``: a browser page over WebRTC (imported on demand: it needs aiortc).
"""

from realtalk.transports.base import Transport
from realtalk.transports.console import ConsoleTransport
from realtalk.transports.files import FilesTransport

__all__ = ["ConsoleTransport", "FilesTransport", "Transport"]
