"""``radbill customer``: subscribers and their lifecycle."""

import logging

import click

from billingd import customers as domain
from billingd import lifecycle, wallets
from cli.context import Context
from cli.money import AMOUNT, payment_options, shown
from cli.output import emit_record, emit_table
from schema.errors import RadbillError
from schema.tables import CUSTOMER_STATUSES


@click.group("customer")
def customer_group() -> None:
    """Customers (subscribers)."""


def _fields(pairs: tuple[str, ...]) -> dict:
    fields = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RadbillError(f"invalid --field {pair!r}: use KEY=VALUE")
        fields[key] = value
    return fields


def _emit(record: dict) -> None:
    emit_record(shown(record, "wallet_balance"))


@customer_group.command("add")
@click.argument("username")
@click.option("--password", required=True)
@click.option("--package", required=True, help="A package on your price list.")
@click.option("--zone", help="Zone code.")
@click.option("--mac", help="Bind to this MAC address.")
@click.option("--static-ip", help="Fixed IP address.")
@click.option("--name", default="")
@click.option("--phone")
@click.option("--address")
@click.option("--field", "field_pairs", multiple=True, metavar="KEY=VALUE", help="Custom field (repeatable).")
@click.pass_obj
def add(
    obj: Context, username, password, package, zone, mac, static_ip, name, phone, address, field_pairs
) -> None:
    """Add and activate a customer (a daily package's first period is paid in cash)."""
    with obj.engine.begin() as connection:
        record = lifecycle.add_customer(
            connection,
            obj.actor(connection),
            username,
            password=password,
            package=package,
            calendar=obj.calendar(),
            zone=zone,
            mac=mac,
            static_ip=static_ip,
            name=name,
            phone=phone,
            address=address,
            fields=_fields(field_pairs),
        )
    _emit(record)


@customer_group.command("set")
@click.argument("username")
@click.option("--name")
@click.option("--phone", help="Empty to clear.")
@click.option("--address", help="Empty to clear.")
@click.option("--zone", help="Zone code; empty to clear.")
@click.option("--mac", help="Bind to this MAC address; empty to unbind.")
@click.option("--static-ip", help="Fixed IP address; empty to clear.")
@click.option(
    "--field",
    "field_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Custom field (repeatable); KEY= removes it.",
)
@click.pass_obj
def set_(obj: Context, username, name, phone, address, zone, mac, static_ip, field_pairs) -> None:
    """Edit a customer's details (audited with old and new values)."""
    with obj.engine.begin() as connection:
        record = domain.set_customer(
            connection,
            obj.actor(connection),
            username,
            obj.calendar(),
            fields=_fields(field_pairs),
            name=name,
            phone=phone,
            address=address,
            zone=zone,
            mac=mac,
            static_ip=static_ip,
        )
    _emit(record)


@customer_group.command("list")
@click.option("--deleted", is_flag=True, help="Deleted customers (restorable) instead.")
@click.option("--status", type=click.Choice(CUSTOMER_STATUSES))
@click.pass_obj
def list_(obj: Context, deleted: bool, status: str | None) -> None:
    """Customers you can see: yours and your descendants'."""
    with obj.engine.begin() as connection:
        rows = domain.list_customers(connection, obj.actor(connection), deleted=deleted, status=status)
    emit_table(
        [shown(row, "wallet_balance") for row in rows],
        ["username", "customer_code", "owner", "package", "status", "expires_at", "wallet_balance"],
    )


def _one_customer(name: str, help_text: str, act):
    """A command on one customer: ``act(obj, connection, actor, username)`` returns what is shown."""

    @customer_group.command(name, help=help_text)
    @click.argument("username")
    @click.pass_obj
    def command(obj: Context, username: str) -> None:
        with obj.engine.begin() as connection:
            record = act(obj, connection, obj.actor(connection), username)
        _emit(record)

    return command


def _lifecycle(name: str, function, help_text: str):
    return _one_customer(name, help_text, lambda obj, *args: function(*args, obj.calendar()))


_one_customer("show", "One customer.", lambda obj, *args: domain.show_customer(*args))
_lifecycle(
    "suspend", lifecycle.suspend, "Suspend now (unused days refunded per the owner's policy; session cut)."
)
_lifecycle(
    "resume", lifecycle.resume, "Lift a suspension (a daily customer pays today's share from its wallet)."
)
_lifecycle("delete", lifecycle.delete_customer, "Soft-delete (unused days refunded per policy; restorable).")
_one_customer(
    "restore",
    "Restore a deleted customer (suspended until resumed or renewed).",
    lambda obj, *args: lifecycle.restore_customer(*args),
)


