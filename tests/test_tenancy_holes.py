"""Regression tests for the holes of issue 11, each reproduced with the real command.

(The generated matrix in test_tenancy_matrix.py covers every command and role;
these pin each reported escalation down by name.)"""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update

from schema.outbox import enqueue
from schema.settings import BillingdSettings
from schema.tables import audit_log, billing_runs, customers, enforcement_jobs, operators, radpostauth
from tests.billing_world import snapshot
from tests.test_billing_tenancy import as_operator, isp  # noqa: F401 (fixture)


def refused(cli, login, *args):
    result = as_operator(cli, login)(*args, expect_exit=1)
    assert result.stderr.startswith("radbill: error: ") and len(result.stderr.splitlines()) == 1
    return result.stderr


def test_routers_only_for_the_admin_and_network_managers(cli, isp, engine):  # noqa: F811
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "s")
    cli("operator", "add", "cd1", "--role", "card_distributor", "--parent", "reseller1")
    cli("operator", "add", "noc0", "--role", "noc")
    cli("operator", "add", "net", "--role", "manager")
    with engine.connect() as connection:
        before = snapshot(connection)
    assert "may not change routers" in refused(
        cli, "cd1", "nas", "set", "core1", "--secret", "owned", "--require-message-authenticator", "no"
    )
    assert "not allowed to add routers" in refused(
        cli, "noc0", "nas", "add", "x", "--ip", "10.0.0.2", "--secret", "s"
    )
    assert "no operator 'nobody'" in refused(
        cli, "nobody", "nas", "add", "x", "--ip", "10.0.0.2", "--secret", "s"
    )
    assert "only the admin side" in refused(cli, "reseller1", "nas", "list")
    assert "not allowed to add routers" in refused(
        cli, "net", "nas", "add", "x", "--ip", "10.0.0.2", "--secret", "s"
    )
    with engine.connect() as connection:
        assert snapshot(connection) == before
    assert [n["name"] for n in json.loads(as_operator(cli, "noc0")("--json", "nas", "list").output)] == [
        "core1"
    ]
    cli("operator", "permit", "net", "network")
    as_operator(cli, "net")("nas", "add", "x", "--ip", "10.0.0.2", "--secret", "s")
    with engine.connect() as connection:
        actors = connection.execute(
            select(audit_log.c.actor_operator_id).where(audit_log.c.action == "nas.add")
        ).scalars()
        assert None not in list(actors)


def test_billing_run_is_the_admin_sides_and_never_in_the_future(cli, isp, engine):  # noqa: F811
    assert "only the admin side" in refused(cli, "reseller1", "billing", "run")
    assert "only the admin side" in refused(cli, "sub1", "billing", "run")
    today = datetime.now(UTC).astimezone(BillingdSettings().zone).date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert "after today" in cli("billing", "run", "--date", tomorrow, expect_exit=1).stderr
    cli("billing", "run", "--date", "1900-01-01")  # before anything was billable: nothing to run
    with engine.connect() as connection:
        assert connection.execute(select(billing_runs.c.day)).scalars().all() == []
    cli("billing", "run")
    with engine.connect() as connection:
        assert connection.execute(select(billing_runs.c.day)).scalars().all() == [today]
    # A seller sees its own share of each day, not the ISP's totals.
    cli("customer", "add", "zed", "--password", "z", "--package", "Home")
    mine = json.loads(as_operator(cli, "reseller2")("--json", "billing", "runs").output)
    assert [(row["day"], row["customers_charged"], row["amount_charged"]) for row in mine] == [
        (today.isoformat(), 0, 0)
    ]


