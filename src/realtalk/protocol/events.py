"""Event names and event shapes of the GA Realtime protocol, written once, under one name.

Builders return plain dicts ready for ``json.dumps``; the client and the local server both call
them, so an event has one shape in the whole project. Builders omit optional fields that are
``None`` (as the official SDK does) so what we send validates against ``openai.types.realtime``.
Reading goes through :func:`parse_event`.

This module gathers, for ``from realtalk.protocol import events as ev; ev.response_create()``:

- :mod:`~realtalk.protocol.event_names`: the names, the beta-to-GA map and :func:`parse_event`;
- :mod:`~realtalk.protocol.items`: conversation items and content parts;
- :mod:`~realtalk.protocol.client_events`: what a client sends;
- :mod:`~realtalk.protocol.server_events`: what a server sends, and the objects inside.
"""

from __future__ import annotations

from . import client_events, event_names, items, server_events
from .client_events import *  # noqa: F403  (this module is their one namespace)
from .event_names import *  # noqa: F403
from .items import *  # noqa: F403
from .server_events import *  # noqa: F403

__all__ = [
    *event_names.__all__,
    *items.__all__,
    *client_events.__all__,
    *server_events.__all__,
]