@customer_group.command("disconnect")
@click.argument("username")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    help="Follow the job for this many seconds (default: long enough for one attempt and the Stop).",
)
@click.pass_obj
def disconnect(obj: Context, username: str, wait: float | None) -> None:
    """Disconnect a customer's sessions now, through the outbox, and say how it went."""
    from cli.reactor import run_on_reactor
    from nas.worker import EnforcementWorker
    from schema.pool import Pool

    logging.getLogger("nas").addHandler(logging.NullHandler())  # the outcome is printed below, once
    with obj.engine.begin() as connection:
        job_id = lifecycle.disconnect_now(connection, obj.actor(connection), username, obj.calendar())
    settings = obj.settings.nas
    patience = wait if wait is not None else settings.stop_deadline + settings.lease / 4
    job = run_on_reactor(
        lambda reactor: EnforcementWorker(
            Pool(obj.engine, reactor, name="cli-nas"),
            settings,
            zone=obj.settings.billingd.zone,
            reactor=reactor,
        ).see_through(job_id, patience)
    )
    if job.status == "done":
        click.echo(f"disconnected {job.customer}: enforcement job {job.id} done")
        return
    if job.status == "failed":
        raise RadbillError(
            f"could not disconnect {job.customer}: enforcement job {job.id} failed: {job.last_error}"
        )
    why = job.last_error or "the Disconnect was ACKed; the Accounting-Stop has not arrived yet"
    raise RadbillError(
        f"{job.customer} is not disconnected yet: {why}; billingd goes on with enforcement job {job.id} "
        "(radbill enforcement list)"
    )


@customer_group.command("renew")
@click.argument("username")
@click.option("--cash", is_flag=True, help="The customer paid the price in cash now (else: from its wallet).")
@click.pass_obj
def renew(obj: Context, username: str, cash: bool) -> None:
    """Buy one more period, from the later of today and the current expiry."""
    with obj.engine.begin() as connection:
        record = lifecycle.renew(connection, obj.actor(connection), username, obj.calendar(), cash=cash)
    _emit(record)


@customer_group.command("change-package")
@click.argument("username")
@click.argument("package")
@click.pass_obj
def change_package(obj: Context, username: str, package: str) -> None:
    """Switch package now (unused days refunded per policy; a new period bought if one was running)."""
    with obj.engine.begin() as connection:
        record = lifecycle.change_package(
            connection, obj.actor(connection), username, package, obj.calendar()
        )
    _emit(record)


@customer_group.command("reset-password")
@click.argument("username")
@click.option("--password", help="The new password (default: a random one, printed).")
@click.pass_obj
def reset_password(obj: Context, username: str, password: str | None) -> None:
    """Set a new password."""
    with obj.engine.begin() as connection:
        new = domain.reset_password(connection, obj.actor(connection), username, password)
    # A password radbill made up is shown this once; one the caller typed is never echoed.
    click.echo(
        f"new password for {username}: {new}" if password is None else f"password of {username} changed"
    )


def _payment(name: str, help_text: str):
    @customer_group.command(name, help=help_text)
    @click.argument("username")
    @click.argument("amount", type=AMOUNT)
    @payment_options
    @click.pass_obj
    def command(obj: Context, username: str, amount: int, method: str, reference: str | None) -> None:
        with obj.engine.begin() as connection:
            record = wallets.receive_payment(
                connection,
                obj.actor(connection),
                username,
                amount,
                obj.calendar(),
                method=method,
                reference=reference,
            )
        _emit(record)

    return command


_payment("topup", "Add money to a customer's wallet (reactivates an expired daily customer).")
_payment("pay", "Record a customer's payment; settles open invoices oldest first (partial payments too).")


@customer_group.command("payout")
@click.argument("username")
@click.argument("amount", type=AMOUNT)
@payment_options
@click.pass_obj
def payout(obj: Context, username: str, amount: int, method: str, reference: str | None) -> None:
    """Pay a customer's wallet balance (or part of it) back to it, e.g. when it leaves."""
    with obj.engine.begin() as connection:
        _emit(
            wallets.pay_out(
                connection,
                obj.actor(connection),
                username,
                amount,
                obj.calendar(),
                method=method,
                reference=reference,
            )
        )


COMMANDS = [customer_group]
