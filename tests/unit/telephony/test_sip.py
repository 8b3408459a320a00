"""The SIP endpoint's sans-I/O parts: messages, SDP, the UAS dialog machine, RTP, digest auth."""

from __future__ import annotations

import hashlib
import struct

import pytest

from realtalk.transports.telephony.sip.dialog import (
    CallEnded,
    CallStarted,
    CallUpdated,
    Dtmf,
    Send,
    UserAgentServer,
)
from realtalk.transports.telephony.sip.digest import DigestAuth
from realtalk.transports.telephony.sip.message import SipParseError, parse_message
from realtalk.transports.telephony.sip.rtp import (
    DtmfReceiver,
    JitterBuffer,
    RtpSender,
    parse_rtp,
)
from realtalk.transports.telephony.sip.sdp import SdpError, build_answer, parse_offer

CALLER = ("127.0.0.1", 5070)

OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
    "a=sendrecv\r\nm=video 40002 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
)


def request(
    method: str,
    *,
    call_id: str = "call-1",
    cseq: int = 1,
    to_tag: str | None = None,
    body: str = "",
    extra: str = "",
) -> bytes:
    to = "<sip:agent@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
    content = "Content-Type: application/sdp\r\n" if body else ""
    text = (
        f"{method} sip:agent@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method}{cseq}\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Caller" <sip:+15550001@127.0.0.1>;tag=abc\r\n'
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {'INVITE' if method == 'ACK' else method}\r\n"
        "Contact: <sip:caller@127.0.0.1:5070>\r\n"
        f"{extra}{content}Content-Length: {len(body)}\r\n\r\n{body}"
    )
    return text.encode()


def uas(**kwargs: object) -> UserAgentServer:
    ports = iter(range(30000, 31000, 2))
    return UserAgentServer(
        host="127.0.0.1", port=5060, allocate_media=lambda _: next(ports), **kwargs
    )  # type: ignore[arg-type]


def call(server: UserAgentServer, now: float = 0.0, **kwargs: object) -> tuple[list[bytes], str]:
    """INVITE, then the agent is ready: (the 100, 180 and 200 sent, our tag)."""
    actions = server.receive(request("INVITE", body=OFFER, **kwargs), CALLER, now=now)  # type: ignore[arg-type]
    started = next(a for a in actions if isinstance(a, CallStarted))
    answered = server.answer(started.dialog.call_id, now)
    return sent(actions) + sent(answered), started.dialog.local_tag


def sent(actions: list[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send)]


def status(data: bytes) -> int:
    return int(data.split(b" ", 2)[1])


# -- messages ------------------------------------------------------------------------------------


def test_parse_expands_compact_headers_unfolds_lines_and_splits_via_lists() -> None:
    data = (
        b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h1;branch=z9hG4bK1, SIP/2.0/UDP h2\r\n"
        b"f: <sip:x@y>;tag=1\r\nt: <sip:a@b>\r\ni: abc\r\nCSeq: 7 OPTIONS\r\n"
        b"Subject: a long\r\n  subject\r\nl: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert message.get_all("via") == ["SIP/2.0/UDP h1;branch=z9hG4bK1", "SIP/2.0/UDP h2"]
    assert (message.call_id, message.cseq, message.get("subject")) == (
        "abc",
        (7, "OPTIONS"),
        "a long subject",
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\xff\x00\r\n\r\n", "UTF-8"),
        (b"HELLO\r\n\r\n", "start line"),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "version"),
        (b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n\r\n", "missing"),
        (b"INVITE sip:a@b SIP/2.0\r\nno blank line", "blank line"),
        (b"x" * 20000, "larger"),
    ],
)
def test_malformed_messages_say_what_is_wrong(data: bytes, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason):
        parse_message(data)


# -- SDP -----------------------------------------------------------------------------------------


def test_the_answer_picks_pcmu_keeps_dtmf_and_rejects_video() -> None:
    offer = parse_offer(OFFER)
    assert (offer.payload_type, offer.encoding, offer.dtmf_payload_type) == (0, "audio/pcmu", 101)
    answer = build_answer(offer, "127.0.0.1", 30000, 1, 1).decode()
    assert "m=audio 30000 RTP/AVP 0 101\r\n" in answer
    assert "a=rtpmap:101 telephone-event/8000" in answer
    assert "m=video 0 RTP/AVP 96" in answer
    assert "a=ptime:20" in answer and "a=sendrecv" in answer


