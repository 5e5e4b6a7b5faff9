"""Who may log in, and with what: operator passwords, login sessions, API tokens, throttling.

Operator passwords are Argon2id hashes (argon2-cffi); they are never stored,
logged or printed in clear. A login opens a session (``auth_sessions``)
whose refresh token is stored as its SHA-256 only and rotated on every use; a
replayed old refresh token revokes the session. Access tokens (signed by the
API, :mod:`billingd.api.security`) name their session, so revoking it, a
password change or a block ends them at once (FIELD-NOTES 26). Long-lived API
tokens for integrations are random, stored hashed, shown once.

Failed logins are counted per login name and per client address
(``login_throttle``); past the limit both are locked for a while, and the
answer is the same for an unknown login and a wrong password (FIELD-NOTES 31).
Every failure is in the audit log.

Subscribers log in with their PPPoE/Hotspot username and password and get a
session that sees only their own account (:class:`Subscriber`).
"""

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, or_, select, update

from schema.audit import audit
from schema.engine import as_utc
from schema.errors import Forbidden, NotFound, RadbillError, Throttled, Unauthenticated
from schema.settings import ApiSettings
from schema.tables import (
    api_tokens,
    audit_log,
    auth_sessions,
    customers,
    login_throttle,
    operators,
)
from schema.tenancy import (
    SELLING_ROLES,
    Actor,
    blocked_in_chain,
    descendant_ids,
    resolve_actor,
    resolve_actor_by_id,
    visible_operator_ids,
)

MIN_PASSWORD_LENGTH = 10
WRONG_CREDENTIALS = "wrong login or password"
# Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane): about 80 ms on
# one core, so a login flood cannot take the API's CPUs.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
API_TOKEN_PREFIX = "rbt_"
REFRESH_TOKEN_PREFIX = "rbr_"


@dataclass(frozen=True)
class Subscriber:
    """A logged-in subscriber: it sees and pays for its own account only."""

    customer_id: int
    username: str
    operator_id: int


@dataclass(frozen=True)
class LoginResult:
    """A session opened by a login (``refresh_token`` is shown once), or why not."""

    session_id: int | None
    refresh_token: str | None
    failure: str | None = None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def generate_password() -> str:
    """A password for people to type once and change: 16 URL-safe characters."""
    return secrets.token_urlsafe(12)


def token_hash(token: str) -> str:
    """Random tokens carry 256 bits; a plain SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


@cache
def _dummy_hash() -> str:
    """Verified against when the login is unknown, so both answers take as long."""
    return _HASHER.hash(secrets.token_urlsafe(16))


def _password_matches(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _operator(connection: Connection, login: str):
    row = connection.execute(select(operators).where(operators.c.login == login)).mappings().first()
    if row is None:
        raise NotFound(f"no operator {login!r}")
    return row


def _may_manage_credentials_of(connection: Connection, actor: Actor, row, what: str) -> None:
    """Its own credentials, or a strict descendant's with the right to change operators.

    Whoever sets an operator's password or token can act as it with all its
    rights, which ``--as`` never gives beyond the caller's own: so a manager
    (also one acting as a seller) sets only those of NOC users and card
    distributors; a seller's or a manager's are set by a seller above it.
    """
    if row["id"] == actor.id and actor.caller_id == actor.id:
        return
    actor.require("operators.change", what)
    if row["id"] == actor.home_id or row["id"] not in descendant_ids(connection, actor.home_id):
        raise NotFound(f"operator {row['login']} is not visible to {actor.login}")
    if (actor.ceiling or actor).role not in SELLING_ROLES and row["role"] not in ("noc", "card_distributor"):
        raise Forbidden(
            f"{actor.login} may not {what} of {row['login']}: a {row['role']}'s are set by a seller above it"
        )


def set_password(connection: Connection, actor: Actor, login: str, password: str, now: datetime) -> None:
    """Set an operator's password; every session and API token of that operator ends."""
    row = _operator(connection, login)
    _may_manage_credentials_of(connection, actor, row, "set other operators' passwords")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise RadbillError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    connection.execute(
        update(operators).where(operators.c.id == row["id"]).values(password_hash=hash_password(password))
    )
    revoke_all(connection, row["id"], now)
    audit(
        connection,
        "operator.password",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=row["id"],
    )


