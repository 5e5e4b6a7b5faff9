"""``radbill attempts``: the latest authentication attempts of a subscriber."""

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from schema.tables import radpostauth


def test_attempts_newest_first_limited_and_case_insensitive(cli, engine):
    cli("operator", "add", "admin", "--role", "admin")
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(radpostauth),
            [
                {"callingstationid": None, "nasipaddress": None, **row}
                for row in [
                    dict(
                        username="alice",
                        reply="Access-Reject",
                        reason="wrong_password",
                        nasipaddress="10.0.0.1",
                        authdate=start,
                    ),
                    dict(
                        username="alice",
                        reply="Access-Reject",
                        reason="mac_mismatch",
                        nasipaddress="10.0.0.1",
                        callingstationid="AA:BB:CC:DD:EE:FF",
                        authdate=start + timedelta(minutes=1),
                    ),
                    dict(
                        username="alice",
                        reply="Access-Accept",
                        reason="ok",
                        nasipaddress="10.0.0.2",
                        authdate=start + timedelta(minutes=2),
                    ),
                    dict(username="bob", reply="Access-Accept", reason="ok", authdate=start),
                ]
            ],
        )
    result = cli("--json", "attempts", "ALICE", "--limit", "2")
    rows = json.loads(result.output)
    assert [(row["reply"], row["reason"]) for row in rows] == [
        ("Access-Accept", "ok"),
        ("Access-Reject", "mac_mismatch"),
    ]
    text = cli("attempts", "alice").output.splitlines()
    assert text[0].split() == ["AUTHDATE", "REPLY", "REASON", "NASIPADDRESS", "CALLINGSTATIONID"]
    assert "wrong_password" in text[3] and len(text) == 4


def test_attempts_of_someone_never_seen(cli):
    cli("operator", "add", "admin", "--role", "admin")
    assert "no authentication attempts recorded for carol" in cli("attempts", "carol").output
    assert json.loads(cli("--json", "attempts", "carol").output) == []
    assert "0 is not in the range" in cli("attempts", "carol", "--limit", "0", expect_exit=1).output


def test_attempts_are_seen_by_whoever_sees_the_customer(cli):
    cli("demo")
    cli("operator", "add", "r2", "--role", "reseller")
    assert "no authentication attempts recorded for demo" in cli("attempts", "demo").output
    refused = cli("--as", "r2", "attempts", "demo", expect_exit=1).output
    assert "customer 'demo' is not visible to r2" in refused
    assert "no customer 'stranger'" in cli("--as", "r2", "attempts", "stranger", expect_exit=1).output
