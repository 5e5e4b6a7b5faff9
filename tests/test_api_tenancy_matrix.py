"""Tenancy over HTTP: every route of the app, as every role, against objects of every relation.

The routes come from the app's own OpenAPI document; a route without an
entry in ROUTES fails the test. Each role looks at objects that are its own,
a descendant's, a sibling's and an ancestor's (from where its home operator
stands in the tree) and the answer must be 2xx when the README's permission
table allows it, 403 or 404 when it does not, 401 with no token. Every
request runs in a savepoint that is rolled back, so each sees the same ISP.

admin (dave) ── reseller1 (alice) ── sub1 (carol)
            │                    ├── sub2 (frank)
            │                    ├── post1 (postpaid)   sub3 (blocked)
            │                    └── staff: r1manager, r1m_<permission>..., r1noc, r1cards
            ├── reseller2 (bob)
            └── staff: manager (customers, finance), noc
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from billingd import cards, credentials, lifecycle, operators, packages, wallets
from billingd.api import deps
from tests import billing_world as world
from tests.api_world import PASSWORD, Clock, build_isp, login, make_client

ALL = frozenset({"view", "customers", "money", "packages", "operators", "cards", "network"})
MANAGER_PERMISSIONS = ("customers", "finance", "packages", "operators", "cards")
# role -> (login, what it may do, home)
ROLES = {
    "admin": ("admin", ALL, "admin"),
    "admin_manager": ("manager", frozenset({"view", "customers", "money"}), "admin"),
    "admin_noc": ("noc", frozenset({"view", "network"}), "admin"),
    "reseller": ("reseller1", ALL, "reseller1"),
    "sub_reseller": ("sub1", ALL, "sub1"),
    "manager_none": ("r1manager", frozenset({"view"}), "reseller1"),
    **{
        f"manager_{permission}": (
            f"r1m_{permission}",
            frozenset({"view", "money" if permission == "finance" else permission}),
            "reseller1",
        )
        for permission in MANAGER_PERMISSIONS
    },
    "noc": ("r1noc", frozenset({"view", "network"}), "reseller1"),
    "card_distributor": ("r1cards", frozenset(), "reseller1"),
    "subscriber": ("subscriber:alice", frozenset(), None),
    "anonymous": (None, frozenset(), None),
}
# Where each home stands: its customers and operators by relation.
CUSTOMERS = {
    "admin": {"own": "dave", "descendant": "alice"},
    "reseller1": {"own": "alice", "descendant": "carol", "sibling": "bob", "ancestor": "dave"},
    "sub1": {"own": "carol", "sibling": "frank", "ancestor": "alice"},
}
OPERATORS = {
    "admin": {"own": "admin", "descendant": "reseller1"},
    "reseller1": {"own": "reseller1", "descendant": "sub1", "sibling": "reseller2", "ancestor": "admin"},
    "sub1": {"own": "sub1", "sibling": "sub2", "ancestor": "reseller1"},
}
# Objects in a particular state, for the routes that need one.
BLOCKED = {"admin": {"descendant": "sub3"}, "reseller1": {"descendant": "sub3", "sibling": "rblocked"}}
POSTPAID = {"admin": {"descendant": "post0"}, "reseller1": {"descendant": "post1"}}


@dataclass
class Case:
    role: str
    login: str | None
    may: frozenset
    home: str | None
    relation: str


@dataclass(frozen=True)
class Route:
    """How to call a route for a case, and whether the README's rules allow it."""

    call: Callable[[Case, dict], tuple[str, dict | None]]  # -> (path, json body)
    allowed: Callable[[Case], bool]
    relations: tuple[str, ...] = ("none",)
    status: set = field(default_factory=lambda: {200, 201, 204})


def _customer(case: Case, suffix: str = "") -> str:
    name = CUSTOMERS.get(case.home or "reseller1", CUSTOMERS["reseller1"]).get(case.relation)
    return f"{name}{suffix}" if name else "nobody"


