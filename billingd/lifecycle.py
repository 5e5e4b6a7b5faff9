"""A customer's lifecycle: activation, periods bought and days charged, renew, suspend,
resume, change package, delete and restore, with the refunds they give back.

Two ways of billing, from the master package:

daily (prepaid)
    Activation and ``renew`` buy one whole period (``period_days`` days, the
    customer price) starting at the later of today and the day after the
    last paid day (FIELD-NOTES 16); each bought day is a ``customer_days`` row.
    After the last bought day the daily run charges the wallet day by day
    (pay as you go). ``expires_at`` is the end of the last paid day in the
    billing time zone.
monthly (postpaid)
    No charge at activation; the run records enabled days and invoices them
    on the cycle day (see :mod:`billingd.runs`); ``customer pay`` settles.

Every transition records a change (radiusd follows the change log) and,
when a live session must react, queues an enforcement job.
"""

from datetime import date, timedelta

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from billingd import cascade, invoices, ledger, payments
from billingd.calendar import end_of_day
from billingd.customers import (
    DELETED,
    MANUAL,
    SELF_CLEARING,
    Calendar,
    audit_customer,
    changeable_customer,
    command_cause,
    customer_row,
    free_static_ip,
    normalise_mac,
    normalise_username,
    package_of,
    show_customer,
    zone_of,
)
from billingd.enforcement import cut_off, restore
from billingd.money import day_share, format_amount, proportional
from billingd.packages import PricedPackage, cheapest_operator_price, priced_package
from schema.changes import record_change
from schema.errors import RadbillError
from schema.outbox import enqueue
from schema.tables import (
    CUSTOMER_CODE_LENGTH,
    customer_days,
    customers,
    ledger_entries,
    ledger_lines,
    operators,
)
from schema.tenancy import Actor, require_changeable


def add_customer(
    connection: Connection,
    actor: Actor,
    username: str,
    *,
    password: str,
    package: str,
    calendar: Calendar,
    zone: str | None = None,
    mac: str | None = None,
    static_ip: str | None = None,
    name: str = "",
    phone: str | None = None,
    address: str | None = None,
    fields: dict | None = None,
) -> dict:
    """Create a customer of the actor's home operator and activate it.

    A daily customer's first period is bought at once, paid in cash to its
    owner (recorded), with the cascade up the chain.
    """
    actor.require("customers.change", "add customers")
    # Activation starts a paid period: a daily customer buys it, a monthly one's prepaid levels advance it.
    actor.require("money", "activate customers (it pays their first period, up the chain)")
    owner_id = actor.home_id
    username = normalise_username(username)
    if not password:
        raise RadbillError("the password must not be empty")
    if connection.execute(select(customers.c.id).where(customers.c.username == username)).first():
        raise RadbillError(f"username {username!r} is taken")
    priced = priced_package(connection, owner_id, package)
    owner = cascade.lock_chain(connection, owner_id)[owner_id]
    if owner["parent_id"] is not None and owner["billing_mode"] == "prepaid":
        cheapest = cheapest_operator_price(connection, owner_id)
        if cheapest is not None and owner["fund_balance"] + owner["credit_limit"] < cheapest:
            raise RadbillError(
                f"operator {owner['login']}'s fund {format_amount(owner['fund_balance'])} is below its "
                f"cheapest operator price {format_amount(cheapest)}: it cannot add customers"
            )
    zone_id, zone_code = zone_of(connection, owner_id, zone)
    sequence = owner["id_sequence"] + 1
    connection.execute(update(operators).where(operators.c.id == owner_id).values(id_sequence=sequence))
    code = owner["id_format"].format(seq=sequence, zone=zone_code or "")
    if len(code) > CUSTOMER_CODE_LENGTH:
        raise RadbillError(f"customer ID {code!r} is too long: change {owner['login']}'s ID format")
    if connection.execute(select(customers.c.id).where(customers.c.customer_code == code)).first():
        raise RadbillError(f"customer ID {code!r} already exists: change {owner['login']}'s ID format")
    if static_ip is not None:
        static_ip = free_static_ip(connection, static_ip)
    today = calendar.today
    customer_id = connection.execute(
        insert(customers).values(
            operator_id=owner_id,
            username=username,
            password=password,
            customer_code=code,
            name=name,
            phone=phone,
            address=address,
            zone_id=zone_id,
            package_id=priced.package_id,
            status="active",
            static_ip=static_ip,
            mac_binding=normalise_mac(mac) if mac else None,
            custom_fields=fields or {},
            billing_anchor=today,
            cycle_day=min(today.day, 28) if priced.billing_type == "monthly" else None,
        )
    ).inserted_primary_key[0]
    ledger.open_wallet(connection, customer_id, owner_id)
    if priced.billing_type == "daily":
        buy_period(
            connection,
            actor,
            customer_id,
            owner_id,
            priced,
            today,
            calendar,
            pay_cash=True,
            kind="activation",
        )
    else:
        invoices.advance_cycle(connection, customer_id, today, actor_id=actor.caller_id, refuse=True)
    record_change(connection, "customer", customer_id)
    audit_customer(connection, actor, "add", customer_id, username=username, package=package, code=code)
    return show_customer(connection, actor, username)


