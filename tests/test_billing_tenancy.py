"""Tenancy, command by command: a reseller can neither see nor change a sibling's
customers, packages, cards or books; NOC users never see or move money; --as
is checked and audited."""

import json

import pytest
from sqlalchemy import select

from schema.tables import audit_log, operators
from tests.billing_world import snapshot
from tests.conftest import Cli


def as_operator(cli: Cli, login: str) -> Cli:
    other = Cli("")
    other.env = {**cli.env, "RADBILL_OPERATOR": login}
    return other


@pytest.fixture
def isp(cli):
    """admin; reseller1 (with sub1) and reseller2, each with a customer and a card."""
    cli("operator", "add", "admin", "--role", "admin")
    cli("operator", "add", "reseller1", "--role", "reseller", "--id-format", "R1-{seq:04d}")
    cli("operator", "permit", "reseller1", "reseller_module")
    cli("operator", "add", "reseller2", "--role", "reseller")
    cli("--as", "reseller1", "operator", "add", "sub1", "--role", "sub_reseller")
    cli("master-package", "add", "Home", "--type", "pppoe", "--billing", "daily", "--rate", "10M/10M")
    cli("package", "add", "Home", "--master", "Home", "--customer-price", "500", "--operator-price", "400")
    cli("package", "add", "Lite", "--master", "Home", "--customer-price", "300", "--operator-price", "200")
    for login in ("reseller1", "reseller2"):
        for package, price in (("Home", "400"), ("Lite", "200")):
            cli("package", "assign", package, "--to", login, "--operator-price", price)
        cli("operator", "fund", login, "5000")
    cli("--as", "reseller1", "package", "assign", "Home", "--to", "sub1", "--operator-price", "450")
    cli("--as", "reseller1", "operator", "fund", "sub1", "1000")
    as_operator(cli, "reseller1")("customer", "add", "alice", "--password", "a", "--package", "Home")
    as_operator(cli, "reseller2")("customer", "add", "bob", "--password", "b", "--package", "Home")
    as_operator(cli, "sub1")("customer", "add", "carol", "--password", "c", "--package", "Home")
    card = json.loads(
        as_operator(cli, "reseller1")("--json", "card", "batch", "--count", "1", "--value", "100").output
    )
    return {"reseller1_pin": card[0]["pin"]}


def test_a_reseller_cannot_see_a_siblings_things(cli, isp):
    reseller2 = as_operator(cli, "reseller2")
    assert [c["username"] for c in json.loads(reseller2("--json", "customer", "list").output)] == ["bob"]
    assert "not visible to reseller2" in reseller2("customer", "show", "alice", expect_exit=1).stderr
    assert "not visible to reseller2" in reseller2("customer", "show", "carol", expect_exit=1).stderr
    assert "not visible" in reseller2("operator", "show", "reseller1", expect_exit=1).stderr
    assert [o["login"] for o in json.loads(reseller2("--json", "operator", "list").output)] == ["reseller2"]
    assert "not visible" in reseller2("package", "list", "--operator", "reseller1", expect_exit=1).stderr
    assert "not visible" in reseller2("package", "list", "--operator", "sub1", expect_exit=1).stderr
    assert "not visible" in reseller2("operator", "balance", "reseller1", expect_exit=1).stderr
    assert "not visible" in reseller2("operator", "statement", "reseller1", expect_exit=1).stderr
    assert "not visible" in reseller2("operator", "statement", "sub1", expect_exit=1).stderr
    assert json.loads(reseller2("--json", "card", "list").output) == []
    # Its own things it does see.
    assert json.loads(reseller2("--json", "operator", "balance", "reseller2").output)["customers"] == 1


SIBLING_CHANGES = [
    ["customer", "suspend", "alice"],
    ["customer", "resume", "alice"],
    ["customer", "renew", "alice", "--cash"],
    ["customer", "topup", "alice", "10"],
    ["customer", "pay", "alice", "10"],
    ["customer", "change-package", "alice", "Lite"],
    ["customer", "reset-password", "alice", "--password", "x"],
    ["customer", "delete", "alice"],
    ["customer", "restore", "alice"],
    ["card", "redeem", "PIN", "--customer", "bob"],
    ["card", "redeem", "PIN", "--customer", "alice"],
    ["package", "assign", "Home", "--to", "sub1", "--operator-price", "1"],
    ["operator", "fund", "sub1", "100"],
    ["operator", "fund", "reseller1", "100"],
    ["operator", "block", "sub1"],
    ["operator", "permit", "sub1", "reseller_module"],
    ["--as", "reseller1", "customer", "list"],
    ["--as", "sub1", "customer", "list"],
]


