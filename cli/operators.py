"""``radbill operator`` and ``radbill zone``: the operator hierarchy, its rights and its money."""

import click

from billingd import credentials, zones
from billingd import operators as domain
from cli.context import Context
from cli.money import AMOUNT, payment_options, shown
from cli.output import emit_record, emit_table
from cli.params import ROW_ID
from schema.errors import RadbillError
from schema.tables import BILLING_MODES, REFUND_POLICIES, ROLES
from schema.tenancy import PERMISSIONS, resolve_actor

_MONEY = (
    "credit_limit",
    "fund_balance",
    "fund",
    "available",
    "customer_wallets",
    "held_for_children",
    "cash",
    "sales",
    "cost_of_sales",
    "wholesale",
    "amount",
)


@click.group("operator")
def operator_group() -> None:
    """Operators: admin, managers, resellers, sub-resellers, NOC users, card distributors."""


def _view(operator) -> dict:
    """The record as printed; money the domain hid from the actor (None) is left out."""
    record = {key: value for key, value in vars(operator).items() if value is not None or key not in _MONEY}
    return shown(record | {"permissions": ",".join(operator.permissions)}, *_MONEY)


@operator_group.command("add")
@click.argument("login")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--parent", metavar="LOGIN", help="Parent operator (default: you).")
@click.option(
    "--billing",
    "billing_mode",
    type=click.Choice(BILLING_MODES),
    default="prepaid",
    show_default=True,
)
@click.option(
    "--credit-limit",
    type=AMOUNT,
    default="0",
    help="How far the fund may go below zero: a prepaid fund's overdraft, what a postpaid operator may owe (required).",
)
@click.option(
    "--id-format", help="Customer-ID format: prefix, {zone}, {seq:05d}, postfix, e.g. DN-{zone}-{seq:05d}."
)
@click.option(
    "--refund-policy",
    type=click.Choice(REFUND_POLICIES),
    default="prorated",
    show_default=True,
    help="What a customer gets back for unused days on early disconnect or downgrade.",
)
@click.option("--name", default="", help="Display name.")
@click.option("--password", "ask_password", is_flag=True, help="Set its API password now (prompted).")
@click.option("--generate-password", is_flag=True, help="Set a generated API password now, printed once.")
@click.pass_obj
def add(
    obj: Context,
    login: str,
    role: str,
    parent,
    billing_mode,
    credit_limit,
    id_format,
    refund_policy,
    name,
    ask_password: bool,
    generate_password: bool,
) -> None:
    """Add an operator (the very first one must be the admin)."""
    password = _new_password(ask_password, generate_password)
    with obj.engine.begin() as connection:
        # The admin is the first operator, added before there is anyone to act as
        # (the domain refuses a second one).
        actor = None if role == "admin" else obj.actor(connection)
        added = domain.add_operator(
            connection,
            actor,
            login,
            role,
            parent=parent,
            billing_mode=billing_mode,
            credit_limit=credit_limit,
            id_format=id_format,
            name=name,
            refund_policy=refund_policy,
        )
        if password is not None:
            setter = actor or resolve_actor(connection, added.login)
            credentials.set_password(connection, setter, added.login, password, obj.calendar().now)
    click.echo(f"added {added.role} {added.login}" + (f" under {added.parent}" if added.parent else ""))
    if generate_password:
        click.echo(f"password for {added.login} (shown once): {password}")


def _new_password(ask: bool, generate: bool) -> str | None:
    """Prompted (hidden, twice), or generated; None when neither was asked for."""
    if ask and generate:
        raise RadbillError("give --password or --generate-password, not both")
    if generate:
        return credentials.generate_password()
    if ask:
        return click.prompt("New password", hide_input=True, confirmation_prompt=True)
    return None


