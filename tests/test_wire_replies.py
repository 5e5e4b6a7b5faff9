"""The codec's own reply encoding and password decryption, held to pyrad's bytes.

radiusd encodes reply attributes and decrypts User-Password without building
pyrad packets (radiusd.codec.replies, radiusd.codec.packets); these tests
compare them with pyrad's own packet code over every attribute the policy
sends and over generated values, so the wire stays what it was.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyrad.packet import AccessAccept, AuthPacket

from radiusd.codec.packets import AccessRequest
from radiusd.codec.replies import encode_attributes
from schema.dictionary import load_dictionary

# Every attribute an Access-Accept or Access-Reject of radiusd carries, with typical values.
POLICY_ATTRIBUTES = [
    ("Mikrotik-Rate-Limit", "10M/10M 20M/20M 8M/8M 10/10 8"),
    ("Session-Timeout", 2_591_989),
    ("Framed-IP-Address", "100.64.0.7"),
    ("Framed-Pool", "pool-10m"),
    ("Mikrotik-Group", "gold"),
    ("Mikrotik-Address-List", "paying"),
    ("Mikrotik-Total-Limit", 0xFFFFFFFF),
    ("Mikrotik-Total-Limit-Gigawords", 100),
    ("Reply-Message", "Already logged in: too many sessions"),
    ("Reply-Message", "Compte expiré: veuillez renouveler"),
    ("Acct-Interim-Interval", 300),
    ("MS-CHAP2-Success", b"\x01S=" + b"A" * 40),
    ("MS-MPPE-Encryption-Policy", 1),
    ("MS-MPPE-Encryption-Policy", "Encryption-Required"),
    ("MS-MPPE-Encryption-Types", 6),
    ("MS-MPPE-Send-Key", bytes(range(34))),
    ("MS-MPPE-Recv-Key", b"0x" + bytes(32)),
    ("MS-CHAP-MPPE-Keys", bytes(34)),
]


def pyrads(attributes) -> bytes:
    reply = AuthPacket(code=AccessAccept, secret=b"s", authenticator=bytes(16), dict=load_dictionary())
    for name, value in attributes:
        reply.AddAttribute(name, value)
    return reply._PktEncodeAttributes()


@pytest.mark.parametrize(("name", "value"), POLICY_ATTRIBUTES)
def test_each_policy_attribute_is_encoded_as_pyrad_encodes_it(name, value):
    assert encode_attributes([(name, value)]) == pyrads([(name, value)])


def test_attributes_are_encoded_in_the_order_given():
    unique = list(dict(POLICY_ATTRIBUTES).items())
    assert encode_attributes(unique) == pyrads(unique)
    assert encode_attributes([]) == b""


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Reply-Message", "x" * 254),
        ("Mikrotik-Rate-Limit", "x" * 248),
        ("Session-Timeout", -1),
        ("Session-Timeout", 2**32),
        ("Session-Timeout", "soon"),
        ("Framed-IP-Address", "2001:db8::1"),
    ],
)
def test_values_an_attribute_cannot_hold_are_refused_as_by_pyrad(name, value):
    with pytest.raises((ValueError, TypeError)) as ours:
        encode_attributes([(name, value)])
    with pytest.raises((ValueError, TypeError)) as theirs:
        pyrads([(name, value)])
    assert ours.type is theirs.type


def test_the_longest_values_that_fit_are_encoded_as_by_pyrad():
    for attributes in ([("Reply-Message", "x" * 253)], [("Mikrotik-Rate-Limit", "x" * 247)]):
        assert encode_attributes(attributes) == pyrads(attributes)


def test_an_attribute_the_codec_does_not_encode_is_refused():
    with pytest.raises(ValueError, match="Tunnel-Password"):
        encode_attributes([("Tunnel-Password", "secret")])


@given(
    st.sampled_from(["Reply-Message", "Mikrotik-Rate-Limit", "Framed-Pool"]),
    st.text(max_size=260),
)
def test_any_text_is_encoded_or_refused_as_by_pyrad(name, text):
    try:
        expected = pyrads([(name, text)])
    except ValueError:
        with pytest.raises(ValueError):
            encode_attributes([(name, text)])
    else:
        assert encode_attributes([(name, text)]) == expected


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_any_integer_is_encoded_as_by_pyrad(number):
    attributes = [("Session-Timeout", number), ("Mikrotik-Total-Limit", number)]
    assert encode_attributes(attributes) == pyrads(attributes)


@given(
    password=st.text(max_size=60).filter(lambda text: len(text.encode()) <= 128),
    secret=st.binary(min_size=1, max_size=32),
    authenticator=st.binary(min_size=16, max_size=16),
)
def test_user_password_is_decrypted_as_by_pyrad(password, secret, authenticator):
    """RFC 2865 section 5.2, including the NUL padding cut and a password of
    NULs or of a multiple of 16 octets."""
    sender = AuthPacket(secret=secret, authenticator=authenticator, dict=load_dictionary())
    encrypted = sender.PwCrypt(password)
    request = AccessRequest(sender.RequestPacket(), secret)
    assert request.password(encrypted) == sender.PwDecrypt(encrypted)


@given(encrypted=st.binary(min_size=1, max_size=8).map(lambda blocks: blocks * 16))
def test_a_password_under_another_secret_decrypts_as_by_pyrad(encrypted):
    """Octets that are not UTF-8 (the NAS has another secret) are left out, as pyrad did."""
    sender = AuthPacket(secret=b"theirs", authenticator=bytes(range(16)), dict=load_dictionary())
    request = AccessRequest(sender.RequestPacket(), b"ours")
    receiver = AuthPacket(secret=b"ours", authenticator=bytes(range(16)), dict=load_dictionary())
    assert request.password(encrypted) == receiver.PwDecrypt(encrypted)
