"""Provider media-stream serializers and Twilio request signatures."""

from __future__ import annotations

import base64
import json

import pytest

from realtalk.transports.telephony.media_streams import (
    PlivoSerializer,
    StreamError,
    TelnyxSerializer,
    TwilioSerializer,
)
from realtalk.transports.telephony.signature import twilio_signature, valid_twilio_signature

TWILIO_START = {
    "event": "start",
    "sequenceNumber": "1",
    "start": {
        "accountSid": "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "callSid": "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": {"FirstName": "Jane", "From": "+15551234567"},
    },
    "streamSid": "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
}


def test_twilio_start_media_dtmf_mark_stop_parse_as_documented() -> None:
    s = TwilioSerializer()
    start = s.parse(json.dumps(TWILIO_START))
    assert start.kind == "start"
    assert start.stream_id == s.stream_id == "MZXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert start.call_id == "CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert start.account_id == "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
    assert start.from_number == "+15551234567"
    assert start.parameters["FirstName"] == "Jane"
    assert (start.encoding, start.sample_rate) == ("audio/pcmu", 8000)
    payload = base64.b64encode(b"\xff" * 160).decode()
    media = s.parse(
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": "3",
                "media": {"track": "inbound", "chunk": "1", "timestamp": "5", "payload": payload},
                "streamSid": s.stream_id,
            }
        )
    )
    assert media.payload == b"\xff" * 160
    dtmf = s.parse(
        json.dumps(
            {
                "event": "dtmf",
                "streamSid": s.stream_id,
                "sequenceNumber": "5",
                "dtmf": {"track": "inbound_track", "digit": "1"},
            }
        )
    )
    assert dtmf.digit == "1"
    mark = s.parse(json.dumps({"event": "mark", "streamSid": "x", "mark": {"name": "160"}}))
    assert mark.name == "160"
    assert s.parse(json.dumps({"event": "stop", "stop": {}, "streamSid": "x"})).kind == "stop"
    assert s.parse(json.dumps({"event": "connected", "protocol": "Call"})).kind == "connected"


def test_twilio_outbound_messages_have_the_documented_shape() -> None:
    s = TwilioSerializer()
    s.parse(json.dumps(TWILIO_START))
    sid = s.stream_id
    assert json.loads(s.media(b"\x01\x02")) == {
        "event": "media",
        "streamSid": sid,
        "media": {"payload": "AQI="},
    }
    assert json.loads(s.mark("320")) == {"event": "mark", "streamSid": sid, "mark": {"name": "320"}}
    assert json.loads(s.clear()) == {"event": "clear", "streamSid": sid}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"binary", "binary"),
        ("{", "not JSON"),
        ("[" * 10000, "not JSON"),
        ("[]", "JSON object"),
        ('{"event": "media"}', "media"),
        ('{"event": "media", "media": {"payload": "@@"}}', "base64"),
        ('{"event": "dtmf", "dtmf": {"digit": "11"}}', "digit"),
        ('{"event": "start", "start": {"mediaFormat": {"encoding": "audio/l16"}}}', "encoding"),
        ('{"event": "start", "start": {"mediaFormat": {"sampleRate": 16000}}}', "8000"),
        ('{"event": "whatever"}', "unknown"),
        ("x" * 70_000, "longer"),
    ],
)
def test_bad_messages_are_stream_errors_that_say_why(message: str | bytes, reason: str) -> None:
    with pytest.raises(StreamError, match=reason):
        TwilioSerializer().parse(message)


def test_telnyx_and_plivo_speak_their_own_names() -> None:
    telnyx = TelnyxSerializer()
    start = telnyx.parse(
        json.dumps(
            {
                "event": "start",
                "sequence_number": "1",
                "start": {
                    "call_control_id": "v3:abc",
                    "from": "+15550001",
                    "to": "+15550002",
                    "media_format": {"encoding": "PCMA", "sample_rate": 8000, "channels": 1},
                },
                "stream_id": "s-1",
            }
        )
    )
    assert (start.call_id, start.encoding, start.from_number) == (
        "v3:abc",
        "audio/pcma",
        "+15550001",
    )
    assert json.loads(telnyx.clear()) == {"event": "clear"}
    plivo = PlivoSerializer()
    plivo.parse(
        json.dumps(
            {
                "event": "start",
                "start": {
                    "callId": "c-1",
                    "streamId": "p-1",
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000},
                },
            }
        )
    )
    assert json.loads(plivo.media(b"\x00"))["event"] == "playAudio"
    assert json.loads(plivo.mark("1")) == {"event": "checkpoint", "streamId": "p-1", "name": "1"}
    played = plivo.parse(json.dumps({"event": "playedStream", "streamId": "p-1", "name": "1"}))
    assert (played.kind, played.name) == ("mark", "1")


def test_twilio_signature_matches_twilios_reference_example() -> None:
    # The example of Twilio's request-validator test suites (auth token "12345").
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert valid_twilio_signature("12345", url, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not valid_twilio_signature(
        "12345", url, {**params, "Digits": "1"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    )
    assert not valid_twilio_signature("12345", url, params, None)
    # A proxy that adds the default port does not break validation.
    with_port = twilio_signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", params)
    assert valid_twilio_signature("12345", url, params, with_port)