def last_paid_day(connection: Connection, customer_id: int) -> date | None:
    return connection.execute(
        select(func.max(customer_days.c.day)).where(
            customer_days.c.customer_id == customer_id, customer_days.c.entry_id.is_not(None)
        )
    ).scalar()


def buy_period(
    connection: Connection,
    actor: Actor,
    customer_id: int,
    owner_id: int,
    priced: PricedPackage,
    start: date,
    calendar: Calendar,
    *,
    pay_cash: bool,
    kind: str,
    paid_by_card: str | None = None,
) -> int:
    """Charge one whole period from ``start``: the customer price, and the cascade."""
    price, days = priced.customer_price, priced.period_days
    levels = cascade.chain_levels(connection, owner_id, priced.package_id)
    amounts = [level.price for level in levels]
    cascade.require_cover(levels, amounts, f"{priced.name} for customer #{customer_id}")
    wallet = connection.execute(
        select(customers.c.wallet_balance, customers.c.username).where(customers.c.id == customer_id)
    ).one()
    lines = []
    if pay_cash:
        lines.append(cascade.customer_payment_line(connection, owner_id, customer_id, price))
    elif wallet.wallet_balance < price:
        raise RadbillError(
            f"customer {wallet.username}'s wallet {format_amount(wallet.wallet_balance)} cannot pay "
            f"{priced.name} ({format_amount(price)}): top up, or record a cash payment with --cash"
        )
    lines.append(cascade.customer_charge_line(connection, owner_id, customer_id, price))
    lines += cascade.operator_lines(connection, levels, amounts)
    last = start + timedelta(days=days - 1)
    memo = f"{priced.name} {start.isoformat()}..{last.isoformat()}" + (
        f" (card {paid_by_card})" if paid_by_card else ""
    )
    entry_id = ledger.post(
        connection,
        kind,
        lines,
        actor_id=actor.caller_id,
        customer_id=customer_id,
        memo=memo,
        effective_on=calendar.today,
    )
    if pay_cash and price:  # a free package's period is taken, not paid: no payment to record
        payments.record(
            connection,
            customer_id=customer_id,
            payee_operator_id=owner_id,
            amount=price,
            method="card" if paid_by_card else "cash",
            reference=paid_by_card,
            entry_id=entry_id,
            created_by=actor.caller_id,
        )
    connection.execute(
        insert(customer_days),
        [
            dict(
                customer_id=customer_id,
                day=start + timedelta(days=i),
                amount=day_share(price, days, i),
                entry_id=entry_id,
            )
            for i in range(days)
        ],
    )
    connection.execute(
        update(customers)
        .where(customers.c.id == customer_id)
        .values(expires_at=end_of_day(last, calendar.zone))
    )
    return entry_id


def charge_day(connection: Connection, actor: Actor, row, calendar: Calendar) -> bool:
    """Charge today's pay-as-you-go share if today is not paid yet; False if the wallet cannot."""
    today = calendar.today
    if connection.execute(
        select(customer_days.c.day).where(
            customer_days.c.customer_id == row["id"], customer_days.c.day == today
        )
    ).first():
        return True
    priced = package_of(connection, row)
    index = (today - row["billing_anchor"]).days
    share = day_share(priced.customer_price, priced.period_days, index)
    if row["wallet_balance"] < share:
        return False
    levels = cascade.chain_levels(connection, row["operator_id"], priced.package_id)
    amounts = [day_share(level.price, priced.period_days, index) for level in levels]
    cascade.require_cover(levels, amounts, f"today's share of {priced.name} for {row['username']}")
    lines = [cascade.customer_charge_line(connection, row["operator_id"], row["id"], share)]
    lines += cascade.operator_lines(connection, levels, amounts)
    entry_id = ledger.post(
        connection,
        "daily_charge",
        lines,
        actor_id=actor.caller_id,
        customer_id=row["id"],
        memo=f"{priced.name} {today.isoformat()}",
        effective_on=today,
        idempotency_key=f"daily:{today.isoformat()}:{row['id']}",
    )
    connection.execute(
        insert(customer_days).values(customer_id=row["id"], day=today, amount=share, entry_id=entry_id)
    )
    connection.execute(
        update(customers)
        .where(customers.c.id == row["id"])
        .values(expires_at=end_of_day(today, calendar.zone))
    )
    return True


