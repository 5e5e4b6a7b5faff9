"""Every command, as every role, against its own objects and a descendant's, a
sibling's and an ancestor's: allowed or refused, as the table below says.

The commands come from the CLI's own click tree, so a command without a row
in ``COMMANDS`` fails :func:`test_every_command_has_a_row`. Each case runs the
real click command (parsing, the command function, the domain) inside a
transaction that is rolled back afterwards, so one world built per database
serves every case. A refusal is a :class:`schema.errors.Forbidden` or, for what
the role may not even see, a :class:`~schema.errors.NotFound`; an allowed
case must succeed, print no secret, and name no customer the role cannot see.

The expectations are written from the README's permission table, not from
the code: ``Who`` describes a role, ``Rule`` functions say yes or no.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from click.testing import CliRunner
from sqlalchemy import func, insert, select, update

from billingd import cards, credentials, lifecycle, operators, packages, wallets, zones
from billingd.customers import Calendar
from billingd.money import parse_amount
from cli.context import Context
from cli.main import radbill
from nas.registry import add_nas
from schema.engine import make_engine
from schema.errors import Forbidden, NotFound, RadbillError
from schema.outbox import enqueue
from schema.settings import BillingdSettings
from schema.tables import (
    card_batches,
    enforcement_jobs,
    invoices,
    ledger_entries,
    payments,
    radpostauth,
    sessions,
)
from schema.tables import operators as operators_table
from schema.tenancy import resolve_actor
from tests.billing_world import PIN_KEY
from tests.test_cli_input import leaf_commands

SECRETS = ("nas-Secret-9", "api-Pass-9", "cust-Pass-9")
TARGETS = ("own", "descendant", "sibling", "ancestor")
MANAGER_PERMISSIONS = (
    "customers",
    "finance",
    "packages",
    "operators",
    "cards",
    "network",
    "manage_descendants",
)


# --- the world --------------------------------------------------------------


@dataclass(frozen=True)
class Who:
    """A role in the matrix: who it is, and where its home sits in the tree."""

    login: str
    kind: str  # admin, reseller, sub, manager, noc, cd, blocked, ghost
    targets: dict  # target kind -> operator login (own = its home)
    perms: frozenset = frozenset()
    admin_side: bool = False

    @property
    def works(self) -> bool:
        return self.kind not in ("blocked", "ghost")

    @property
    def seller(self) -> bool:
        return self.kind in ("admin", "reseller", "sub")

    def has(self, permission: str) -> bool:
        return self.kind == "manager" and permission in self.perms

    def sees(self, target: str) -> bool:
        return self.works and self.kind != "cd" and target in ("own", "descendant")

    def changes(self, target: str) -> bool:
        if not self.sees(target):
            return False
        return target == "own" or self.admin_side or "manage_descendants" in self.perms

    @property
    def money(self) -> bool:
        return self.works and (self.seller or self.has("finance"))

    @property
    def customers(self) -> bool:
        return self.works and (self.seller or self.has("customers"))


R1_TARGETS = {"own": "r1", "descendant": "s2", "sibling": "r2", "ancestor": "admin"}
ADMIN_TARGETS = {"own": "admin", "descendant": "r2"}
ROLES = [
    Who("admin", "admin", ADMIN_TARGETS, admin_side=True),
    Who("adm-net", "manager", ADMIN_TARGETS, frozenset({"network"}), admin_side=True),
    Who("adm-fin", "manager", ADMIN_TARGETS, frozenset({"finance"}), admin_side=True),
    Who("adm-ops", "manager", ADMIN_TARGETS, frozenset({"operators"}), admin_side=True),
    Who("r1", "reseller", R1_TARGETS, frozenset({"reseller_module"})),
    Who("m-none", "manager", R1_TARGETS),
    *[Who(f"m-{p.replace('_', '-')}", "manager", R1_TARGETS, frozenset({p})) for p in MANAGER_PERMISSIONS],
    Who("noc1", "noc", R1_TARGETS),
    Who("cd1", "cd", R1_TARGETS),
    Who(
        "s1",
        "sub",
        {"own": "s1", "descendant": "s1a", "sibling": "s2", "ancestor": "r1"},
        frozenset({"reseller_module"}),
    ),
    Who("mb", "blocked", {"own": "rb", "descendant": "sb", "sibling": "r1", "ancestor": "admin"}),
    Who("sb", "blocked", {"own": "sb", "sibling": "s1", "ancestor": "rb"}),
    Who("ghost", "ghost", R1_TARGETS),
]
SELLERS = ("admin", "r1", "r2", "s1", "s1a", "s2", "rb", "sb")
# Each seller below the admin and its parent, parents first.
SELLER_PARENTS = (
    ("r1", "admin"),
    ("r2", "admin"),
    ("rb", "admin"),
    ("s1", "r1"),
    ("s2", "r1"),
    ("s1a", "s1"),
    ("sb", "rb"),
)
parent_of = dict(SELLER_PARENTS) | {"admin": None}
# Whose customers each seller's subtree holds (for "names no customer it cannot see").
SUBTREE = {
    "admin": set(SELLERS),
    "r1": {"r1", "s1", "s1a", "s2"},
    "s1": {"s1", "s1a"},
}


def customer(state: str, owner: str) -> str:
    """Usernames that are never a substring of one another: a-s1-c, a-s1a-c."""
    return f"{state}-{owner}-c"


@dataclass
class World:
    import_file: str = ""
    month: str = ""
    pins: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)
    entries: dict = field(default_factory=dict)
    batches: dict = field(default_factory=dict)
    receipts: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)


def build_world(connection) -> World:
    """admin ─ r1 (staff, s1 ─ s1a, s2), r2, rb (blocked; mb, sb); customers, cards, jobs of each seller."""
    calendar = Calendar(datetime.now(UTC), BillingdSettings().zone)
    money = parse_amount
    actor = lambda login: resolve_actor(connection, login)  # noqa: E731
    operators.add_operator(connection, None, "admin", "admin")
    for login, parent in SELLER_PARENTS:
        if login in ("s1", "sb", "s1a"):  # its parent needs the reseller module first
            operators.permit(connection, actor(parent_of[parent] or "admin"), parent, "reseller_module")
        role = "reseller" if parent == "admin" else "sub_reseller"
        operators.add_operator(connection, actor(parent), login, role, id_format=login.upper() + "-{seq:04d}")
    admin = actor("admin")
    for name, price in (("Home", "500"), ("Lite", "300")):
        packages.add_master_package(
            connection, admin, name, customer_type="pppoe", billing_type="daily", rate_rx=10**7, rate_tx=10**7
        )
        packages.add_package(
            connection, admin, name, master=name, customer_price=money(price), operator_price=money("100")
        )
        for child, parent in SELLER_PARENTS:
            packages.assign_package(connection, actor(parent), name, child, operator_price=money("100"))
    for child, parent in SELLER_PARENTS:
        operators.settle(
            connection, actor(parent), child, money("100000"), mode="prepaid", today=calendar.today
        )
    for login in ("r2", "s2", "s1a"):
        operators.permit(connection, admin, login, "manage_descendants")
    staff = [
        ("adm-net", "admin", "network"),
        ("adm-fin", "admin", "finance"),
        ("adm-ops", "admin", "operators"),
    ]
    staff += [("m-none", "r1", None)] + [(f"m-{p.replace('_', '-')}", "r1", p) for p in MANAGER_PERMISSIONS]
    staff += [("mb", "rb", None)]
    for login, home, permission in staff:
        operators.add_operator(connection, actor(home), login, "manager")
        if permission:
            operators.permit(connection, admin, login, permission)
    for permission in MANAGER_PERMISSIONS:
        if permission != "network":
            operators.permit(connection, admin, "mb", permission)
    operators.add_operator(connection, actor("r1"), "noc1", "noc")
    operators.add_operator(connection, actor("r1"), "cd1", "card_distributor")
    add_nas(connection, "core", "10.0.0.1", SECRETS[0], api_user="radbill", api_password=SECRETS[1])
    add_nas(connection, "spare", "10.0.0.2", SECRETS[0])
    world = World()
    for owner in SELLERS:
        who = actor(owner)
        for state in ("a", "s", "d"):
            lifecycle.add_customer(
                connection,
                who,
                customer(state, owner),
                password=SECRETS[2],
                package="Home",
                calendar=calendar,
            )
        lifecycle.suspend(connection, who, customer("s", owner), calendar)
        lifecycle.delete_customer(connection, who, customer("d", owner), calendar)
        wallets.receive_payment(connection, who, customer("a", owner), money("50"), calendar)
        world.entries[owner] = connection.execute(select(func.max(ledger_entries.c.id))).scalar()
        world.receipts[owner] = connection.execute(
            select(func.max(payments.c.id)).where(
                payments.c.customer_id == _id_of(connection, customer("a", owner))
            )
        ).scalar()
        world.pins[owner] = cards.create_batch(
            connection, who, 1, PIN_KEY, value=money("10"), distributor="cd1" if owner == "r1" else None
        )[0]["pin"]
        world.batches[owner] = connection.execute(
            select(func.max(card_batches.c.id)).where(
                card_batches.c.operator_id == _id_of_operator(connection, owner)
            )
        ).scalar()
        world.tokens[owner] = credentials.create_api_token(connection, admin, owner, "billing", calendar.now)[
            0
        ]["id"]
        zones.add_zone(connection, who, "Z1")
        connection.execute(
            insert(sessions).values(
                acct_unique_id=f"u-{owner}",
                acct_session_id=f"s-{owner}",
                nas_ip_address="10.0.0.1",
                customer_id=_id_of(connection, customer("a", owner)),
                username=customer("a", owner),
                started_at=calendar.now,
                updated_at=calendar.now,
            )
        )
        job = enqueue(
            connection,
            customer_id=_id_of(connection, customer("a", owner)),
            action="disconnect",
            reason="test",
        )
        connection.execute(
            update(enforcement_jobs).where(enforcement_jobs.c.id == job).values(status="failed")
        )
        world.jobs[owner] = job
        connection.execute(
            insert(invoices).values(
                number=f"INV-{owner}",
                customer_id=_id_of(connection, customer("a", owner)),
                operator_id=_id_of_operator(connection, owner),
                period_start=calendar.today,
                period_end=calendar.today,
                amount=money("10"),
                issued_on=calendar.today,
                due_on=calendar.today,
            )
        )
        connection.execute(
            insert(radpostauth).values(
                username=customer("a", owner),
                reply="Access-Reject",
                reason="wrong_password",
                authdate=calendar.now,
            )
        )
    operators.set_status(connection, admin, "rb", "blocked")
    return world


def _id_of_operator(connection, login: str) -> int:
    return connection.execute(select(operators_table.c.id).where(operators_table.c.login == login)).scalar()


def _id_of(connection, username: str) -> int:
    from schema.tables import customers as customers_table

    return connection.execute(
        select(customers_table.c.id).where(customers_table.c.username == username)
    ).scalar()


# --- the table: one row per command ------------------------------------------

OWN = ("own",)


@dataclass(frozen=True)
class Row:
    """How to call a command against a target operator T, and whether ``who`` may."""

    args: object  # (world, T) -> list of arguments
    allowed: object  # (who, target kind) -> bool
    targets: tuple = TARGETS
    accepted_error: str | None = None  # an allowed case may end in this domain error (state, not rights)
    prints_passwords: bool = False  # the documented exception: the admin's export for moving subscribers
    run_allowed: bool = (
        True  # False: it talks to routers, so only its refusals run here (its own tests run the rest)
    )


SERVER = None  # run by the server's admin, not as an operator: not exercised here (see README)


def admin_side_with(permission: str):
    return lambda who, t: who.works and who.admin_side and (who.kind == "admin" or who.has(permission))


def manages_credentials(who: Who, target: str) -> bool:
    """Its own password and tokens (a seller's "own" is itself), a descendant seller's for a seller
    (a manager with ``operators`` only sets NOC users' and card distributors')."""
    return who.works and who.seller and target in ("own", "descendant")


COMMANDS = {
    "db current": SERVER,
    "db upgrade": SERVER,
    "demo": SERVER,
    "radiusd": SERVER,
    "billingd": SERVER,
    "nas add": Row(lambda w, T: ["n2", "--ip", "10.9.9.9", "--secret", "x"], admin_side_with("network"), OWN),
    "nas set": Row(lambda w, T: ["core", "--description", "x"], admin_side_with("network"), OWN),
    "nas list": Row(
        lambda w, T: [],
        lambda who, t: who.works and who.admin_side and who.kind in ("admin", "manager", "noc"),
        OWN,
    ),
    "nas show": Row(
        lambda w, T: ["core"],
        lambda who, t: who.works and who.admin_side and who.kind in ("admin", "manager", "noc"),
        OWN,
    ),
    "nas test": Row(
        lambda w, T: ["core"],
        lambda who, t: who.works and who.admin_side and who.kind in ("admin", "manager", "noc"),
        OWN,
        run_allowed=False,
    ),
    "customer disconnect": Row(
        lambda w, T: [customer("a", T), "--wait", "0"],
        lambda who, t: (who.seller or who.kind == "noc" or who.has("network")) and who.changes(t),
        run_allowed=False,  # it runs the enforcement worker on a reactor
    ),
    "enforcement list": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "enforcement retry": Row(
        lambda w, T: [str(w.jobs[T])],
        lambda who, t: (who.seller or who.kind == "noc" or who.has("network")) and who.changes(t),
    ),
    "operator add": Row(
        lambda w, T: ["newop", "--role", "noc"],
        lambda who, t: who.works and (who.seller or who.has("operators")),
        OWN,
    ),
    "operator list": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "operator show": Row(lambda w, T: [T], lambda who, t: who.sees(t)),
    "operator permit": Row(
        lambda w, T: [T, "reseller_module"],
        lambda who, t: (
            who.works and t == "descendant" and (who.kind == "admin" or "reseller_module" in who.perms)
        ),
    ),
    "operator revoke": Row(
        lambda w, T: [T, "manage_descendants"],
        lambda who, t: who.works and t == "descendant" and (who.seller or who.has("operators")),
    ),
    "operator block": Row(
        lambda w, T: [T],
        lambda who, t: who.works and t == "descendant" and (who.seller or who.has("operators")),
    ),
    "operator unblock": Row(
        lambda w, T: [T],
        lambda who, t: who.works and t == "descendant" and (who.seller or who.has("operators")),
        accepted_error="is already active",
    ),
    "operator fund": Row(lambda w, T: [T, "10"], lambda who, t: who.money and t == "descendant"),
    "operator pay": Row(
        lambda w, T: [T, "10"], lambda who, t: who.money and t == "descendant", accepted_error="is prepaid"
    ),
    "operator balance": Row(lambda w, T: [T], lambda who, t: who.money and who.sees(t)),
    "operator statement": Row(lambda w, T: [T], lambda who, t: who.money and who.sees(t)),
    "zone add": Row(lambda w, T: ["Z9"], lambda who, t: who.customers, OWN),
    "zone list": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "master-package add": Row(
        lambda w, T: ["M9", "--type", "pppoe", "--billing", "daily", "--rate", "1M/1M"],
        admin_side_with("packages"),
        OWN,
    ),
    "master-package list": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "package add": Row(
        lambda w, T: ["P9", "--master", "Home", "--customer-price", "1", "--operator-price", "1"],
        admin_side_with("packages"),
        OWN,
    ),
    "package assign": Row(
        lambda w, T: ["Lite", "--to", T, "--operator-price", "100"],
        lambda who, t: who.works and (who.seller or who.has("packages")) and t == "descendant",
    ),
    "package list": Row(lambda w, T: ["--operator", T], lambda who, t: who.money and who.sees(t)),
    "package set": Row(
        lambda w, T: ["Lite", "--operator", T, "--operator-price", "100"],
        lambda who, t: who.works and (who.seller or who.has("packages")) and t == "descendant",
    ),
    "master-package set": Row(lambda w, T: ["Home", "--quota", "10G"], admin_side_with("packages"), OWN),
    "customer add": Row(
        lambda w, T: ["new-c", "--password", "x", "--package", "Home"],
        lambda who, t: who.customers and who.money,
        OWN,
    ),
    "customer list": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "customer show": Row(lambda w, T: [customer("a", T)], lambda who, t: who.sees(t)),
    "customer renew": Row(
        lambda w, T: [customer("a", T), "--cash"],
        lambda who, t: who.customers and who.money and who.changes(t),
    ),
    "customer suspend": Row(
        lambda w, T: [customer("a", T)], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "customer resume": Row(
        lambda w, T: [customer("s", T)], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "customer delete": Row(
        lambda w, T: [customer("a", T)], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "customer restore": Row(lambda w, T: [customer("d", T)], lambda who, t: who.customers and who.changes(t)),
    "customer change-package": Row(
        lambda w, T: [customer("a", T), "Lite"], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "customer reset-password": Row(
        lambda w, T: [customer("a", T), "--password", "x"], lambda who, t: who.customers and who.changes(t)
    ),
    "customer topup": Row(
        lambda w, T: [customer("a", T), "10"], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "customer pay": Row(
        lambda w, T: [customer("a", T), "10"], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "card batch": Row(
        lambda w, T: ["--count", "1", "--value", "10"],
        lambda who, t: who.works and (who.seller or (who.has("cards") and who.has("finance"))),
        OWN,
    ),
    "card list": Row(
        lambda w, T: [],
        lambda who, t: who.works and (who.seller or who.kind == "cd" or who.has("cards")),
        OWN,
    ),
    # r1's batch is given to its distributor cd1, who sells it; the issuing side may record a sale too.
    "card sell": Row(
        lambda w, T: [f"{w.batches[T]:05d}-00001", "--to", "Shop"],
        lambda who, t: (
            who.works
            and (
                (who.kind == "cd" and t == "own")
                or ((who.seller or (who.has("cards") and who.has("finance"))) and who.changes(t))
            )
        ),
    ),
    "card sales": Row(
        lambda w, T: [],
        lambda who, t: who.works and (who.seller or who.kind == "cd" or who.has("cards")),
        OWN,
    ),
    "card redeem": Row(
        lambda w, T: [w.pins[T], "--customer", customer("a", T)],
        lambda who, t: who.customers and who.money and who.changes(t),
    ),
    "billing run": Row(lambda w, T: [], admin_side_with("finance"), OWN),
    "billing runs": Row(lambda w, T: [], lambda who, t: who.money, OWN),
    "ledger verify": Row(lambda w, T: [], admin_side_with("finance"), OWN),
    "ledger reverse": Row(lambda w, T: [str(w.entries[T])], admin_side_with("finance")),
    "attempts": Row(lambda w, T: [customer("a", T)], lambda who, t: who.sees(t)),
    "why": Row(lambda w, T: [customer("a", T)], lambda who, t: who.sees(t)),
    "customer import": Row(
        lambda w, T: [str(w.import_file), "--dry-run"], lambda who, t: who.customers and who.money, OWN
    ),
    "customer export": Row(
        lambda w, T: [],
        lambda who, t: who.works and who.admin_side and (who.kind == "admin" or who.has("customers")),
        OWN,
        prints_passwords=True,
    ),
    "operator contact": Row(
        lambda w, T: [T, "--phone", "+8801700000000"],
        lambda who, t: (
            who.works
            and ((t == "own" and who.seller) or (who.sees(t) and (who.seller or who.has("operators"))))
        ),
    ),
    "notice broadcast": Row(
        lambda w, T: ["maintenance tonight"],
        lambda who, t: who.works and (who.seller or who.has("operators")),
        OWN,
    ),
    "report online": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "report expiring": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "report btrc": Row(lambda w, T: ["--month", w.month], lambda who, t: who.works and who.kind != "cd", OWN),
    "report revenue": Row(lambda w, T: ["--month", w.month], lambda who, t: who.money, OWN),
    "invoice show": Row(lambda w, T: [f"INV-{T}"], lambda who, t: who.money and who.sees(t)),
    "invoice list": Row(lambda w, T: [], lambda who, t: who.money, OWN),
    "online": Row(lambda w, T: [], lambda who, t: who.works and who.kind != "cd", OWN),
    "api": SERVER,
    "nas delete": Row(lambda w, T: ["spare"], admin_side_with("network"), OWN),
    "zone set": Row(lambda w, T: ["Z1", "--name", "North"], lambda who, t: who.customers, OWN),
    "zone delete": Row(lambda w, T: ["Z1"], lambda who, t: who.customers, OWN),
    "customer set": Row(
        lambda w, T: [customer("a", T), "--name", "Someone"], lambda who, t: who.customers and who.changes(t)
    ),
    "customer payout": Row(
        lambda w, T: [customer("a", T), "1"], lambda who, t: who.customers and who.money and who.changes(t)
    ),
    "card void": Row(
        lambda w, T: [str(w.batches[T])],
        lambda who, t: who.works and (who.seller or who.has("cards")) and who.changes(t),
    ),
    "invoice payments": Row(lambda w, T: [], lambda who, t: who.money, OWN),
    "invoice receipt": Row(lambda w, T: [str(w.receipts[T])], lambda who, t: who.money and who.sees(t)),
    "session close": Row(
        lambda w, T: ["--user", customer("a", T)],
        lambda who, t: (who.seller or who.kind == "noc" or who.has("customers")) and who.sees(t),
    ),
    "operator passwd": Row(lambda w, T: [T, "--generate"], lambda who, t: manages_credentials(who, t)),
    "operator token create": Row(
        lambda w, T: [T, "--name", "billing"], lambda who, t: manages_credentials(who, t)
    ),
    "operator token revoke": Row(lambda w, T: [str(w.tokens[T])], lambda who, t: manages_credentials(who, t)),
    "operator token list": Row(lambda w, T: [], lambda who, t: who.works, OWN),
    "audit list": Row(
        lambda w, T: [], lambda who, t: who.works and (who.seller or who.has("operators")), OWN
    ),
}


def test_every_command_has_a_row():
    """A command added to the CLI without a row here (or a row for a command that is gone) fails."""
    commands = {" ".join(path) for path, _command in leaf_commands()}
    assert sorted(commands - set(COMMANDS)) == [], "commands without a row in the tenancy matrix"
    assert sorted(set(COMMANDS) - commands) == [], "rows for commands that no longer exist"


# --- running it ----------------------------------------------------------------


class RolledBack:
    """An engine stand-in: every transaction a command opens is a savepoint of one
    connection, whose outer transaction the test rolls back after each case."""

    def __init__(self, connection):
        self.connection = connection
        self.dialect = connection.dialect

    @contextlib.contextmanager
    def begin(self):
        with self.connection.begin_nested():
            yield self.connection

    @contextlib.contextmanager
    def connect(self):
        yield _Savepoints(self.connection)


class _Savepoints:
    """A connection whose ``begin()`` is a savepoint (for commands that open their own transaction)."""

    def __init__(self, connection):
        self._connection = connection

    def begin(self):
        return self._connection.begin_nested()

    def __getattr__(self, name):
        return getattr(self._connection, name)


def _invisible_names(who: Who) -> list[str]:
    if who.admin_side:
        return []
    visible = SUBTREE.get(who.targets["own"], {who.targets["own"]})
    return [customer(state, owner) for owner in SELLERS if owner not in visible for state in "asd"]


def _judge(row: Row, who: Who, expected: bool, result) -> str | None:
    """What is wrong with a case's outcome, or None."""
    error = result.exception
    if isinstance(error, SystemExit):
        error = None if error.code in (0, None) else error
    if not expected:
        return None if isinstance(error, (Forbidden, NotFound)) else f"not refused: {error!r}"
    if error is not None and not (
        row.accepted_error is not None
        and isinstance(error, RadbillError)
        and row.accepted_error in str(error)
    ):
        return f"refused or failed: {error!r}"
    secrets = SECRETS[:2] if row.prints_passwords else SECRETS
    leaked = [text for text in (*secrets, *_invisible_names(who)) if text in result.output]
    return f"printed {leaked}" if leaked else None


def _run(connection, who: Who, args: list[str]):
    transaction = connection.begin()
    try:
        result = CliRunner().invoke(
            radbill, args, env={"RADBILL_OPERATOR": who.login, "RADBILL_CONFIG": ""}, standalone_mode=False
        )
    finally:
        transaction.rollback()
    return result


def test_every_command_as_every_role(database_url, monkeypatch, tmp_path):
    """Each case in table form; each allowed one also with --json (same rights, the other printer)."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        world = build_world(connection)
    world.import_file = tmp_path / "none.csv"
    world.import_file.write_text("username,password,package\n")
    world.month = datetime.now(UTC).strftime("%Y-%m")
    monkeypatch.setenv("RADBILL_DATABASE_URL", database_url)
    wrong, cases, allowed = [], 0, 0
    with engine.connect() as connection:
        connection.commit()
        monkeypatch.setattr(Context, "engine", property(lambda self: RolledBack(connection)))
        monkeypatch.setattr(Context, "card_pin_key", lambda self: PIN_KEY)
        for name, row in COMMANDS.items():
            if row is SERVER:
                continue
            for who in ROLES:
                for target in row.targets:
                    operator = who.targets.get(target)
                    if operator is None:
                        continue
                    args = name.split() + row.args(world, operator)
                    expected = row.allowed(who, target)
                    if expected and not row.run_allowed:
                        continue
                    cases += 1
                    allowed += expected
                    for printed in (args, ["--json", *args]) if expected else (args,):
                        problem = _judge(row, who, expected, _run(connection, who, printed))
                        if problem:
                            wrong.append(f"{who.login} {target}: radbill {' '.join(printed)} -> {problem}")
    engine.dispose()
    assert wrong == [], f"{len(wrong)} of {cases} cases wrong:\n" + "\n".join(wrong)
    assert cases > 1000 and allowed > 200
