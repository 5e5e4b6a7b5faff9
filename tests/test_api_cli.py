"""The CLI side of the API's credentials: passwords, API tokens, the audit trail."""

import json

from sqlalchemy import select

from schema.tables import api_tokens, operators


def _hash(engine, login):
    with engine.connect() as connection:
        return connection.execute(
            select(operators.c.password_hash).where(operators.c.login == login)
        ).scalar()


def test_passwords_are_prompted_or_generated_and_stored_as_argon2id(cli, engine):
    from click.testing import CliRunner

    from cli.main import radbill

    runner = CliRunner()
    result = runner.invoke(
        radbill,
        ["operator", "add", "admin", "--role", "admin", "--password"],
        env=cli.env,
        input="a long admin password\na long admin password\n",
    )
    assert result.exit_code == 0, result.output
    assert "a long admin password" not in result.output.replace("New password", "")
    assert _hash(engine, "admin").startswith("$argon2id$")
    printed = cli("operator", "add", "reseller1", "--role", "reseller", "--generate-password").output
    password = printed.rsplit(": ", 1)[1].strip()
    assert len(password) >= 16 and password not in _hash(engine, "reseller1")
    short = runner.invoke(radbill, ["operator", "passwd", "reseller1"], env=cli.env, input="short\nshort\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    again = cli("operator", "passwd", "reseller1", "--generate").output
    assert "shown once" in again and _hash(engine, "reseller1") != password
    # Never in --json output.
    assert "argon2" not in cli("--json", "operator", "show", "reseller1").output


def test_api_tokens_are_shown_once_listed_without_the_token_and_revoked(cli, engine):
    cli("operator", "add", "admin", "--role", "admin")
    cli("operator", "add", "reseller1", "--role", "reseller")
    created = cli("operator", "token", "create", "reseller1", "--name", "crm").output
    token = created.rsplit(": ", 1)[1].strip()
    assert token.startswith("rbt_")
    listed = json.loads(cli("--json", "operator", "token", "list").output)
    assert [(row["operator"], row["name"], row["revoked_at"]) for row in listed] == [
        ("reseller1", "crm", None)
    ]
    assert token not in json.dumps(listed)
    with engine.connect() as connection:
        assert token not in str(connection.execute(select(api_tokens)).all())
    cli("operator", "token", "revoke", str(listed[0]["id"]))
    assert json.loads(cli("--json", "operator", "token", "list").output)[0]["revoked_at"] is not None
    assert "no API token #99" in cli("operator", "token", "revoke", "99", expect_exit=1).stderr


def test_the_audit_trail_lists_who_acted_as_whom(cli):
    cli("operator", "add", "admin", "--role", "admin")
    cli("operator", "add", "reseller1", "--role", "reseller")
    cli("--as", "reseller1", "zone", "add", "Z1")
    rows = json.loads(cli("--json", "audit", "list").output)
    act_as = [row for row in rows if row["action"] == "operator.act_as"]
    assert [(row["actor"], row["acting_as"]) for row in act_as] == [("admin", "reseller1")]
    zone = [row for row in rows if row["action"] == "zone.add"]
    assert [(row["actor"], row["acting_as"]) for row in zone] == [("admin", "reseller1")]
