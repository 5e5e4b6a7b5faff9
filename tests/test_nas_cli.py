"""``radbill enforcement list`` and ``retry``."""

import json

from sqlalchemy import select, update

from schema.outbox import enqueue
from schema.tables import audit_log, enforcement_jobs
from tests.test_nas_worker import add_customer


def test_list_filters_by_status_and_retry_makes_a_failed_job_due(cli, engine):
    with engine.begin() as connection:
        alice = add_customer(connection, "alice")
        done = enqueue(connection, customer_id=alice, action="disconnect", reason="expired")
        failed = enqueue(
            connection, customer_id=alice, action="coa", reason="fup", payload={"rate_limit": "2M/2M"}
        )
        connection.execute(
            update(enforcement_jobs).where(enforcement_jobs.c.id == done).values(status="done", attempts=1)
        )
        connection.execute(
            update(enforcement_jobs)
            .where(enforcement_jobs.c.id == failed)
            .values(
                status="failed",
                attempts=6,
                last_error="alice session s1 on 10.0.0.1: CoA-NAK Unsupported-Attribute (401)",
            )
        )
    listed = json.loads(cli("enforcement", "list", "--json").output)
    assert [(job["id"], job["customer"], job["action"], job["status"]) for job in listed] == [
        (failed, "alice", "coa", "failed"),
        (done, "alice", "disconnect", "done"),
    ]
    table = cli("enforcement", "list", "--status", "failed").output.splitlines()
    assert table[0].split()[:4] == ["ID", "CUSTOMER", "NAS", "ACTION"]
    assert len(table) == 2 and table[1].endswith("CoA-NAK Unsupported-Attribute (401)")
    assert json.loads(cli("--json", "enforcement", "list", "--status", "pending").output) == []

    assert cli("enforcement", "retry", str(failed)).output.strip() == f"enforcement job {failed} is due now"
    with engine.connect() as connection:
        row = (
            connection.execute(select(enforcement_jobs).where(enforcement_jobs.c.id == failed))
            .mappings()
            .one()
        )
        assert (row["status"], row["attempts"], row["not_before"]) == ("pending", 0, None)
        retries = select(audit_log.c.action, audit_log.c.target_id).where(
            audit_log.c.action.like("enforcement.%")
        )
        assert connection.execute(retries).all() == [("enforcement.retry", failed)]

    for args, message in [
        (["retry", str(done)], f"enforcement job {done} is done; there is nothing to retry"),
        (["retry", "999"], "no enforcement job 999"),
    ]:
        result = cli("enforcement", *args, expect_exit=1)
        assert result.output.strip() == f"radbill: error: {message}"
