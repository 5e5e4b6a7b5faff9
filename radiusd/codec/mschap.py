"""MS-CHAPv1 and MS-CHAPv2 authentication and MPPE keys.

MikroTik PPPoE offers MS-CHAPv2 first. The router relays the peer's answer
in Microsoft vendor attributes (RFC 2548): MS-CHAP-Challenge with
MS-CHAP-Response (version 1, RFC 2433) or MS-CHAP2-Response (version 2,
RFC 2759). An Access-Accept for MS-CHAPv2 must carry MS-CHAP2-Success and
the MPPE keys (MS-MPPE-Send-Key and MS-MPPE-Recv-Key, RFC 3079), or the
router drops the link right after the Accept; for MS-CHAPv1 the keys travel
in MS-CHAP-MPPE-Keys.

Verification needs the NT password hash, which is derived from the
cleartext password when one is stored: a ``str`` secret is a cleartext
password, a 16-octet ``bytes`` secret is an NT hash.
"""

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from Crypto.Cipher import DES
from Crypto.Hash import MD4

MSCHAP_RESPONSE_LENGTH = 50
MSCHAP1_CHALLENGE_LENGTH = 8
MSCHAP2_CHALLENGE_LENGTH = 16
NT_HASH_LENGTH = 16

# RFC 2759 section 8.7
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"

# RFC 3079 section 3.4
_MASTER_MAGIC = b"This is the MPPE Master Key"
_CLIENT_SEND_MAGIC = b"On the client side, this is the send key; on the server side, it is the receive key."
_CLIENT_RECV_MAGIC = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


@dataclass(frozen=True)
class MschapProof:
    """A verified MS-CHAP response and what its Access-Accept must carry.

    ``mppe_keys`` are cleartext: for MS-CHAPv2 the server's 128-bit send and
    receive start keys (RFC 3079 section 3.3, sent as MS-MPPE-Send-Key and
    MS-MPPE-Recv-Key), for MS-CHAPv1 the NT key alone (NtPasswordHashHash,
    sent as MS-CHAP-MPPE-Keys, RFC 2548 section 2.4.1). ``success`` is the
    MS-CHAPv2 MS-CHAP2-Success value (the identifier octet and the 42-octet
    ``S=`` authenticator response, RFC 2548 section 2.3.3); None for v1.
    """

    mppe_keys: tuple[bytes, ...]
    success: bytes | None = None


def nt_password_hash(password: str) -> bytes:
    """Return NtPasswordHash: MD4 of the UTF-16LE password (RFC 2759 section 8.3)."""
    return MD4.new(password.encode("utf-16-le")).digest()


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, username: str | bytes) -> bytes:
    """Return the 8-octet ChallengeHash of RFC 2759 section 8.2.

    Only the user name proper is hashed: a ``DOMAIN\\`` prefix the peer
    typed is left out, as the RFC requires.
    """
    if isinstance(username, str):
        username = username.encode("utf-8")
    username = username.rsplit(b"\\", 1)[-1]
    return hashlib.sha1(peer_challenge + authenticator_challenge + username).digest()[:8]


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """Return the 24-octet ChallengeResponse of RFC 2759 section 8.5.

    The challenge is DES-encrypted with three keys cut from the password
    hash padded to 21 octets; MS-CHAPv1 uses the same function for its
    NT-Response (RFC 2433 appendix A.5).
    """
    padded = password_hash + bytes(5)
    return b"".join(DES.new(_des_key(padded[i : i + 7]), DES.MODE_ECB).encrypt(challenge) for i in (0, 7, 14))


