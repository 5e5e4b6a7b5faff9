"""The pyrad internals behind radiusd.codec.pyrad_adapter, each held to bytes worked out by hand.

pyrad is pinned below its next minor version because these are private; a
release that changes one fails here, not on the wire.
"""

from radiusd.codec import pyrad_adapter
from schema.dictionary import load_dictionary


def test_split_vendor_attributes():
    value = (14988).to_bytes(4, "big") + bytes((8, 7)) + b"1M/1M" + bytes((3, 4)) + b"ab"
    assert pyrad_adapter.split_vendor_attributes(value) == [(8, b"1M/1M"), (3, b"ab")]
    assert pyrad_adapter.split_vendor_attributes(value[:-1]) is None  # the last length overruns


def test_zero_message_authenticator():
    attributes = bytes((1, 3)) + b"a" + bytes((80, 18)) + b"\xff" * 16 + bytes((33, 3)) + b"x"
    expected = bytes((1, 3)) + b"a" + bytes((80, 18)) + bytes(16) + bytes((33, 3)) + b"x"
    assert pyrad_adapter.zero_message_authenticator(attributes) == expected


def test_enumerated_names_and_values_and_decode_and_encode_value():
    status = load_dictionary().attributes["Acct-Status-Type"]
    assert pyrad_adapter.enumerated_names(status)[(1).to_bytes(4, "big")] == "Start"
    assert pyrad_adapter.enumerated_values(status)["Start"] == (1).to_bytes(4, "big")
    assert pyrad_adapter.encode_value("ipaddr", "192.0.2.7") == bytes((192, 0, 2, 7))
    assert pyrad_adapter.encode_value("octets", "0x0aff") == bytes((10, 255))
    assert pyrad_adapter.decode_value("ipv6prefix", bytes((0, 64)) + bytes.fromhex("20010db800000001")) == (
        "2001:db8:0:1::/64"
    )