def test_pcma_only_and_static_payload_types_without_rtpmap() -> None:
    offer = parse_offer("v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\na=sendonly\r\n")
    assert (offer.encoding, offer.address, offer.dtmf_payload_type) == (
        "audio/pcma",
        "10.0.0.1",
        None,
    )
    assert b"a=recvonly" in build_answer(offer, "127.0.0.1", 1, 1, 1)


@pytest.mark.parametrize(
    ("sdp", "reason"),
    [
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n", "codec"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 4000 RTP/AVP 96\r\n", "no audio"),
        ("v=0\r\nm=audio 4000 RTP/AVP 0\r\n", "connection address"),
        ("v=0\r\nc=IN IP4 example.com\r\nm=audio 4000 RTP/AVP 0\r\n", "IP address"),
    ],
)
def test_offers_we_cannot_answer(sdp: str, reason: str) -> None:
    with pytest.raises(SdpError, match=reason):
        parse_offer(sdp)


# -- the dialog machine ---------------------------------------------------------------------------


def test_invite_rings_until_the_agent_is_ready_and_the_200_is_resent_until_the_ack() -> None:
    server = uas()
    actions = server.receive(request("INVITE", body=OFFER), CALLER, now=0.0)
    trying, ringing = sent(actions)
    assert status(trying) == 100 and status(ringing) == 180
    [started] = [a for a in actions if isinstance(a, CallStarted)]
    assert started.dialog.from_user == "+15550001" and started.dialog.to_user == "agent"
    tag = started.dialog.local_tag
    assert f";tag={tag}".encode() in ringing
    assert sent(server.receive(request("INVITE", body=OFFER), CALLER, now=0.2)) == [ringing]
    [ok] = sent(server.answer("call-1", now=0.5))
    assert status(ok) == 200 and f";tag={tag}".encode() in ok
    assert b"Content-Type: application/sdp" in ok and b"m=audio 30000 RTP/AVP 0 101" in ok
    assert sent(server.tick(1.1)) == [ok]  # T1 later: re-sent
    assert sent(server.receive(request("INVITE", body=OFFER), CALLER, now=1.2)) == [ok]
    assert server.receive(request("ACK", to_tag=tag), CALLER, now=1.3) == []
    assert sent(server.tick(6.0)) == []  # acknowledged: no more


def test_cancel_while_ringing_gets_200_and_the_invite_487() -> None:
    server = uas()
    server.receive(request("INVITE", body=OFFER), CALLER, now=0.0)
    actions = server.receive(request("CANCEL"), CALLER, now=0.3)
    assert [status(d) for d in sent(actions)] == [200, 487]
    assert CallEnded("call-1", "the caller cancelled") in actions
    assert server.answer("call-1", now=0.4) == []  # too late: nothing to answer


def test_an_agent_that_is_never_ready_turns_the_call_down_with_480() -> None:
    server = uas()
    server.receive(request("INVITE", body=OFFER), CALLER, now=0.0)
    actions = server.tick(31.0)
    assert [status(d) for d in sent(actions)] == [480]
    assert any(isinstance(a, CallEnded) for a in actions)
    server.receive(request("INVITE", body=OFFER, call_id="call-2"), CALLER, now=40.0)
    assert [status(d) for d in sent(server.hang_up("call-2", 41.0))] == [480]


def test_no_ack_ends_the_call_with_a_bye() -> None:
    server = uas()
    call(server)
    actions = server.tick(40.0)
    assert any(isinstance(a, CallEnded) for a in actions)
    assert any(d.startswith(b"BYE sip:caller@127.0.0.1:5070 SIP/2.0") for d in sent(actions))


def test_bye_cancel_options_info_and_unknown_methods() -> None:
    server = uas()
    _, tag = call(server)
    server.receive(request("ACK", to_tag=tag), CALLER, now=0.1)
    info = (
        request("INFO", cseq=2, to_tag=tag, body="").replace(
            b"Content-Length: 0", b"Content-Type: application/dtmf-relay\r\nContent-Length: 22"
        )
        + b"Signal=5\r\nDuration=160"
    )
    actions = server.receive(info, CALLER, now=0.2)
    assert status(sent(actions)[0]) == 200 and Dtmf("call-1", "5") in actions
    assert status(sent(server.receive(request("OPTIONS", call_id="o"), CALLER, 0.3))[0]) == 200
    refused = sent(server.receive(request("SUBSCRIBE", call_id="s"), CALLER, 0.3))[0]
    assert status(refused) == 405 and b"Allow: INVITE, ACK, BYE" in refused
    assert status(sent(server.receive(request("CANCEL"), CALLER, 0.4))[0]) == 200
    actions = server.receive(request("BYE", cseq=3, to_tag=tag), CALLER, now=0.5)
    assert status(sent(actions)[0]) == 200 and CallEnded("call-1", "the caller hung up") in actions
    # A BYE for a dialog we never had.
    assert (
        status(sent(server.receive(request("BYE", call_id="nope", to_tag="x"), CALLER, 1))[0])
        == 481
    )