def _refund_unused(connection: Connection, actor: Actor, row, calendar: Calendar) -> int:
    """Give back the bought days after today, per the owner's refund policy.

    ``prorated``: the customer's day amounts go back to its wallet and each
    level of the chain gets back the same fraction of what it paid for that
    purchase (floored, so never more than it paid). ``none``: the days are
    forfeited. Either way the days are no longer bought.
    """
    today = calendar.today
    future = and_(
        customer_days.c.customer_id == row["id"],
        customer_days.c.day > today,
        customer_days.c.entry_id.is_not(None),
    )
    per_entry = connection.execute(
        select(
            customer_days.c.entry_id,
            ledger_entries.c.customer_id.is_(None).label("shared"),
            func.sum(customer_days.c.amount).label("amount"),
            func.count().label("days"),
        )
        .join(ledger_entries, ledger_entries.c.id == customer_days.c.entry_id)
        .where(future)
        .group_by(customer_days.c.entry_id, ledger_entries.c.customer_id)
    ).all()
    if not per_entry:
        return 0
    actor.require("money", "give back or forfeit a customer's paid days (suspend, delete, change package)")
    policy = connection.execute(
        select(operators.c.refund_policy).where(operators.c.id == row["operator_id"])
    ).scalar()
    refunded = 0
    if policy == "prorated":
        levels = cascade.chain_levels(connection, row["operator_id"], row["package_id"])
        lines = []
        for purchase in per_entry:
            amount = int(purchase.amount)
            refunded += amount
            lines.append(
                cascade.customer_charge_line(connection, row["operator_id"], row["id"], amount, refund=True)
            )
            if purchase.shared:
                amounts = _run_day_costs(connection, row, levels, purchase.entry_id, future)
            else:
                charged = _entry_amounts(connection, purchase.entry_id, row, levels)
                customer_total = charged.pop(None)
                amounts = [
                    proportional(charged.get(level.operator_id, 0), amount, customer_total)
                    for level in levels
                ]
            lines += cascade.operator_lines(connection, levels, amounts, refund=True)
        days = sum(purchase.days for purchase in per_entry)
        ledger.post(
            connection,
            "refund",
            lines,
            actor_id=actor.caller_id,
            customer_id=row["id"],
            effective_on=today,
            memo=f"refund of {days} unused days of entries "
            + ", ".join(f"#{purchase.entry_id}" for purchase in per_entry),
        )
    connection.execute(delete(customer_days).where(future))
    connection.execute(
        update(customers)
        .where(customers.c.id == row["id"])
        .values(expires_at=end_of_day(today, calendar.zone))
    )
    return refunded


def _run_day_costs(connection: Connection, row, levels, entry_id: int, days) -> list[int]:
    """What each level paid for this customer's ``days`` of a daily run's entry.

    The run posts one line per operator for all its customers' shares that
    day, so the line cannot be read as one customer's: each level's share of
    each day is the day's share of its operator price, as the run computed it.
    """
    period_days = package_of(connection, row).period_days
    indices = [
        (day - row["billing_anchor"]).days
        for day in connection.execute(
            select(customer_days.c.day).where(days, customer_days.c.entry_id == entry_id)
        ).scalars()
    ]
    return [sum(day_share(level.price, period_days, index) for index in indices) for level in levels]


def _entry_amounts(connection: Connection, entry_id: int, row, levels) -> dict:
    """What one purchase charged: the customer (key None) and each level (by operator id)."""
    wallet = ledger.account_id(connection, row["operator_id"], ledger.wallet_code(row["id"]))
    cost_accounts = {
        ledger.account_id(connection, level.operator_id, "cost_of_sales"): level.operator_id
        for level in levels
    }
    amounts = {None: 0}
    for line in connection.execute(
        select(ledger_lines).where(ledger_lines.c.entry_id == entry_id)
    ).mappings():
        if line["debit_account_id"] == wallet:
            amounts[None] += line["amount"]
        elif line["debit_account_id"] in cost_accounts:
            amounts[cost_accounts[line["debit_account_id"]]] = line["amount"]
    return amounts


