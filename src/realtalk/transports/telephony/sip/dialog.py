"""The SIP user agent server, sans I/O: datagrams and clock ticks in, datagrams and call events out.

One :class:`UserAgentServer` answers every INVITE to its address, whatever the user part:

- ``INVITE`` with an SDP offer: ``100 Trying`` and ``180 Ringing`` at once, and
  :class:`CallStarted`; the I/O layer starts the agent and calls :meth:`UserAgentServer.answer`
  once its model is connected, so nothing the caller says after pick-up is lost: then
  ``200 OK`` with our SDP answer, re-sent (T1 doubling to T2, RFC 3261 §13.3.1.4) until the ACK
  comes; no ACK within 64·T1 ends the call with a BYE. Not ready within ``RING_TIMEOUT_S``:
  ``480``. A retransmitted INVITE gets the same 180 or 200 again.
- A re-INVITE in the dialog (hold, a new media address, a session refresh) is answered with our
  same address and codec, the direction mirrored; the media layer follows the new address.
- ``BYE`` ends the call (``200``); ``CANCEL`` of a ringing INVITE gets ``200`` and the INVITE
  ``487``; ``OPTIONS`` ``200`` with what we allow; ``INFO`` with ``application/dtmf-relay``
  is a key press; ``ACK`` stops the 200's retransmissions.
- What we do not support gets a clear 4xx: no/unsupported SDP ``488`` (with a Warning), a
  ``Require`` we lack ``420``, other methods ``405`` with ``Allow``, a request in a dialog we
  do not know ``481``, too many calls ``486``, a malformed request ``400`` with the reason.
- With :class:`~.digest.DigestAuth`, an INVITE needs valid credentials (``401`` challenge).

Limits: ``max_calls`` dialogs; ended dialogs are remembered for 32 s (to absorb retransmissions)
and at most ``_MAX_REMEMBERED``.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from .digest import DigestAuth
from .message import SipMessage, SipParseError, header_param, parse_message, uri_of, user_of
from .sdp import AudioOffer, SdpError, build_answer, parse_offer

__all__ = ["CallEnded", "CallStarted", "CallUpdated", "Dialog", "Dtmf", "Send", "UserAgentServer"]

logger = logging.getLogger("realtalk.transport")

Address = tuple[str, int]
T1 = 0.5
T2 = 4.0
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO"
USER_AGENT = "realtalk"
_MAX_REMEMBERED = 1000
_REMEMBER_S = 32.0
_INFO_DIGITS = frozenset("0123456789*#ABCD")
#: How long an INVITE rings while the agent's session starts (then 480).
RING_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Send:
    data: bytes
    address: Address


@dataclass(frozen=True, slots=True)
class CallStarted:
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class CallUpdated:
    dialog: Dialog


@dataclass(frozen=True, slots=True)
class CallEnded:
    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    call_id: str
    digit: str


Action = Send | CallStarted | CallUpdated | CallEnded | Dtmf


@dataclass(eq=False)
class Dialog:
    """One call's dialog state (RFC 3261 §12) and its media parameters."""

    call_id: str
    local_tag: str
    remote_tag: str
    remote_address: Address  # where its requests came from (responses go back there)
    remote_target: str  # its Contact URI (our BYE goes there)
    local_uri: str  # the To URI of the INVITE
    remote_uri: str  # the From URI
    remote_from: str  # its From header value, verbatim
    local_to: str  # our To header value, with our tag
    offer: AudioOffer
    media_port: int
    local_address: str  # the address we put in Contact and SDP for this caller
    transport: str  # "UDP" or "TCP": how its INVITE came (our BYE goes the same way)
    invite_cseq: int
    remote_cseq: int
    parameters: dict[str, str] = field(default_factory=dict)
    #: The proxies that asked to stay on the path (Record-Route, §12.1.1): our BYE's Route.
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    sdp_version: int = 1
    session_id: int = field(default_factory=lambda: secrets.randbits(31))
    answer: bytes = b""  # the last 2xx to an INVITE, re-sent until ACKed
    acked: bool = True
    #: Ringing until the agent is ready (:meth:`UserAgentServer.answer`): the INVITE waits.
    early: bool = True
    invite: SipMessage | None = None  # the INVITE being answered (early only)
    provisional: bytes = b""  # the 180 Ringing, re-sent for a retransmitted INVITE
    ring_deadline: float = 0.0
    next_retransmit: float = 0.0
    retransmit_interval: float = T1
    give_up_at: float = 0.0
    ended: bool = False

    @property
    def from_user(self) -> str | None:
        return user_of(self.remote_uri)

    @property
    def to_user(self) -> str | None:
        return user_of(self.local_uri)