def test_reinvite_on_hold_is_answered_with_the_mirrored_direction() -> None:
    server = uas()
    _, tag = call(server)
    server.receive(request("ACK", to_tag=tag), CALLER, now=0.1)
    hold = OFFER.replace("a=sendrecv", "a=sendonly").replace("40000", "40010")
    actions = server.receive(request("INVITE", cseq=2, to_tag=tag, body=hold), CALLER, now=1.0)
    [ok] = sent(actions)
    assert status(ok) == 200 and b"a=recvonly" in ok and b"m=audio 30000" in ok
    [updated] = [a for a in actions if isinstance(a, CallUpdated)]
    assert updated.dialog.offer.port == 40010
    # Changing codec mid-call is refused clearly.
    pcma = OFFER.replace("RTP/AVP 9 8 0 101", "RTP/AVP 8")
    server.receive(request("ACK", cseq=2, to_tag=tag), CALLER, now=1.1)
    refused = sent(server.receive(request("INVITE", cseq=3, to_tag=tag, body=pcma), CALLER, 2))
    assert status(refused[0]) == 488


@pytest.mark.parametrize(
    ("invite", "code"),
    [
        (request("INVITE"), 488),  # no SDP offer
        (request("INVITE", body=OFFER.replace(" 9 8 0 101", " 9")), 488),
        (request("INVITE", body=OFFER, extra="Require: 100rel\r\n"), 420),
        (request("INVITE", body=OFFER).replace(b"CSeq: 1 INVITE", b"CSeq: x INVITE"), 400),
        (request("INVITE", body=OFFER, call_id="c", to_tag="unknown"), 481),
    ],
)
def test_what_we_do_not_support_gets_a_clear_4xx(invite: bytes, code: int) -> None:
    [reply] = sent(uas().receive(invite, CALLER, now=0.0))
    assert status(reply) == code


def test_garbage_is_dropped_and_too_many_calls_are_busy() -> None:
    server = uas(max_calls=1)
    assert server.receive(b"\x16\x03\x01garbage", CALLER, 0.0) == []
    assert server.receive(b"\r\n\r\n", CALLER, 0.0) == []
    server.receive(request("INVITE", body=OFFER), CALLER, 0.0)
    [busy] = sent(server.receive(request("INVITE", body=OFFER, call_id="call-2"), CALLER, 0.1))
    assert status(busy) == 486


def test_digest_auth_challenges_then_accepts_the_right_credentials() -> None:
    auth = DigestAuth("alice", "s3cret")
    server = uas(auth=auth)
    [challenge] = sent(server.receive(request("INVITE", body=OFFER), CALLER, 0.0))
    assert status(challenge) == 401
    header = next(
        line for line in challenge.decode().split("\r\n") if line.startswith("WWW-Authenticate")
    )
    nonce = header.split('nonce="')[1].split('"')[0]
    uri = "sip:agent@127.0.0.1:5060"

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    def authorization(password: str) -> str:
        ha1 = md5(f"alice:realtalk:{password}")
        response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{md5('INVITE:' + uri)}")
        return (
            f'Authorization: Digest username="alice", realm="realtalk", nonce="{nonce}", '
            f'uri="{uri}", response="{response}", qop=auth, nc=00000001, cnonce="c0ffee", '
            "algorithm=MD5\r\n"
        )

    wrong = request("INVITE", body=OFFER, call_id="w", extra=authorization("guess"))
    assert status(sent(server.receive(wrong, CALLER, 0.1))[0]) == 401
    right = request("INVITE", body=OFFER, call_id="r", extra=authorization("s3cret"))
    assert [status(d) for d in sent(server.receive(right, CALLER, 0.2))] == [100, 180]
    assert "s3cret" not in repr(auth)


# -- RTP -----------------------------------------------------------------------------------------


def rtp(seq: int, payload: bytes = b"\xff" * 160, pt: int = 0, ts: int = 0, ssrc: int = 7) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts, ssrc) + payload


