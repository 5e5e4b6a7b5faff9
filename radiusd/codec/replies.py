"""Encoding replies: Access-Accept/Reject, Status-Server answers, Accounting-Response.

Every Access-Accept/Reject carries a Message-Authenticator as its first
attribute (BlastRADIUS, CVE-2024-3596) and echoes Proxy-State (RFC 2865
section 5.33). The reply's attributes are given as (name, value) pairs; the
codec knows nothing of why they were chosen.
"""

import hashlib
import hmac
import struct
from collections import OrderedDict

from pyrad.packet import AccessAccept, AccessReject, AuthPacket, Packet

from radiusd.codec.attributes import HEADER_LENGTH
from radiusd.codec.mschap import mppe_key_attributes, mschap_mppe_keys_attribute
from radiusd.codec.packets import (
    ACCOUNTING_RESPONSE,
    MESSAGE_AUTHENTICATOR,
    MESSAGE_AUTHENTICATOR_LENGTH,
    PROXY_STATE,
)
from radiusd.codec.pyrad_adapter import encode_attributes

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
        + encode_attributes(reply)
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


def encode_access_reply(
    request: AuthPacket, accept: bool, attributes=(), mppe_keys: tuple[bytes, ...] = ()
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
    return encode_reply(request, AccessAccept if accept else AccessReject, attributes)
