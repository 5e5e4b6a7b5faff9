"""Encoding replies: Access-Accept/Reject, Status-Server answers, Accounting-Response.

Every Access-Accept/Reject carries a Message-Authenticator as its first
attribute (BlastRADIUS, CVE-2024-3596) and echoes Proxy-State (RFC 2865
section 5.33). The reply's attributes are given as (name, value) pairs; the
codec knows nothing of why they were chosen.
"""

import hashlib
import hmac
import struct

from radiusd.codec.attributes import HEADER_LENGTH, VENDOR_SPECIFIC
from radiusd.codec.mschap import mppe_key_attributes, mschap_mppe_keys_attribute
from radiusd.codec.packets import (
    ACCOUNTING_RESPONSE,
    MESSAGE_AUTHENTICATOR,
    MESSAGE_AUTHENTICATOR_LENGTH,
    PROXY_STATE,
    AccessRequest,
)
from radiusd.codec.pyrad_adapter import encode_value, enumerated_values
from schema.dictionary import load_dictionary

ACCESS_ACCEPT = 2
ACCESS_REJECT = 3
MAX_VALUE_LENGTH = 253  # RFC 2865 section 5: a Length octet counts the type and itself
_UNSIGNED_MAX = 0xFFFFFFFF

_EMPTY_MESSAGE_AUTHENTICATOR = bytes((MESSAGE_AUTHENTICATOR, MESSAGE_AUTHENTICATOR_LENGTH)) + bytes(16)


def _value_encoder(kind: str, names: dict):
    """The value encoder of one dictionary type, as pyrad encodes it: a VALUE
    name by the dictionary, the common Python types here, the rest by pyrad."""

    def encode(value) -> bytes:
        if names and value in names:
            return names[value]
        if kind == "string" and type(value) is str:
            encoded = value.encode("utf-8")
            if len(encoded) <= MAX_VALUE_LENGTH:
                return encoded
        elif kind == "integer" and type(value) is int and 0 <= value <= _UNSIGNED_MAX:
            return value.to_bytes(4, "big")
        elif kind == "octets" and type(value) is bytes and not value.startswith(b"0x"):
            if len(value) <= MAX_VALUE_LENGTH:
                return value
        return encode_value(kind, value)

    return encode


class _Encoders(dict):
    """Attribute name -> a function of a value to the whole attribute's octets,
    resolved in radiusd's dictionary on first use, so that encoding a reply
    attribute is one look-up and one call (no pyrad packet per reply)."""

    def __missing__(self, name: str):
        dictionary = load_dictionary()
        attribute = dictionary.attributes[name]
        if attribute.encrypt or attribute.has_tag or attribute.is_sub_attribute:
            raise ValueError(f"{name} is tagged, encrypted or in a TLV: replies do not encode it")
        value_of = _value_encoder(attribute.type, enumerated_values(attribute))
        code = attribute.code
        if attribute.vendor:
            vendor = dictionary.vendors.GetForward(attribute.vendor)
            room = MAX_VALUE_LENGTH - 6  # the Vendor-Id and the sub-attribute's type and length

            def encode(value) -> bytes:
                raw = value_of(value)
                if len(raw) > room:
                    raise ValueError(f"{name}: {len(raw)} octets do not fit in a Vendor-Specific attribute")
                return struct.pack("!BBIBB", VENDOR_SPECIFIC, len(raw) + 8, vendor, code, len(raw) + 2) + raw

        else:

            def encode(value) -> bytes:
                raw = value_of(value)
                if len(raw) > MAX_VALUE_LENGTH:
                    raise ValueError(f"{name}: {len(raw)} octets do not fit in an attribute")
                return bytes((code, len(raw) + 2)) + raw

        self[name] = encode
        return encode


_ENCODERS = _Encoders()


def encode_attributes(attributes) -> bytes:
    """The octets of (name, value) attributes in the order given, each as
    pyrad would encode it; ValueError for a value the attribute cannot hold."""
    encoders = _ENCODERS
    return b"".join([encoders[name](value) for name, value in attributes])


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


def encode_reply(request: AccessRequest, code: int, attributes=()) -> bytes:
    """Encode a reply: Message-Authenticator first, Proxy-State echoed in
    order, then ``attributes`` (name, value).

    The attributes are encoded once; the Message-Authenticator (RFC 3579
    section 3.2: HMAC-MD5 over the reply with the Request Authenticator in
    place and the attribute zeroed) is then written into its slot, and the
    Response Authenticator computed over the result.
    """
    body = (
        _EMPTY_MESSAGE_AUTHENTICATOR
        + _proxy_states(request.attributes.get(PROXY_STATE))
        + encode_attributes(attributes)
    )
    header = struct.pack("!BBH", code, request.id, HEADER_LENGTH + len(body))
    signature = hmac.digest(request.secret, header + request.authenticator + body, "md5")
    body = body[:2] + signature + body[MESSAGE_AUTHENTICATOR_LENGTH:]
    return _with_response_authenticator(code, request.id, request.authenticator, body, request.secret)


def encode_accounting_response(raw: bytes, attributes: dict, secret: bytes) -> bytes:
    """The Accounting-Response to the Accounting-Request ``raw`` (with its
    attribute_map): no attributes but the echoed Proxy-States, signed with
    the Response Authenticator (RFC 2866 section 3)."""
    return _with_response_authenticator(
        ACCOUNTING_RESPONSE, raw[1], raw[4:20], _proxy_states(attributes.get(PROXY_STATE)), secret
    )


def encode_access_reply(
    request: AccessRequest, accept: bool, attributes=(), mppe_keys: tuple[bytes, ...] = ()
) -> bytes:
    """Encode an Access-Accept or Access-Reject, hiding cleartext MPPE keys
    with the shared secret: (send, recv) as MS-MPPE-Send/Recv-Key (RFC 2548
    section 2.4.2/3), an MS-CHAPv1 NT key as MS-CHAP-MPPE-Keys (2.4.1)."""
    attributes = list(attributes)
    if len(mppe_keys) == 2:
        send, recv = mppe_key_attributes(*mppe_keys, request.secret, request.authenticator)
        attributes += [("MS-MPPE-Send-Key", send), ("MS-MPPE-Recv-Key", recv)]
    elif len(mppe_keys) == 1:
        attributes.append(
            (
                "MS-CHAP-MPPE-Keys",
                mschap_mppe_keys_attribute(mppe_keys[0], request.secret, request.authenticator),
            )
        )
    return encode_reply(request, ACCESS_ACCEPT if accept else ACCESS_REJECT, attributes)
