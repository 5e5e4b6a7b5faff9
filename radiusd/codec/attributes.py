"""Reading attributes, shared by authentication and accounting.

``attribute_map`` splits a checked packet into code or (vendor, type) ->
raw values; ``first_raw``/``integer`` read raw values (the Access-Request
facts), ``first``/``text``/``octets`` decode by dictionary name as pyrad
would (the accounting record).
"""

import socket
import struct
from functools import partial

from radiusd.codec.pyrad_adapter import decode_value, enumerated_names, split_vendor_attributes
from schema.dictionary import load_dictionary

HEADER_LENGTH = 20
VENDOR_SPECIFIC = 26


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
            parts = split_vendor_attributes(value)
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


def first_raw(attributes: dict, key):
    """The first raw value of attribute ``key`` (a code or (vendor, type)), None when absent."""
    values = attributes.get(key)
    return values[0] if values else None


def integer(raw: bytes | None) -> int | None:
    """A 4-octet integer value, None when absent or of another size."""
    return int.from_bytes(raw, "big") if raw is not None and len(raw) == 4 else None


_UNSIGNED = struct.Struct("!I")


def _integer(raw: bytes) -> int:
    try:
        return _UNSIGNED.unpack(raw)[0]
    except struct.error:
        raise ValueError(f"Invalid integer value: expected 4 bytes, got {len(raw)}") from None


def _string(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _ipv4_address(raw: bytes) -> str:
    if len(raw) != 4:
        raise ValueError(f"Invalid ipaddr value: expected 4 bytes, got {len(raw)}")
    return socket.inet_ntoa(raw)


# The dictionary types radbill reads most, decoded as pyrad does (strings
# that are not UTF-8 with replacement characters, as text always had them);
# the rest (ipv6addr, ipv6prefix, ifid...) by pyrad itself.
_DECODERS = {
    "integer": _integer,
    "date": _integer,
    "string": _string,
    "octets": bytes,
    "ipaddr": _ipv4_address,
}


class _Attributes(dict):
    """Attribute name -> (code, decoder) in radiusd's dictionary, filled on first use.

    The decoder gives what pyrad's ``packet.get(name)[0]`` would: the
    dictionary's name of an enumerated value ("Start", "Ethernet"...), else
    the value of the attribute's type; it raises ValueError for a value of
    the wrong size. A request reads some twenty attributes, so resolving a
    name is one dict look-up.
    """

    def __missing__(self, name: str):
        attribute = load_dictionary().attributes[name]
        decode = _DECODERS.get(attribute.type) or partial(decode_value, attribute.type)
        names = enumerated_names(attribute)
        if names:
            entry = self[name] = (attribute.code, lambda raw: names.get(raw) or decode(raw))
        else:
            entry = self[name] = (attribute.code, decode)
        return entry


_ATTRIBUTES = _Attributes()


def first(attributes: dict, name: str):
    """The first value of (non-vendor) attribute ``name`` in an attribute map, decoded; None when absent."""
    code, decode = _ATTRIBUTES[name]
    values = attributes.get(code)
    return decode(values[0]) if values else None


def text(attributes: dict, name: str, limit: int | None = None) -> str | None:
    """The first value of ``name`` as text, cut to ``limit`` characters."""
    value = first(attributes, name)
    if value is None:
        return None
    value = str(value)
    return value[:limit] if limit else value


def octets(attributes, low: str, high: str) -> int | None:
    """Octets with their Gigawords: ``Gigawords << 32 | Octets`` (RFC 2869 §5.1, FIELD-NOTES 4)."""
    low_value, gigawords = first(attributes, low), first(attributes, high)
    if low_value is None and gigawords is None:
        return None
    return (int(gigawords or 0) << 32) | int(low_value or 0)