def revoke_all(connection: Connection, operator_id: int, now: datetime) -> None:
    """End every session (also "login as" sessions into it) and API token of an operator."""
    connection.execute(
        update(auth_sessions)
        .where(
            or_(
                auth_sessions.c.operator_id == operator_id,
                auth_sessions.c.acting_as_operator_id == operator_id,
            ),
            auth_sessions.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    connection.execute(
        update(api_tokens)
        .where(api_tokens.c.operator_id == operator_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


# --- throttling ------------------------------------------------------------------


def _throttle_keys(kind: str, login: str, address: str) -> list[tuple[str, str]]:
    return [("login", f"{kind}:{login.strip().lower()}"[:200]), ("address", address[:200])]


def check_throttle(connection: Connection, kind: str, login: str, address: str, now: datetime) -> None:
    """Refuse while the login or the address is locked out (429 over HTTP)."""
    for scope, key in _throttle_keys(kind, login, address):
        locked = connection.execute(
            select(login_throttle.c.locked_until).where(
                login_throttle.c.scope == scope, login_throttle.c.key == key
            )
        ).scalar()
        locked = as_utc(locked)
        if locked is not None and locked > now:
            raise Throttled(
                "too many failed logins: try again later",
                retry_after=math.ceil((locked - now).total_seconds()),
            )


def _record_failure(
    connection: Connection, kind: str, login: str, address: str, now: datetime, settings: ApiSettings
) -> None:
    limits = {"login": settings.login_failures, "address": settings.address_failures}
    window = timedelta(seconds=settings.failure_window_seconds)
    for scope, key in _throttle_keys(kind, login, address):
        row = (
            connection.execute(
                select(login_throttle)
                .where(login_throttle.c.scope == scope, login_throttle.c.key == key)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        if row is None:
            connection.execute(
                insert(login_throttle).values(scope=scope, key=key, failures=1, window_started_at=now)
            )
            failures, started = 1, now
        else:
            started = as_utc(row["window_started_at"])
            failures = row["failures"] + 1
            if now - started > window:
                failures, started = 1, now
        locked_until = (
            now + timedelta(seconds=settings.lockout_seconds) if failures >= limits[scope] else None
        )
        connection.execute(
            update(login_throttle)
            .where(login_throttle.c.scope == scope, login_throttle.c.key == key)
            .values(failures=failures, window_started_at=started, locked_until=locked_until)
        )


def _clear_failures(connection: Connection, kind: str, login: str) -> None:
    scope, key = _throttle_keys(kind, login, "")[0]
    connection.execute(
        delete(login_throttle).where(login_throttle.c.scope == scope, login_throttle.c.key == key)
    )


def _failed(
    connection: Connection,
    kind: str,
    login: str,
    address: str,
    now: datetime,
    settings: ApiSettings,
    reason: str,
    operator_id: int | None = None,
) -> LoginResult:
    _record_failure(connection, kind, login, address, now, settings)
    audit(
        connection,
        "auth.login_failed",
        actor_id=operator_id,
        target_type="operator" if kind == "operator" else "customer",
        login=login[:64],
        kind=kind,
        address=address,
        reason=reason,
    )
    return LoginResult(None, None, reason)


def card_failed(
    connection: Connection, subscriber: "Subscriber", address: str, now: datetime, settings: ApiSettings
) -> None:
    """Count a subscriber's wrong PIN like a failed login: guessing PINs is throttled too (FIELD-NOTES 31)."""
    _record_failure(connection, "redeem", subscriber.username, address, now, settings)
    audit(
        connection,
        "card.redeem_failed",
        actor_id=None,
        target_type="customer",
        target_id=subscriber.customer_id,
        address=address,
    )


# --- sessions ----------------------------------------------------------------------


def _open_session(
    connection: Connection, now: datetime, settings: ApiSettings, address: str, **subject
) -> LoginResult:
    refresh_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session_id = connection.execute(
        insert(auth_sessions).values(
            refresh_hash=token_hash(refresh_token),
            client_address=address[:45],
            created_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
            **subject,
        )
    ).inserted_primary_key[0]
    return LoginResult(session_id, refresh_token)


def login_operator(
    connection: Connection, login: str, password: str, address: str, now: datetime, settings: ApiSettings
) -> LoginResult:
    """Check an operator's password and open a session; a failure is recorded, not raised,
    so the caller commits the count before answering (raises only :class:`Throttled`)."""
    check_throttle(connection, "operator", login, address, now)
    row = (
        connection.execute(select(operators).where(operators.c.login == login.strip().lower()))
        .mappings()
        .first()
    )
    if not _password_matches(row["password_hash"] if row else None, password):
        reason = "unknown_login" if row is None else "wrong_password"
        return _failed(connection, "operator", login, address, now, settings, reason, row and row["id"])
    if blocked_in_chain(connection, row["id"]) is not None:
        return _failed(connection, "operator", login, address, now, settings, "blocked", row["id"])
    _clear_failures(connection, "operator", login)
    audit(
        connection,
        "auth.login",
        actor_id=row["id"],
        target_type="operator",
        target_id=row["id"],
        address=address,
    )
    return _open_session(connection, now, settings, address, operator_id=row["id"])


def login_subscriber(
    connection: Connection, username: str, password: str, address: str, now: datetime, settings: ApiSettings
) -> LoginResult:
    """A subscriber logs in with its PPPoE/Hotspot username and password."""
    from billingd.customers import normalise_username

    check_throttle(connection, "subscriber", username, address, now)
    try:
        name = normalise_username(username)
    except RadbillError:
        name = None
    row = (
        connection.execute(select(customers).where(customers.c.username == name)).mappings().first()
        if name
        else None
    )
    given, stored = password.encode(), (row["password"] if row else secrets.token_hex(16)).encode()
    if not hmac.compare_digest(given, stored) or row is None:
        reason = "unknown_login" if row is None else "wrong_password"
        return _failed(connection, "subscriber", username, address, now, settings, reason)
    if row["deleted_at"] is not None or blocked_in_chain(connection, row["operator_id"]) is not None:
        return _failed(connection, "subscriber", username, address, now, settings, "blocked")
    _clear_failures(connection, "subscriber", username)
    return _open_session(connection, now, settings, address, customer_id=row["id"])


def login_as(
    connection: Connection,
    actor: Actor,
    target_login: str,
    address: str,
    now: datetime,
    settings: ApiSettings,
) -> LoginResult:
    """A session acting as a descendant ("Login As Reseller"): checked and audited with both identities."""
    if actor.caller_id != actor.id:
        raise Forbidden("already acting as another operator: log out of that session first")
    if target_login.strip().lower() == actor.login:
        raise Forbidden(f"{actor.login} cannot log in as itself")
    target = resolve_actor(
        connection, actor.login, target_login
    )  # checks the right and audits operator.act_as
    audit(
        connection,
        "auth.login_as",
        actor_id=actor.id,
        acting_as_id=target.id,
        target_type="operator",
        target_id=target.id,
        address=address,
    )
    return _open_session(
        connection, now, settings, address, operator_id=actor.id, acting_as_operator_id=target.id
    )


def refresh(connection: Connection, refresh_token: str, now: datetime, settings: ApiSettings) -> LoginResult:
    """Rotate a session's refresh token; a replayed old one ends the session (it was stolen or copied)."""
    digest = token_hash(refresh_token)
    row = (
        connection.execute(
            select(auth_sessions).where(auth_sessions.c.refresh_hash == digest).with_for_update()
        )
        .mappings()
        .first()
    )
    if row is None:
        replayed = connection.execute(
            select(auth_sessions.c.id, auth_sessions.c.operator_id).where(
                auth_sessions.c.previous_hash == digest, auth_sessions.c.revoked_at.is_(None)
            )
        ).first()
        if replayed is not None:
            connection.execute(
                update(auth_sessions).where(auth_sessions.c.id == replayed.id).values(revoked_at=now)
            )
            audit(connection, "auth.refresh_replayed", actor_id=replayed.operator_id, session=replayed.id)
            return LoginResult(None, None, "replayed")
        return LoginResult(None, None, "unknown")
    session_principal(connection, row["id"], now)  # raises when revoked, expired or blocked
    new_token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
    connection.execute(
        update(auth_sessions)
        .where(auth_sessions.c.id == row["id"])
        .values(
            refresh_hash=token_hash(new_token),
            previous_hash=digest,
            refreshed_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
        )
    )
    return LoginResult(row["id"], new_token)


def logout(connection: Connection, session_id: int, now: datetime) -> None:
    connection.execute(
        update(auth_sessions)
        .where(auth_sessions.c.id == session_id, auth_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def operator_login(connection: Connection, operator_id: int) -> str:
    return connection.execute(select(operators.c.login).where(operators.c.id == operator_id)).scalar_one()


def session_principal(connection: Connection, session_id: int, now: datetime) -> Actor | Subscriber:
    """Who a live session is, checked on every request: not revoked, not expired, nobody above blocked."""
    row = connection.execute(select(auth_sessions).where(auth_sessions.c.id == session_id)).mappings().first()
    if row is None or row["revoked_at"] is not None or as_utc(row["expires_at"]) <= now:
        raise Unauthenticated("the session has ended: log in again")
    try:
        if row["customer_id"] is not None:
            return _subscriber(connection, row["customer_id"])
        return resolve_actor_by_id(connection, row["operator_id"], row["acting_as_operator_id"])
    except (Forbidden, NotFound) as refused:
        raise Unauthenticated(str(refused)) from None


def _subscriber(connection: Connection, customer_id: int) -> Subscriber:
    row = connection.execute(
        select(customers.c.id, customers.c.username, customers.c.operator_id, customers.c.deleted_at).where(
            customers.c.id == customer_id
        )
    ).one()
    if row.deleted_at is not None:
        raise Unauthenticated(f"customer {row.username} is deleted")
    blocked = blocked_in_chain(connection, row.operator_id)
    if blocked is not None:
        raise Unauthenticated(f"operator {blocked!r} is blocked")
    return Subscriber(row.id, row.username, row.operator_id)


# --- API tokens ----------------------------------------------------------------------


def create_api_token(
    connection: Connection,
    actor: Actor,
    login: str,
    name: str,
    now: datetime,
    *,
    days: int | None = None,
) -> tuple[dict, str]:
    """A long-lived token for an integration, acting as ``login``; the token is returned once."""
    row = _operator(connection, login)
    _may_manage_credentials_of(connection, actor, row, "create API tokens for other operators")
    if not name.strip():
        raise RadbillError("give the token a name (what uses it)")
    if days is not None and not 1 <= days <= 3650:
        raise RadbillError("a token lives 1 to 3650 days")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = connection.execute(
        insert(api_tokens).values(
            operator_id=row["id"],
            name=name.strip()[:100],
            token_hash=token_hash(token),
            created_by=actor.caller_id,
            created_at=now,
            expires_at=now + timedelta(days=days) if days else None,
        )
    ).inserted_primary_key[0]
    audit(
        connection,
        "api_token.create",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=row["id"],
        token=token_id,
        name=name,
    )
    return _token_view(connection, token_id), token


def _token_query():
    return select(
        api_tokens.c.id,
        api_tokens.c.name,
        operators.c.login.label("operator"),
        api_tokens.c.created_at,
        api_tokens.c.expires_at,
        api_tokens.c.last_used_at,
        api_tokens.c.revoked_at,
        api_tokens.c.operator_id,
    ).select_from(api_tokens.join(operators, operators.c.id == api_tokens.c.operator_id))


def _token_view(connection: Connection, token_id: int) -> dict:
    row = connection.execute(_token_query().where(api_tokens.c.id == token_id)).mappings().one()
    return {key: as_utc(value) if isinstance(value, datetime) else value for key, value in row.items()}


def list_api_tokens(connection: Connection, actor: Actor) -> list[dict]:
    """The tokens of the operators whose credentials the actor manages (never the tokens themselves)."""
    query = _token_query().order_by(api_tokens.c.id)
    if not actor.may("operators.change"):
        query = query.where(api_tokens.c.operator_id == actor.id)
    else:
        visible = visible_operator_ids(connection, actor)
        if visible is not None:
            query = query.where(api_tokens.c.operator_id.in_(visible))
    return [_token_view(connection, row.id) for row in connection.execute(query)]


def revoke_api_token(connection: Connection, actor: Actor, token_id: int, now: datetime) -> dict:
    found = connection.execute(select(api_tokens.c.operator_id).where(api_tokens.c.id == token_id)).scalar()
    if found is None:
        raise NotFound(f"no API token #{token_id}")
    _may_manage_credentials_of(
        connection, actor, _operator(connection, operator_login(connection, found)), "revoke API tokens"
    )
    connection.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    audit(
        connection,
        "api_token.revoke",
        actor_id=actor.caller_id,
        acting_as_id=actor.id,
        target_type="operator",
        target_id=found,
        token=token_id,
    )
    return _token_view(connection, token_id)


def api_token_actor(connection: Connection, token: str, now: datetime) -> Actor:
    """The operator an API token acts as, if it is live and nobody above it is blocked."""
    row = (
        connection.execute(select(api_tokens).where(api_tokens.c.token_hash == token_hash(token)))
        .mappings()
        .first()
    )
    expires = as_utc(row["expires_at"]) if row else None
    if row is None or row["revoked_at"] is not None or (expires is not None and expires <= now):
        raise Unauthenticated("unknown, expired or revoked API token")
    last_used = as_utc(row["last_used_at"])
    if last_used is None or now - last_used > timedelta(minutes=1):
        connection.execute(update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=now))
    try:
        return resolve_actor_by_id(connection, row["operator_id"])
    except (Forbidden, NotFound) as refused:
        raise Unauthenticated(str(refused)) from None


# --- the audit trail ---------------------------------------------------------------------


def list_audit(
    connection: Connection, actor: Actor, *, limit: int = 100, before_id: int | None = None
) -> list[dict]:
    """Audit rows that involve the operators the actor sees (as actor, acted-as, or target), newest first."""
    actor.require("operators.change", "see the audit trail")
    actor_login = operators.alias("actor_login")
    as_login = operators.alias("as_login")
    query = (
        select(
            audit_log.c.id,
            audit_log.c.created_at,
            audit_log.c.action,
            actor_login.c.login.label("actor"),
            as_login.c.login.label("acting_as"),
            audit_log.c.target_type,
            audit_log.c.target_id,
            audit_log.c.details,
        )
        .select_from(
            audit_log.outerjoin(actor_login, actor_login.c.id == audit_log.c.actor_operator_id).outerjoin(
                as_login, as_login.c.id == audit_log.c.acting_as_operator_id
            )
        )
        .order_by(audit_log.c.id.desc())
        .limit(limit)
    )
    visible = visible_operator_ids(connection, actor)
    if visible is not None:
        query = query.where(
            or_(
                audit_log.c.actor_operator_id.in_(visible),
                audit_log.c.acting_as_operator_id.in_(visible),
                (audit_log.c.target_type == "operator") & audit_log.c.target_id.in_(visible),
            )
        )
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [{**row, "created_at": as_utc(row["created_at"])} for row in connection.execute(query).mappings()]