def test_a_reseller_cannot_change_a_siblings_things(cli, isp, engine):
    for command in SIBLING_CHANGES:
        command = [isp["reseller1_pin"] if part == "PIN" else part for part in command]
        with engine.connect() as connection:
            before = snapshot(connection)
        result = as_operator(cli, "reseller2")(*command, expect_exit=1)
        assert result.stderr.startswith("radbill: error: ") and len(result.stderr.splitlines()) == 1, command
        with engine.connect() as connection:
            assert snapshot(connection) == before, command


def test_an_operator_changes_descendants_customers_only_with_permission(cli, isp):
    reseller1 = as_operator(cli, "reseller1")
    assert {c["username"] for c in json.loads(reseller1("--json", "customer", "list").output)} == {
        "alice",
        "carol",
    }
    assert "manage_descendants" in reseller1("customer", "suspend", "carol", expect_exit=1).stderr
    cli("operator", "permit", "reseller1", "manage_descendants")
    reseller1("customer", "suspend", "carol")
    # The sub-reseller cannot reach up.
    assert (
        "not visible to sub1" in as_operator(cli, "sub1")("customer", "show", "alice", expect_exit=1).stderr
    )


def test_noc_users_never_see_or_move_money(cli, isp):
    cli("operator", "add", "noc1", "--role", "noc")
    noc = as_operator(cli, "noc1")
    shown = json.loads(noc("--json", "customer", "show", "alice").output)
    assert shown["username"] == "alice" and "wallet_balance" not in shown
    assert all("wallet_balance" not in c for c in json.loads(noc("--json", "customer", "list").output))
    assert all("fund_balance" not in o for o in json.loads(noc("--json", "operator", "list").output))
    for command in (
        ["operator", "balance", "reseller1"],
        ["operator", "statement", "admin"],
        ["operator", "fund", "reseller1", "1"],
        ["package", "list"],
        ["billing", "run"],
        ["ledger", "verify"],
        ["customer", "topup", "alice", "1"],
        ["customer", "renew", "alice"],
        ["card", "batch", "--count", "1", "--value", "1"],
        ["card", "list"],
        ["customer", "add", "zed", "--password", "z", "--package", "Home"],
        ["--as", "reseller1", "customer", "list"],
    ):
        result = noc(*command, expect_exit=1)
        assert "noc1 (noc)" in result.stderr, command


def test_act_as_is_checked_and_audited(cli, isp, engine):
    cli("--as", "sub1", "customer", "list")
    as_operator(cli, "reseller1")("--as", "sub1", "customer", "list")
    assert (
        "not one of its descendants"
        in as_operator(cli, "sub1")("--as", "reseller1", "customer", "list", expect_exit=1).stderr
    )
    with engine.connect() as connection:
        logins = dict(connection.execute(select(operators.c.id, operators.c.login)).all())
        rows = (
            connection.execute(
                select(audit_log).where(audit_log.c.action == "operator.act_as").order_by(audit_log.c.id)
            )
            .mappings()
            .all()
        )
    acts = [(logins[row["actor_operator_id"]], logins[row["acting_as_operator_id"]]) for row in rows]
    assert acts[-2:] == [("admin", "sub1"), ("reseller1", "sub1")]


def test_sub_resellers_need_the_reseller_module(cli, isp):
    reseller2 = as_operator(cli, "reseller2")
    assert (
        "lacks the reseller_module permission"
        in reseller2("operator", "add", "sub2", "--role", "sub_reseller", expect_exit=1).stderr
    )
    cli("operator", "permit", "reseller2", "reseller_module")
    reseller2("operator", "add", "sub2", "--role", "sub_reseller")
    assert (
        "a reseller's parent must be the admin"
        in reseller2("operator", "add", "r3", "--role", "reseller", expect_exit=1).stderr
    )


def test_a_blocked_operator_is_refused(cli, isp):
    cli("operator", "block", "reseller2")
    assert (
        "operator 'reseller2' is blocked"
        in as_operator(cli, "reseller2")("customer", "list", expect_exit=1).stderr
    )
    cli("operator", "unblock", "reseller2")
    as_operator(cli, "reseller2")("customer", "list")
