"""``radbill enforcement list`` and ``retry``; ``nas add|set``'s RouterOS API TLS options."""

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


def test_the_api_tls_check_is_set_per_nas_and_bad_values_are_one_line(cli, tmp_path):
    cli("operator", "add", "admin", "--role", "admin")
    cli("nas", "add", "core1", "--ip", "10.0.0.1", "--secret", "s3cret", "--api-user", "radbill", "--api-tls")
    shown = json.loads(cli("--json", "nas", "show", "core1").output)
    assert (shown["api_tls_verify"], shown["api_tls_ca_file"], shown["api_tls_fingerprint"]) == (
        True,
        None,
        None,
    )
    pinned = ":".join(["AB"] * 32)
    cli("nas", "set", "core1", "--api-tls-fingerprint", pinned)
    assert json.loads(cli("--json", "nas", "show", "core1").output)["api_tls_fingerprint"] == "ab" * 32
    cli("nas", "set", "core1", "--api-tls-insecure")
    assert json.loads(cli("--json", "nas", "show", "core1").output)["api_tls_verify"] is False
    ca = tmp_path / "radbill-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cli("nas", "set", "core1", "--api-tls-verify", "--api-tls-fingerprint", "", "--api-tls-ca-file", str(ca))
    shown = json.loads(cli("--json", "nas", "show", "core1").output)
    assert (shown["api_tls_verify"], shown["api_tls_ca_file"], shown["api_tls_fingerprint"]) == (
        True,
        str(ca),
        None,
    )
    for option, value, message in [
        (
            "--api-tls-fingerprint",
            "12:34",
            "invalid certificate fingerprint '12:34': give its SHA-256 as 64 hex digits",
        ),
        ("--api-tls-ca-file", str(tmp_path / "absent.crt"), "no CA certificate file"),
    ]:
        result = cli("nas", "set", "core1", option, value, expect_exit=1)
        assert result.output.startswith(f"radbill: error: {message}") and len(result.output.splitlines()) == 1