def _operator(case: Case, table: dict | None = None) -> str:
    home = case.home or "reseller1"
    return (
        (table or OPERATORS).get(home, {}).get(case.relation)
        or OPERATORS.get(home, {}).get(case.relation)
        or "nobody"
    )


def operator_role(case: Case) -> bool:
    return case.login is not None and not case.login.startswith("subscriber:")


def needs(*wanted: str) -> Callable[[Case], bool]:
    return lambda case: operator_role(case) and set(wanted) <= case.may


def reaching(relations: set, *wanted: str, admin_reaches: set | None = None) -> Callable[[Case], bool]:
    """Allowed for these relations (the admin's side: admin_reaches) with these rights."""

    def rule(case: Case) -> bool:
        reach = admin_reaches if (case.home == "admin" and admin_reaches is not None) else relations
        return needs(*wanted)(case) and case.relation in reach

    return rule


def admin_side(*wanted: str) -> Callable[[Case], bool]:
    return lambda case: needs(*wanted)(case) and case.home == "admin"


def subscriber(case: Case) -> bool:
    return case.role == "subscriber"


def anyone_logged_in(case: Case) -> bool:
    return case.login is not None


def credentials_of(case: Case) -> bool:
    """Its own password and tokens; a strict descendant's with the right to change operators."""
    if not operator_role(case):
        return False
    if case.relation == "own":
        return case.login == case.home
    # A seller's credentials give its every right: set by a seller above it, never by a manager.
    return case.relation == "descendant" and "operators" in case.may and case.role in ("admin", "reseller")


def _grantable(case: Case) -> str:
    """A permission the granter holds and the grantee (reseller1 under the admin, sub1 under it) lacks."""
    return "manage_descendants" if case.home == "admin" else "reseller_module"


def _revocable(case: Case) -> str:
    """A permission the grantee holds: reseller1's reseller module, sub1's manage_descendants."""
    return "reseller_module" if case.home == "admin" else "manage_descendants"


VIEW_CUSTOMER = reaching({"own", "descendant"}, "view")
CHANGE_CUSTOMER = reaching({"own"}, "customers", admin_reaches={"own", "descendant"})
MONEY_CUSTOMER = reaching({"own"}, "customers", "money", admin_reaches={"own", "descendant"})
VIEW_OPERATOR = reaching({"own", "descendant"}, "view")
MONEY_OPERATOR = reaching({"own", "descendant"}, "money")
CHANGE_OPERATOR = reaching({"descendant"}, "operators")
FOUR = ("own", "descendant", "sibling", "ancestor")