@operator_group.command("passwd")
@click.argument("login")
@click.option("--generate", is_flag=True, help="Generate a password and print it once, instead of prompting.")
@click.pass_obj
def passwd(obj: Context, login: str, generate: bool) -> None:
    """Set an operator's API password (yours, or a descendant's); its sessions and API tokens end."""
    password = _new_password(not generate, generate)
    with obj.engine.begin() as connection:
        credentials.set_password(connection, obj.actor(connection), login, password, obj.calendar().now)
    click.echo(f"password for {login} (shown once): {password}" if generate else f"password for {login} set")


@operator_group.group("token")
def token_group() -> None:
    """Long-lived API tokens for integrations (stored hashed, shown once)."""


@token_group.command("create")
@click.argument("login")
@click.option("--name", required=True, help="What uses the token.")
@click.option("--days", type=click.IntRange(1, 3650), help="Lifetime (default: until revoked).")
@click.pass_obj
def token_create(obj: Context, login: str, name: str, days: int | None) -> None:
    """A token that acts as LOGIN (yourself or a descendant); printed once."""
    with obj.engine.begin() as connection:
        row, token = credentials.create_api_token(
            connection, obj.actor(connection), login, name, obj.calendar().now, days=days
        )
    click.echo(f"API token #{row['id']} for {login} (shown once): {token}")


@token_group.command("list")
@click.pass_obj
def token_list(obj: Context) -> None:
    """API tokens of the operators you manage (never the tokens themselves)."""
    with obj.engine.begin() as connection:
        rows = credentials.list_api_tokens(connection, obj.actor(connection))
    emit_table(rows, ["id", "operator", "name", "created_at", "expires_at", "last_used_at", "revoked_at"])


@token_group.command("revoke")
@click.argument("token_id", metavar="ID", type=ROW_ID)
@click.pass_obj
def token_revoke(obj: Context, token_id: int) -> None:
    """Revoke an API token at once."""
    with obj.engine.begin() as connection:
        credentials.revoke_api_token(connection, obj.actor(connection), token_id, obj.calendar().now)
    click.echo(f"revoked API token #{token_id}")


@operator_group.command("list")
@click.pass_obj
def list_(obj: Context) -> None:
    """Operators you can see (yourself and your descendants; the admin sees all)."""
    with obj.engine.begin() as connection:
        rows = [_view(operator) for operator in domain.list_operators(connection, obj.actor(connection))]
    emit_table(
        rows,
        ["login", "role", "parent", "billing_mode", "credit_limit", "fund_balance", "status", "permissions"],
    )


@operator_group.command("show")
@click.argument("login")
@click.pass_obj
def show(obj: Context, login: str) -> None:
    """One operator."""
    with obj.engine.begin() as connection:
        operator = domain.show_operator(connection, obj.actor(connection), login)
    emit_record(_view(operator))


@operator_group.command("permit")
@click.argument("login")
@click.argument("permission", type=click.Choice(sorted(PERMISSIONS)))
@click.pass_obj
def permit(obj: Context, login: str, permission: str) -> None:
    """Grant a permission (reseller_module lets a reseller have sub-resellers)."""
    with obj.engine.begin() as connection:
        domain.permit(connection, obj.actor(connection), login, permission)
    click.echo(f"{login} may now: {PERMISSIONS[permission]}")


@operator_group.command("revoke")
@click.argument("login")
@click.argument("permission", type=click.Choice(sorted(PERMISSIONS)))
@click.pass_obj
def revoke(obj: Context, login: str, permission: str) -> None:
    """Take a permission back."""
    with obj.engine.begin() as connection:
        domain.revoke(connection, obj.actor(connection), login, permission)
    click.echo(f"revoked {permission} from {login}")


@operator_group.command("block")
@click.argument("login")
@click.pass_obj
def block(obj: Context, login: str) -> None:
    """Block an operator's access (the RADIUS side refuses its customers too)."""
    with obj.engine.begin() as connection:
        domain.set_status(connection, obj.actor(connection), login, "blocked")
    click.echo(f"blocked {login}")


