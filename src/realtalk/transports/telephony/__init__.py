"""Phone calls: provider media streams (Twilio, Telnyx, Plivo) and a native SIP endpoint.

- :class:`~realtalk.transports.telephony.server.MediaStreamServer`: Twilio's voice webhook and
  the media WebSockets; each call becomes a
  :class:`~realtalk.transports.telephony.stream_transport.MediaStreamTransport`.
- ``realtalk.transports.telephony.sip``: a SIP user agent server answering calls over UDP/RTP.
- :class:`~realtalk.transports.telephony.phone.CallInfo`: who called whom (``ctx.call``).
"""

from realtalk.transports.telephony.phone import CallInfo, PhoneTransport

__all__ = ["CallInfo", "PhoneTransport"]
