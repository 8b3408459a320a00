"""Which response is active, which reply requests wait, and which audio must not be interrupted.

Sans-I/O bookkeeping for :class:`~realtalk.plugins.openai.OpenAIRealtime`. Why it exists:

- Only one response may be active in the conversation; a ``response.create`` sent meanwhile is
  refused (``conversation_already_has_active_response``). Requests therefore wait in a queue and
  go out one at a time, when no response is active *and* no request is still unanswered.
- Each request carries ``metadata.client_request_id`` and its own ``event_id``: the
  ``response.created`` that answers it is recognised by the metadata (so a reply that arrives
  late is never mistaken for another one), and an error is matched by the event id (a refused
  request is queued again rather than lost). A server that does not echo metadata is matched by
  order: the ``response.created`` that follows a request in flight answers it (only until the
  server is seen echoing metadata, after which an unmarked response is the server's own).
- A request or response that never completes must not wedge the queue: :meth:`stalled` lets
  the client's watchdog give up on it.
- A response created with ``interruptible=False`` and the audio items it produced are
  *protected*: the user's speech does not flush them.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ResponseRequest", "ResponseState", "ResponseTracker", "Watchdog"]

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
        #: Seen a response.created carrying our request id: unmarked ones are the server's own.
        self.echoes_metadata = False
        #: Responses matched to a request by order, by the request's event id.
        self._by_order: dict[str, ResponseState] = {}

    # -- requests -------------------------------------------------------------------------------

    def enqueue(self, request: ResponseRequest) -> None:
        self._by_request[request.request_id] = request
        self._queue.append(request)

    def drop_queued(self, kind: str) -> None:
        """Forget queued (unsent) requests of ``kind``."""
        for request in [r for r in self._queue if r.kind == kind]:
            self._queue.remove(request)
            self._by_request.pop(request.request_id, None)

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
        if event_id is not None and event_id in self._by_order:
            # The response we took for this request's answer was the server's own after all.
            state = self._by_order.pop(event_id)
            request = state.request
            state.request, state.interruptible = None, True
            if request is not None and retry and request.attempts < 5:
                self._by_request[request.request_id] = request
                self._queue.appendleft(request)
            return request
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

    def created(self, response: dict[str, Any], event_id: str | None = None) -> ResponseState:
        response_id = response.get("id")
        if not isinstance(response_id, str) or not response_id:
            # No id (or "response": null): still the active response, under a name of our own.
            response_id = f"unnamed_{event_id or len(self._responses)}"
        metadata = response.get("metadata")
        request = None
        if isinstance(metadata, dict) and isinstance(metadata.get("client_request_id"), str):
            request = self._by_request.pop(metadata["client_request_id"], None)
            if request is not None:
                self.echoes_metadata = True
        by_order = False
        if request is None and self.in_flight is not None and not self.echoes_metadata:
            request = self.in_flight  # matched by order (an error naming it may undo this)
            self._by_request.pop(request.request_id, None)
            by_order = True
        if request is not None and self.in_flight is request:
            self.in_flight = None
        state = ResponseState(
            response_id,
            request=request,
            interruptible=request.interruptible if request else True,
        )
        if by_order and request is not None and request.event_id is not None:
            self._by_order[request.event_id] = state
            while len(self._by_order) > _KEEP_RESPONSES:
                del self._by_order[next(iter(self._by_order))]
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
        response_id = response.get("id")
        if (not isinstance(response_id, str) or not response_id) and self.active is not None:
            response_id = self.active.response_id  # an unnamed done ends the active response
        state = self.get_or_create(str(response_id or ""))
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

    def stalled(self) -> ResponseState | None:
        """Give up on what the conversation waits for: the active response (returned, marked
        failed) or else the request in flight (dropped)."""
        active = self.active
        if active is not None:
            self.active = None
            active.done = True
            active.status = "failed"
            return active
        if self.in_flight is not None:
            self._by_request.pop(self.in_flight.request_id, None)
            self.in_flight = None
        return None

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


class Watchdog:
    """When the awaited request or the active response last moved, and whether its timer runs.

    Progress is only a time stamp (cheap: it is noted for every delta); the timer is armed once
    and, when it fires, re-armed for what is left of the quiet time allowed.
    """

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.armed = False
        self._at = 0.0

    def progress(self) -> None:
        self._at = self.now()

    def quiet_s(self) -> float:
        return self.now() - self._at
