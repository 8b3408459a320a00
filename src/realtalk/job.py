"""JobContext: what an agent file's ``entrypoint`` gets for one conversation.

A low module on its own, so the runner and the transports that start conversations (the WebRTC
server builds one per browser) both use it without importing each other. ``realtalk.JobContext``
and ``realtalk.runner.JobContext`` are this class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtalk.transports.base import Transport
    from realtalk.transports.telephony.phone import CallInfo

__all__ = ["JobContext"]


@dataclass(frozen=True, slots=True)
class JobContext:
    """What an agent file's ``entrypoint`` gets for one conversation.

    Attributes:
        transport: the media for this conversation; pass it to ``session.start``.
        base_url: the local realtalk server's http base URL when the runner started one, else None.
        api_key: ``OPENAI_API_KEY`` as the runner found it (None when unset).
        session_id: behind a gateway (``realtalk worker``), the id that names this conversation
            across workers; None otherwise.
        resumed: True when this conversation started on another worker and its history was
            restored here (an agent may skip its greeting then).
        call: on a phone transport (twilio, sip), who called whom: From, To, the call id and
            the custom parameters (None elsewhere).
    """

    transport: Transport
    base_url: str | None = None
    api_key: str | None = None
    session_id: str | None = None
    resumed: bool = False
    call: CallInfo | None = None
