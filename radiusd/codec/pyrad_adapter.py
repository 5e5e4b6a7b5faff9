"""Every private pyrad API radbill leans on, in one place.

pyrad's public surface cannot verify a Message-Authenticator over the
bytes as received, and its packet objects cost more than a request's whole
decoding, so the codec builds no pyrad packets and uses these instead.
They live here, pinned in setup.cfg (``pyrad>=2.6,<2.7``) and each checked
by tests/test_wire_pyrad_adapter.py, so a pyrad upgrade that changes one
fails that test instead of the wire.
"""

from pyrad.packet import Packet
from pyrad.tools import DecodeAttr, EncodeAttr


def split_vendor_attributes(value: bytes) -> list[tuple[int, bytes]] | None:
    """The (type, value) sub-attributes of a Vendor-Specific value after its
    4-octet Vendor-Id (RFC 2865 section 5.26), or None when they do not add up."""
    return Packet._PktSplitSubAttributes(value, 4)


def zero_message_authenticator(attributes: bytes) -> bytes:
    """The attribute octets with the Message-Authenticator's value zeroed (RFC 3579 section 3.2)."""
    return Packet._zero_message_authenticator(attributes)


def enumerated_names(attribute) -> dict:
    """A dictionary attribute's VALUE names by raw value ({b'\\x00\\x00\\x00\\x01': 'Start', ...})."""
    return dict(attribute.values.backward)


def enumerated_values(attribute) -> dict:
    """A dictionary attribute's raw values by VALUE name ({'Start': b'\\x00\\x00\\x00\\x01', ...})."""
    return dict(attribute.values.forward)


def decode_value(kind: str, raw: bytes):
    """A raw value decoded as pyrad decodes a dictionary type (ipv6prefix, ifid, ...)."""
    return DecodeAttr(kind, raw)


def encode_value(kind: str, value) -> bytes:
    """A value encoded as pyrad encodes a dictionary type (ipaddr, a hex string as octets, ...);
    ValueError or TypeError for one that the type cannot hold."""
    return EncodeAttr(kind, value)