class UserAgentServer:
    """Args:
    host, port: our SIP address (for Contact and the SDP's connection address).
    media_host: the address put in SDP (defaults to ``host``).
    address_for: when listening on a wildcard address, the local address that reaches a given
        caller IP (the I/O layer asks the routing table); used for Contact and SDP.
    allocate_media: returns a bound local RTP port for a new call (the I/O layer binds it).
    release_media: gives a port back (a call that failed before starting).
    auth: digest credentials to require, or None.
    max_calls: concurrent dialogs.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        allocate_media: Callable[[str], int],
        release_media: Callable[[str], None] = lambda call_id: None,
        media_host: str | None = None,
        auth: DigestAuth | None = None,
        max_calls: int = 100,
        address_for: Callable[[str], str] | None = None,
    ) -> None:
        self.host = host
        self.address_for = address_for
        self.port = port
        self.media_host = media_host or host
        self.allocate_media = allocate_media
        self.release_media = release_media
        self.auth = auth
        self.max_calls = max_calls
        self.dialogs: dict[str, Dialog] = {}
        self._ended: OrderedDict[str, float] = OrderedDict()  # call id -> when
        self._byes: dict[str, tuple[bytes, Address, float, float, int]] = {}

    # -- input -----------------------------------------------------------------------------------

    def receive(self, data: bytes, address: Address, now: float) -> list[Action]:
        if not data.strip():
            return []  # a keep-alive (CRLF) ping
        try:
            message = parse_message(data)
        except SipParseError as exc:
            logger.warning("SIP from %s:%d: %s", address[0], address[1], exc)
            partial = exc.partial
            if (
                partial is not None
                and partial.is_request
                and partial.method != "ACK"
                and all(partial.get(h) for h in ("via", "from", "to", "call-id"))
            ):
                return [self._reply(partial, 400, address, reason=f"Bad Request ({exc})")]
            return []
        if not message.is_request:
            return self._on_response(message)
        method = message.method
        if (message.get("max-forwards") or "").strip() == "0" and method not in ("ACK", "OPTIONS"):
            return [self._reply(message, 483, address)]
        if method == "INVITE":
            return self._on_invite(message, address, now)
        if method == "ACK":
            return self._on_ack(message)
        if method == "BYE":
            return self._on_bye(message, address)
        if method == "CANCEL":
            return self._on_cancel(message, address)
        if method == "OPTIONS":
            return [self._reply(message, 200, address, extra=[("accept", "application/sdp")])]
        if method == "INFO":
            return self._on_info(message, address)
        return [self._reply(message, 405, address)]

    def tick(self, now: float) -> list[Action]:
        """Re-send unacknowledged 200s and BYEs; end calls whose ACK never came."""
        actions: list[Action] = []
        for dialog in list(self.dialogs.values()):
            if dialog.early and now >= dialog.ring_deadline:
                logger.warning("call %s: the agent was not ready in time", dialog.call_id)
                actions.extend(self.reject(dialog.call_id, 480, now))
                actions.append(CallEnded(dialog.call_id, "the agent was not ready in time"))
                continue
            if dialog.acked or dialog.ended:
                continue
            if now >= dialog.give_up_at:
                logger.warning("call %s: no ACK for our 200 OK; hanging up", dialog.call_id)
                actions.extend(self.hang_up(dialog.call_id, now))
                actions.append(CallEnded(dialog.call_id, "no ACK from the caller"))
            elif now >= dialog.next_retransmit:
                actions.append(Send(dialog.answer, dialog.remote_address))
                dialog.retransmit_interval = min(dialog.retransmit_interval * 2, T2)
                dialog.next_retransmit = now + dialog.retransmit_interval
        for call_id, (data, address, next_at, interval, left) in list(self._byes.items()):
            if now >= next_at:
                if left <= 0:
                    del self._byes[call_id]
                    continue
                actions.append(Send(data, address))
                self._byes[call_id] = (
                    data,
                    address,
                    now + min(interval * 2, T2),
                    interval * 2,
                    left - 1,
                )
        while self._ended and now - next(iter(self._ended.values())) > _REMEMBER_S:
            self._ended.popitem(last=False)
        return actions

    def answer(self, call_id: str, now: float) -> list[Action]:
        """The agent is ready: the ringing INVITE gets its 200 OK with our SDP answer."""
        dialog = self.dialogs.get(call_id)
        if dialog is None or not dialog.early or dialog.invite is None:
            return []
        dialog.early = False
        invite, dialog.invite = dialog.invite, None
        logger.info("call %s: answered", call_id)
        return [self._answer(dialog, invite, dialog.remote_address, now)]

    def reject(self, call_id: str, status: int, now: float) -> list[Action]:
        """A final non-2xx answer to a ringing INVITE (the agent could not start)."""
        dialog = self.dialogs.get(call_id)
        if dialog is None or not dialog.early or dialog.invite is None:
            return []
        del self.dialogs[call_id]
        self._forget(dialog, now)
        self.release_media(call_id)
        return [self._reply(dialog.invite, status, dialog.remote_address, tag=dialog.local_tag)]

    def hang_up(self, call_id: str, now: float) -> list[Action]:
        """Our BYE for the call (the agent ended it); the dialog ends now. A call still
        ringing is turned down with ``480 Temporarily Unavailable`` instead."""
        dialog = self.dialogs.get(call_id)
        if dialog is not None and dialog.early:
            return self.reject(call_id, 480, now)
        dialog = self.dialogs.pop(call_id, None)
        if dialog is None or dialog.ended:
            return []
        self._forget(dialog, now)
        dialog.local_cseq += 1
        bye = SipMessage(method="BYE", uri=dialog.remote_target)
        branch = "z9hG4bK" + secrets.token_hex(8)
        bye.headers = [
            (
                "via",
                f"SIP/2.0/{dialog.transport} {_hostport(dialog.local_address, self.port)}"
                f";branch={branch};rport",
            ),
            ("max-forwards", "70"),
            *(("route", route) for route in dialog.route_set),
            ("from", dialog.local_to),
            ("to", dialog.remote_from),
            ("call-id", dialog.call_id),
            ("cseq", f"{dialog.local_cseq} BYE"),
            ("user-agent", USER_AGENT),
        ]
        data = bye.to_bytes()
        self._byes[call_id] = (data, dialog.remote_address, now + T1, T1, 6)
        return [Send(data, dialog.remote_address)]

    # -- requests --------------------------------------------------------------------------------

    def _on_invite(self, request: SipMessage, address: Address, now: float) -> list[Action]:
        call_id = request.call_id
        to_tag = header_param(request.get("to") or "", "tag")
        dialog = self.dialogs.get(call_id)
        if dialog is not None and to_tag is None and request.cseq[0] == dialog.invite_cseq:
            # A retransmitted INVITE: the same answer (or, while ringing, the same 180).
            return [Send(dialog.provisional if dialog.early else dialog.answer, address)]
        if to_tag is not None:
            if dialog is None or to_tag != dialog.local_tag:
                return [self._reply(request, 481, address)]
            return self._on_reinvite(dialog, request, address, now)
        if call_id in self._ended:
            return [self._reply(request, 481, address)]
        unsupported = self._unsupported(request)
        if unsupported:
            return [self._reply(request, 420, address, extra=[("unsupported", unsupported)])]
        if self.auth is not None and not self.auth.check("INVITE", request.get("authorization")):
            challenge = [("www-authenticate", self.auth.challenge())]
            return [self._reply(request, 401, address, extra=challenge)]
        if len(self.dialogs) >= self.max_calls:
            return [self._reply(request, 486, address)]
        content_type = (request.get("content-type") or "").split(";")[0].strip().lower()
        if not request.body or content_type != "application/sdp":
            warning = '399 realtalk "an SDP offer in the INVITE is required"'
            return [self._reply(request, 488, address, extra=[("warning", warning)])]
        try:
            offer = parse_offer(request.body)
        except SdpError as exc:
            warning = f'305 realtalk "{exc}"'
            return [self._reply(request, 488, address, extra=[("warning", warning)])]
        try:
            media_port = self.allocate_media(call_id)
        except OSError as exc:
            logger.error("call %s: no RTP port: %s", call_id, exc)
            return [self._reply(request, 503, address)]
        local_tag = secrets.token_hex(6)
        to_value = request.get("to") or ""
        dialog = Dialog(
            call_id=call_id,
            local_tag=local_tag,
            remote_tag=header_param(request.get("from") or "", "tag") or "",
            remote_address=address,
            remote_target=uri_of(request.get("contact") or request.get("from") or ""),
            local_uri=uri_of(to_value),
            remote_uri=uri_of(request.get("from") or ""),
            remote_from=request.get("from") or "",
            local_to=f"{to_value};tag={local_tag}",
            offer=offer,
            media_port=media_port,
            local_address=self.address_for(address[0]) if self.address_for else self.media_host,
            transport=_via_transport(request.get("via") or ""),
            route_set=request.get_all("record-route"),
            invite_cseq=request.cseq[0],
            remote_cseq=request.cseq[0],
            parameters={k: v for k, v in request.headers if k.startswith("x-") and len(v) <= 1024},
        )
        dialog.invite = request
        dialog.ring_deadline = now + RING_TIMEOUT_S
        self.dialogs[call_id] = dialog
        trying = self._reply(request, 100, address)
        ringing = self._reply(request, 180, address, tag=local_tag)
        dialog.provisional = ringing.data
        logger.info(
            "call %s from %s to %s: ringing until the agent is ready (%s, RTP %s:%d)",
            call_id,
            dialog.remote_uri,
            dialog.local_uri,
            offer.encoding,
            offer.address,
            offer.port,
        )
        return [trying, ringing, CallStarted(dialog)]

    def _on_reinvite(
        self, dialog: Dialog, request: SipMessage, address: Address, now: float
    ) -> list[Action]:
        number = request.cseq[0]
        if number <= dialog.remote_cseq:
            if number == dialog.remote_cseq and dialog.answer:
                return [Send(dialog.answer, address)]
            return [self._reply(request, 500, address, reason="Server Internal Error (old CSeq)")]
        dialog.remote_cseq = number
        if dialog.early or not dialog.acked:
            return [self._reply(request, 491, address)]
        if request.body:
            try:
                offer = parse_offer(request.body)
            except SdpError as exc:
                warning = f'305 realtalk "{exc}"'
                return [self._reply(request, 488, address, extra=[("warning", warning)])]
            if offer.encoding != dialog.offer.encoding:
                # Keep what the media layer runs; a codec change mid-call is not supported.
                warning = '305 realtalk "the codec cannot change during a call"'
                return [self._reply(request, 488, address, extra=[("warning", warning)])]
            dialog.offer = offer
            dialog.sdp_version += 1
        if request.get("contact"):
            dialog.remote_target = uri_of(request.get("contact") or "")
        dialog.invite_cseq = number
        return [self._answer(dialog, request, address, now), CallUpdated(dialog)]

    def _answer(self, dialog: Dialog, request: SipMessage, address: Address, now: float) -> Send:
        sdp = build_answer(
            dialog.offer,
            dialog.local_address,
            dialog.media_port,
            dialog.session_id,
            dialog.sdp_version,
        )
        response = self._response(request, 200, to_tag=dialog.local_tag)
        contact = _hostport(dialog.local_address, self.port)
        if dialog.transport == "TCP":
            contact += ";transport=tcp"
        response.headers.append(("contact", f"<sip:{contact}>"))
        response.headers.append(("allow", ALLOW))
        response.headers.append(("content-type", "application/sdp"))
        response.body = sdp
        dialog.answer = response.to_bytes()
        dialog.acked = False
        dialog.retransmit_interval = T1
        dialog.next_retransmit = now + T1
        dialog.give_up_at = now + 64 * T1
        return Send(dialog.answer, address)

    def _on_ack(self, request: SipMessage) -> list[Action]:
        dialog = self.dialogs.get(request.call_id)
        if dialog is not None:
            dialog.acked = True
        return []  # an ACK is never answered

    def _on_bye(self, request: SipMessage, address: Address) -> list[Action]:
        dialog = self.dialogs.pop(request.call_id, None)
        if dialog is None:
            status = 200 if request.call_id in self._ended else 481
            return [self._reply(request, status, address)]
        self._forget(dialog, None)
        return [self._reply(request, 200, address), CallEnded(dialog.call_id, "the caller hung up")]

    def _on_cancel(self, request: SipMessage, address: Address) -> list[Action]:
        dialog = self.dialogs.get(request.call_id)
        if dialog is not None and dialog.early and dialog.invite is not None:
            # The caller gave up while it rang: 200 for the CANCEL, 487 for the INVITE.
            invite = dialog.invite
            del self.dialogs[request.call_id]
            self._forget(dialog, None)
            self.release_media(request.call_id)
            return [
                self._reply(request, 200, address),
                self._reply(invite, 487, dialog.remote_address, tag=dialog.local_tag),
                CallEnded(request.call_id, "the caller cancelled"),
            ]
        known = dialog is not None or request.call_id in self._ended
        # After the 200 OK a CANCEL changes nothing (RFC 3261 §9.2): the caller sends a BYE.
        return [self._reply(request, 200 if known else 481, address)]

    def _on_info(self, request: SipMessage, address: Address) -> list[Action]:
        dialog = self.dialogs.get(request.call_id)
        if dialog is None:
            return [self._reply(request, 481, address)]
        content_type = (request.get("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/dtmf-relay":
            return [
                self._reply(request, 415, address, extra=[("accept", "application/dtmf-relay")])
            ]
        actions: list[Action] = [self._reply(request, 200, address)]
        for line in request.body.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition("=")
            digit = value.strip().upper()
            if key.strip().lower() == "signal" and len(digit) == 1 and digit in _INFO_DIGITS:
                actions.append(Dtmf(dialog.call_id, digit))
        return actions

    def _on_response(self, response: SipMessage) -> list[Action]:
        _, method = response.cseq
        if method == "BYE" and response.status is not None and response.status >= 200:
            self._byes.pop(response.call_id, None)
        return []

    # -- helpers ---------------------------------------------------------------------------------

    def _forget(self, dialog: Dialog, now: float | None) -> None:
        dialog.ended = True
        self._ended[dialog.call_id] = now if now is not None else _last(self._ended)
        self._ended.move_to_end(dialog.call_id)
        while len(self._ended) > _MAX_REMEMBERED:
            self._ended.popitem(last=False)

    @staticmethod
    def _unsupported(request: SipMessage) -> str:
        required = {
            option.strip().lower()
            for value in request.get_all("require")
            for option in value.split(",")
            if option.strip()
        }
        return ", ".join(sorted(required))  # we implement no extension that can be required

    def _response(self, request: SipMessage, status: int, *, to_tag: str | None) -> SipMessage:
        response = SipMessage(status=status)
        for value in request.get_all("via"):
            response.headers.append(("via", value))
        response.headers.append(("from", request.get("from") or ""))
        to_value = request.get("to") or ""
        if to_tag and header_param(to_value, "tag") is None:
            to_value = f"{to_value};tag={to_tag}"
        response.headers.append(("to", to_value))
        response.headers.append(("call-id", request.call_id))
        response.headers.append(("cseq", request.get("cseq") or ""))
        if request.method == "INVITE" and 100 < status < 300:
            # A UAS copies Record-Route into responses that make a dialog (§12.1.1).
            response.headers.extend(("record-route", v) for v in request.get_all("record-route"))
        response.headers.append(("server", USER_AGENT))
        return response

    def _reply(
        self,
        request: SipMessage,
        status: int,
        address: Address,
        *,
        reason: str = "",
        extra: list[tuple[str, str]] | None = None,
        tag: str | None = None,
    ) -> Send:
        if tag is None:
            dialog = self.dialogs.get(request.call_id)
            tag = dialog.local_tag if dialog is not None else secrets.token_hex(6)
        response = self._response(request, status, to_tag=None if status == 100 else tag)
        if reason:
            response.reason = reason
        if status == 405:
            response.headers.append(("allow", ALLOW))
        response.headers.extend(extra or [])
        return Send(response.to_bytes(), address)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _via_transport(via: str) -> str:
    """``SIP/2.0/TCP host;…`` → ``TCP``; UDP unless it says TCP."""
    protocol = via.split(None, 1)[0].upper() if via.strip() else ""
    return "TCP" if protocol.endswith("/TCP") else "UDP"


def _last(table: OrderedDict[str, float]) -> float:
    return next(reversed(table.values())) if table else 0.0
