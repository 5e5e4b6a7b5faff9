"""``radbill master-package`` and ``radbill package``: what is sold, and at what price."""

import dataclasses
import re

import click

from billingd import packages as domain
from billingd import price_changes
from billingd.packages import MAX_PERIOD_DAYS, MAX_QUOTA_BYTES, MAX_SIMULTANEOUS_USE
from cli.context import Context
from cli.money import AMOUNT, shown
from cli.output import emit_record, emit_table
from schema.errors import RadbillError
from schema.ratelimit import RateLimit
from schema.tables import BILLING_TYPES, CUSTOMER_TYPES, VISIBILITIES

_SIZE = re.compile(r"(\d+)\s*([kKMGT]?)(i?)B?")
_SIZE_UNITS = {"": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4}


def parse_size(text: str) -> int:
    """ "100G" -> 100*10^9 bytes; "100GiB" -> 100*2^30."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise RadbillError(f"invalid size {text!r}: use a number with k, M, G or T (e.g. 100G, 50GiB)")
    base = 1024 if match.group(3) else 1000
    size = int(match.group(1)) * base ** _SIZE_UNITS[match.group(2)]
    if size > MAX_QUOTA_BYTES:
        raise RadbillError(f"invalid size {text!r}: at most {MAX_QUOTA_BYTES // 10**12}T")
    return size


def rate_limit(rate, burst, threshold, burst_time, priority, minimum) -> RateLimit:
    """Validate the typed rate options together, as RouterOS reads them (FIELD-NOTES 3)."""
    groups = [
        rate,
        burst or "0/0",
        threshold or "0/0",
        burst_time or "0/0",
        str(priority or 8),
        minimum or "0/0",
    ]
    if any(value is None for value in (burst, threshold, burst_time)) and any((burst, threshold, burst_time)):
        raise RadbillError("a burst needs --burst, --burst-threshold and --burst-time together")
    try:
        return RateLimit.parse(" ".join(groups))
    except ValueError as error:
        raise RadbillError(str(error)) from None


def _pair(text: str | None, what: str) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    try:
        parsed = RateLimit.parse(text)
    except ValueError as error:
        raise RadbillError(f"{what}: {error}") from None
    return parsed.rx_rate, parsed.tx_rate


def _rate_fields(limit: RateLimit, priority: int | None) -> dict:
    """A master package's rate columns from a checked rate limit."""
    return dict(
        rate_rx=limit.rx_rate,
        rate_tx=limit.tx_rate,
        burst_rx=limit.burst_rx,
        burst_tx=limit.burst_tx,
        burst_threshold_rx=limit.threshold_rx,
        burst_threshold_tx=limit.threshold_tx,
        burst_time_rx=limit.burst_time_rx,
        burst_time_tx=limit.burst_time_tx,
        priority=priority,
        min_rx=limit.min_rx,
        min_tx=limit.min_tx,
    )


def _spec_options(command):
    """The options of a master package's spec after --rate, for add and set alike."""
    for option in reversed(
        (
            click.option("--burst", help="Burst rate RX/TX (with --rate)."),
            click.option("--burst-threshold", help="Burst threshold RX/TX (with --rate)."),
            click.option("--burst-time", help="Burst time in seconds RX/TX (with --rate)."),
            click.option("--priority", type=click.IntRange(1, 8), help="Queue priority 1..8 (with --rate)."),
            click.option("--min-rate", help="Guaranteed rate RX/TX (with --rate)."),
            click.option("--quota", help="Volume per period, e.g. 100G."),
            click.option("--fup-rate", help="Rate after the quota is used, RX/TX."),
            click.option("--pool", "ip_pool", help="IP pool (Framed-Pool)."),
            click.option("--profile", help="PPP or Hotspot profile."),
        )
    ):
        command = option(command)
    return command


@click.group("master-package")
def master_group() -> None:
    """Master packages: the technical spec (type, billing, speed, quota, pool, profile)."""


