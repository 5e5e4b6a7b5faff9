"""``radbill nas delete``: refused while the router has open sessions or unfinished jobs."""

from datetime import UTC, datetime

from sqlalchemy import insert, select, update

from nas.registry import add_nas, list_nas
from schema.outbox import enqueue
from schema.tables import audit_log, enforcement_jobs, sessions
from tests.test_nas_worker import add_customer


def test_a_router_is_deleted_once_nothing_runs_on_it(cli, engine):
    with engine.begin() as connection:
        router = add_nas(connection, "core1", "10.9.0.1", "s3cret")
        alice = add_customer(connection, "alice")
        session = connection.execute(
            insert(sessions).values(
                acct_unique_id="u1",
                acct_session_id="s1",
                nas_id=router.id,
                nas_ip_address="10.9.0.1",
                customer_id=alice,
                username="alice",
                started_at=datetime.now(UTC),
            )
        ).inserted_primary_key[0]
        job = enqueue(connection, customer_id=alice, action="disconnect", reason="expired")
        connection.execute(
            update(enforcement_jobs).where(enforcement_jobs.c.id == job).values(nas_id=router.id)
        )
    assert "1 open session(s)" in cli("nas", "delete", "core1", expect_exit=1).stderr
    with engine.begin() as connection:
        connection.execute(
            update(sessions).where(sessions.c.id == session).values(stopped_at=datetime.now(UTC))
        )
    assert "unfinished router jobs" in cli("nas", "delete", "core1", expect_exit=1).stderr
    with engine.begin() as connection:
        connection.execute(update(enforcement_jobs).where(enforcement_jobs.c.id == job).values(status="done"))
    cli("nas", "delete", "core1")
    with engine.connect() as connection:
        assert list_nas(connection) == []
        kept = connection.execute(select(sessions.c.nas_id, sessions.c.nas_ip_address)).one()
        assert tuple(kept) == (None, "10.9.0.1")
        assert connection.execute(
            select(audit_log.c.action).where(audit_log.c.action == "nas.delete")
        ).scalar()
