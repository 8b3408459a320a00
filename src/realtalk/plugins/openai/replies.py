"""Replies, one at a time: asking for them, the tool follow-up, and the watchdog.

A ``response.create`` goes out only when the conversation is free (no reply being generated or
awaited, no tool running, the user's turn over), so requests queue in the
:class:`~.responses.ResponseTracker` and :func:`pump` sends the next one whenever something that
blocked it ends. Once a response with tool calls is done and every tool finished, one follow-up
is asked for (:class:`~.tools_runner.FollowUp`). A request or response that makes no progress
for ``response_timeout_s`` is reported and the queue moves on (:class:`~.responses.Watchdog`):
a server that never answers, or answers with a ``response.created`` and nothing after it, must
not wedge every later reply. The functions work on the core (:class:`~.state.ClientState`),
which calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from realtalk.protocol import events
from realtalk.realtime.base import ModelError

from . import barge_in
from .link import ArmTimer, LinkState
from .responses import ResponseRequest

if TYPE_CHECKING:
    from realtalk.tools import ToolResult

    from .responses import ResponseState
    from .state import ClientState
    from .tools_runner import ToolCall

__all__ = [
    "check_progress",
    "close_cut_response",
    "ended_without_done",
    "enqueue",
    "pump",
    "tool_finished",
    "watch",
]


def enqueue(
    c: ClientState, kind: str, body: dict[str, Any], *, interruptible: bool = True
) -> ResponseRequest:
    """Queue a request for a reply (tagged with our request id in its metadata) and pump."""
    request_id = c.ids("req")
    body = {**body, "metadata": {"client_request_id": request_id, "kind": kind}}
    request = ResponseRequest(request_id, kind, body, interruptible)
    if kind in ("reply", "say"):
        # A newer request replaces asking again for a reply the network cut: its reply
        # sees the cut one in the replayed conversation.
        c.responses.drop_queued("resume")
    c.responses.enqueue(request)
    pump(c)
    return request


def pump(c: ClientState) -> None:
    """Send the next reply request, or the tool follow-up, when the conversation is free."""
    if c.state is not LinkState.OPEN or c.responses.busy:
        return
    if not c.responses.queued and c.follow_up.wanted:
        if c.tools_running or c.user_turn_open:
            return
        enqueue(c, "tool_followup", {})
        return
    request = c.responses.next_to_send()
    if request is None:
        return
    if not request.interruptible:
        barge_in.relax_vad(c, True)
    request.event_id = c.ids("event")
    c.follow_up.covered()  # queued after every output sent so far: it sees them all
    c.send(events.response_create(request.body, event_id=request.event_id))
    watch(c)


def tool_finished(c: ClientState, call: ToolCall, result: ToolResult) -> None:
    """A tool's output goes into the conversation; the follow-up waits for the last one."""
    c.tools_running.discard(call.call_id)
    if c.state is LinkState.CLOSED:
        return
    item_id = c.create_item(events.function_call_output_item(call.call_id, result.output))
    if result.reply:
        c.follow_up.output_sent(item_id)
    else:  # a handoff: the session asks for the new agent's first reply itself
        c.follow_up.covered()
    c.metrics.tool_called(call.name)
    c.emit(
        "function_call",
        {
            "name": call.name,
            "call_id": call.call_id,
            "arguments": call.arguments,
            "output": result.output,
            "is_error": result.is_error,
        },
    )
    pump(c)


def watch(c: ClientState) -> None:
    """Start the watchdog if a request or a response is now awaited."""
    dog = c.watchdog
    if dog.armed or not c.responses.busy:
        return
    dog.armed = True
    dog.progress()
    c.act(ArmTimer("watchdog", c.config.response_timeout_s))


def check_progress(c: ClientState) -> None:
    """The watchdog's timer fired: re-arm for the quiet time left, or give up on the reply."""
    dog = c.watchdog
    dog.armed = False
    if not c.responses.busy or c.state is not LinkState.OPEN:
        return
    limit = c.config.response_timeout_s
    quiet = dog.quiet_s()
    if quiet < limit:
        dog.armed = True
        c.act(ArmTimer("watchdog", limit - quiet))
        return
    stalled = c.responses.stalled()
    what = f"response {stalled.response_id}" if stalled is not None else "a response.create"
    message = f"{what} made no progress for {limit:g} s; moving on"
    c.report(ModelError(message, code="response_timeout"))
    if stalled is not None:
        ended_without_done(c, stalled, "failed", "timeout")
    pump(c)


def ended_without_done(c: ClientState, state: ResponseState, status: str, reason: str) -> None:
    """A response that will get no ``response.done``: the audio received plays out,
    listeners hear that it ended, its usage stays unknown."""
    barge_in.end_audio_of(c, state)
    c.metrics.response_done({"id": state.response_id, "status": status})
    done = {"response_id": state.response_id, "kind": state.kind, "status": status}
    c.emit("response_done", {**done, "usage": None, "reason": reason})


def close_cut_response(c: ClientState, cut: ResponseState) -> None:
    """The reply the network cut ends here; it is asked for again (cut by the network,
    not by the user), unless a newer request waits."""
    for call_id, call in list(c.pending_calls.items()):
        if call.response_id == cut.response_id:
            del c.pending_calls[call_id]  # its arguments may be incomplete: not run
    ended_without_done(c, cut, "cancelled", "connection_lost")
    if not cut.cancelled and not c.responses.queued:
        enqueue(c, "resume", {}, interruptible=cut.interruptible)