@master_group.command("add")
@click.argument("name")
@click.option("--type", "customer_type", type=click.Choice(CUSTOMER_TYPES), required=True)
@click.option("--billing", "billing_type", type=click.Choice(BILLING_TYPES), required=True)
@click.option(
    "--period-days",
    type=click.IntRange(1, MAX_PERIOD_DAYS),
    default=30,
    show_default=True,
    help="Days one purchase lasts.",
)
@click.option("--rate", required=True, help="RX/TX, e.g. 10M/10M (rx = the subscriber's upload).")
@_spec_options
@click.option("--address-list", help="Firewall address list its subscribers join (Mikrotik-Address-List).")
@click.option(
    "--simultaneous-use", type=click.IntRange(1, MAX_SIMULTANEOUS_USE), default=1, show_default=True
)
@click.pass_obj
def master_add(
    obj: Context,
    name,
    customer_type,
    billing_type,
    period_days,
    rate,
    burst,
    burst_threshold,
    burst_time,
    priority,
    min_rate,
    quota,
    fup_rate,
    ip_pool,
    profile,
    address_list,
    simultaneous_use,
) -> None:
    """Add a master package."""
    limit = rate_limit(rate, burst, burst_threshold, burst_time, priority, min_rate)
    fup_rx, fup_tx = _pair(fup_rate, "--fup-rate")
    spec = dict(
        **_rate_fields(limit, priority),
        quota_bytes=parse_size(quota) if quota else None,
        fup_rx=fup_rx,
        fup_tx=fup_tx,
        ip_pool=ip_pool,
        profile=profile,
        address_list=address_list,
        simultaneous_use=simultaneous_use,
    )
    with obj.engine.begin() as connection:
        domain.add_master_package(
            connection,
            obj.actor(connection),
            name,
            customer_type=customer_type,
            billing_type=billing_type,
            period_days=period_days,
            **spec,
        )
    click.echo(f"added master package {name}: Mikrotik-Rate-Limit {limit.to_mikrotik()!r}")


@master_group.command("set")
@click.argument("name")
@click.option("--rate", help="RX/TX; with it the burst, priority and minimum are set anew (none: off).")
@_spec_options
@click.option("--simultaneous-use", type=click.IntRange(1, MAX_SIMULTANEOUS_USE))
@click.option(
    "--from",
    "effective_on",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The first day it is in force (default: today; never a past day).",
)
@click.pass_obj
def master_set(
    obj: Context,
    name,
    rate,
    burst,
    burst_threshold,
    burst_time,
    priority,
    min_rate,
    quota,
    fup_rate,
    ip_pool,
    profile,
    simultaneous_use,
    effective_on,
) -> None:
    """Change a master package's spec from a day on (its billing type and period stay)."""
    spec = {}
    if rate is not None:
        spec.update(
            _rate_fields(rate_limit(rate, burst, burst_threshold, burst_time, priority, min_rate), priority)
        )
    elif any(value is not None for value in (burst, burst_threshold, burst_time, priority, min_rate)):
        raise RadbillError(
            "--burst, --burst-threshold, --burst-time, --priority and --min-rate go with --rate"
        )
    if fup_rate is not None:
        spec["fup_rx"], spec["fup_tx"] = _pair(fup_rate, "--fup-rate")
    if quota is not None:
        spec["quota_bytes"] = parse_size(quota)
    for key, value in (("ip_pool", ip_pool), ("profile", profile), ("simultaneous_use", simultaneous_use)):
        if value is not None:
            spec[key] = value
    today = obj.calendar().today
    with obj.engine.begin() as connection:
        change = price_changes.set_spec(
            connection,
            obj.actor(connection),
            name,
            spec,
            effective_on=effective_on.date() if effective_on else today,
            today=today,
        )
    emit_record(change)


@master_group.command("list")
@click.pass_obj
def master_list(obj: Context) -> None:
    """Master packages."""
    with obj.engine.begin() as connection:
        rows = domain.list_master_packages(connection, obj.actor(connection))
    for row in rows:
        row["rate"] = f"{row['rate_rx']}/{row['rate_tx']}"
    emit_table(
        rows,
        [
            "name",
            "customer_type",
            "billing_type",
            "period_days",
            "rate",
            "quota_bytes",
            "ip_pool",
            "profile",
            "address_list",
            "simultaneous_use",
        ],
    )


