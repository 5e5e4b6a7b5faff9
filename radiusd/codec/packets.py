"""The RADIUS wire: checking, decoding and answering packets (no sockets here).

pyrad decodes and encodes; this module adds the checks pyrad leaves out and
the rules of the field:

- a datagram is refused unless its Length field and every attribute length
  add up exactly (RFC 2865 section 3: a truncated or overrunning attribute
  makes the packet malformed, pyrad would silently cut the value);
- a Message-Authenticator is verified over the bytes as received, never a
  re-encoding (RFC 3579 section 3.2; pyrad #140/#145);
- every Access-Accept/Reject carries a Message-Authenticator as its first
  attribute (BlastRADIUS, CVE-2024-3596) and echoes Proxy-State (RFC 2865
  section 5.33).

Used by authentication and accounting alike.
"""

import hashlib
import hmac
import struct
from collections import OrderedDict

from pyrad.packet import AccessAccept, AccessReject, AuthPacket, Packet

from radiusd.auth.policy import Credentials, Decision, RequestFacts
from radiusd.codec.mschap import mppe_key_attributes, mschap_mppe_keys_attribute
from schema.dictionary import load_dictionary

HEADER_LENGTH = 20
MAX_PACKET_LENGTH = 4096  # RFC 2865 section 3
MESSAGE_AUTHENTICATOR = 80
MESSAGE_AUTHENTICATOR_LENGTH = 18
PROXY_STATE = 33
VENDOR_SPECIFIC = 26

ACCESS_REQUEST = 1
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
STATUS_SERVER = 12

# pyrad keys of the attributes read from an Access-Request.
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
SERVICE_TYPE = 6
FRAMED_PROTOCOL = 7
CALLING_STATION_ID = 31
CHAP_CHALLENGE = 60
NAS_PORT_TYPE = 61
MS_CHAP_RESPONSE = (311, 1)
MS_CHAP_CHALLENGE = (311, 11)
MS_CHAP2_RESPONSE = (311, 25)


class Drop(Exception):
    """A request that gets no answer; ``cause`` labels it in the drop metric."""

    def __init__(self, cause: str, detail: str):
        super().__init__(detail)
        self.cause = cause


class MalformedPacket(Drop):
    """A datagram that is not a well-formed RADIUS packet."""


def check_datagram(data: bytes, codes: frozenset[int]) -> None:
    """Refuse anything but a well-formed packet with one of ``codes``.

    Octets beyond the Length field are padding and allowed (RFC 2865
    section 3); a Message-Authenticator must be 18 octets long.
    """
    if len(data) < HEADER_LENGTH:
        raise MalformedPacket("short", f"{len(data)} octets is shorter than a RADIUS header")
    code, _, length = struct.unpack_from("!BBH", data)
    if code not in codes:
        raise MalformedPacket("bad_code", f"code {code} is not served on this port")
    if not HEADER_LENGTH <= length <= MAX_PACKET_LENGTH or length > len(data):
        raise MalformedPacket(
            "bad_length", f"Length field {length} does not fit a {len(data)}-octet datagram"
        )
    position = HEADER_LENGTH
    while position < length:
        if position + 2 > length:
            raise MalformedPacket("bad_attribute", "attribute header cut off")
        kind, size = data[position], data[position + 1]
        if size < 2 or position + size > length:
            raise MalformedPacket("bad_attribute", f"attribute {kind} length {size} overruns the packet")
        if kind == MESSAGE_AUTHENTICATOR and size != MESSAGE_AUTHENTICATOR_LENGTH:
            raise MalformedPacket("bad_attribute", f"Message-Authenticator of length {size}")
        position += size


def received_packet(data: bytes) -> bytes:
    """A datagram passed by check_datagram without the padding beyond its Length field (RFC 2865 section 3)."""
    return data[: (data[2] << 8) | data[3]]


def attribute_map(packet: bytes) -> dict:
    """The attributes of a packet passed by check_datagram and cut to its
    Length: code or (vendor, type) -> raw values in the order received.

    The mapping pyrad's DecodePacket fills, in one plain loop:
    check_datagram has already walked the attributes, and raddb/ declares no
    TLV attributes (RFC 6929), so no value needs a dictionary look-up here.
    A Vendor-Specific attribute is split into its sub-attributes (RFC 2865
    section 5.26) when it is well formed, else kept whole under 26.
    """
    attributes: dict = {}
    position = HEADER_LENGTH
    length = len(packet)
    while position < length:
        kind, size = packet[position], packet[position + 1]
        value = packet[position + 2 : position + size]
        position += size
        if kind == VENDOR_SPECIFIC and len(value) >= 6:
            parts = Packet._PktSplitSubAttributes(value, 4)
            if parts is not None:
                vendor = int.from_bytes(value[:4], "big")
                for vendor_type, vendor_value in parts:
                    attributes.setdefault((vendor, vendor_type), []).append(vendor_value)
                continue
        values = attributes.get(kind)
        if values is None:
            attributes[kind] = [value]
        else:
            values.append(value)
    return attributes


