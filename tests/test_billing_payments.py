"""Payments: a reference is recorded once per method and payer (issue 12, defect 6)."""

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from billingd import customers, ledger, lifecycle, operators, wallets
from schema.errors import RadbillError
from schema.tables import payments
from tests.billing_world import TODAY, actor, add_customer_of, build, customer, fund_of, money, on


def test_a_customer_reference_is_credited_once(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "c0", on())
        add_customer_of(connection, "reseller1", "c1", on())
        wallets.receive_payment(
            connection, reseller1, "c0", money("100"), on(), method="bkash", reference="TXN123"
        )
        with pytest.raises(RadbillError, match="bkash payment TXN123 from customer c0 is already recorded"):
            wallets.receive_payment(
                connection, reseller1, "c0", money("100"), on(), method="bkash", reference="TXN123"
            )
        # Another method or another payer may carry the same text.
        wallets.receive_payment(
            connection, reseller1, "c0", money("1"), on(), method="nagad", reference="TXN123"
        )
        wallets.receive_payment(
            connection, reseller1, "c1", money("1"), on(), method="bkash", reference="TXN123"
        )
        assert customer(connection, "c0")["wallet_balance"] == money("101")
        assert ledger.verify(connection) == []


def test_an_operator_reference_is_credited_once(engine):
    with engine.begin() as connection:
        build(connection)
        admin = actor(connection, "admin")
        before = fund_of(connection, "reseller1")
        operators.settle(
            connection, admin, "reseller1", money("50"), mode="prepaid", today=TODAY, reference="BANK9"
        )
        with pytest.raises(
            RadbillError, match="cash payment BANK9 from operator reseller1 is already recorded"
        ):
            operators.settle(
                connection, admin, "reseller1", money("50"), mode="prepaid", today=TODAY, reference="BANK9"
            )
        assert fund_of(connection, "reseller1") == before + money("50")


def test_the_database_refuses_a_repeated_reference(engine):
    with engine.begin() as connection:
        build(connection)
        add_customer_of(connection, "reseller1", "c0", on())
    row = dict(customer_id=None, payee_operator_id=1, amount=1, method="bkash", reference="X1")
    with engine.begin() as connection:
        row["customer_id"] = customer(connection, "c0")["id"]
        connection.execute(insert(payments).values(**row))
    with pytest.raises(IntegrityError):
        with engine.begin() as connection:
            connection.execute(insert(payments).values(**row))
    with engine.connect() as connection:
        assert len(connection.execute(select(payments).where(payments.c.reference == "X1")).all()) == 1


def test_a_leaving_customers_wallet_is_paid_out(engine):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "c0", on())
        wallets.receive_payment(connection, reseller1, "c0", money("120"), on())
        lifecycle.delete_customer(connection, reseller1, "c0", on())
        with pytest.raises(RadbillError, match="wallet holds .* cannot pay out 9999.00"):
            wallets.pay_out(connection, reseller1, "c0", money("9999"), on())
        held = customer(connection, "c0")["wallet_balance"]
        wallets.pay_out(connection, reseller1, "c0", held, on(), method="bkash", reference="OUT1")
        assert customer(connection, "c0")["wallet_balance"] == 0
        assert ledger.verify(connection) == []


def test_customer_set_edits_details_and_audits_each_change(engine):
    from schema.tables import audit_log, enforcement_jobs

    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "c0", on())
        add_customer_of(connection, "reseller1", "c1", on())
        customers.set_customer(connection, reseller1, "c1", on(), static_ip="10.0.0.9")
        with pytest.raises(RadbillError, match="static IP 10.0.0.9 is already assigned"):
            customers.set_customer(connection, reseller1, "c0", on(), static_ip="10.0.0.9")
        with pytest.raises(RadbillError, match="nothing to change"):
            customers.set_customer(connection, reseller1, "c0", on())
        shown = customers.set_customer(
            connection,
            reseller1,
            "c0",
            on(),
            name="Rahim",
            phone="01700000000",
            mac="aa-bb-cc-dd-ee-ff",
            fields={"road": "7", "flat": "2B"},
        )
        assert (shown["name"], shown["phone"], shown["mac_binding"]) == (
            "Rahim",
            "01700000000",
            "AA:BB:CC:DD:EE:FF",
        )
        shown = customers.set_customer(connection, reseller1, "c0", on(1), phone="", fields={"flat": ""})
        assert shown["phone"] is None and shown["custom_fields"] == {"road": "7"}
        audits = (
            connection.execute(select(audit_log).where(audit_log.c.action == "customer.set")).mappings().all()
        )
        assert len(audits) == 3
        jobs = connection.execute(select(enforcement_jobs.c.reason)).scalars().all()
        assert "details_changed" in jobs
        with pytest.raises(RadbillError, match="not visible|may not|cannot"):
            customers.set_customer(connection, actor(connection, "reseller2"), "c0", on(), name="x")


def test_zones_are_edited_and_deleted_only_when_unused(engine):
    from billingd import zones

    with engine.begin() as connection:
        build(connection)
        reseller1 = actor(connection, "reseller1")
        zones.add_zone(connection, reseller1, "DN", name="Dhanmondi")
        zones.add_zone(connection, reseller1, "DN7", name="Road 7", parent_code="DN")
        with pytest.raises(RadbillError, match="a zone cannot enclose itself"):
            zones.set_zone(connection, reseller1, "DN", parent_code="DN7")
        zones.set_zone(connection, reseller1, "DN7", name="Road 7A", parent_code="")
        assert {
            row["code"]: (row["name"], row["parent"]) for row in zones.list_zones(connection, reseller1)
        } == {
            "DN": ("Dhanmondi", None),
            "DN7": ("Road 7A", None),
        }
        lifecycle.add_customer(
            connection, reseller1, "c0", password="pw", package="Home 10M", calendar=on(), zone="DN"
        )
        with pytest.raises(RadbillError, match="zone 'DN' has 1 customer"):
            zones.delete_zone(connection, reseller1, "DN")
        with pytest.raises(RadbillError, match="no zone 'DN' of reseller2"):
            zones.delete_zone(connection, actor(connection, "reseller2"), "DN")
        customers.set_customer(connection, reseller1, "c0", on(), zone="")
        zones.delete_zone(connection, reseller1, "DN")
        assert [row["code"] for row in zones.list_zones(connection, reseller1)] == ["DN7"]
