"""Notices by SMS: broadcasts to resellers, expiry reminders and low-wallet warnings to subscribers.

Every notice is a row in the ``notice_outbox`` table, written in the transaction
that decided it, with a ``dedupe_key`` naming its cause (``expiry:42:<the
expiry instant>``, ``low_wallet:42:<the last payment>``, ``broadcast:<one
broadcast>:<operator>``): a cause queues one notice, however often billingd
looks. billingd's worker sends the due ones through the configured gateway
and marks each sent only on a 2xx answer; a failure is tried again later
(10 s, 20 s, 40 s... at most 15 min), and after MAX_ATTEMPTS the notice is
``failed``, as enforcement jobs are (nas/worker.py).
"""

import json
import logging
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from billingd.money import format_amount, parse_amount
from schema.audit import audit
from schema.errors import RadbillError
from schema.settings import NoticeSettings
from schema.tables import customers, master_packages, notice_outbox, operators, packages, payments
from schema.tenancy import Actor, descendant_ids, require_visible

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 6
BATCH = 20
LEASE = timedelta(minutes=2)
RESELLER_ROLES = ("reseller", "sub_reseller")


def retry_delay(attempts: int) -> float:
    return min(10.0 * 2 ** (attempts - 1), 900.0)


def _queue(connection: Connection, rows: list[dict]) -> int:
    """Insert notices; a dedupe_key queued before is skipped (the cause was already told)."""
    if not rows:
        return 0
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(notice_outbox)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(notice_outbox.c.id)
    )
    return len(connection.execute(statement, rows).all())


# --- what operators do -----------------------------------------------------------------------


def set_contact(
    connection: Connection, actor: Actor, login: str, phone: str | None, email: str | None
) -> dict:
    """An operator's phone (for notices) and email; yourself, or an operator below you with ``operators``."""
    row = connection.execute(select(operators).where(operators.c.login == login)).mappings().first()
    if row is None:
        raise RadbillError(f"no operator {login!r}")
    if row["id"] != actor.id:
        actor.require("operators.change", "change another operator's contact")
        require_visible(connection, actor, row["id"], f"operator {login}")
    values = {}
    if phone is not None:
        values["phone"] = phone.strip() or None
    if email is not None:
        values["email"] = email.strip() or None
    if values:
        connection.execute(update(operators).where(operators.c.id == row["id"]).values(**values))
        audit(
            connection,
            "operator.contact",
            actor_id=actor.caller_id,
            target_type="operator",
            target_id=row["id"],
        )
    return {
        "login": login,
        "phone": values.get("phone", row["phone"]),
        "email": values.get("email", row["email"]),
    }


@dataclass(frozen=True)
class Broadcast:
    queued: int
    without_phone: list[str]


def broadcast(connection: Connection, actor: Actor, message: str) -> Broadcast:
    """An SMS to every active reseller and sub-reseller below the actor (the seeds' Notice Broadcast)."""
    actor.require("operators.change", "broadcast notices to resellers")
    message = message.strip()
    if not message:
        raise RadbillError("the message must not be empty")
    if len(message) > 1000:
        raise RadbillError(f"the message is {len(message)} characters long: at most 1000")
    below = descendant_ids(connection, actor.home_id) - {actor.home_id}
    resellers = connection.execute(
        select(operators.c.id, operators.c.login, operators.c.phone)
        .where(
            operators.c.id.in_(sorted(below)),
            operators.c.role.in_(RESELLER_ROLES),
            operators.c.status == "active",
        )
        .order_by(operators.c.login)
    ).all()
    token = uuid.uuid4().hex
    rows = [
        dict(
            kind="broadcast",
            operator_id=reseller.id,
            phone=reseller.phone,
            message=message,
            dedupe_key=f"broadcast:{token}:{reseller.id}",
        )
        for reseller in resellers
        if reseller.phone
    ]
    queued = _queue(connection, rows)
    audit(connection, "notice.broadcast", actor_id=actor.caller_id, recipients=queued, message=message[:200])
    return Broadcast(queued, [reseller.login for reseller in resellers if not reseller.phone])


# --- what billingd queues --------------------------------------------------------------------


