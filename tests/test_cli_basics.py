"""The CLI's own behaviour: db commands, NAS commands, demo data, errors."""

import json
import subprocess

import pytest
from sqlalchemy import func, select

from schema import migrate
from schema.tables import audit_log, change_log, customers, operators
from tests.conftest import RADBILL


@pytest.mark.interop
def test_db_upgrade_and_current_on_a_new_file(tmp_path):
    env = {"RADBILL_DATABASE_URL": f"sqlite:///{tmp_path}/new/radbill.sqlite", "PATH": "/usr/bin:/bin"}
    current = subprocess.run(RADBILL + ["db", "current"], capture_output=True, text=True, env=env)
    assert current.stdout.startswith("empty (behind")
    upgraded = subprocess.run(
        RADBILL + ["db", "upgrade"], capture_output=True, text=True, env=env, check=True
    )
    assert upgraded.stdout.strip() == f"database at revision {migrate.head()}"
    current = subprocess.run(RADBILL + ["db", "current"], capture_output=True, text=True, env=env, check=True)
    assert current.stdout.strip() == f"{migrate.head()} (up to date)"


def test_nas_add_list_show_set(cli, engine):
    cli("operator", "add", "admin", "--role", "admin")
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "s3cret", "--coa-port", "1700")
    cli(
        "nas", "add", "edge", "--ip", "2001:db8::1", "--secret", "x", "--require-message-authenticator", "yes"
    )
    listed = json.loads(cli("--json", "nas", "list").output)
    assert [
        (n["name"], n["ip_address"], n["coa_port"], n["require_message_authenticator"]) for n in listed
    ] == [
        ("core1", "10.0.0.1", 1700, "auto"),
        ("edge", "2001:db8::1", 3799, "yes"),
    ]
    table = cli("nas", "list").output.splitlines()
    assert table[0].split()[:3] == ["NAME", "IP_ADDRESS", "COA_PORT"]
    assert table[1].split()[:3] == ["core1", "10.0.0.1", "1700"]
    shown = json.loads(cli("--json", "nas", "show", "core1").output)
    assert "secret" not in shown and shown["coa_port"] == 1700
    cli("nas", "set", "core1", "--secret", "n3w", "--ip", "10.0.0.2")
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(func.count()).select_from(change_log).where(change_log.c.entity == "nas")
            ).scalar()
            == 3
        )
        audits = connection.execute(
            select(audit_log.c.action, audit_log.c.details).order_by(audit_log.c.id)
        ).all()
    assert [a.action for a in audits] == ["operator.add", "nas.add", "nas.add", "nas.update"]
    assert audits[-1].details["secret"] == "***"


def test_nas_mistakes_are_one_line_and_change_nothing(cli, engine):
    cli("operator", "add", "admin", "--role", "admin")
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "s")
    for args, message in [
        (
            ["nas", "add", "core2", "--ip", "10.0.0.1", "--secret", "s"],
            "NAS 'core1' already has ip address 10.0.0.1",
        ),
        (["nas", "add", "core1", "--ip", "10.0.0.9", "--secret", "s"], "NAS 'core1' already has name core1"),
        (["nas", "add", "bad", "--ip", "10.0.0.300", "--secret", "s"], "invalid IP address '10.0.0.300'"),
        (["nas", "add", "bad", "--ip", "10.0.0.3", "--secret", ""], "the RADIUS secret must not be empty"),
        (
            ["nas", "add", "bad", "--ip", "10.0.0.3", "--secret", "s", "--coa-port", "0"],
            "Invalid value for '--coa-port'",
        ),
        (["nas", "set", "ghost", "--secret", "s"], "no NAS named 'ghost'"),
        (["nas", "set", "core1"], "nothing to change"),
    ]:
        result = cli(*args, expect_exit=1)
        assert result.stderr.startswith(f"radbill: error: {message}")
        assert len(result.stderr.splitlines()) == 1
    assert [n["name"] for n in json.loads(cli("--json", "nas", "list").output)] == ["core1"]


def test_demo_loads_once(cli, engine):
    first = cli("demo").output
    second = cli("demo").output
    assert "demo data loaded" in first and "already present" in second
    assert "radtest demo demo 127.0.0.1 0 testing123" in first
    with engine.connect() as connection:
        people = dict(connection.execute(select(operators.c.login, operators.c.role)).all())
        subscribers = {row.username: row for row in connection.execute(select(customers))}
    assert people == {"admin": "admin", "reseller1": "reseller", "subreseller1": "sub_reseller"}
    assert set(subscribers) == {"demo", "expired"}
    assert subscribers["demo"].password == "demo"
    assert json.loads(cli("--json", "nas", "list").output)[0]["ip_address"] == "127.0.0.1"


def test_no_output_shows_a_router_secret_or_a_password(cli):
    """``--json nas list`` printed every router's secret and API password (the JSON printer ignored the columns)."""
    cli("demo")
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "radius-Secret-1", "--api-user", "radbill")
    cli("nas", "set", "core1", "--api-password", "api-Password-2")
    outputs = [
        cli(*json_flag, "nas", command, *name).output
        for json_flag in ([], ["--json"])
        for command, name in (("list", []), ("show", ["core1"]))
    ]
    outputs.append(cli("customer", "reset-password", "demo", "--password", "typed-Password-3").output)
    outputs += [cli(*flag, "customer", "show", "demo").output for flag in ([], ["--json"])]
    for output in outputs:
        for secret in ("radius-Secret-1", "api-Password-2", "typed-Password-3", "testing123"):
            assert secret not in output
    assert json.loads(cli("--json", "nas", "list").output)[0].keys() == {
        "name",
        "ip_address",
        "coa_port",
        "require_message_authenticator",
        "api_host",
        "description",
    }
    generated = cli("customer", "reset-password", "demo").output
    assert generated.startswith("new password for demo: ")
