"""An ISP from a description: operators, routers, packages and their prices, funds.

The one way the demo (``radbill demo``) and the tests build a small ISP. It
goes through the same domain functions as the commands, so what it builds is
what an operator would have typed: real ledger entries, audited, and
``radbill ledger verify`` passes on it.
"""

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import Connection

from billingd import operators, packages
from nas.registry import add_nas
from schema.tenancy import resolve_actor


@dataclass(frozen=True)
class OperatorPlan:
    login: str
    role: str
    parent: str = "admin"
    name: str = ""
    id_format: str | None = None
    permissions: tuple[str, ...] = ()
    fund: int = 0  # paid in by its parent (prepaid), in minor units


@dataclass(frozen=True)
class PackagePlan:
    """A package on its own master package, sold by the admin at ``customer_price``;
    ``operator_prices`` maps each reseller to what it pays its parent."""

    name: str
    master: dict
    customer_price: int
    operator_prices: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RouterPlan:
    name: str
    ip_address: str
    secret: str
    description: str = ""


@dataclass(frozen=True)
class IspPlan:
    operators: tuple[OperatorPlan, ...] = ()
    packages: tuple[PackagePlan, ...] = ()
    routers: tuple[RouterPlan, ...] = ()
    admin_name: str = ""


def build_isp(connection: Connection, plan: IspPlan, today: date) -> None:
    """Add the admin, then everything the plan describes, in the order a person would."""
    operators.add_operator(connection, None, "admin", "admin", name=plan.admin_name)
    extend_isp(connection, plan, today)


def extend_isp(connection: Connection, plan: IspPlan, today: date) -> None:
    """Add what the plan describes to an ISP that has its admin (the demo's, say): a test
    builds its own operators and packages on it."""
    admin = resolve_actor(connection, "admin")
    for operator in plan.operators:
        operators.add_operator(
            connection,
            resolve_actor(connection, operator.parent),
            operator.login,
            operator.role,
            name=operator.name,
            id_format=operator.id_format,
        )
        for permission in operator.permissions:
            operators.permit(connection, admin, operator.login, permission)
    for router in plan.routers:
        add_nas(connection, router.name, router.ip_address, router.secret, description=router.description)
    parents = {operator.login: operator.parent for operator in plan.operators}
    for package in plan.packages:
        packages.add_master_package(connection, admin, package.name, **package.master)
        direct = [price for login, price in package.operator_prices.items() if parents[login] == "admin"]
        packages.add_package(
            connection,
            admin,
            package.name,
            master=package.name,
            customer_price=package.customer_price,
            operator_price=direct[0] if direct else package.customer_price,
        )
        for login, price in package.operator_prices.items():  # parents before children, as listed
            parent = resolve_actor(connection, parents[login])
            packages.assign_package(connection, parent, package.name, login, operator_price=price)
    for operator in plan.operators:
        if operator.fund:
            parent = resolve_actor(connection, operator.parent)
            operators.settle(connection, parent, operator.login, operator.fund, mode="prepaid", today=today)
