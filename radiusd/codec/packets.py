"""The RADIUS wire: checking and decoding packets, verifying authenticators (no sockets here).

The rules of the field that a generic RADIUS library leaves out:

- a datagram is refused unless its Length field and every attribute length
  add up exactly (RFC 2865 section 3: a truncated or overrunning attribute
  makes the packet malformed, pyrad would silently cut the value);
- a Message-Authenticator is verified over the bytes as received, never a
  re-encoding (RFC 3579 section 3.2; pyrad #140/#145).

Used by authentication and accounting alike; replies are encoded by
radiusd.codec.replies.
"""

import hashlib
import hmac
import struct

from radiusd.codec.attributes import HEADER_LENGTH, attribute_map
from radiusd.codec.pyrad_adapter import zero_message_authenticator

MAX_PACKET_LENGTH = 4096  # RFC 2865 section 3
MESSAGE_AUTHENTICATOR = 80
MESSAGE_AUTHENTICATOR_LENGTH = 18
PROXY_STATE = 33

ACCESS_REQUEST = 1
ACCOUNTING_REQUEST = 4
ACCOUNTING_RESPONSE = 5
STATUS_SERVER = 12


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


class AccessRequest:
    """A decoded Access-Request or Status-Server: its header, the bytes as
    received and their attribute_map, and the NAS's shared secret.

    Plain slots read once from the datagram, not a pyrad packet: building
    pyrad's packet object cost more than the rest of the decoding.
    """

    __slots__ = ("code", "id", "authenticator", "raw_packet", "attributes", "secret")

    def __init__(self, raw: bytes, secret: bytes):
        self.code, self.id = raw[0], raw[1]
        self.authenticator = raw[4:HEADER_LENGTH]
        self.raw_packet = raw
        self.attributes = attribute_map(raw)
        self.secret = secret

    @property
    def message_authenticator(self) -> bool:
        return MESSAGE_AUTHENTICATOR in self.attributes

    def password(self, encrypted: bytes) -> str:
        """A User-Password in clear (RFC 2865 section 5.2), of a length
        already checked to be a non-zero multiple of 16 octets.

        As pyrad's PwDecrypt always did: the NUL padding is cut, and octets
        that are not UTF-8 (a wrong secret) are left out rather than refused.
        """
        secret, previous, blocks = self.secret, self.authenticator, []
        for start in range(0, len(encrypted), 16):
            block = encrypted[start : start + 16]
            mask = hashlib.md5(secret + previous).digest()
            blocks.append((int.from_bytes(block, "big") ^ int.from_bytes(mask, "big")).to_bytes(16, "big"))
            previous = block
        return b"".join(blocks).rstrip(b"\0").decode("utf-8", errors="ignore")


def decode(data: bytes, secret: bytes) -> AccessRequest:
    """Decode a datagram already passed by check_datagram."""
    return AccessRequest(received_packet(data), secret)


def message_authenticator_valid(request: AccessRequest, vector: bytes | None = None) -> bool:
    """message_authenticator_matches for a decoded request."""
    return message_authenticator_matches(
        request.raw_packet, request.secret, request.attributes[MESSAGE_AUTHENTICATOR][0], vector
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
    attributes = zero_message_authenticator(raw[HEADER_LENGTH:])
    digest = hmac.digest(secret, raw[:4] + vector + attributes, "md5")
    return hmac.compare_digest(received, digest)


ZERO_AUTHENTICATOR = bytes(16)


def accounting_authenticator_valid(raw: bytes, secret: bytes) -> bool:
    """The Request Authenticator of an Accounting-Request: MD5 over the
    packet with the authenticator zeroed, followed by the shared secret
    (RFC 2866 section 3)."""
    digest = hashlib.md5(raw[:4] + ZERO_AUTHENTICATOR + raw[HEADER_LENGTH:] + secret).digest()
    return hmac.compare_digest(digest, raw[4:20])
