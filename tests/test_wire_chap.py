"""CHAP verification (RFC 2865 section 5.3)."""

import hashlib

import pytest

from radiusd.codec.chap import chap_response, verify_chap

AUTHENTICATOR = bytes(range(16))
CHALLENGE = bytes.fromhex("0123456789abcdeffedcba9876543210")


def chap_password(ident, password, challenge):
    return bytes((ident,)) + hashlib.md5(bytes((ident,)) + password + challenge).digest()


def test_response_is_md5_of_ident_password_challenge():
    assert chap_response(7, "secret", CHALLENGE) == hashlib.md5(b"\x07secret" + CHALLENGE).digest()


def test_accepts_response_to_chap_challenge_attribute():
    attribute = chap_password(42, b"s3cret", CHALLENGE)
    assert verify_chap("s3cret", attribute, AUTHENTICATOR, CHALLENGE)


def test_request_authenticator_is_the_challenge_without_chap_challenge():
    attribute = chap_password(1, b"s3cret", AUTHENTICATOR)
    assert verify_chap("s3cret", attribute, AUTHENTICATOR)
    assert not verify_chap("s3cret", attribute, AUTHENTICATOR, CHALLENGE)


def test_refuses_wrong_password_ident_or_challenge():
    attribute = chap_password(42, b"s3cret", CHALLENGE)
    assert not verify_chap("S3cret", attribute, AUTHENTICATOR, CHALLENGE)
    assert not verify_chap("s3cret", b"\x43" + attribute[1:], AUTHENTICATOR, CHALLENGE)
    assert not verify_chap("s3cret", attribute, AUTHENTICATOR, CHALLENGE[::-1])


def test_password_may_be_bytes_or_utf8_text():
    attribute = chap_password(3, "pässwörd".encode(), CHALLENGE)
    assert verify_chap("pässwörd", attribute, AUTHENTICATOR, CHALLENGE)
    assert verify_chap("pässwörd".encode(), attribute, AUTHENTICATOR, CHALLENGE)


@pytest.mark.parametrize("length", [0, 16, 18])
def test_malformed_chap_password_raises(length):
    with pytest.raises(ValueError, match="17 octets"):
        verify_chap("s3cret", bytes(length), AUTHENTICATOR, CHALLENGE)
