"""``radbill why``: the next answer as radiusd gives it, the attempts, the sessions, the waiting router jobs."""

import json
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select

from billingd import runs
from schema.settings import BillingdSettings
from schema.tables import radpostauth
from tests.accounting_helpers import AccountingRadiusd, acct, request_file, send_file
from tests.radius import pap

MAC = "AA:BB:CC:00:11:22"


def why(cli, username: str, *options: str) -> dict:
    return json.loads(cli("--json", "why", username, *options).output)


def comparable(reply) -> list[list[str]]:
    """radclient's view of an answer, without the attributes that depend on the second it was asked."""
    return sorted(
        [name, value]
        for name, values in reply.attributes.items()
        for value in values
        if name not in ("Session-Timeout", "Message-Authenticator")
    )


def decided(document: dict) -> list[list[str]]:
    return sorted(
        [name, str(value)]
        for name, value in document["next_request"]["attributes"]
        if name != "Session-Timeout"
    )


@pytest.mark.interop
def test_why_answers_as_radiusd_does_and_shows_the_evidence(cli, database_url, engine, tmp_path):
    cli("demo")
    with AccountingRadiusd(tmp_path, database_url) as radiusd:
        auth_port = radiusd.settings["auth_port"]
        accepted = pap(auth_port, "demo", "demo", f'Calling-Station-Id = "{MAC}"')
        rejected = pap(auth_port, "expired", "expired")
        document = why(cli, "DEMO")
        assert document["next_request"]["answer"] == accepted.code == "Access-Accept"
        assert document["next_request"]["reason"] == "ok"
        assert decided(document) == comparable(accepted)
        assert ["Mikrotik-Rate-Limit", "10M/10M"] in decided(document)
        expired = why(cli, "expired")
        assert expired["next_request"]["answer"] == rejected.code == "Access-Reject"
        assert decided(expired) == comparable(rejected)

        # One open session: the package allows one, so the next login is refused, as radiusd refuses it.
        assert (
            send_file(radiusd.acct_port, request_file(tmp_path / "start", [acct("Start", "s1")])).returncode
            == 0
        )
        busy = why(cli, "demo")
        assert [session["acct_session_id"] for session in busy["sessions"]] == ["s1"]
        assert busy["next_request"]["reason"] == "simultaneous_use"
        assert pap(auth_port, "demo", "demo").code == "Access-Reject"
        # The attempts radiusd logged (written in batches every half second).
        deadline = time.monotonic() + 30
        with engine.connect() as connection:
            while connection.execute(select(func.count()).select_from(radpostauth)).scalar() < 3:
                assert time.monotonic() < deadline, "radiusd did not write its radpostauth rows"
                connection.rollback()
                time.sleep(0.1)
    document = why(cli, "demo", "--limit", "2")
    assert [(a["reply"], a["reason"]) for a in document["attempts"]] == [
        ("Access-Reject", "simultaneous_use"),
        ("Access-Accept", "ok"),
    ]
    assert document["attempts"][1]["callingstationid"] == MAC
    assert document["jobs"] == []

    cli("customer", "suspend", "demo")
    suspended = why(cli, "demo")
    assert suspended["next_request"]["reason"] == "suspended"
    assert [(job["action"], job["status"]) for job in suspended["jobs"]] == [("disconnect", "pending")]

    text = cli("why", "demo").output
    assert text.startswith("demo: the next Access-Request gets Access-Reject (suspended)\n")
    assert "Open sessions:" in text and "Router jobs not done yet:" in text and "disconnect" in text


def test_why_is_scoped_by_tenancy(cli):
    cli("demo")
    cli("operator", "add", "noc1", "--role", "noc")
    cli("operator", "add", "cards1", "--role", "card_distributor")
    assert why(cli, "demo")["username"] == "demo"
    assert json.loads(cli("--as", "noc1", "--json", "why", "demo").output)["username"] == "demo"
    refused = cli("--as", "reseller1", "why", "demo", expect_exit=1).output
    assert "radbill: error: customer 'demo' is not visible to reseller1" in refused
    assert "is not allowed to" in cli("--as", "cards1", "why", "demo", expect_exit=1).output
    assert "radbill: error: no customer 'nobody'" in cli("why", "nobody", expect_exit=1).output


def test_daily_run_forgets_attempts_older_than_postauth_days(engine):
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(radpostauth),
            [
                dict(username="old", reply="Access-Accept", reason="ok", authdate=now - timedelta(days=31)),
                dict(username="new", reply="Access-Accept", reason="ok", authdate=now - timedelta(days=29)),
            ],
        )
    runs.run_through(engine, date.today(), BillingdSettings(postauth_days=30))
    with engine.connect() as connection:
        assert connection.execute(select(radpostauth.c.username)).scalars().all() == ["new"]
