"""The agent's speech as it really plays: what the core does with the playout's news.

The :class:`~realtalk.media.AudioOutput` says (through the driver, from the consumer's thread)
when an item's first frame went out and when its last one did, or that it was cut. The core turns
that into ``agent_speech_started`` / ``agent_speech_ended``, and releases the agent's transcript
no faster than its audio plays (:class:`~.transcript_pacer.TranscriptPacer`), looking at the
played position again when the next piece is due while text is held. The functions work on the core
(:class:`~.state.ClientState`), which calls them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .link import ArmTimer, LinkState

if TYPE_CHECKING:
    from .state import ClientState

__all__ = ["MAX_PACE_S", "PACE_S", "finished", "pace", "started", "transcript"]

#: while the pacer holds transcript, how often it looks at the played position again: when the
#: next piece is due by the played position, but not sooner than PACE_S (a word is ~250 ms) and
#: not later than MAX_PACE_S (a consumer may read faster than real time). Polling every 40 ms
#: was a timer 25 times a second per speaking session.
PACE_S = 0.04
MAX_PACE_S = 0.2


def started(c: ClientState, item_id: str, t: float) -> None:
    """The first frame of ``item_id`` went out at ``t`` (the consumer's clock)."""
    c.metrics.first_audio_played(t)
    c.emit("agent_speech_started", {"item_id": item_id})
    c.pacer.started(item_id)
    pace(c)


def finished(c: ClientState, item_id: str, played_ms: int, interrupted: bool) -> None:
    """The last frame of ``item_id`` was played (or it was cut after ``played_ms``)."""
    c.pacer.finished(item_id, interrupted=interrupted)
    c.playing.discard(item_id)
    c.responses.item_finished(item_id)
    c.emit(
        "agent_speech_ended",
        {"item_id": item_id, "played_ms": played_ms, "interrupted": interrupted},
    )


def pace(c: ClientState) -> None:
    """Release the agent transcript the played audio has reached; again when the next piece is
    due (at most every :data:`PACE_S`, at least every :data:`MAX_PACE_S`) while text is held."""
    out = c.audio_out
    if out is not None:
        c.pacer.tick(out.output.played_ms)
    if c.pacer.holding and c.state is not LinkState.CLOSED:
        due_ms = c.pacer.due_in_ms(out.output.played_ms) if out is not None else None
        wait_s = MAX_PACE_S if due_ms is None else due_ms / 1000
        c.act(ArmTimer("pace", min(max(wait_s, PACE_S), MAX_PACE_S)))


def transcript(c: ClientState, item_id: str, text: str, final: bool, interrupted: bool) -> None:
    """What the pacer releases: the agent's transcript so far (and the final text once)."""
    payload: dict[str, Any] = {"role": "agent", "text": text, "is_final": final}
    payload["item_id"] = item_id
    if interrupted:
        payload["interrupted"] = True
    c.emit("realtime_model_transcription", payload)
    if final:
        c.emit("text_response", {"text": text, "type": "done"})