def test_act_as_escalations_are_closed(cli, isp):  # noqa: F811
    cli("--as", "reseller1", "operator", "add", "mops", "--role", "manager")
    cli("operator", "permit", "mops", "operators")
    cli("operator", "add", "amgr", "--role", "manager")
    cli("operator", "permit", "amgr", "operators")
    cli("operator", "add", "afin", "--role", "manager")
    cli("operator", "permit", "afin", "finance")
    # A manager cannot become its home, nor an ancestor, nor a colleague with more rights.
    assert "may not act as reseller1" in refused(
        cli, "mops", "--as", "reseller1", "operator", "fund", "sub1", "50"
    )
    assert "may not act as admin" in refused(cli, "amgr", "--as", "admin", "ledger", "reverse", "1")
    assert "may not act as afin" in refused(cli, "amgr", "--as", "afin", "ledger", "verify")
    # Acting as a descendant keeps the caller's own limits: no money without finance.
    assert "not allowed" in refused(cli, "mops", "--as", "sub1", "operator", "fund", "sub1", "50")
    # Nobody grants what it does not hold.
    assert "does not hold it" in refused(cli, "reseller1", "operator", "permit", "mops", "manage_descendants")
    assert "does not hold it" in refused(cli, "amgr", "operator", "permit", "afin", "packages")
    assert "not a permission for a manager" in refused(
        cli, "admin", "operator", "permit", "mops", "reseller_module"
    )


def test_a_blocked_operators_staff_and_descendants_are_stopped(cli, isp, engine):  # noqa: F811
    cli("--as", "reseller1", "operator", "add", "m1", "--role", "manager")
    cli("operator", "permit", "m1", "customers")
    cli("operator", "block", "reseller1")
    with engine.connect() as connection:
        before = snapshot(connection)
    assert "works under 'reseller1', which is blocked" in refused(cli, "m1", "customer", "suspend", "alice")
    assert "works under 'reseller1', which is blocked" in refused(
        cli, "sub1", "customer", "add", "dave", "--password", "d", "--package", "Home"
    )
    assert "is blocked" in refused(cli, "admin", "--as", "sub1", "customer", "list")
    with engine.connect() as connection:
        assert snapshot(connection) == before


def test_customers_without_finance_moves_no_money(cli, isp, engine):  # noqa: F811
    cli("--as", "reseller1", "operator", "add", "m2", "--role", "manager")
    cli("operator", "permit", "m2", "customers")
    with engine.connect() as connection:
        before = snapshot(connection)
    for command in (
        ["customer", "add", "dave", "--password", "d", "--package", "Home"],
        ["customer", "suspend", "alice"],
        ["customer", "delete", "alice"],
        ["customer", "topup", "alice", "5"],
    ):
        assert "financial" in refused(cli, "m2", *command) or "not allowed" in refused(cli, "m2", *command)
    with engine.connect() as connection:
        assert snapshot(connection) == before
    as_operator(cli, "m2")("customer", "reset-password", "alice", "--password", "n")


def test_an_operator_login_that_does_not_exist_is_an_error(cli, isp):  # noqa: F811
    for command in (["customer", "list"], ["nas", "list"], ["enforcement", "list"], ["attempts", "alice"]):
        assert refused(cli, "nobody", *command) == "radbill: error: no operator 'nobody'\n"


def test_the_operators_table_has_the_admin_first(engine, cli, isp):  # noqa: F811
    with engine.connect() as connection:
        assert (
            connection.execute(select(operators.c.login).order_by(operators.c.id)).scalars().first()
            == "admin"
        )