@operator_group.command("unblock")
@click.argument("login")
@click.pass_obj
def unblock(obj: Context, login: str) -> None:
    """Give a blocked operator its access back."""
    with obj.engine.begin() as connection:
        domain.set_status(connection, obj.actor(connection), login, "active")
    click.echo(f"unblocked {login}")


def _settlement(name: str, mode: str, help_text: str):
    @operator_group.command(name, help=help_text)
    @click.argument("login")
    @click.argument("amount", type=AMOUNT)
    @payment_options
    @click.pass_obj
    def command(obj: Context, login: str, amount: int, method: str, reference: str | None) -> None:
        with obj.engine.begin() as connection:
            operator = domain.settle(
                connection,
                obj.actor(connection),
                login,
                amount,
                mode=mode,
                today=obj.calendar().today,
                method=method,
                reference=reference,
            )
        click.echo(f"{login}: fund at parent now {shown({'fund': operator.fund_balance}, 'fund')['fund']}")

    return command


_settlement("fund", "prepaid", "Top up a prepaid child operator's fund (it paid you AMOUNT).")
_settlement("pay", "postpaid", "Record a postpaid child operator's settlement (it paid you AMOUNT).")


@operator_group.command("balance")
@click.argument("login")
@click.pass_obj
def balance(obj: Context, login: str) -> None:
    """An operator's fund at its parent and the totals of its book."""
    with obj.engine.begin() as connection:
        book = domain.balance(connection, obj.actor(connection), login)
    emit_record(shown(book, *_MONEY))


@operator_group.command("statement")
@click.argument("login")
@click.option("--from", "first", type=click.DateTime(["%Y-%m-%d"]), help="First day (YYYY-MM-DD).")
@click.option("--to", "last", type=click.DateTime(["%Y-%m-%d"]), help="Last day (YYYY-MM-DD).")
@click.pass_obj
def statement(obj: Context, login: str, first, last) -> None:
    """Every line of an operator's book, oldest first."""
    as_day = lambda value: value.date() if value else None  # noqa: E731
    with obj.engine.begin() as connection:
        rows = domain.statement(connection, obj.actor(connection), login, as_day(first), as_day(last))
    emit_table(
        [shown(row, "amount") for row in rows], ["day", "entry", "kind", "debit", "credit", "amount", "memo"]
    )


@click.group("zone")
def zone_group() -> None:
    """Zones: areas that group customers (their code can be part of customer IDs)."""


@zone_group.command("add")
@click.argument("code")
@click.option("--name", default="")
@click.option("--parent", "parent_code", help="Code of the enclosing zone.")
@click.pass_obj
def zone_add(obj: Context, code: str, name: str, parent_code: str | None) -> None:
    """Add a zone of your own."""
    with obj.engine.begin() as connection:
        zones.add_zone(connection, obj.actor(connection), code, name=name, parent_code=parent_code)
    click.echo(f"added zone {code}")


@zone_group.command("set")
@click.argument("code")
@click.option("--name")
@click.option("--parent", "parent_code", help="Code of the enclosing zone; empty for none.")
@click.pass_obj
def zone_set(obj: Context, code: str, name: str | None, parent_code: str | None) -> None:
    """Rename a zone of yours or move it (its code stays: customer IDs carry it)."""
    with obj.engine.begin() as connection:
        zones.set_zone(connection, obj.actor(connection), code, name=name, parent_code=parent_code)
    click.echo(f"changed zone {code}")


@zone_group.command("delete")
@click.argument("code")
@click.pass_obj
def zone_delete(obj: Context, code: str) -> None:
    """Delete a zone of yours that no customer or zone is in."""
    with obj.engine.begin() as connection:
        zones.delete_zone(connection, obj.actor(connection), code)
    click.echo(f"deleted zone {code}")


@zone_group.command("list")
@click.pass_obj
def zone_list(obj: Context) -> None:
    """Zones you can use."""
    with obj.engine.begin() as connection:
        rows = zones.list_zones(connection, obj.actor(connection))
    emit_table(rows, ["code", "name", "parent", "operator"])


COMMANDS = [operator_group, zone_group]
