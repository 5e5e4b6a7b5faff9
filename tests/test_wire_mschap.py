"""MS-CHAPv1/v2 and MPPE keys, against the vectors of RFC 2759 and RFC 3079."""

import hashlib

import pytest
from pyrad.packet import AuthPacket

from radiusd.codec import mschap

# RFC 2759 section 9.2; RFC 3079 section 3.5.3 uses the same exchange.
USERNAME = "User"
PASSWORD = "clientPass"
AUTHENTICATOR_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")

SECRET = b"testing123"
REQUEST_AUTHENTICATOR = bytes.fromhex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")


def ms_chap2_response(ident=0x1F, nt_response=NT_RESPONSE):
    return bytes((ident, 0)) + PEER_CHALLENGE + bytes(8) + nt_response


def test_rfc2759_intermediate_values():
    assert mschap.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert mschap.challenge_hash(PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USERNAME) == CHALLENGE
    assert mschap.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert (
        mschap.generate_nt_response(AUTHENTICATOR_CHALLENGE, PEER_CHALLENGE, USERNAME, PASSWORD_HASH)
        == NT_RESPONSE
    )
    assert (
        mschap.generate_authenticator_response(
            PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTHENTICATOR_CHALLENGE, USERNAME
        )
        == AUTHENTICATOR_RESPONSE
    )


def test_rfc2759_des_key_example():
    """Section 9.3: password "MyPw"; DES ignores the parity bits, we leave them zero."""
    password_hash = mschap.nt_password_hash("MyPw")
    assert password_hash == bytes.fromhex("FC156AF7EDCD6C0EDDE3337D427F4EAC")
    keys = [mschap._des_key(password_hash[i : i + 7]) for i in (0, 7)]
    with_parity = [bytes.fromhex("FD0B5B5E7F6E34D9"), bytes.fromhex("0E6E796737EA08FE")]
    assert keys == [bytes(octet & 0xFE for octet in key) for key in with_parity]


def test_rfc3079_master_key_and_128_bit_start_keys():
    master = mschap.master_key(PASSWORD_HASH_HASH, NT_RESPONSE)
    assert master == MASTER_KEY
    server_send = mschap.asymmetric_start_key(master, 16, is_send=True, is_server=True)
    assert server_send == SEND_START_KEY_128
    # the client's receive key is the server's send key, and the other way round
    assert mschap.asymmetric_start_key(master, 16, is_send=False, is_server=False) == server_send
    server_recv = mschap.asymmetric_start_key(master, 16, is_send=False, is_server=True)
    assert server_recv == mschap.asymmetric_start_key(master, 16, is_send=True, is_server=False)
    assert server_recv != server_send


@pytest.mark.parametrize("secret", [PASSWORD, PASSWORD_HASH], ids=["password", "nt-hash"])
def test_verify_mschap2_accepts_rfc_exchange(secret):
    result = mschap.verify_mschap2(secret, AUTHENTICATOR_CHALLENGE, ms_chap2_response(), USERNAME)
    assert result is not None
    assert result.success == b"\x1f" + AUTHENTICATOR_RESPONSE
    assert result.mppe_keys == (
        SEND_START_KEY_128,
        mschap.asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=True),
    )


def test_verify_mschap2_ignores_domain_prefix_of_user_name():
    result = mschap.verify_mschap2(PASSWORD, AUTHENTICATOR_CHALLENGE, ms_chap2_response(), "EXAMPLE\\User")
    assert result is not None and result.success.endswith(AUTHENTICATOR_RESPONSE)


def test_verify_mschap2_refuses_wrong_password_user_or_challenge():
    response = ms_chap2_response()
    assert mschap.verify_mschap2("clientpass", AUTHENTICATOR_CHALLENGE, response, USERNAME) is None
    assert mschap.verify_mschap2(PASSWORD, AUTHENTICATOR_CHALLENGE, response, "user") is None
    assert mschap.verify_mschap2(PASSWORD, bytes(16), response, USERNAME) is None


@pytest.mark.parametrize(
    ("challenge", "response", "message"),
    [
        (bytes(8), ms_chap2_response(), "MS-CHAP-Challenge must be 16 octets"),
        (AUTHENTICATOR_CHALLENGE, ms_chap2_response()[:49], "MS-CHAP2-Response must be 50"),
    ],
)
def test_verify_mschap2_malformed_raises(challenge, response, message):
    with pytest.raises(ValueError, match=message):
        mschap.verify_mschap2(PASSWORD, challenge, response, USERNAME)