def queue_reminders(connection: Connection, now: datetime, settings: NoticeSettings, zone: ZoneInfo) -> int:
    """Expiry reminders ``expiry_days`` ahead and low-wallet warnings, each once per cause."""
    rows = []
    if settings.expiry_days:
        due = connection.execute(
            select(
                customers.c.id, customers.c.name, customers.c.phone, customers.c.expires_at, packages.c.name
            )
            .join(packages, packages.c.id == customers.c.package_id)
            .where(
                customers.c.deleted_at.is_(None),
                customers.c.status == "active",
                customers.c.phone.is_not(None),
                customers.c.expires_at > now,
                customers.c.expires_at <= now + timedelta(days=settings.expiry_days),
            )
        ).all()
        for customer_id, name, phone, expires_at, package in due:
            expires = expires_at.replace(tzinfo=now.tzinfo) if expires_at.tzinfo is None else expires_at
            when = expires.astimezone(zone).strftime("%d %b %Y %H:%M")
            rows.append(
                dict(
                    kind="expiry",
                    customer_id=customer_id,
                    phone=phone,
                    message=settings.expiry_message.format(
                        name=name or "subscriber", package=package, expires=when
                    ),
                    dedupe_key=f"expiry:{customer_id}:{expires.isoformat()}",
                )
            )
    if settings.low_wallet:
        threshold = parse_amount(settings.low_wallet)
        last_payment = (
            select(func.coalesce(func.max(payments.c.id), 0))
            .where(payments.c.customer_id == customers.c.id)
            .scalar_subquery()
        )
        low = connection.execute(
            select(
                customers.c.id, customers.c.name, customers.c.phone, customers.c.wallet_balance, last_payment
            )
            .join(packages, packages.c.id == customers.c.package_id)
            .join(master_packages, master_packages.c.id == packages.c.master_package_id)
            .where(
                customers.c.deleted_at.is_(None),
                customers.c.status == "active",
                customers.c.phone.is_not(None),
                master_packages.c.billing_type == "daily",
                customers.c.wallet_balance < threshold,
            )
        ).all()
        for customer_id, name, phone, balance, payment_id in low:
            rows.append(
                dict(
                    kind="low_wallet",
                    customer_id=customer_id,
                    phone=phone,
                    message=settings.low_wallet_message.format(
                        name=name or "subscriber", balance=format_amount(balance)
                    ),
                    dedupe_key=f"low_wallet:{customer_id}:{payment_id}",
                )
            )
    return _queue(connection, rows)


# --- sending ---------------------------------------------------------------------------------


class SmsGateway:
    """An SMS gateway described in the configuration as an HTTP request template.

    ``{phone}`` and ``{message}`` (the only placeholders: other braces stay as
    they are) in ``sms_url`` are URL-encoded; in
    ``sms_body`` they are encoded as ``sms_body_format`` says (``form``:
    URL-encoded, ``json``: a JSON string without its quotes, ``raw``: as
    they are). Without ``sms_url`` the gateway only logs what it would send.
    """

    def __init__(self, settings: NoticeSettings, timeout: float = 5.0):
        self.settings = settings
        self.timeout = timeout

    def request(self, phone: str, message: str) -> urllib.request.Request:
        settings = self.settings
        quote = urllib.parse.quote
        url = _fill(settings.sms_url, quote(phone, safe=""), quote(message, safe=""))
        encode = {
            "form": lambda value: quote(value, safe=""),
            "json": lambda value: json.dumps(value)[1:-1],
            "raw": lambda value: value,
        }[settings.sms_body_format]
        body = (
            _fill(settings.sms_body, encode(phone), encode(message)).encode() if settings.sms_body else None
        )
        headers = {}
        for line in settings.sms_headers.splitlines():
            name, _, value = line.partition(":")
            if name.strip():
                headers[name.strip()] = value.strip()
        return urllib.request.Request(url, data=body, headers=headers, method=settings.sms_method)

    def send(self, phone: str, message: str) -> None:
        """Raises on anything but a 2xx answer."""
        if not self.settings.sms_url:
            log.info("SMS to %s (no gateway configured, only logged): %s", phone, message)
            return
        with urllib.request.urlopen(self.request(phone, message), timeout=self.timeout) as answer:
            if not 200 <= answer.status < 300:
                raise OSError(f"gateway answered {answer.status}")


def _fill(template: str, phone: str, message: str) -> str:
    """Only ``{phone}`` and ``{message}`` are placeholders: JSON bodies keep their own braces."""
    return template.replace("{phone}", phone).replace("{message}", message)


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def deliver_due(engine: Engine, gateway: SmsGateway, now: datetime) -> Delivery:
    """Claim the due notices, send each, record the outcome (blocking: billingd runs it in a thread)."""
    with engine.begin() as connection:
        query = (
            select(
                notice_outbox.c.id, notice_outbox.c.phone, notice_outbox.c.message, notice_outbox.c.attempts
            )
            .where(
                notice_outbox.c.status == "pending",
                or_(notice_outbox.c.not_before.is_(None), notice_outbox.c.not_before <= now),
            )
            .order_by(notice_outbox.c.id)
            .limit(BATCH)
        )
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        due = connection.execute(query).all()
        if due:  # hidden from other billingd instances while this one sends them
            connection.execute(
                update(notice_outbox)
                .where(notice_outbox.c.id.in_([row.id for row in due]))
                .values(not_before=now + LEASE)
            )
    sent = retried = failed = 0
    for notice in due:
        try:
            gateway.send(notice.phone, notice.message)
        except Exception as error:  # noqa: BLE001 - any failure of the gateway is a retry
            attempts = notice.attempts + 1
            gave_up = attempts >= MAX_ATTEMPTS
            values = dict(attempts=attempts, last_error=str(error)[:500])
            if gave_up:
                values.update(status="failed")
                failed += 1
            else:
                values.update(not_before=now + timedelta(seconds=retry_delay(attempts)))
                retried += 1
            log.warning(
                "SMS notice %d to %s not sent (attempt %d): %s", notice.id, notice.phone, attempts, error
            )
        else:
            values = dict(status="sent", sent_at=now, attempts=notice.attempts + 1, last_error=None)
            sent += 1
        with engine.begin() as connection:
            connection.execute(
                update(notice_outbox)
                .where(and_(notice_outbox.c.id == notice.id, notice_outbox.c.status == "pending"))
                .values(**values)
            )
    return Delivery(sent, retried, failed)
