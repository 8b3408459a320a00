"""Which response is active, which reply requests wait, and which audio must not be interrupted.

Sans-I/O bookkeeping for :class:`~realtalk.plugins.openai.OpenAIRealtime`. Why it exists:

- Only one response may be active in the conversation; a ``response.create`` sent meanwhile is
  refused (``conversation_already_has_active_response``). Requests therefore wait in a queue and
  go out one at a time, when no response is active *and* no request is still unanswered.
- Each request carries ``metadata.client_request_id`` and its own ``event_id``: the
  ``response.created`` that answers it is recognised by the metadata (so a reply that arrives
  late is never mistaken for another one), and an error is matched by the event id (a refused
  request is queued again rather than lost).
- A response created with ``interruptible=False`` and the audio items it produced are
  *protected*: the user's speech does not flush them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ResponseRequest", "ResponseState", "ResponseTracker"]

_KEEP_RESPONSES = 64


@dataclass(slots=True)
class ResponseRequest:
    """A ``response.create`` the client wants to send (or has sent)."""

    request_id: str
    kind: str  # "reply", "say", "tool_followup", "resume"
    body: dict[str, Any]
    interruptible: bool = True
    event_id: str | None = None
    attempts: int = 0


@dataclass(slots=True)
class ResponseState:
    """One response of the server, from ``response.created`` to ``response.done``."""

    response_id: str
    request: ResponseRequest | None = None
    interruptible: bool = True
    audio_items: list[str] = field(default_factory=list)
    ended_items: set[str] = field(default_factory=set)
    cancelled: bool = False  # its audio must be dropped
    audio_seen: bool = False
    done: bool = False
    status: str | None = None

    @property
    def kind(self) -> str:
        return self.request.kind if self.request else "server"


class ResponseTracker:
    """Active response, queued requests and protected (non-interruptible) audio."""

    def __init__(self) -> None:
        self.active: ResponseState | None = None
        self.in_flight: ResponseRequest | None = None
        self._queue: deque[ResponseRequest] = deque()
        self._by_request: dict[str, ResponseRequest] = {}
        self._responses: OrderedDict[str, ResponseState] = OrderedDict()
        self.protected_items: set[str] = set()

    # -- requests -------------------------------------------------------------------------------

    def enqueue(self, request: ResponseRequest) -> None:
        self._by_request[request.request_id] = request
        self._queue.append(request)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """A response is active or a sent request awaits its ``response.created``."""
        return self.active is not None or self.in_flight is not None

    def next_to_send(self) -> ResponseRequest | None:
        """The request to send now, marked in flight; None while busy or when none waits."""
        if self.busy or not self._queue:
            return None
        request = self._queue.popleft()
        request.attempts += 1
        self.in_flight = request
        return request

    def refused(self, event_id: str | None, *, retry: bool) -> ResponseRequest | None:
        """The server refused the request sent with ``event_id``; queue it again if ``retry``."""
        request = self.in_flight
        if request is None or event_id is None or request.event_id != event_id:
            return None
        self.in_flight = None
        if retry and request.attempts < 5:
            self._queue.appendleft(request)
        else:
            self._by_request.pop(request.request_id, None)
        return request

    # -- server responses -----------------------------------------------------------------------

    def created(self, response: dict[str, Any]) -> ResponseState:
        response_id = str(response.get("id") or "")
        metadata = response.get("metadata") or {}
        request = None
        if isinstance(metadata, dict):
            request = self._by_request.pop(str(metadata.get("client_request_id")), None)
        if request is not None and self.in_flight is request:
            self.in_flight = None
        state = ResponseState(
            response_id,
            request=request,
            interruptible=request.interruptible if request else True,
        )
        self._responses[response_id] = state
        if len(self._responses) > _KEEP_RESPONSES:
            self._responses.popitem(last=False)
        self.active = state
        return state

    def get(self, response_id: str | None) -> ResponseState | None:
        return self._responses.get(response_id) if response_id else None

    def get_or_create(self, response_id: str) -> ResponseState:
        state = self._responses.get(response_id)
        if state is None:
            state = ResponseState(response_id)
            self._responses[response_id] = state
        return state

    def done(self, response: dict[str, Any]) -> ResponseState:
        state = self.get_or_create(str(response.get("id") or ""))
        state.done = True
        status = response.get("status")
        state.status = status if isinstance(status, str) else None
        if self.active is state:
            self.active = None
        return state

    def audio_item(self, state: ResponseState, item_id: str) -> bool:
        """Record that ``item_id`` carries audio of ``state``; True the first time."""
        if item_id in state.audio_items:
            return False
        state.audio_items.append(item_id)
        if not state.interruptible:
            self.protected_items.add(item_id)
        return True

    def item_finished(self, item_id: str) -> None:
        self.protected_items.discard(item_id)

    @property
    def protected(self) -> bool:
        """Non-interruptible audio is being generated, queued or played."""
        active = self.active
        return bool(self.protected_items) or (active is not None and not active.interruptible)

    def waiting_protected(self) -> bool:
        """A non-interruptible request is queued, in flight or active (VAD must not cancel)."""
        if self.active is not None and not self.active.interruptible:
            return True
        if self.in_flight is not None and not self.in_flight.interruptible:
            return True
        return any(not r.interruptible for r in self._queue)

    def connection_lost(self) -> ResponseState | None:
        """The socket dropped: the active response is gone and an unanswered request is resent.

        Returns the response that was cut, if one was active.
        """
        cut = self.active
        self.active = None
        if self.in_flight is not None:
            self._queue.appendleft(self.in_flight)
            self.in_flight = None
        return cut
