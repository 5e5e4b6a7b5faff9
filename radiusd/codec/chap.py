"""CHAP authentication (RFC 1994 section 4.1, RFC 2865 section 5.3).

The MikroTik Hotspot logs users in with CHAP: the router sends the
CHAP-Password attribute (the CHAP identifier and the 16-octet MD5 response)
and, usually, a CHAP-Challenge attribute. Without CHAP-Challenge the
challenge is the Request Authenticator (RFC 2865 section 2.2). Checking the
response needs the cleartext password, which is why radbill stores
passwords reversibly.
"""

import hashlib
import hmac

CHAP_PASSWORD_LENGTH = 17


def chap_response(ident: int, password: str | bytes, challenge: bytes) -> bytes:
    """Return the CHAP response MD5(identifier + password + challenge)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    return hashlib.md5(bytes((ident,)) + password + challenge).digest()


def verify_chap(
    password: str | bytes,
    chap_password: bytes,
    request_authenticator: bytes,
    chap_challenge: bytes | None = None,
) -> bool:
    """Tell whether ``chap_password`` was made from ``password``.

    ``chap_challenge`` is the CHAP-Challenge attribute if the request has
    one; otherwise the Request Authenticator is the challenge. Raises
    ValueError when CHAP-Password is not 17 octets, so that a malformed
    request is told apart from a wrong password.
    """
    if len(chap_password) != CHAP_PASSWORD_LENGTH:
        raise ValueError(f"CHAP-Password must be {CHAP_PASSWORD_LENGTH} octets, got {len(chap_password)}")
    challenge = request_authenticator if chap_challenge is None else chap_challenge
    expected = chap_response(chap_password[0], password, challenge)
    return hmac.compare_digest(expected, chap_password[1:])
