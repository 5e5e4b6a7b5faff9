"""The browser's session cookie and its CSRF token.

The cookie is signed (HMAC-SHA256 with the daemon's key), ``HttpOnly``,
``SameSite=Strict`` and ``Secure`` whenever the pages are served over TLS. It
names who logged in and carries a random CSRF token that every form repeats
in a hidden field: one token per session, so it survives a refresh and several
tabs (FIELD-NOTES 32). Every visitor gets one before the login form, so the
login form is protected too.

The cookie proves nothing on its own: each request re-reads the operator or
subscriber it names (blocked, deleted or with a changed password, it is
refused), through the same authentication functions as the API.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace

COOKIE = "radbill_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class WebSession:
    """What the cookie says: a CSRF token, and who logged in (if anyone)."""

    csrf: str
    kind: str | None = None  # "operator" or "subscriber"
    subject: int | None = None  # the login session (auth_sessions.id) the API opened
    acting_as: int | None = None  # the "login as" session, while an operator acts as a descendant
    login: str | None = None  # the name typed at login, for the banner's way back
    issued_at: int = 0
    flash: list = field(default_factory=list)

    @classmethod
    def anonymous(cls) -> "WebSession":
        return cls(csrf=secrets.token_urlsafe(24), issued_at=int(time.time()))

    def signed_in(self, kind: str, subject: int, login: str) -> "WebSession":
        """A fresh CSRF token at login, so a token planted before login is worthless after."""
        return WebSession(
            csrf=secrets.token_urlsafe(24),
            kind=kind,
            subject=subject,
            login=login,
            issued_at=int(time.time()),
        )

    def with_flash(self, kind: str, text: str) -> "WebSession":
        return replace(self, flash=[*self.flash, [kind, text]])

    def csrf_matches(self, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.csrf.encode())


class CookieSigner:
    """Turns a WebSession into a cookie value and back, refusing anything tampered with or too old."""

    def __init__(self, key: bytes, max_age_seconds: int):
        self._key = hashlib.sha256(b"radbill pages session\0" + key).digest()
        self.max_age_seconds = max_age_seconds

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def dump(self, session: WebSession) -> str:
        payload = _b64(
            json.dumps(
                [
                    session.csrf,
                    session.kind,
                    session.subject,
                    session.acting_as,
                    session.login,
                    session.issued_at,
                    session.flash,
                ],
                separators=(",", ":"),
            ).encode()
        )
        return f"{payload}.{self._mac(payload)}"

    def load(self, value: str | None, now: float | None = None) -> WebSession | None:
        if not value or "." not in value:
            return None
        payload, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            csrf, kind, subject, acting_as, login, issued_at, flash = json.loads(_unb64(payload))
        except (ValueError, TypeError):
            return None
        if (now if now is not None else time.time()) - issued_at > self.max_age_seconds:
            return None
        return WebSession(csrf, kind, subject, acting_as, login, issued_at, flash)