def generate_nt_response(
    authenticator_challenge: bytes,
    peer_challenge: bytes,
    username: str | bytes,
    password_hash: bytes,
) -> bytes:
    """Return the peer's MS-CHAPv2 NT-Response (RFC 2759 section 8.1)."""
    return challenge_response(
        challenge_hash(peer_challenge, authenticator_challenge, username), password_hash
    )


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    username: str | bytes,
) -> bytes:
    """Return the ``S=`` AuthenticatorResponse of RFC 2759 section 8.7.

    It proves to the peer that the server knows the password too.
    """
    digest = hashlib.sha1(_hash_nt_password_hash(password_hash) + nt_response + _AUTH_MAGIC1).digest()
    challenge = challenge_hash(peer_challenge, authenticator_challenge, username)
    digest = hashlib.sha1(digest + challenge + _AUTH_MAGIC2).digest()
    return b"S=" + digest.hex().upper().encode("ascii")


def master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """Return the 16-octet MPPE MasterKey (RFC 3079 section 3.4, GetMasterKey)."""
    return hashlib.sha1(password_hash_hash + nt_response + _MASTER_MAGIC).digest()[:16]


def asymmetric_start_key(master: bytes, length: int, *, is_send: bool, is_server: bool) -> bytes:
    """Return an MPPE start key (RFC 3079 section 3.4, GetAsymmetricStartKey).

    The server's send key is the client's receive key and the other way
    round. ``length`` is 8 for 40- and 56-bit keys, 16 for 128-bit keys.
    """
    client_send = is_send != is_server
    magic = _CLIENT_SEND_MAGIC if client_send else _CLIENT_RECV_MAGIC
    return hashlib.sha1(master + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:length]


def verify_mschap1(
    secret: str | bytes, ms_chap_challenge: bytes, ms_chap_response: bytes
) -> MschapProof | None:
    """Check an MS-CHAPv1 answer (RFC 2433, attributes of RFC 2548 section 2.1).

    Returns None for a wrong password. Raises ValueError for a malformed
    request and for an answer that carries only the LAN Manager response,
    which radbill does not accept.
    """
    _check_length("MS-CHAP-Challenge", ms_chap_challenge, MSCHAP1_CHALLENGE_LENGTH)
    _check_length("MS-CHAP-Response", ms_chap_response, MSCHAP_RESPONSE_LENGTH)
    if not ms_chap_response[1] & 1:
        raise ValueError("MS-CHAP-Response carries only a LAN Manager response")
    password_hash = _password_hash(secret)
    expected = challenge_response(ms_chap_challenge, password_hash)
    if not hmac.compare_digest(expected, ms_chap_response[26:50]):
        return None
    return MschapProof(mppe_keys=(_hash_nt_password_hash(password_hash),))


def verify_mschap2(
    secret: str | bytes,
    ms_chap_challenge: bytes,
    ms_chap2_response: bytes,
    username: str | bytes,
) -> MschapProof | None:
    """Check an MS-CHAPv2 answer (RFC 2759, attributes of RFC 2548 section 2.3).

    MS-CHAP2-Response is the identifier, flags, the 16-octet
    Peer-Challenge, 8 reserved octets and the 24-octet NT-Response.
    ``username`` is the User-Name of the request. Returns None for a wrong
    password; raises ValueError for a malformed request.
    """
    _check_length("MS-CHAP-Challenge", ms_chap_challenge, MSCHAP2_CHALLENGE_LENGTH)
    _check_length("MS-CHAP2-Response", ms_chap2_response, MSCHAP_RESPONSE_LENGTH)
    ident = ms_chap2_response[0:1]
    peer_challenge = ms_chap2_response[2:18]
    nt_response = ms_chap2_response[26:50]
    password_hash = _password_hash(secret)
    expected = generate_nt_response(ms_chap_challenge, peer_challenge, username, password_hash)
    if not hmac.compare_digest(expected, nt_response):
        return None
    authenticator_response = generate_authenticator_response(
        password_hash, nt_response, peer_challenge, ms_chap_challenge, username
    )
    master = master_key(_hash_nt_password_hash(password_hash), nt_response)
    return MschapProof(
        mppe_keys=(
            asymmetric_start_key(master, 16, is_send=True, is_server=True),
            asymmetric_start_key(master, 16, is_send=False, is_server=True),
        ),
        success=ident + authenticator_response,
    )