C = "/api/v1/customers/{username}"
OP = "/api/v1/operators/{login}"
ROUTES: dict[tuple[str, str], Route] = {
    # Logins are open to everyone; wrong credentials are 401 whoever asks.
    ("post", "/api/v1/auth/token"): Route(
        lambda c, o: ("/api/v1/auth/token", {"login": "admin", "password": "wrong password"}),
        lambda c: False,
        status={401},
    ),
    ("post", "/api/v1/auth/subscriber/token"): Route(
        lambda c, o: ("/api/v1/auth/subscriber/token", {"username": "alice", "password": "wrong"}),
        lambda c: False,
        status={401},
    ),
    ("post", "/api/v1/auth/refresh"): Route(
        lambda c, o: ("/api/v1/auth/refresh", {"refresh_token": "rbr_not-a-token"}),
        lambda c: False,
        status={401},
    ),
    ("post", "/api/v1/auth/logout"): Route(lambda c, o: ("/api/v1/auth/logout", None), anyone_logged_in),
    ("get", "/api/v1/auth/me"): Route(lambda c, o: ("/api/v1/auth/me", None), anyone_logged_in),
    ("post", "/api/v1/auth/login-as"): Route(
        lambda c, o: ("/api/v1/auth/login-as", {"login": _operator(c)}),
        lambda c: (
            operator_role(c)
            and c.relation == "descendant"
            and (c.role in ("admin", "reseller", "sub_reseller") or c.role == "manager_operators")
        ),
        FOUR,
    ),
    # Operators.
    ("get", "/api/v1/operators"): Route(lambda c, o: ("/api/v1/operators", None), needs("view")),
    ("post", "/api/v1/operators"): Route(
        lambda c, o: ("/api/v1/operators", {"login": "newstaff", "role": "noc"}), needs("operators")
    ),
    ("get", OP): Route(lambda c, o: (f"/api/v1/operators/{_operator(c)}", None), VIEW_OPERATOR, FOUR),
    ("post", OP + "/block"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/block", None), CHANGE_OPERATOR, FOUR
    ),
    ("post", OP + "/unblock"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c, BLOCKED)}/unblock", None), CHANGE_OPERATOR, FOUR
    ),
    ("post", OP + "/permissions"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/permissions", {"permission": _grantable(c)}),
        # Nobody grants what it does not hold: a reseller's manager holds no reseller permission.
        lambda c: CHANGE_OPERATOR(c) and c.role in ("admin", "reseller"),
        FOUR,
    ),
    ("delete", OP + "/permissions/{permission}"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/permissions/{_revocable(c)}", None),
        CHANGE_OPERATOR,
        FOUR,
    ),
    ("post", OP + "/fund"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/fund", {"amount": 100}),
        reaching({"descendant"}, "money"),
        FOUR,
    ),
    ("post", OP + "/pay"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c, POSTPAID)}/pay", {"amount": 100}),
        reaching({"descendant"}, "money"),
        FOUR,
    ),
    ("get", OP + "/balance"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/balance", None), MONEY_OPERATOR, FOUR
    ),
    ("get", OP + "/statement"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/statement", None), MONEY_OPERATOR, FOUR
    ),
    ("put", OP + "/password"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/password", {"password": "a new long password"}),
        credentials_of,
        FOUR,
    ),
    ("get", OP + "/tokens"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/tokens", None), operator_role, FOUR
    ),
    ("post", OP + "/tokens"): Route(
        lambda c, o: (f"/api/v1/operators/{_operator(c)}/tokens", {"name": "crm"}), credentials_of, FOUR
    ),
    ("delete", "/api/v1/tokens/{token_id}"): Route(
        lambda c, o: (f"/api/v1/tokens/{o['tokens'][_operator(c)]}", None), credentials_of, FOUR
    ),
    ("get", "/api/v1/audit"): Route(lambda c, o: ("/api/v1/audit", None), needs("operators")),
    # Packages and zones.
    ("get", "/api/v1/master-packages"): Route(lambda c, o: ("/api/v1/master-packages", None), needs("view")),
    ("post", "/api/v1/master-packages"): Route(
        lambda c, o: (
            "/api/v1/master-packages",
            {
                "name": "New",
                "customer_type": "pppoe",
                "billing_type": "daily",
                "rate_rx": 1000,
                "rate_tx": 1000,
            },
        ),
        admin_side("packages"),
    ),
    ("get", "/api/v1/packages"): Route(lambda c, o: ("/api/v1/packages", None), needs("money")),
    ("post", "/api/v1/packages"): Route(
        lambda c, o: (
            "/api/v1/packages",
            {"name": "New", "master": "Home 10M", "customer_price": 100, "operator_price": 50},
        ),
        admin_side("packages"),
    ),
    ("post", "/api/v1/packages/{name}/assign"): Route(
        lambda c, o: ("/api/v1/packages/Home 10M/assign", {"to": _operator(c), "operator_price": 1000}),
        reaching({"descendant"}, "packages"),
        FOUR,
    ),
    ("get", "/api/v1/zones"): Route(lambda c, o: ("/api/v1/zones", None), needs("view")),
    ("post", "/api/v1/zones"): Route(lambda c, o: ("/api/v1/zones", {"code": "ZX"}), needs("customers")),
    # Customers.
    ("get", "/api/v1/customers"): Route(lambda c, o: ("/api/v1/customers", None), needs("view")),
    ("post", "/api/v1/customers"): Route(
        lambda c, o: ("/api/v1/customers", {"username": "newone", "password": "pw", "package": "Home 10M"}),
        needs("customers", "money"),  # activation pays the first period
    ),
    ("get", C): Route(lambda c, o: (f"/api/v1/customers/{_customer(c)}", None), VIEW_CUSTOMER, FOUR),
    ("patch", C): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}", {"name": "N"}), CHANGE_CUSTOMER, FOUR
    ),
    # Deleting or suspending a customer with paid days gives them back: money.
    ("delete", C): Route(lambda c, o: (f"/api/v1/customers/{_customer(c)}", None), MONEY_CUSTOMER, FOUR),
    ("post", C + "/restore"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c, '_d')}/restore", None), CHANGE_CUSTOMER, FOUR
    ),
    ("post", C + "/suspend"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/suspend", None), MONEY_CUSTOMER, FOUR
    ),
    ("post", C + "/resume"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c, '_s')}/resume", None), MONEY_CUSTOMER, FOUR
    ),
    ("post", C + "/reset-password"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/reset-password", None), CHANGE_CUSTOMER, FOUR
    ),
    ("post", C + "/renew"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/renew", {}), MONEY_CUSTOMER, FOUR
    ),
    ("post", C + "/change-package"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/change-package", {"package": "Lite 5M"}),
        MONEY_CUSTOMER,
        FOUR,
    ),
    ("post", C + "/topup"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/topup", {"amount": 100}), MONEY_CUSTOMER, FOUR
    ),
    ("post", C + "/pay"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/pay", {"amount": 100}), MONEY_CUSTOMER, FOUR
    ),
    ("get", C + "/attempts"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/attempts", None), VIEW_CUSTOMER, FOUR
    ),
    ("get", C + "/why"): Route(
        lambda c, o: (f"/api/v1/customers/{_customer(c)}/why", None), VIEW_CUSTOMER, FOUR
    ),
    # Cards.
    ("post", "/api/v1/cards/batches"): Route(
        lambda c, o: ("/api/v1/cards/batches", {"count": 1, "value": 100}), needs("cards", "money")
    ),
    ("get", "/api/v1/cards"): Route(
        lambda c, o: ("/api/v1/cards", None), lambda c: needs("cards")(c) or c.role == "card_distributor"
    ),
    ("post", "/api/v1/cards/batches/{batch}/void"): Route(
        lambda c, o: (f"/api/v1/cards/batches/{o['batches'][_operator(c)]}/void", None),
        reaching({"own"}, "cards", admin_reaches={"own", "descendant"}),
        FOUR,
    ),
    # reseller1's batch is given to its distributor r1cards, who sells it; an issuer may record a sale too.
    ("post", "/api/v1/cards/sales"): Route(
        lambda c, o: (
            "/api/v1/cards/sales",
            {"first": f"{o['batches'][_operator(c)]:05d}-00001", "buyer": "Shop A", "commission": 1},
        ),
        lambda c: (
            (c.role == "card_distributor" and c.relation == "own")
            or reaching({"own"}, "cards", "money", admin_reaches={"own", "descendant"})(c)
        ),
        FOUR,
    ),
    ("get", "/api/v1/cards/sales"): Route(
        lambda c, o: ("/api/v1/cards/sales", None),
        lambda c: needs("cards")(c) or c.role == "card_distributor",
    ),
    ("post", "/api/v1/cards/redeem"): Route(
        lambda c, o: ("/api/v1/cards/redeem", {"pin": o["pins"][_customer(c)], "customer": _customer(c)}),
        MONEY_CUSTOMER,
        FOUR,
    ),
    # Network, money reads.
    ("get", "/api/v1/sessions"): Route(lambda c, o: ("/api/v1/sessions", None), needs("view")),
    ("get", "/api/v1/enforcement-jobs"): Route(
        lambda c, o: ("/api/v1/enforcement-jobs", None), needs("view")
    ),
    ("post", "/api/v1/enforcement-jobs/{job_id}/retry"): Route(
        lambda c, o: (f"/api/v1/enforcement-jobs/{o['jobs'][_customer(c, '_s')]}/retry", None),
        reaching({"own"}, "network", admin_reaches={"own", "descendant"}),
        FOUR,
    ),
    ("get", "/api/v1/invoices"): Route(lambda c, o: ("/api/v1/invoices", None), needs("money")),
    # A seller sees its subtree's share of each day run.
    ("get", "/api/v1/billing-runs"): Route(lambda c, o: ("/api/v1/billing-runs", None), needs("money")),
    # The subscriber's own account.
    ("get", "/api/v1/me"): Route(lambda c, o: ("/api/v1/me", None), subscriber),
    ("get", "/api/v1/me/usage"): Route(lambda c, o: ("/api/v1/me/usage", None), subscriber),
    ("get", "/api/v1/me/invoices"): Route(lambda c, o: ("/api/v1/me/invoices", None), subscriber),
    ("get", "/api/v1/me/payments"): Route(lambda c, o: ("/api/v1/me/payments", None), subscriber),
    ("get", "/api/v1/me/packages"): Route(lambda c, o: ("/api/v1/me/packages", None), subscriber),
    ("post", "/api/v1/me/redeem"): Route(
        lambda c, o: ("/api/v1/me/redeem", {"pin": o["pins"]["alice"]}), subscriber
    ),
    ("post", "/api/v1/me/buy"): Route(lambda c, o: ("/api/v1/me/buy", {"package": "Home 10M"}), subscriber),
}