def renew(
    connection: Connection, actor: Actor, username: str, calendar: Calendar, *, cash: bool = False
) -> dict:
    """Buy one more period, from the later of today and the end of the paid days."""
    row = changeable_customer(connection, actor, username, "renew customers", money=True)
    renew_row(connection, actor, row, calendar, cash=cash)
    return show_customer(connection, actor, username)


def renew_row(connection: Connection, actor: Actor, row, calendar: Calendar, *, cash: bool) -> None:
    """Renew a customer already checked (and locked) for the actor: an operator's, or the subscriber's own."""
    priced = package_of(connection, row)
    if priced.billing_type != "daily":
        raise RadbillError(
            f"customer {row['username']} is billed monthly: its invoices are paid with customer pay"
        )
    require_renewable(row)
    last_paid = last_paid_day(connection, row["id"])
    start = max(calendar.today, last_paid + timedelta(days=1)) if last_paid else calendar.today
    entry_id = buy_period(
        connection,
        actor,
        row["id"],
        row["operator_id"],
        priced,
        start,
        calendar,
        pay_cash=cash,
        kind="renewal",
    )
    renewed(connection, row, calendar)
    record_change(connection, "customer", row["id"])
    audit_customer(connection, actor, "renew", row["id"], entry=entry_id, start=start.isoformat(), cash=cash)


def require_renewable(row) -> None:
    """A renewal (or a package card) does not lift a suspension it did not cause."""
    if row["status"] == "suspended" and row["status_reason"] not in SELF_CLEARING:
        raise RadbillError(
            f"customer {row['username']} is suspended ({row['status_reason']}); resume it first"
        )


def renewed(connection: Connection, row, calendar: Calendar) -> None:
    """After a period was bought (renewal, package card): back from expiry, or, already
    active, a new usage period, so one throttled for fair usage gets the package's rate now."""
    if not reactivate_if_expired(connection, row, calendar) and row["status"] == "active":
        restore(connection, row["id"], "renewal", command_cause(calendar), unblock=False)


def reactivate_if_expired(connection: Connection, row, calendar: Calendar) -> bool:
    """Bring back a customer suspended for want of payment; say whether it was."""
    if row["status"] == "suspended" and row["status_reason"] in SELF_CLEARING:
        connection.execute(
            update(customers).where(customers.c.id == row["id"]).values(status="active", status_reason=None)
        )
        # Out of the captive "expired" profile: the package's rate in place (FIELD-NOTES 13).
        restore(connection, row["id"], "reactivated", command_cause(calendar))
        return True
    return False


def suspend(
    connection: Connection, actor: Actor, username: str, calendar: Calendar, *, reason: str = MANUAL
) -> dict:
    """Suspend now: unused bought days are refunded per the owner's policy; the session is cut."""
    row = changeable_customer(connection, actor, username, "suspend customers")
    if row["status"] != "active":
        raise RadbillError(f"customer {row['username']} is already {row['status']}")
    refunded = _refund_unused(connection, actor, row, calendar)
    connection.execute(
        update(customers).where(customers.c.id == row["id"]).values(status="suspended", status_reason=reason)
    )
    record_change(connection, "customer", row["id"])
    cut_off(connection, row["id"], "suspended", command_cause(calendar))
    audit_customer(connection, actor, "suspend", row["id"], reason=reason, refunded=refunded)
    return show_customer(connection, actor, username)


def disconnect_now(connection: Connection, actor: Actor, username: str, calendar: Calendar) -> int:
    """The NOC's Disconnect of a customer's sessions (``radbill customer disconnect``),
    queued through the outbox like any other; returns the job's id."""
    actor.require("enforce", "disconnect customers")
    row = customer_row(connection, username, lock=True)
    require_changeable(connection, actor, row["operator_id"], f"customer {row['username']}")
    job_id = enqueue(
        connection,
        customer_id=row["id"],
        action="disconnect",
        reason="noc",
        dedupe_key=f"noc:{row['id']}:{command_cause(calendar)}",
    )
    audit_customer(connection, actor, "disconnect", row["id"], job=job_id)
    return job_id


