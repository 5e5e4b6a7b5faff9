"""Who is let in, and with which attributes: the authorization policy.

``authorize`` is a pure function of the request, the subscriber's state as
radiusd's view holds it, the time and the settings. It touches no socket and
no database, so every rule is tested directly. The handler has the codec
encode its Decision as an Access-Accept or Access-Reject.

The order of the checks is deliberate: the credentials are checked before
anything about the account is revealed, so a stranger learns no more than
"wrong user name or password"; then come the states an operator sets
(deleted, disabled, operator blocked, suspended), then what the subscriber
can fix (service, MAC, expiry, balance, quota, sessions).
"""

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from radiusd.auth.facts import Credentials, RequestFacts
from radiusd.codec.chap import verify_chap
from radiusd.codec.mschap import MschapProof, verify_mschap1, verify_mschap2
from schema.identity import canonical_mac
from schema.settings import PolicySettings

MAX_UINT32 = 0xFFFFFFFF

# Service-Type (RFC 2865 section 5.6) and Framed-Protocol (section 5.7) values.
SERVICE_LOGIN_USER = 1
SERVICE_FRAMED_USER = 2
FRAMED_PROTOCOL_PPP = 1

# Which kinds of login each customer type may use (see service_of).
_ALLOWED_SERVICES = {
    "pppoe": {"ppp", "framed"},
    "hotspot": {"hotspot"},
    "static": {"ppp", "framed"},
}

REASONS = (
    "unsupported_auth_method",
    "unknown_user",
    "wrong_password",
    "deleted",
    "disabled",
    "operator_blocked",
    "suspended",
    "wrong_service",
    "mac_mismatch",
    "expired",
    "balance_exhausted",
    "quota_exhausted",
    "simultaneous_use",
)

MESSAGES = {
    "unsupported_auth_method": "Authentication method not supported",
    "unknown_user": "Wrong user name or password",
    "wrong_password": "Wrong user name or password",
    "deleted": "Account closed",
    "disabled": "Account disabled",
    "operator_blocked": "Service provider account blocked: contact your provider",
    "suspended": "Account suspended",
    "wrong_service": "This account cannot log in with this service",
    "mac_mismatch": "This account is bound to another device",
    "expired": "Account expired: please renew",
    "balance_exhausted": "Balance exhausted: please recharge",
    "quota_exhausted": "Data quota exhausted",
    "simultaneous_use": "Already logged in: too many sessions",
}


@dataclass(frozen=True)
class PackageState:
    """A master package as the policy needs it; rate strings prebuilt."""

    id: int
    billing_type: str
    rate_limit: str
    quota_bytes: int | None = None
    fup_rate_limit: str | None = None
    ip_pool: str | None = None
    profile: str | None = None
    address_list: str | None = None
    simultaneous_use: int = 1


@dataclass(slots=True)
class Subscriber:
    """One customer's state as radiusd's view holds it.

    The view builds one for each request and nothing keeps it after the
    decision: a slot class, which costs a third of a frozen dataclass to build.
    """

    id: int
    username: str
    password: str
    status: str
    customer_type: str
    package: PackageState
    expires_at: datetime | None = None
    wallet_balance: int = 0
    mac_binding: str | None = None
    static_ip: str | None = None
    deleted: bool = False
    # Suspended by billing for not paying: treated as expiry, not as a suspension.
    unpaid: bool = False
    operator_blocked: bool = False
    used_bytes: int = 0
    open_sessions: int = 0


@dataclass(frozen=True)
class Decision:
    """An Accept or a Reject, why, and what to tell the router.

    ``reason`` is the label in metrics and logs: a reject reason, or for an
    accept ``ok``, ``fup`` (over quota at the fair-usage rate) or
    ``expired_restricted``. ``mppe_keys`` are the cleartext MS-CHAPv2 MPPE
    keys (send, recv), or for MS-CHAPv1 the NT key alone; the codec hides
    them with the shared secret.
    """

    accept: bool
    reason: str
    message: str = ""
    attributes: tuple[tuple[str, object], ...] = ()
    mppe_keys: tuple[bytes, ...] = field(default=())
    auth_method: str | None = None


