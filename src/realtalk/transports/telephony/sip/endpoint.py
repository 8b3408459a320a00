"""The SIP endpoint's I/O: UDP and TCP for SIP on one port, one UDP port per call for RTP.

:class:`SipServer` feeds datagrams to the sans-I/O :class:`~.dialog.UserAgentServer` and carries
out what it returns; each answered call gets an :class:`RtpSession` (its own UDP port) and a
:class:`SipCallTransport`, and ``on_call(transport)`` runs the agent for it.

RTP: packets are accepted only from the IP address the caller's SDP named (after a re-INVITE, the
new one) and, once one has arrived, only from its port and SSRC (the port may differ from the SDP's
behind NAT: symmetric RTP); anything else is dropped and counted.
Audio goes through a jitter buffer released every 20 ms; RFC 4733 events become DTMF. At most
``MAX_PACKETS_PER_S`` packets per second are handled per call (a flood is dropped, not queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from realtalk.transports.telephony.phone import CallInfo, PhoneTransport

from .dialog import (
    Action,
    CallEnded,
    CallStarted,
    CallUpdated,
    Dialog,
    Dtmf,
    Send,
    UserAgentServer,
)
from .digest import DigestAuth
from .message import SipParseError, StreamFramer
from .rtp import DtmfReceiver, JitterBuffer, RtpSender, parse_rtp
from .sdp import AudioOffer

__all__ = ["RtpSession", "SipCallTransport", "SipServer"]

if TYPE_CHECKING:
    from realtalk.session import AgentSession

logger = logging.getLogger("realtalk.transport")

MAX_PACKETS_PER_S = 200
#: Concurrent SIP-over-TCP connections; a connection idle this long is closed.
MAX_TCP_CONNECTIONS = 200
TCP_IDLE_S = 300.0
_TICK_S = 0.1
_FRAME_S = 0.02
_SILENCE = {"audio/pcmu": b"\xff" * 160, "audio/pcma": b"\xd5" * 160}

OnCall = Callable[[Any], Awaitable[Any]]


class RtpSession(asyncio.DatagramProtocol):
    """One call's RTP: receive through a jitter buffer, send 20 ms packets."""

    def __init__(
        self,
        offer: AudioOffer,
        on_audio: Callable[[bytes], Awaitable[None]],
        on_digit: Callable[[str], None],
    ) -> None:
        self.offer = offer
        self.on_audio = on_audio
        self.on_digit = on_digit
        self.sender = RtpSender(offer.payload_type)
        self.jitter = JitterBuffer()
        self.dtmf = DtmfReceiver()
        self.stats = {
            "received": 0,
            "sent": 0,
            "unknown_source": 0,
            "bad": 0,
            "flood": 0,
            "other_pt": 0,
        }
        self._transport: asyncio.DatagramTransport | None = None
        self._ssrc: int | None = None
        self._source: tuple[str, int] | None = None
        self._window = (0.0, 0)
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._task = asyncio.get_running_loop().create_task(self._playout())

    def update(self, offer: AudioOffer) -> None:
        """A re-INVITE changed the far end's address or direction."""
        if (offer.address, offer.port) != (self.offer.address, self.offer.port):
            self._ssrc = None  # a new source may come with a new stream
            self._source = None
        self.offer = offer

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        now = time.monotonic()
        start, count = self._window
        if now - start >= 1.0:
            self._window = (now, 1)
        elif count >= MAX_PACKETS_PER_S:
            self.stats["flood"] += 1
            return
        else:
            self._window = (start, count + 1)
        source = (str(addr[0]), int(addr[1]))
        if source[0] != self.offer.address or (self._source and source != self._source):
            self.stats["unknown_source"] += 1
            return
        try:
            packet = parse_rtp(data)
        except ValueError:
            self.stats["bad"] += 1
            return
        if self._ssrc is None:  # latch: the first source and stream from the SDP's address
            self._ssrc, self._source = packet.ssrc, source
        elif packet.ssrc != self._ssrc:
            self.stats["unknown_source"] += 1
            return
        self.stats["received"] += 1
        if packet.payload_type == self.offer.payload_type:
            self.jitter.put(packet)
        elif packet.payload_type == self.offer.dtmf_payload_type:
            digit = self.dtmf.feed(packet)
            if digit is not None:
                self.on_digit(digit)
        else:
            self.stats["other_pt"] += 1

    async def _playout(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        n = 0
        while True:
            n += 1
            delay = start + n * _FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > 0.2:  # fell far behind (a stalled loop): re-anchor, do not burst
                start, n = loop.time(), 0
            payload = self.jitter.pop()
            if payload is None:
                continue
            try:
                await self.on_audio(payload or _SILENCE[self.offer.encoding])
            except Exception:
                logger.exception("RTP: delivering caller audio failed")

    def send(self, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self.offer.direction in ("sendonly", "inactive") or self.offer.port == 0:
            self.sender.pause(len(payload))  # on hold: keep time, send nothing
            return
        transport.sendto(self.sender.packet(payload), (self.offer.address, self.offer.port))
        self.stats["sent"] += 1

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if self._transport is not None:
            self._transport.close()


class SipCallTransport(PhoneTransport):
    """The media of one SIP call for one AgentSession."""

    continuous = True  # RTP flows all call long: PBXs time out silent calls

    def __init__(
        self,
        call: CallInfo,
        rtp: RtpSession,
        hang_up: Callable[[], None],
        answer: Callable[[], None] = lambda: None,
    ) -> None:
        super().__init__(call)
        self.rtp = rtp
        self._bye = hang_up
        self._answer = answer
        self.answered = False

    async def attach(self, session: AgentSession) -> None:
        await super().attach(session)
        self.answer()  # the model is connected: pick up (the greeting follows)

    def answer(self) -> None:
        """Pick up the ringing call (200 OK); ``attach`` does it once the agent is ready."""
        if not self.answered and not self.closed:
            self.answered = True
            self._answer()

    async def _send_frame(self, payload: bytes, mark: int) -> None:
        self.rtp.send(payload)

    async def _hang_up(self) -> None:
        self._bye()
        self.rtp.close()


class _SipProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SipServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            actions = self.server.core.receive(data, (str(addr[0]), int(addr[1])), time.monotonic())
        except Exception:  # a bug must not take every other call down with it
            logger.exception("SIP: handling a datagram from %s failed", addr)
            return
        self.server.apply(actions)


class SipServer:
    """Args:
    on_call: runs once per answered call with its :class:`SipCallTransport`.
    host, port: where SIP listens (UDP, and TCP on the same port when it is free); RTP ports
        are taken from the system on ``host``.
    auth: ``(user, password)`` to require digest authentication on INVITE.
    media_host: the address put in SDP, if callers must reach RTP elsewhere than ``host``.
    max_calls: concurrent calls (486 Busy Here beyond).
    """

    def __init__(
        self,
        on_call: OnCall,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        auth: tuple[str, str] | None = None,
        media_host: str | None = None,
        max_calls: int = 100,
    ) -> None:
        self.on_call = on_call
        self.host = host
        self.requested_port = port
        self.media_host = media_host
        self.auth = DigestAuth(*auth) if auth else None
        self.max_calls = max_calls
        self.calls: dict[str, SipCallTransport] = {}
        self.core: UserAgentServer
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._sockets: dict[str, socket.socket] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._port = 0

    @property
    def port(self) -> int:
        return self._port

    @property
    def tcp_enabled(self) -> bool:
        return self._tcp_server is not None

    @property
    def tcp_connections(self) -> int:
        """SIP-over-TCP connections open now."""
        return len(self._tcp)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _SipProtocol(self), local_addr=(self.host, self.requested_port)
        )
        self._transport = transport
        self._port = transport.get_extra_info("sockname")[1]
        self.core = UserAgentServer(
            host=self.host,
            port=self._port,
            media_host=self.media_host,
            allocate_media=self._allocate,
            release_media=self._release,
            auth=self.auth,
            max_calls=self.max_calls,
            address_for=_route_to
            if self.host in ("0.0.0.0", "::", "") and not self.media_host
            else None,
        )
        try:
            self._tcp_server = await asyncio.start_server(
                self._serve_tcp, self.host, self._port, limit=64 * 1024
            )
        except OSError as exc:  # the port is taken for TCP: UDP alone still works
            logger.warning("SIP over TCP not available on port %d: %s", self._port, exc)
        self._spawn(self._ticks())
        logger.info(
            "SIP endpoint on %s:%d (UDP%s)",
            self.host,
            self._port,
            " and TCP" if self._tcp_server else "",
        )

    async def aclose(self) -> None:
        for transport in list(self.calls.values()):
            await transport.end_call("server stopping")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        if self._transport is not None:
            self._transport.close()
        if self._tcp_server is not None:
            self._tcp_server.close()
            for writer in list(self._tcp.values()):
                writer.close()
            with contextlib.suppress(Exception):
                await self._tcp_server.wait_closed()

    # -- the core's actions ----------------------------------------------------------------------

    def apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                writer = self._tcp.get(action.address)
                if writer is not None:
                    if not writer.is_closing():
                        writer.write(action.data)
                elif self._transport is not None and not self._transport.is_closing():
                    self._transport.sendto(action.data, action.address)
            elif isinstance(action, CallStarted):
                self._spawn(self._start_call(action.dialog))
            elif isinstance(action, CallUpdated):
                call = self.calls.get(action.dialog.call_id)
                if call is not None:
                    call.rtp.update(action.dialog.offer)
            elif isinstance(action, CallEnded):
                call = self.calls.get(action.call_id)
                if call is not None:
                    self._spawn(call.end_call(action.reason))
            elif isinstance(action, Dtmf):
                call = self.calls.get(action.call_id)
                if call is not None:
                    call.deliver_dtmf(action.digit)

    def _allocate(self, call_id: str) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, 0))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._sockets[call_id] = sock
        return int(sock.getsockname()[1])

    def _release(self, call_id: str) -> None:
        sock = self._sockets.pop(call_id, None)
        if sock is not None:
            sock.close()

    async def _start_call(self, dialog: Dialog) -> None:
        sock = self._sockets.pop(dialog.call_id, None)
        if sock is None:
            return
        call = CallInfo(
            provider="sip",
            call_id=dialog.call_id,
            from_number=dialog.from_user,
            to_number=dialog.to_user,
            parameters=dict(dialog.parameters),
            encoding=dialog.offer.encoding,
        )
        holder: list[SipCallTransport] = []

        async def on_audio(payload: bytes) -> None:
            await holder[0].deliver_audio(payload)

        def on_digit(digit: str) -> None:
            holder[0].deliver_dtmf(digit)

        loop = asyncio.get_running_loop()
        _, rtp = await loop.create_datagram_endpoint(
            lambda: RtpSession(dialog.offer, on_audio, on_digit), sock=sock
        )

        def bye() -> None:
            self.apply(self.core.hang_up(dialog.call_id, time.monotonic()))
            self.calls.pop(dialog.call_id, None)

        def answer() -> None:
            self.apply(self.core.answer(dialog.call_id, time.monotonic()))

        transport = SipCallTransport(call, rtp, bye, answer)
        holder.append(transport)
        self.calls[dialog.call_id] = transport
        try:
            await self.on_call(transport)
        except ConnectionError as exc:  # the caller left while the agent was starting
            logger.info("call %s: %s", dialog.call_id, exc)
        except Exception:
            logger.exception("call %s: the entrypoint failed", dialog.call_id)
        finally:
            if not transport.closed:
                await transport.end_call("the call ended")
            self.calls.pop(dialog.call_id, None)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._tcp) >= MAX_TCP_CONNECTIONS or not peer:
            writer.close()
            return
        address = (str(peer[0]), int(peer[1]))
        self._tcp[address] = writer
        framer = StreamFramer()
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_S):  # not wait_for: it can swallow a cancel
                    data = await reader.read(16 * 1024)
                if not data:
                    return
                try:
                    messages = framer.feed(data)
                except SipParseError as exc:
                    logger.warning("SIP over TCP from %s:%d: %s; closing", *address, exc)
                    return
                for message in messages:
                    self.apply(self.core.receive(message, address, time.monotonic()))
        except (TimeoutError, ConnectionError):
            return
        except Exception:
            logger.exception("SIP over TCP from %s:%d failed", *address)
        finally:
            self._tcp.pop(address, None)
            writer.close()

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            with contextlib.suppress(Exception):
                self.apply(self.core.tick(time.monotonic()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _route_to(remote_ip: str) -> str:
    """The local address this machine uses to reach ``remote_ip`` (no packet is sent)."""
    family = socket.AF_INET6 if ":" in remote_ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((remote_ip, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1" if family == socket.AF_INET else "::1"
