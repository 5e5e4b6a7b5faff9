"""Token signing for the API: the signing key and short-lived access tokens (JWT, HS256).

The key is generated on first start in the state directory, readable by the
daemon's user only (0600), never a built-in default (FIELD-NOTES 25). An
access token names its login session (``sid``); the session is checked on
every request, so logout, a password change or a block ends it at once.
Passwords are Argon2id in :mod:`billingd.credentials` (the CLI sets them too).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt

from schema.errors import Unauthenticated
from schema.private_files import load_or_create_key

KEY_FILE = "api-signing.key"
ISSUER = "radbill"
_ALGORITHM = "HS256"


def load_signing_key(state_dir: str | Path) -> bytes:
    """The signing key from ``state_dir``, created (0600) on first start."""
    return load_or_create_key(Path(state_dir) / KEY_FILE)


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_at: datetime


class TokenSigner:
    """Issues and checks access tokens for login sessions."""

    def __init__(self, key: bytes, lifetime: timedelta):
        self._key = key
        self.lifetime = lifetime

    def issue(self, session_id: int, subject: str, now: datetime) -> AccessToken:
        expires = now + self.lifetime
        claims = {"iss": ISSUER, "sub": subject, "sid": session_id, "iat": now, "exp": expires}
        return AccessToken(jwt.encode(claims, self._key, algorithm=_ALGORITHM), expires)

    def session_of(self, token: str, now: datetime) -> int:
        """The session id of a valid, unexpired token signed with our key."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "sid", "sub"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            raise Unauthenticated("invalid access token") from None
        if claims["exp"] <= now.timestamp():
            raise Unauthenticated("the access token has expired: refresh it")
        return int(claims["sid"])