def service_of(request: RequestFacts) -> str | None:
    """Tell the kind of login from the request: ``ppp`` (Framed-Protocol PPP,
    which MikroTik PPPoE sends), ``hotspot`` (Service-Type Login-User, which
    the MikroTik Hotspot sends), ``framed`` (Framed-User without PPP, e.g. a
    DHCP login), or None when the request does not say."""
    if request.framed_protocol == FRAMED_PROTOCOL_PPP:
        return "ppp"
    if request.service_type == SERVICE_LOGIN_USER:
        return "hotspot"
    if request.service_type == SERVICE_FRAMED_USER:
        return "framed"
    return None


def check_credentials(
    credentials: Credentials, password: str, username: str
) -> tuple[bool, MschapProof | None]:
    """Return (ok, proof): the MS-CHAP proof carries what the Accept must add.

    Raises ValueError for a malformed CHAP or MS-CHAP answer.
    """
    method = credentials.method
    if method == "pap":
        return credentials.password == password, None
    if method == "chap":
        ok = verify_chap(
            password, credentials.chap_password, credentials.request_authenticator, credentials.chap_challenge
        )
        return ok, None
    if method == "mschap2":
        result = verify_mschap2(password, credentials.ms_challenge, credentials.ms_response, username)
        return result is not None, result
    if method == "mschap1":
        result = verify_mschap1(password, credentials.ms_challenge, credentials.ms_response)
        return result is not None, result
    raise ValueError(f"unsupported authentication method {method!r}")


@cache
def reject(reason: str, method: str | None = None) -> Decision:
    """One Decision per reason and method, shared: a flood of wrong passwords builds none."""
    return Decision(
        False, reason, MESSAGES[reason], (("Reply-Message", MESSAGES[reason]),), auth_method=method
    )


def authorize(
    request: RequestFacts, subscriber: Subscriber | None, now: datetime, settings: PolicySettings
) -> Decision:
    """Decide an Access-Request (see the module docstring for the order)."""
    method = request.credentials.method
    if method is None:
        return reject("unsupported_auth_method")
    if subscriber is None:
        return reject("unknown_user", method)
    try:
        ok, proof = check_credentials(request.credentials, subscriber.password, request.username)
    except ValueError:
        return reject("wrong_password", method)
    if not ok:
        return reject("wrong_password", method)

    if subscriber.deleted:
        return reject("deleted", method)
    if subscriber.status == "disabled":
        return reject("disabled", method)
    if subscriber.operator_blocked:
        return reject("operator_blocked", method)
    if subscriber.status == "suspended" and not subscriber.unpaid:
        return reject("suspended", method)
    service = service_of(request)
    allowed = _ALLOWED_SERVICES.get(subscriber.customer_type)
    if service is not None and allowed is not None and service not in allowed:
        return reject("wrong_service", method)
    if subscriber.mac_binding:
        calling = canonical_mac(request.calling_station_id or "")
        if calling != canonical_mac(subscriber.mac_binding):
            return reject("mac_mismatch", method)

    package = subscriber.package
    expired = subscriber.unpaid or (subscriber.expires_at is not None and subscriber.expires_at <= now)
    if expired and settings.expired_policy != "restrict":
        return reject("balance_exhausted" if is_balance_exhausted(subscriber) else "expired", method)
    if subscriber.open_sessions >= package.simultaneous_use:
        return reject("simultaneous_use", method)

    if expired:
        reason, attributes = "expired_restricted", _restricted_attributes(settings)
    else:
        over_quota = over_quota_action(subscriber.used_bytes, package.quota_bytes, package.fup_rate_limit)
        if over_quota == ("disconnect", None):
            return reject("quota_exhausted", method)
        remaining = None if package.quota_bytes is None else package.quota_bytes - subscriber.used_bytes
        reason, attributes = _service_attributes(subscriber, remaining, now)
    attributes.append(("Acct-Interim-Interval", settings.interim_interval))
    attributes.extend(_proof_attributes(proof))
    keys = proof.mppe_keys if proof is not None else ()
    return Decision(True, reason, "", tuple(attributes), keys, method)


# A NAS silent for this many interim intervals has lost its sessions (FIELD-NOTES 9).
TAKEOVER_SILENT_INTERIMS = 2


@dataclass(frozen=True)
class OpenSession:
    """An open session of a subscriber whose new login simultaneous use would refuse."""

    nas_id: int | None
    calling_station_id: str | None  # as sessions stores it (schema.identity.canonical_mac)
    nas_last_heard: datetime | None  # the last update of any session of its NAS