def resume(connection: Connection, actor: Actor, username: str, calendar: Calendar) -> dict:
    """Lift a suspension; a daily customer pays today's share from its wallet."""
    # A daily customer pays today's share; a monthly one's prepaid levels advance its month.
    row = changeable_customer(connection, actor, username, "resume customers", money=True)
    if row["status"] == "active":
        raise RadbillError(f"customer {row['username']} is already active")
    priced = package_of(connection, row)
    if priced.billing_type == "monthly":
        invoices.advance_cycle(connection, row["id"], calendar.today, actor_id=actor.caller_id, refuse=True)
    if priced.billing_type == "daily":
        if not charge_day(connection, actor, row, calendar):
            raise RadbillError(
                f"customer {row['username']}'s wallet {format_amount(row['wallet_balance'])} cannot pay "
                "today's share: top up or renew first"
            )
    connection.execute(
        update(customers).where(customers.c.id == row["id"]).values(status="active", status_reason=None)
    )
    record_change(connection, "customer", row["id"])
    restore(connection, row["id"], "resumed", command_cause(calendar))
    audit_customer(connection, actor, "resume", row["id"])
    return show_customer(connection, actor, username)


def change_package(
    connection: Connection, actor: Actor, username: str, package: str, calendar: Calendar
) -> dict:
    """Switch package now; unused days of the old one are refunded, a new period bought when one was running."""
    row = changeable_customer(connection, actor, username, "change packages", money=True)
    change_package_row(connection, actor, row, package, calendar)
    return show_customer(connection, actor, username)


def change_package_row(connection: Connection, actor: Actor, row, package: str, calendar: Calendar) -> None:
    """Change the package of a customer already checked (and locked) for the actor."""
    new = priced_package(connection, row["operator_id"], package)
    if new.package_id == row["package_id"]:
        raise RadbillError(f"customer {row['username']} is already on {package}")
    old = package_of(connection, row)
    had_period = (last_paid_day(connection, row["id"]) or calendar.today) > calendar.today
    invoices.settle_to_date(
        connection,
        row["id"],
        calendar.today,
        due_days=calendar.invoice_due_days,
        actor_id=actor.caller_id,
        what=f"interim invoice ({old.name})",
    )
    refunded = _refund_unused(connection, actor, row, calendar)
    today = calendar.today
    values = dict(package_id=new.package_id, billing_anchor=today)
    if new.billing_type == "monthly" and row["cycle_day"] is None:
        values["cycle_day"] = min(today.day, 28)
    connection.execute(update(customers).where(customers.c.id == row["id"]).values(**values))
    if new.billing_type == "monthly" and row["status"] == "active":
        invoices.advance_cycle(
            connection, row["id"], today + timedelta(days=1), actor_id=actor.caller_id, refuse=True
        )
    if new.billing_type == "daily" and had_period and row["status"] == "active":
        buy_period(
            connection,
            actor,
            row["id"],
            row["operator_id"],
            new,
            today + timedelta(days=1),
            calendar,
            pay_cash=False,
            kind="package_change",
        )
    record_change(connection, "customer", row["id"])
    if row["status"] == "active":  # the new rate by CoA; a suspended customer gets it when it is back
        restore(connection, row["id"], "package_change", command_cause(calendar), unblock=False)
    audit_customer(
        connection, actor, "change_package", row["id"], old=old.name, new=package, refunded=refunded
    )


def delete_customer(connection: Connection, actor: Actor, username: str, calendar: Calendar) -> dict:
    """Soft-delete: unused days refunded per policy, service cut, restorable."""
    row = changeable_customer(connection, actor, username, "delete customers")
    invoices.settle_to_date(
        connection,
        row["id"],
        calendar.today,
        due_days=calendar.invoice_due_days,
        actor_id=actor.caller_id,
        what="final invoice",
    )
    refunded = _refund_unused(connection, actor, row, calendar)
    connection.execute(
        update(customers)
        .where(customers.c.id == row["id"])
        .values(deleted_at=calendar.now, status="suspended", status_reason=DELETED)
    )
    record_change(connection, "customer", row["id"])
    cut_off(connection, row["id"], "deleted", command_cause(calendar))
    audit_customer(connection, actor, "delete", row["id"], refunded=refunded)
    return show_customer(connection, actor, username)


def restore_customer(connection: Connection, actor: Actor, username: str) -> dict:
    """Bring a deleted customer back, suspended until it is resumed or renewed."""
    row = changeable_customer(connection, actor, username, "restore customers", deleted_ok=True)
    if row["deleted_at"] is None:
        raise RadbillError(f"customer {row['username']} is not deleted")
    connection.execute(update(customers).where(customers.c.id == row["id"]).values(deleted_at=None))
    record_change(connection, "customer", row["id"])
    audit_customer(connection, actor, "restore", row["id"])
    return show_customer(connection, actor, username)