def mppe_key_attributes(
    send_key: bytes,
    recv_key: bytes,
    secret: bytes,
    request_authenticator: bytes,
    salt_source: Callable[[int], bytes] = os.urandom,
) -> tuple[bytes, bytes]:
    """Return the encrypted MS-MPPE-Send-Key and MS-MPPE-Recv-Key values.

    RFC 2548 sections 2.4.2 and 2.4.3: a two-octet salt whose high bit is
    set and which is unique within the packet, then the key length octet,
    the key and zero padding to a multiple of 16 octets, hidden with the
    shared secret, the Request Authenticator and the salt. The two salts
    differ in their lowest bit, so they are never equal.
    """
    salt = int.from_bytes(salt_source(2), "big") | 0x8000
    return (
        _encrypt_mppe_key(send_key, secret, request_authenticator, salt & ~1),
        _encrypt_mppe_key(recv_key, secret, request_authenticator, salt | 1),
    )


def decrypt_mppe_key(value: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Return the key hidden in an MS-MPPE-Send-Key or MS-MPPE-Recv-Key value.

    This is what the NAS does with the values of ``mppe_key_attributes``.
    """
    if len(value) < 18 or (len(value) - 2) % 16:
        raise ValueError(f"an MPPE key value of {len(value)} octets is malformed")
    plain = _unhide(value[2:], secret, request_authenticator + value[:2])
    if plain[0] > len(plain) - 1:
        raise ValueError("MPPE key length octet exceeds the value")
    return plain[1 : 1 + plain[0]]


def mschap_mppe_keys_attribute(nt_key: bytes, secret: bytes, request_authenticator: bytes) -> bytes:
    """Return the encrypted MS-CHAP-MPPE-Keys value for an MS-CHAPv1 Accept.

    RFC 2548 section 2.4.1: 8 octets of LAN Manager key (zeros, radbill
    keeps no LM hash), the 16-octet NT key and 8 octets of padding, hidden
    like User-Password (RFC 2865 section 5.2) with the shared secret and
    the Request Authenticator.
    """
    return _hide(bytes(8) + nt_key + bytes(8), secret, request_authenticator)


def _password_hash(secret: str | bytes) -> bytes:
    if isinstance(secret, str):
        return nt_password_hash(secret)
    _check_length("NT hash", secret, NT_HASH_LENGTH)
    return secret


def _hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash of RFC 2759 section 8.4."""
    return MD4.new(password_hash).digest()


def _des_key(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 octets, leaving the parity bits zero (RFC 2759 section 8.6)."""
    bits = int.from_bytes(key7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))


def _encrypt_mppe_key(key: bytes, secret: bytes, request_authenticator: bytes, salt: int) -> bytes:
    salt_octets = salt.to_bytes(2, "big")
    plain = bytes((len(key),)) + key
    plain += bytes(-len(plain) % 16)
    return salt_octets + _hide(plain, secret, request_authenticator + salt_octets)


def _hide(plain: bytes, secret: bytes, vector: bytes) -> bytes:
    """XOR ``plain`` with the MD5 chain of RFC 2865 section 5.2.

    The first pad is MD5(secret + vector), each next one MD5(secret +
    previous ciphertext block). ``plain`` is a multiple of 16 octets.
    """
    out = b""
    chain = vector
    for i in range(0, len(plain), 16):
        pad = hashlib.md5(secret + chain).digest()
        block = bytes(a ^ b for a, b in zip(plain[i : i + 16], pad))
        out += block
        chain = block
    return out


def _unhide(cipher: bytes, secret: bytes, vector: bytes) -> bytes:
    out = b""
    chain = vector
    for i in range(0, len(cipher), 16):
        block = cipher[i : i + 16]
        pad = hashlib.md5(secret + chain).digest()
        out += bytes(a ^ b for a, b in zip(block, pad))
        chain = block
    return out


def _check_length(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} octets, got {len(value)}")