def takeover_reason(
    session: OpenSession, nas_id: int, calling_station_id: str | None, now: datetime, interim_interval: int
) -> str | None:
    """Why a new login may close this open session as stale, or None (issue 15).

    ``same_station``: the login comes from the same NAS and the same device,
    so the router has already dropped the old session and missed its Stop
    (a glitch, a reconnect faster than the router's own clean-up).
    ``nas_silent``: the session's NAS has sent nothing for
    TAKEOVER_SILENT_INTERIMS interim intervals, so it is gone or rebooted.
    """
    if session.nas_id == nas_id and calling_station_id and session.calling_station_id == calling_station_id:
        return "same_station"
    silent_for = TAKEOVER_SILENT_INTERIMS * interim_interval
    if session.nas_last_heard is not None and (now - session.nas_last_heard).total_seconds() > silent_for:
        return "nas_silent"
    return None


def over_quota_action(
    used_bytes: int, quota_bytes: int | None, fup_rate_limit: str | None
) -> tuple[str, str | None] | None:
    """The quota rule, for a login (authorize) and for a session that just reached it (accounting):
    None while under quota; at or over it ("coa", the fair-usage rate) when the package has one,
    else ("disconnect", None): the subscriber is refused."""
    if quota_bytes is None or used_bytes < quota_bytes:
        return None
    return ("coa", fup_rate_limit) if fup_rate_limit else ("disconnect", None)


def is_balance_exhausted(subscriber: Subscriber) -> bool:
    """The prepaid rule, for a subscriber whose paid time is over.

    A customer on a daily-billed package is prepaid (billingd.customers):
    ``expires_at`` is the end of the last day it paid for, and the daily run
    extends it day by day from the wallet. So while ``expires_at`` is ahead
    the customer is paid up, whatever the wallet says (a renewal may have
    spent it all); once it has passed, an empty wallet (<= 0) is why, and the
    subscriber is told to recharge rather than to renew. Monthly packages are
    postpaid: the wallet never gates them."""
    return subscriber.package.billing_type == "daily" and subscriber.wallet_balance <= 0


def _service_attributes(subscriber: Subscriber, remaining: int | None, now: datetime):
    package = subscriber.package
    over_quota = remaining is not None and remaining <= 0
    attributes: list[tuple[str, object]] = [
        ("Mikrotik-Rate-Limit", package.fup_rate_limit if over_quota else package.rate_limit),
    ]
    if subscriber.expires_at is not None:
        seconds = int((subscriber.expires_at - now).total_seconds())
        attributes.append(("Session-Timeout", max(1, min(seconds, MAX_UINT32))))
    if subscriber.static_ip:
        attributes.append(("Framed-IP-Address", subscriber.static_ip))
    elif package.ip_pool:
        attributes.append(("Framed-Pool", package.ip_pool))
    if package.profile:
        attributes.append(("Mikrotik-Group", package.profile))
    if package.address_list:
        attributes.append(("Mikrotik-Address-List", package.address_list))
    if remaining is not None and not over_quota:
        attributes.append(("Mikrotik-Total-Limit", remaining & MAX_UINT32))
        attributes.append(("Mikrotik-Total-Limit-Gigawords", min(remaining >> 32, MAX_UINT32)))
    return ("fup" if over_quota else "ok"), attributes


def _restricted_attributes(settings: PolicySettings) -> list[tuple[str, object]]:
    """FIELD-NOTES 14: an expired subscriber lands in a captive profile."""
    attributes: list[tuple[str, object]] = []
    if settings.expired_rate:
        attributes.append(("Mikrotik-Rate-Limit", settings.expired_rate))
    if settings.expired_pool:
        attributes.append(("Framed-Pool", settings.expired_pool))
    if settings.expired_address_list:
        attributes.append(("Mikrotik-Address-List", settings.expired_address_list))
    attributes.append(("Reply-Message", MESSAGES["expired"]))
    return attributes


def _proof_attributes(proof: MschapProof | None) -> list[tuple[str, object]]:
    """MS-CHAP's MPPE policy (RFC 2548 2.4.4/5), and for MS-CHAPv2 MS-CHAP2-Success (2.3.3),
    as FreeRADIUS's mschap module sends them."""
    if proof is None:
        return []
    success = [] if proof.success is None else [("MS-CHAP2-Success", proof.success)]
    return success + [("MS-MPPE-Encryption-Policy", 1), ("MS-MPPE-Encryption-Types", 6)]
