"""Bad input gets one line, ``radbill: error: ...``, exit status 1, and changes nothing.

That includes click's own usage errors, and numbers too large for any
column: every integer and amount parameter of every command is fed 10^30.
"""

import json
import subprocess

import click
import pytest

from billingd.money import MAX_AMOUNT, format_amount
from cli.main import radbill
from cli.money import Amount
from tests.billing_world import snapshot
from tests.conftest import RADBILL

HUGE = str(10**30)


def leaf_commands(group: click.Group = radbill, path: tuple[str, ...] = ()):
    """Every command a user can run, as (path, command), walked from the click tree itself."""
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def _sample(param: click.Parameter) -> str:
    """A value of the right type, so that only the parameter under test is wrong."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.DateTime):
        return "2026-11-24"
    if isinstance(kind, (click.types.IntParamType, Amount)):
        return "1"
    return "x"


def _arguments(command: click.Command, tested: click.Parameter) -> list[str]:
    args, options = [], []
    for param in command.params:
        value = HUGE if param is tested else _sample(param)
        if isinstance(param, click.Argument):
            args.append(value)
        elif param is tested or (param.required and not param.is_flag):
            options += [param.opts[0], value]
    return options + ["--"] + args if args else options


NUMERIC = [
    pytest.param(path, command, param, id=" ".join(path) + " " + param.name)
    for path, command in leaf_commands()
    for param in command.params
    if isinstance(param.type, (click.types.IntParamType, Amount))
]


def test_the_walk_finds_numeric_parameters():
    names = {(" ".join(path), param.name) for path, _command, param in (p.values for p in NUMERIC)}
    assert {("customer topup", "amount"), ("enforcement retry", "job_id"), ("attempts", "limit")} <= names


@pytest.mark.parametrize("path, command, param", NUMERIC)
def test_a_number_too_large_for_any_column_is_one_line(cli, path, command, param):
    cli("operator", "add", "admin", "--role", "admin")
    result = cli(*path, *_arguments(command, param), expect_exit=1)
    assert result.stderr.startswith("radbill: error: "), result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.fixture
def shop(cli):
    cli("operator", "add", "admin", "--role", "admin")
    cli("master-package", "add", "Home", "--type", "pppoe", "--billing", "daily", "--rate", "10M/10M")
    cli("package", "add", "Home", "--master", "Home", "--customer-price", "500", "--operator-price", "400")
    cli("customer", "add", "alice", "--password", "pw", "--package", "Home")
    return cli


def test_a_master_package_names_the_address_list_its_subscribers_join(shop):
    shop(
        "master-package", "add", "Office", "--type", "static", "--billing", "monthly", "--rate", "50M/50M",
        "--address-list", "corporate",
    )  # fmt: skip
    listed = {row["name"]: row for row in json.loads(shop("--json", "master-package", "list").output)}
    assert (listed["Office"]["address_list"], listed["Home"]["address_list"]) == ("corporate", None)


@pytest.mark.parametrize(
    "args, message",
    [
        (["customer", "topup", "alice", "-5"], "No such option '-5'"),
        (["customer", "topup", "alice", "0.001"], "invalid amount '0.001'"),
        (["customer", "topup", "alice", "NaN"], "invalid amount 'NaN'"),
        (["customer", "topup", "alice", "1e3"], "invalid amount '1e3'"),
        (["customer", "topup", "alice", "92233720368547758"], "must be at most 1000000000.00"),
        (["operator", "statement", "admin", "--from", "2026-02-30"], "'2026-02-30' does not match"),
        (["customer", "list", "--status", "sleeping"], "'sleeping' is not one of"),
        (["attempts", "alice", "--limit", "1e3"], "'1e3' is not a valid integer"),
        (["attempts", "alice", "--limit", "0"], "0 is not in the range"),
        (["nas", "add", "n", "--ip", "10.0.0.1", "--secret", "s", "--api-port", "65536"], "65536 is not in"),
        (["nas", "add", "n", "--ip", "10.0.0.1", "--secret", "s", "--coa-port", "0"], "0 is not in"),
        (["operator", "add", "r", "--role", "reseller", "--id-format", "{seq:0999999999999d}"], "too long"),
        (
            ["operator", "add", "r", "--role", "reseller", "--id-format", "{zone}{seq:05d}{seq:060d}"],
            "its IDs can be longer than 64 characters",
        ),
        (["master-package", "add", "M", "--type", "pppoe", "--billing", "daily", "--rate", "1000G"], "100G"),
        (
            [
                "master-package",
                "add",
                "M",
                "--type",
                "pppoe",
                "--billing",
                "daily",
                "--rate",
                "1M",
                "--quota",
                HUGE,
            ],
            "invalid size",
        ),
        (["customer"], "missing command (see 'radbill customer --help')"),
        (["nosuch"], "No such command 'nosuch'"),
    ],
)
def test_a_mistake_is_one_line_and_changes_nothing(shop, engine, args, message):
    with engine.connect() as connection:
        before = snapshot(connection)
    result = shop(*args, expect_exit=1)
    assert result.stderr.startswith("radbill: error: ") and message in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    with engine.connect() as connection:
        assert snapshot(connection) == before


def test_the_amount_ceiling_keeps_wallets_integers(shop):
    """Two top-ups of 92233720368547758 once made a SQLite wallet a float and ``ledger verify`` fail."""
    shop("customer", "topup", "alice", format_amount(MAX_AMOUNT))
    shop("customer", "topup", "alice", format_amount(MAX_AMOUNT))
    assert json.loads(shop("--json", "customer", "show", "alice").output)["wallet_balance"] == 2 * MAX_AMOUNT
    shop("ledger", "verify")


@pytest.mark.interop
@pytest.mark.interop
def test_a_database_url_that_is_not_one_is_one_line_without_the_url():
    result = subprocess.run(
        RADBILL + ["customer", "list"],
        capture_output=True,
        text=True,
        env={"RADBILL_DATABASE_URL": "not a url with password hunter2", "RADBILL_CONFIG": ""},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("radbill: error: configuration key 'database.url' must be a database URL")
    assert "hunter2" not in result.stderr and len(result.stderr.splitlines()) == 1