class _WithoutTlv:
    """pyrad packets decoded by attribute_map: together with leaving out
    pyrad's per-attribute TLV look-up this halves the cost of a request.
    Only decode datagrams that check_datagram passed."""

    def _PktIsTlvAttribute(self, code) -> bool:
        return False

    def DecodePacket(self, packet: bytes) -> None:
        self.code, self.id, length, self.authenticator = struct.unpack_from("!BBH16s", packet)
        packet = self.raw_packet = packet[:length]
        attributes = attribute_map(packet)
        if MESSAGE_AUTHENTICATOR in attributes:
            self.message_authenticator = True
        OrderedDict.clear(self)
        for key, values in attributes.items():
            OrderedDict.__setitem__(self, key, values)


class AccessPacket(_WithoutTlv, AuthPacket):
    """An Access-Request or its reply."""


def decode(data: bytes, secret: bytes, packet_class: type[Packet] = AccessPacket) -> Packet:
    """Decode a datagram already passed by check_datagram."""
    return packet_class(packet=received_packet(data), secret=secret, dict=load_dictionary())


def has_message_authenticator(packet: Packet) -> bool:
    return bool(packet.message_authenticator)


def message_authenticator_valid(packet: Packet, vector: bytes | None = None) -> bool:
    """message_authenticator_matches for a decoded pyrad request."""
    return message_authenticator_matches(
        packet.raw_packet, packet.secret, packet[MESSAGE_AUTHENTICATOR][0], vector
    )


def message_authenticator_matches(
    raw: bytes, secret: bytes, received: bytes, vector: bytes | None = None
) -> bool:
    """Check the Message-Authenticator ``received`` in ``raw``: HMAC-MD5 over
    the bytes as received with the attribute zeroed (RFC 3579 section 3.2).
    ``vector`` is the Request Authenticator for Access-Request (the
    default) and 16 zero octets for requests whose authenticator is itself
    a digest (Accounting-Request, RFC 5176)."""
    if vector is None:
        vector = raw[4:20]
    attributes = Packet._zero_message_authenticator(raw[HEADER_LENGTH:])
    digest = hmac.new(secret, raw[:4] + vector + attributes, hashlib.md5).digest()
    return hmac.compare_digest(received, digest)


ZERO_AUTHENTICATOR = bytes(16)


def accounting_authenticator_valid(raw: bytes, secret: bytes) -> bool:
    """The Request Authenticator of an Accounting-Request: MD5 over the
    packet with the authenticator zeroed, followed by the shared secret
    (RFC 2866 section 3)."""
    digest = hashlib.md5(raw[:4] + ZERO_AUTHENTICATOR + raw[HEADER_LENGTH:] + secret).digest()
    return hmac.compare_digest(digest, raw[4:20])


def _first(packet: Packet, key):
    """The first raw value of an attribute (pyrad's own get() decodes)."""
    values = OrderedDict.get(packet, key)
    return values[0] if values else None


def _integer(raw: bytes | None) -> int | None:
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


def request_facts(packet: AuthPacket) -> RequestFacts:
    """Read what the policy needs from a decoded Access-Request.

    Raises MalformedPacket for a request without User-Name or with a
    User-Password that is not a multiple of 16 octets.
    """
    raw_name = _first(packet, USER_NAME)
    if not raw_name:
        raise MalformedPacket("no_user_name", "Access-Request without User-Name")
    username = raw_name.decode("utf-8", errors="replace")
    authenticator = packet.authenticator
    encrypted = _first(packet, USER_PASSWORD)
    if encrypted is not None:
        if not encrypted or len(encrypted) % 16:
            raise MalformedPacket("bad_attribute", f"User-Password of {len(encrypted)} octets")
        credentials = Credentials("pap", password=packet.PwDecrypt(encrypted))
    elif (chap_password := _first(packet, CHAP_PASSWORD)) is not None:
        credentials = Credentials(
            "chap",
            chap_password=chap_password,
            chap_challenge=_first(packet, CHAP_CHALLENGE),
            request_authenticator=authenticator,
        )
    elif (ms_challenge := _first(packet, MS_CHAP_CHALLENGE)) is not None:
        if (response := _first(packet, MS_CHAP2_RESPONSE)) is not None:
            credentials = Credentials("mschap2", ms_challenge=ms_challenge, ms_response=response)
        elif (response := _first(packet, MS_CHAP_RESPONSE)) is not None:
            credentials = Credentials("mschap1", ms_challenge=ms_challenge, ms_response=response)
        else:
            credentials = Credentials(None)
    else:
        credentials = Credentials(None)
    calling = _first(packet, CALLING_STATION_ID)
    return RequestFacts(
        username=username,
        credentials=credentials,
        calling_station_id=calling.decode("utf-8", errors="replace") if calling else None,
        service_type=_integer(_first(packet, SERVICE_TYPE)),
        framed_protocol=_integer(_first(packet, FRAMED_PROTOCOL)),
        nas_port_type=_integer(_first(packet, NAS_PORT_TYPE)),
    )