def test_rtp_packets_parse_and_our_sender_numbers_them() -> None:
    sender = RtpSender(0)
    first, second = parse_rtp(sender.packet(b"a" * 160)), parse_rtp(sender.packet(b"b" * 160))
    assert first.marker and not second.marker
    assert (second.sequence - first.sequence) & 0xFFFF == 1
    assert (second.timestamp - first.timestamp) & 0xFFFFFFFF == 160
    for bad in (b"", b"\x00" * 12, struct.pack("!BBHII", 0x80, 200, 0, 0, 0)):
        with pytest.raises(ValueError):
            parse_rtp(bad)


def test_the_jitter_buffer_reorders_drops_late_and_duplicates_and_fills_losses() -> None:
    buffer = JitterBuffer(depth=3)
    for seq in (65534, 0, 65535):  # out of order, across the wrap
        buffer.put(parse_rtp(rtp(seq, bytes([seq & 0xFF]) * 160)))
    assert buffer.pop() == b"\xfe" * 160
    assert buffer.pop() == b"\xff" * 160
    buffer.put(parse_rtp(rtp(65534)))  # late
    buffer.put(parse_rtp(rtp(0)))  # duplicate
    assert buffer.pop() == b"\x00" * 160
    buffer.put(parse_rtp(rtp(2)))
    assert buffer.pop() == b""  # 1 was lost: a slot of silence
    assert buffer.pop() == b"\xff" * 160
    assert (buffer.late, buffer.duplicates, buffer.lost) == (1, 1, 1)


def test_a_flood_of_packets_is_bounded() -> None:
    buffer = JitterBuffer(depth=3, max_packets=50)
    for seq in range(1000):
        buffer.put(parse_rtp(rtp(seq)))
    assert len(buffer) <= 50


def test_a_dtmf_event_is_reported_once() -> None:
    receiver = DtmfReceiver()
    start = rtp(1, bytes([5, 10, 0, 160]), pt=101, ts=8000)
    end = rtp(2, bytes([5, 0x80 | 10, 3, 32]), pt=101, ts=8000)
    digits = [receiver.feed(parse_rtp(p)) for p in (start, end, end, end)]
    assert digits == ["5", None, None, None]
    assert receiver.feed(parse_rtp(rtp(3, bytes([11, 10, 0, 160]), pt=101, ts=9600))) == "#"


def test_on_a_wildcard_address_sdp_and_contact_name_the_address_that_reaches_the_caller() -> None:
    ports = iter(range(30000, 31000, 2))
    server = UserAgentServer(
        host="0.0.0.0",
        port=5060,
        allocate_media=lambda _: next(ports),
        address_for=lambda ip: "192.0.2.10" if ip == "127.0.0.1" else "?",
    )
    [_, _, ok], _ = call(server)
    assert b"c=IN IP4 192.0.2.10\r\n" in ok and b"Contact: <sip:192.0.2.10:5060>" in ok
    assert b"0.0.0.0" not in ok


def test_the_tcp_framer_cuts_messages_by_content_length() -> None:
    from realtalk.transports.telephony.sip.message import StreamFramer

    framer = StreamFramer()
    one = request("OPTIONS", call_id="a")
    two = request("INVITE", call_id="b", body=OFFER)
    stream = b"\r\n\r\n" + one + two
    out = [m for i in range(0, len(stream), 37) for m in framer.feed(stream[i : i + 37])]
    assert out == [one, two]
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamFramer().feed(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n")
    with pytest.raises(SipParseError, match="larger"):
        StreamFramer().feed(b"x" * 20000)


def test_record_route_is_copied_and_our_bye_follows_the_route_set() -> None:
    server = uas()
    proxies = "Record-Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n"
    (_, ringing, ok), tag = call(server, extra=proxies)
    for response in (ringing, ok):
        assert (
            b"Record-Route: <sip:p1.example.com;lr>\r\nRecord-Route: <sip:p2.example.com;lr>"
            in response
        )
    server.receive(request("ACK", to_tag=tag), CALLER, now=0.1)
    [bye] = sent(server.hang_up("call-1", now=1.0))
    assert b"Route: <sip:p1.example.com;lr>\r\nRoute: <sip:p2.example.com;lr>\r\n" in bye
    assert bye.startswith(b"BYE sip:caller@127.0.0.1:5070 SIP/2.0")


def test_max_forwards_zero_is_too_many_hops() -> None:
    looped = request("INVITE", body=OFFER).replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    [reply] = sent(uas().receive(looped, CALLER, 0.0))
    assert status(reply) == 483