def _build_matrix_isp(engine, pin_key: bytes) -> dict:
    """The API world plus what the matrix needs: more operators, state twins, cards, tokens, jobs."""
    build_isp(engine)
    calendar = world.on()
    objects = {"pins": {}, "batches": {}, "tokens": {}, "jobs": {}}
    with engine.begin() as connection:
        admin = world.actor(connection, "admin")
        reseller1 = world.actor(connection, "reseller1")
        for permission in MANAGER_PERMISSIONS:
            operators.add_operator(connection, reseller1, f"r1m_{permission}", "manager")
            operators.permit(connection, admin, f"r1m_{permission}", permission)
            credentials.set_password(connection, admin, f"r1m_{permission}", PASSWORD, world.NOW)
        operators.add_operator(connection, reseller1, "sub2", "sub_reseller")
        operators.add_operator(connection, reseller1, "sub3", "sub_reseller")
        operators.add_operator(
            connection, reseller1, "post1", "sub_reseller", billing_mode="postpaid", credit_limit=10**7
        )
        operators.add_operator(
            connection, admin, "post0", "reseller", billing_mode="postpaid", credit_limit=10**7
        )
        operators.add_operator(connection, admin, "rblocked", "reseller")
        for login in ("sub2", "post1"):
            packages.assign_package(
                connection, reseller1, "Home 10M", login, operator_price=world.money("450")
            )
            packages.assign_package(
                connection, reseller1, "Lite 5M", login, operator_price=world.money("250")
            )
        operators.settle(
            connection, reseller1, "sub2", world.money("2000"), mode="prepaid", today=world.TODAY
        )
        for login in ("sub3", "rblocked"):
            operators.set_status(connection, admin, login, "blocked")
        operators.permit(connection, admin, "sub1", "manage_descendants")  # for the revoke route
        world.add_customer_of(connection, "admin", "dave", calendar)
        world.add_customer_of(connection, "sub2", "frank", calendar)
        for owner, name in (
            ("admin", "dave"),
            ("reseller1", "alice"),
            ("reseller2", "bob"),
            ("sub1", "carol"),
            ("sub2", "frank"),
        ):
            who = world.actor(connection, owner)
            for suffix in ("_s", "_d"):
                world.add_customer_of(connection, owner, name + suffix, calendar)
            wallets.receive_payment(connection, who, name, world.money("2000"), calendar)
            wallets.receive_payment(connection, who, name + "_s", world.money("2000"), calendar)
            lifecycle.suspend(connection, who, name + "_s", calendar)
            lifecycle.delete_customer(connection, who, name + "_d", calendar)
            distributor = "r1cards" if owner == "reseller1" else None
            issued = cards.create_batch(
                connection, who, 1, pin_key, value=world.money("10"), distributor=distributor
            )
            objects["pins"][name] = issued[0]["pin"]
            objects["batches"][owner] = issued[0]["batch_id"]
        for login in ("admin", "reseller1", "reseller2", "sub1", "sub2"):
            row, _ = credentials.create_api_token(connection, admin, login, "crm", world.NOW)
            objects["tokens"][login] = row["id"]
        from sqlalchemy import select

        from schema.tables import customers as customers_table
        from schema.tables import enforcement_jobs

        for job_id, username in connection.execute(
            select(enforcement_jobs.c.id, customers_table.c.username).join(
                customers_table, customers_table.c.id == enforcement_jobs.c.customer_id
            )
        ):
            objects["jobs"][username] = job_id
    return objects


