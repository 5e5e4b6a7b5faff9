"""Every private pyrad API radbill leans on, in one place.

pyrad's public surface decodes slowly and cannot verify a
Message-Authenticator over the bytes as received, so the codec uses five
of its internals. They live here, pinned in setup.cfg (``pyrad>=2.6,<2.7``)
and each checked by tests/test_wire_pyrad_adapter.py, so a pyrad upgrade
that changes one fails that test instead of the wire.
"""

import struct
from collections import OrderedDict

from pyrad.packet import Packet
from pyrad.tools import DecodeAttr


def split_vendor_attributes(value: bytes) -> list[tuple[int, bytes]] | None:
    """The (type, value) sub-attributes of a Vendor-Specific value after its
    4-octet Vendor-Id (RFC 2865 section 5.26), or None when they do not add up."""
    return Packet._PktSplitSubAttributes(value, 4)


def zero_message_authenticator(attributes: bytes) -> bytes:
    """The attribute octets with the Message-Authenticator's value zeroed (RFC 3579 section 3.2)."""
    return Packet._zero_message_authenticator(attributes)


def encode_attributes(packet: Packet) -> bytes:
    """The attribute octets of a pyrad packet, as pyrad encodes them."""
    return packet._PktEncodeAttributes()


def enumerated_names(attribute) -> dict:
    """A dictionary attribute's VALUE names by raw value ({b'\\x00\\x00\\x00\\x01': 'Start', ...})."""
    return dict(attribute.values.backward)


def decode_value(kind: str, raw: bytes):
    """A raw value decoded as pyrad decodes a dictionary type (ipv6prefix, ifid, ...)."""
    return DecodeAttr(kind, raw)


class FastDecoding:
    """Mix into a pyrad packet class to decode it from an attribute map
    (``attribute_map(packet)``, given to the constructor as the class's
    ``attribute_map``) instead of pyrad's per-attribute TLV look-up, which
    halves the cost of a request. Only for datagrams check_datagram passed;
    the map is kept as ``attributes``."""

    attribute_map = None
    message_authenticator_code = 80

    def _PktIsTlvAttribute(self, code) -> bool:
        return False

    def DecodePacket(self, packet: bytes) -> None:
        self.code, self.id, length, self.authenticator = struct.unpack_from("!BBH16s", packet)
        packet = self.raw_packet = packet[:length]
        attributes = self.attributes = type(self).attribute_map(packet)
        if self.message_authenticator_code in attributes:
            self.message_authenticator = True
        OrderedDict.clear(self)
        for key, values in attributes.items():
            OrderedDict.__setitem__(self, key, values)