_EMPTY_MESSAGE_AUTHENTICATOR = bytes((MESSAGE_AUTHENTICATOR, MESSAGE_AUTHENTICATOR_LENGTH)) + bytes(16)


def _proxy_states(values) -> bytes:
    """Proxy-State attributes echoed unmodified and in order (RFC 2865 section 5.33)."""
    if not values:
        return b""
    return b"".join(bytes((PROXY_STATE, len(value) + 2)) + value for value in values)


def _with_response_authenticator(
    code: int, identifier: int, request_authenticator: bytes, body: bytes, secret: bytes
) -> bytes:
    """The reply with its Response Authenticator: MD5(Code+ID+Length+Request
    Authenticator+Attributes+Secret) (RFC 2865 section 3, RFC 2866 section 3)."""
    header = struct.pack("!BBH", code, identifier, HEADER_LENGTH + len(body))
    return header + hashlib.md5(header + request_authenticator + body + secret).digest() + body


def encode_reply(request: Packet, code: int, attributes=()) -> bytes:
    """Encode a reply: Message-Authenticator first, Proxy-State echoed in
    order, then ``attributes`` (name, value).

    The attributes are encoded once; the Message-Authenticator (RFC 3579
    section 3.2: HMAC-MD5 over the reply with the Request Authenticator in
    place and the attribute zeroed) is then written into its slot, and the
    Response Authenticator computed over the result.
    """
    reply = type(request)(
        code=code,
        id=request.id,
        secret=request.secret,
        authenticator=request.authenticator,
        dict=request.dict,
    )
    for name, value in attributes:
        reply.AddAttribute(name, value)
    body = (
        _EMPTY_MESSAGE_AUTHENTICATOR
        + _proxy_states(OrderedDict.get(request, PROXY_STATE, ()))
        + reply._PktEncodeAttributes()
    )
    header = struct.pack("!BBH", code, request.id, HEADER_LENGTH + len(body))
    signature = hmac.new(request.secret, header + request.authenticator + body, hashlib.md5).digest()
    body = body[:2] + signature + body[MESSAGE_AUTHENTICATOR_LENGTH:]
    return _with_response_authenticator(code, request.id, request.authenticator, body, request.secret)


def encode_accounting_response(raw: bytes, attributes: dict, secret: bytes) -> bytes:
    """The Accounting-Response to the Accounting-Request ``raw`` (with its
    attribute_map): no attributes but the echoed Proxy-States, signed with
    the Response Authenticator (RFC 2866 section 3)."""
    return _with_response_authenticator(
        ACCOUNTING_RESPONSE, raw[1], raw[4:20], _proxy_states(attributes.get(PROXY_STATE)), secret
    )


def encode_access_reply(request: AuthPacket, decision: Decision) -> bytes:
    """Encode the Access-Accept or Access-Reject for a policy Decision,
    hiding MPPE keys with the shared secret (RFC 2548 section 2.4)."""
    attributes = list(decision.attributes)
    if len(decision.mppe_keys) == 2:
        send, recv = mppe_key_attributes(*decision.mppe_keys, request.secret, request.authenticator)
        attributes += [("MS-MPPE-Send-Key", send), ("MS-MPPE-Recv-Key", recv)]
    elif len(decision.mppe_keys) == 1:
        attributes.append(
            (
                "MS-CHAP-MPPE-Keys",
                mschap_mppe_keys_attribute(decision.mppe_keys[0], request.secret, request.authenticator),
            )
        )
    return encode_reply(request, AccessAccept if decision.accept else AccessReject, attributes)