def test_a_manager_cannot_become_a_seller_or_a_colleague_through_credentials(cli, isp):  # noqa: F811
    """Setting a password or a token gives all of that operator's rights: a manager with
    ``operators`` sets only NOC users' and card distributors', never a seller's or a manager's."""
    cli("--as", "reseller1", "operator", "add", "mops", "--role", "manager")
    cli("operator", "permit", "mops", "operators")
    cli("--as", "reseller1", "operator", "add", "mfin", "--role", "manager")
    cli("operator", "permit", "mfin", "finance")
    cli("--as", "reseller1", "operator", "add", "noc9", "--role", "noc")
    for target in ("sub1", "mfin"):
        assert "set by a seller above it" in refused(cli, "mops", "operator", "passwd", target, "--generate")
        assert "set by a seller above it" in refused(
            cli, "mops", "operator", "token", "create", target, "--name", "x"
        )
    # Acting as the sub-reseller does not give its credentials either.
    assert "not visible" in refused(
        cli, "mops", "--as", "sub1", "operator", "token", "create", "sub1", "--name", "x"
    )
    assert (
        "shown once" in as_operator(cli, "mops")("operator", "token", "create", "noc9", "--name", "x").output
    )
    as_operator(cli, "mops")("operator", "passwd", "noc9", "--generate")
    as_operator(cli, "reseller1")("operator", "passwd", "sub1", "--generate")


def test_no_output_shows_a_routers_secrets(cli, isp):  # noqa: F811
    """Hole 2: the JSON printer dumped the whole record, secret and API password included."""
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "Secret-77", "--api-password", "ApiPass-77")
    for args in (
        ["--json", "nas", "list"],
        ["nas", "list"],
        ["--json", "nas", "show", "core1"],
        ["nas", "show", "core1"],
    ):
        shown = cli(*args).output
        assert "core1" in shown and "Secret-77" not in shown and "ApiPass-77" not in shown


def test_attempts_and_router_jobs_follow_tenancy(cli, isp, engine):  # noqa: F811
    """Hole 3: a sibling reseller or a card distributor read another reseller's subscriber's
    attempts, listed its router jobs and re-disconnected its subscribers."""
    with engine.begin() as connection:
        alice = connection.execute(select(customers.c.id).where(customers.c.username == "alice")).scalar()
        job = enqueue(connection, customer_id=alice, action="disconnect", reason="test")
        connection.execute(
            update(enforcement_jobs).where(enforcement_jobs.c.id == job).values(status="failed")
        )
        connection.execute(
            insert(radpostauth).values(
                username="alice", reply="Access-Reject", reason="wrong_password", authdate=datetime.now(UTC)
            )
        )
    cli("--as", "reseller1", "operator", "add", "cd1", "--role", "card_distributor")
    assert "not visible" in refused(cli, "reseller2", "attempts", "alice")
    assert "not visible" in refused(cli, "reseller2", "enforcement", "retry", str(job))
    assert "not allowed" in refused(cli, "cd1", "attempts", "alice")
    assert "not allowed" in refused(cli, "cd1", "enforcement", "retry", str(job))
    assert json.loads(as_operator(cli, "reseller2")("--json", "enforcement", "list").output) == []
    refused(cli, "cd1", "enforcement", "list")
    mine = json.loads(as_operator(cli, "reseller1")("--json", "enforcement", "list").output)
    assert [(row["id"], row["customer"]) for row in mine] == [(job, "alice")]
    assert json.loads(as_operator(cli, "reseller1")("--json", "attempts", "alice").output)[0]["reason"] == (
        "wrong_password"
    )
    as_operator(cli, "reseller1")("enforcement", "retry", str(job))


def test_customer_export_reveals_passwords_to_the_admin_side_only_and_is_audited(cli, isp, engine):  # noqa: F811
    assert "only the admin side" in refused(cli, "reseller1", "customer", "export")
    cli("--as", "reseller1", "operator", "add", "m3", "--role", "manager")
    cli("operator", "permit", "m3", "customers")
    assert "only the admin side" in refused(cli, "m3", "customer", "export")
    with engine.connect() as connection:
        assert (
            connection.execute(select(audit_log.c.id).where(audit_log.c.action == "customer.export")).first()
            is None
        )
    exported = cli("customer", "export").output
    assert "alice" in exported and ",a," in exported  # alice's password, for moving subscribers
    with engine.connect() as connection:
        found = connection.execute(
            select(audit_log.c.actor_operator_id, audit_log.c.details).where(
                audit_log.c.action == "customer.export"
            )
        ).one()
    assert found.details["customers"] == 3