def test_nt_hash_must_be_16_octets():
    with pytest.raises(ValueError, match="NT hash must be 16 octets"):
        mschap.verify_mschap2(b"clientPass", AUTHENTICATOR_CHALLENGE, ms_chap2_response(), USERNAME)


MSCHAP1_CHALLENGE = bytes.fromhex("102DB5DF085D3041")


def ms_chap_response(password, flags=1):
    nt_response = mschap.challenge_response(MSCHAP1_CHALLENGE, mschap.nt_password_hash(password))
    return bytes((0x05, flags)) + bytes(24) + nt_response


@pytest.mark.parametrize("secret", [PASSWORD, PASSWORD_HASH], ids=["password", "nt-hash"])
def test_verify_mschap1(secret):
    result = mschap.verify_mschap1(secret, MSCHAP1_CHALLENGE, ms_chap_response(PASSWORD))
    assert result == mschap.MschapProof(mppe_keys=(PASSWORD_HASH_HASH,), success=None)
    assert mschap.verify_mschap1(secret, MSCHAP1_CHALLENGE, ms_chap_response("other")) is None


def test_verify_mschap1_refuses_lan_manager_only_and_malformed():
    with pytest.raises(ValueError, match="LAN Manager"):
        mschap.verify_mschap1(PASSWORD, MSCHAP1_CHALLENGE, ms_chap_response(PASSWORD, flags=0))
    with pytest.raises(ValueError, match="MS-CHAP-Challenge must be 8"):
        mschap.verify_mschap1(PASSWORD, AUTHENTICATOR_CHALLENGE, ms_chap_response(PASSWORD))
    with pytest.raises(ValueError, match="MS-CHAP-Response must be 50"):
        mschap.verify_mschap1(PASSWORD, MSCHAP1_CHALLENGE, ms_chap_response(PASSWORD)[:-1])


def test_mppe_key_attributes_round_trip():
    result = mschap.verify_mschap2(PASSWORD, AUTHENTICATOR_CHALLENGE, ms_chap2_response(), USERNAME)
    send, recv = mschap.mppe_key_attributes(*result.mppe_keys, SECRET, REQUEST_AUTHENTICATOR)
    for value, key in zip((send, recv), result.mppe_keys):
        assert len(value) == 2 + 32  # salt, then length octet + 16-octet key padded to 32
        assert value[0] & 0x80
        assert mschap.decrypt_mppe_key(value, SECRET, REQUEST_AUTHENTICATOR) == key
    assert send[:2] != recv[:2]
    assert send[2:] != recv[2:]


@pytest.mark.parametrize("salt", [b"\x00\x00", b"\x00\x01", b"\xff\xff", b"\x80\x00", b"\x7f\xfe"])
def test_mppe_salts_have_high_bit_and_differ_for_any_random_input(salt):
    key = bytes(range(16))
    send, recv = mschap.mppe_key_attributes(
        key, key, SECRET, REQUEST_AUTHENTICATOR, salt_source=lambda n: salt
    )
    assert send[0] & 0x80 and recv[0] & 0x80
    assert send[:2] != recv[:2]
    assert send[2:] != recv[2:]


def test_mppe_encryption_follows_rfc2548():
    """The first block is P1 xor MD5(secret + Request Authenticator + salt)."""
    key = bytes(range(16))
    send, _ = mschap.mppe_key_attributes(
        key, key, SECRET, REQUEST_AUTHENTICATOR, salt_source=lambda n: b"\x12\x34"
    )
    assert send[:2] == b"\x92\x34"
    pad = hashlib.md5(SECRET + REQUEST_AUTHENTICATOR + send[:2]).digest()
    assert bytes(a ^ b for a, b in zip(send[2:18], pad)) == b"\x10" + key[:15]
    pad2 = hashlib.md5(SECRET + send[2:18]).digest()
    assert bytes(a ^ b for a, b in zip(send[18:34], pad2)) == key[15:] + bytes(15)


def test_decrypt_mppe_key_refuses_malformed_value():
    with pytest.raises(ValueError, match="malformed"):
        mschap.decrypt_mppe_key(bytes(17), SECRET, REQUEST_AUTHENTICATOR)


def test_mschap_mppe_keys_attribute_hides_like_user_password():
    value = mschap.mschap_mppe_keys_attribute(PASSWORD_HASH_HASH, SECRET, REQUEST_AUTHENTICATOR)
    assert len(value) == 32
    request = AuthPacket(secret=SECRET, authenticator=REQUEST_AUTHENTICATOR)
    assert value == request.PwCrypt(bytes(8) + PASSWORD_HASH_HASH + bytes(8))