@click.group("package")
def package_group() -> None:
    """Packages and price lists."""


@package_group.command("add")
@click.argument("name")
@click.option("--master", required=True, help="The master package it sells.")
@click.option("--customer-price", type=AMOUNT, required=True, help="What your customers pay per period.")
@click.option(
    "--operator-price", type=AMOUNT, required=True, help="Default price your resellers pay per period."
)
@click.option("--visibility", type=click.Choice(VISIBILITIES), default="public", show_default=True)
@click.pass_obj
def package_add(obj: Context, name, master, customer_price, operator_price, visibility) -> None:
    """Add a package on your price list."""
    with obj.engine.begin() as connection:
        domain.add_package(
            connection,
            obj.actor(connection),
            name,
            master=master,
            customer_price=customer_price,
            operator_price=operator_price,
            visibility=visibility,
        )
    click.echo(f"added package {name}")


@package_group.command("assign")
@click.argument("package")
@click.option("--to", "to_login", required=True, metavar="LOGIN", help="A child operator.")
@click.option("--operator-price", type=AMOUNT, required=True, help="What it pays you per period.")
@click.option("--customer-price", type=AMOUNT, help="What its customers pay (default: yours).")
@click.option("--visibility", type=click.Choice(VISIBILITIES))
@click.option("--below-cost", is_flag=True, help="Allow an operator price above the customer price.")
@click.pass_obj
def package_assign(
    obj: Context, package, to_login, operator_price, customer_price, visibility, below_cost
) -> None:
    """Let a child operator sell a package, at its own price."""
    with obj.engine.begin() as connection:
        domain.assign_package(
            connection,
            obj.actor(connection),
            package,
            to_login,
            operator_price=operator_price,
            customer_price=customer_price,
            visibility=visibility,
            below_cost=below_cost,
        )
    click.echo(f"{to_login} may sell {package}")


@package_group.command("set")
@click.argument("package")
@click.option(
    "--operator", "operator_login", metavar="LOGIN", help="A direct child's price list (default: yours)."
)
@click.option("--customer-price", type=AMOUNT, help="The new customer price per period.")
@click.option("--operator-price", type=AMOUNT, help="The new operator price per period.")
@click.option(
    "--from",
    "effective_on",
    type=click.DateTime(["%Y-%m-%d"]),
    help="The first day it is in force (default: today; never a past day).",
)
@click.option("--below-cost", is_flag=True, help="Allow an operator price above the customer price.")
@click.pass_obj
def package_set(
    obj: Context, package, operator_login, customer_price, operator_price, effective_on, below_cost
) -> None:
    """Change a package's prices from a day on; days before it keep the old ones."""
    today = obj.calendar().today
    with obj.engine.begin() as connection:
        change = price_changes.set_price(
            connection,
            obj.actor(connection),
            package,
            effective_on=effective_on.date() if effective_on else today,
            today=today,
            operator_login=operator_login,
            customer_price=customer_price,
            operator_price=operator_price,
            below_cost=below_cost,
        )
    emit_record(shown(change, "customer_price", "operator_price"))


@package_group.command("list")
@click.option(
    "--operator", "operator_login", metavar="LOGIN", help="A descendant's price list (default: yours)."
)
@click.pass_obj
def package_list(obj: Context, operator_login: str | None) -> None:
    """Your price list: packages, customer price, the operator price you pay."""
    with obj.engine.begin() as connection:
        rows = domain.price_list(connection, obj.actor(connection), operator_login)
    emit_table(
        [shown(dataclasses.asdict(row), "customer_price", "operator_price") for row in rows],
        [
            "name",
            "master",
            "customer_type",
            "billing_type",
            "period_days",
            "customer_price",
            "operator_price",
            "visibility",
        ],
    )


COMMANDS = [master_group, package_group]
