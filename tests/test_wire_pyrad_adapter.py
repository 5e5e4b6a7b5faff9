"""The pyrad internals behind radiusd.codec.pyrad_adapter, each held to bytes worked out by hand.

pyrad is pinned below its next minor version because these are private; a
release that changes one fails here, not on the wire.
"""

from collections import OrderedDict

from pyrad.packet import AccessAccept, AuthPacket

from radiusd.codec import pyrad_adapter
from radiusd.codec.attributes import attribute_map
from schema.dictionary import load_dictionary


def test_split_vendor_attributes():
    value = (14988).to_bytes(4, "big") + bytes((8, 7)) + b"1M/1M" + bytes((3, 4)) + b"ab"
    assert pyrad_adapter.split_vendor_attributes(value) == [(8, b"1M/1M"), (3, b"ab")]
    assert pyrad_adapter.split_vendor_attributes(value[:-1]) is None  # the last length overruns


def test_zero_message_authenticator():
    attributes = bytes((1, 3)) + b"a" + bytes((80, 18)) + b"\xff" * 16 + bytes((33, 3)) + b"x"
    expected = bytes((1, 3)) + b"a" + bytes((80, 18)) + bytes(16) + bytes((33, 3)) + b"x"
    assert pyrad_adapter.zero_message_authenticator(attributes) == expected


def test_encode_attributes():
    reply = AuthPacket(code=AccessAccept, secret=b"s", authenticator=bytes(16), dict=load_dictionary())
    reply.AddAttribute("Session-Timeout", 60)
    reply.AddAttribute("Mikrotik-Rate-Limit", "1M/1M")
    assert (
        pyrad_adapter.encode_attributes(reply)
        == (
            bytes((27, 6))
            + (60).to_bytes(4, "big")
            + bytes((26, 13))
            + (14988).to_bytes(4, "big")
            + bytes((8, 7))
        )
        + b"1M/1M"
    )


def test_enumerated_names_and_decode_value():
    status = load_dictionary().attributes["Acct-Status-Type"]
    assert pyrad_adapter.enumerated_names(status)[(1).to_bytes(4, "big")] == "Start"
    assert pyrad_adapter.decode_value("ipv6prefix", bytes((0, 64)) + bytes.fromhex("20010db800000001")) == (
        "2001:db8:0:1::/64"
    )


def test_fast_decoding_fills_the_packet_from_the_attribute_map():
    class Packet(pyrad_adapter.FastDecoding, AuthPacket):
        attribute_map = staticmethod(attribute_map)

    request = AuthPacket(secret=b"s", authenticator=bytes(range(16)), id=7, dict=load_dictionary())
    request.AddAttribute("User-Name", "alice")
    request.add_message_authenticator()
    raw = request.RequestPacket()
    decoded = Packet(packet=raw + b"pad", secret=b"s", dict=load_dictionary())
    assert (decoded.code, decoded.id, decoded.authenticator) == (1, 7, bytes(range(16)))
    assert decoded.raw_packet == raw and decoded.message_authenticator
    assert OrderedDict.get(decoded, 1) == [b"alice"] and decoded.attributes == attribute_map(raw)
    assert decoded["User-Name"] == ["alice"]
