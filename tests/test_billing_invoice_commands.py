"""`radbill invoice payments|receipt`: payments received and their receipts, each for its actor."""

import json

from billingd import runs, wallets
from tests.billing_world import SETTINGS, add_customer_of, build, money, on


def test_receipts_are_listed_for_whoever_may_see_them(engine, cli):
    with engine.begin() as connection:
        build(connection)
        reseller1 = add_customer_of(connection, "reseller1", "dave", on(), package="Office")
        add_customer_of(connection, "reseller2", "erin", on())
        for day in range(1, 32):
            runs.run_day(connection, on(day).today, SETTINGS, now=on(day).now)
        wallets.receive_payment(
            connection, reseller1, "dave", money("300"), on(31), method="bkash", reference="T1"
        )
    payments = json.loads(cli("--json", "invoice", "payments", "--customer", "dave").output)
    assert payments[0]["reference"] == "T1" and payments[0]["payee"] == "reseller1"
    receipt = json.loads(cli("--json", "invoice", "receipt", str(payments[0]["receipt"])).output)
    assert (receipt["payer"], receipt["amount"], receipt["method"]) == ("dave", money("300"), "bkash")
    # reseller2 sees neither dave's payments nor their receipts.
    as_reseller2 = ("--as", "reseller2")
    assert (
        "not visible"
        in cli(*as_reseller2, "invoice", "receipt", str(payments[0]["receipt"]), expect_exit=1).stderr
    )
    assert {
        row["payer"] for row in json.loads(cli("--json", *as_reseller2, "invoice", "payments").output)
    } == {"erin"}