def _cases(route: Route) -> list[Case]:
    cases = []
    for role, (who, may, home) in ROLES.items():
        relations = route.relations
        if home is not None and relations != ("none",):
            relations = tuple(r for r in relations if r in CUSTOMERS[home] or r in OPERATORS[home])
        for relation in relations:
            cases.append(Case(role, who, may, home, relation))
    return cases


def test_every_route_has_an_entry(engine, tmp_path):
    with make_client(engine, tmp_path, Clock()) as client:
        document = client.get("/api/v1/openapi.json").json()
    routes = {(method, path) for path, operations in document["paths"].items() for method in operations}
    assert routes - set(ROUTES) == set(), "routes without an entry in the tenancy matrix"
    assert set(ROUTES) - routes == set(), "matrix entries for routes that do not exist"


def test_every_role_gets_the_answer_the_rules_give(engine, tmp_path):
    objects = _build_matrix_isp(engine, cards.load_pin_key(tmp_path))
    client = make_client(engine, tmp_path, Clock())
    headers = {}
    with client:
        for role, (login_name, _, _) in ROLES.items():
            if login_name is None:
                headers[role] = {}
            elif login_name.startswith("subscriber:"):
                headers[role] = login(client, login_name, "pw")
            else:
                headers[role] = login(client, login_name, PASSWORD)
        outer = engine.connect()
        outer.begin()

        def rolled_back():
            savepoint = outer.begin_nested()
            try:
                yield outer
            finally:
                savepoint.rollback()

        client.app.dependency_overrides[deps._transaction] = rolled_back
        wrong = []
        try:
            for (method, _), route in sorted(ROUTES.items(), key=lambda item: item[0][1]):
                for case in _cases(route):
                    path, body = route.call(case, objects)
                    answer = client.request(method, path, json=body, headers=headers[case.role])
                    if case.role == "anonymous" and route.status != {401}:
                        expected = {401}
                    elif route.allowed(case):
                        expected = route.status
                    elif case.role == "subscriber" or route.status == {401}:
                        expected = {403} if route.status != {401} else {401}
                    else:
                        expected = {403, 404}
                    if answer.status_code not in expected:
                        wrong.append(
                            f"{case.role} {case.relation}: {method.upper()} {path} -> {answer.status_code} "
                            f"(expected {sorted(expected)}): {answer.text[:160]}"
                        )
        finally:
            client.app.dependency_overrides.clear()
            outer.rollback()
            outer.close()
    assert wrong == [], "\n".join(wrong)
