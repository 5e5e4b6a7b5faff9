"""The API's endpoints do what the CLI does: customers, money, cards, subscribers; OpenAPI is valid."""

import json
from datetime import date

from openapi_spec_validator import validate
from sqlalchemy import func, insert, select

from billingd import runs
from schema.tables import customers, invoices, ledger_entries
from tests import billing_world as world
from tests.api_world import login


def _entries(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(ledger_entries)).scalar()


def test_the_openapi_document_validates_and_every_operation_is_summarised_and_typed(api):
    document = api.get("/api/v1/openapi.json").json()
    validate(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"
            answers = operation["responses"]
            success = [code for code in answers if code.startswith("2")]
            assert success, f"{method.upper()} {path} declares no success answer"
            if code := next((c for c in success if c != "204"), None):
                assert "application/json" in answers[code].get("content", {}), f"{method.upper()} {path}"
            if path not in ("/api/v1/auth/token", "/api/v1/auth/subscriber/token", "/api/v1/auth/refresh"):
                assert {"401", "403", "404"} <= set(answers), f"{method.upper()} {path} lacks its errors"
            else:
                assert {"401", "429"} <= set(answers)


def test_a_reseller_lists_and_searches_its_customers_a_page_at_a_time(api):
    headers = login(api, "reseller1")
    for number in range(5):
        answer = api.post(
            "/api/v1/customers",
            json={
                "username": f"zed{number}",
                "password": "pw",
                "package": "Home 10M",
                "phone": f"0171{number}",
            },
            headers=headers,
        )
        assert answer.status_code == 201, answer.text
    page = api.get("/api/v1/customers", params={"limit": 3}, headers=headers).json()
    assert [c["username"] for c in page["items"]] == ["alice", "carol", "zed0"]
    assert page["next_after"] == "zed0"
    rest = api.get("/api/v1/customers", params={"limit": 3, "after": "zed0"}, headers=headers).json()
    assert [c["username"] for c in rest["items"]] == ["zed1", "zed2", "zed3"]
    found = api.get("/api/v1/customers", params={"search": "01713"}, headers=headers).json()
    assert [c["username"] for c in found["items"]] == ["zed3"] and found["next_after"] is None
    assert [
        c["username"] for c in api.get("/api/v1/customers?search=ZED4", headers=headers).json()["items"]
    ] == ["zed4"]
    # A sibling's customer is not found, nor listed.
    assert api.get("/api/v1/customers?search=bob", headers=headers).json()["items"] == []
    assert api.get("/api/v1/customers/bob", headers=headers).status_code == 404
    alice = api.get("/api/v1/customers/alice", headers=headers).json()
    assert alice["wallet_balance"] == 0 and alice["wallet_balance_text"] == "0.00"
    assert alice["expires_at"].endswith("+00:00")


def test_invoices_come_a_page_at_a_time_newest_first(api, engine):
    """Keyset pages on (issued day, number), newest first: the same day's invoices do not repeat or go
    missing between pages, and a sibling's invoices never appear."""
    with engine.begin() as connection:
        ids = dict(connection.execute(select(customers.c.username, customers.c.id)).all())
        owners = dict(connection.execute(select(customers.c.username, customers.c.operator_id)).all())
        for number, (username, day) in enumerate(
            [("alice", 1), ("alice", 2), ("carol", 2), ("bob", 2), ("carol", 3), ("alice", 3), ("carol", 4)]
        ):
            connection.execute(
                insert(invoices).values(
                    number=f"INV-{number}",
                    customer_id=ids[username],
                    operator_id=owners[username],
                    period_start=date(2026, number + 1, 1),
                    period_end=date(2026, number + 1, 28),
                    amount=1000,
                    issued_on=date(2026, 11, day),
                    due_on=date(2026, 12, day),
                )
            )
    headers = login(api, "reseller1")
    seen, after = [], None
    while True:
        answer = api.get("/api/v1/invoices", params={"limit": 2, "after": after}, headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [invoice["number"] for invoice in page["items"]]
        assert len(page["items"]) <= 2
        after = page["next_after"]
        if after is None:
            break
    assert seen == ["INV-6", "INV-5", "INV-4", "INV-2", "INV-1", "INV-0"]  # INV-3 is bob's (reseller2)
    everything = api.get("/api/v1/invoices", headers=headers).json()
    assert [invoice["number"] for invoice in everything["items"]] == seen and everything["next_after"] is None
    assert api.get("/api/v1/invoices?after=INV-99", headers=headers).status_code == 400


def test_bad_input_names_the_field(api):
    headers = login(api, "reseller1")
    answer = api.post("/api/v1/customers/alice/topup", json={"amount": -5}, headers=headers)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "amount"]
    unknown = api.post("/api/v1/customers/alice/topup", json={"amount": 5, "discount": 1}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "discount"]
    refused = api.post(
        "/api/v1/customers", json={"username": "x y", "password": "p", "package": "Home 10M"}, headers=headers
    )
    assert refused.status_code == 400 and "invalid username" in refused.json()["error"]["message"]


def test_a_retried_payment_with_the_same_idempotency_key_is_paid_once(api, engine):
    headers = {**login(api, "reseller1"), "Idempotency-Key": "pay-42"}
    before = _entries(engine)
    first = api.post("/api/v1/customers/alice/topup", json={"amount": 50000}, headers=headers)
    again = api.post("/api/v1/customers/alice/topup", json={"amount": 50000}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() and first.json()["wallet_balance"] == 50000
    assert _entries(engine) == before + 1
    other = api.post("/api/v1/customers/alice/topup", json={"amount": 1}, headers=headers)
    assert other.status_code == 400 and "different request" in other.json()["error"]["message"]
    renewed = api.post("/api/v1/customers/alice/renew", json={}, headers=login(api, "reseller1")).json()
    assert renewed["wallet_balance"] == 0


def test_operator_endpoints_follow_the_cli(api):
    admin = login(api, "admin")
    added = api.post(
        "/api/v1/operators",
        json={"login": "reseller3", "role": "reseller", "credit_limit": 10000},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    assert added.json()["credit_limit_text"] == "100.00"
    assert (
        api.post("/api/v1/operators/reseller3/fund", json={"amount": 250000}, headers=admin).json()[
            "fund_balance"
        ]
        == 250000
    )
    balance = api.get("/api/v1/operators/reseller3/balance", headers=admin).json()
    assert balance["fund"] == 250000 and balance["texts"]["fund"] == "2500.00"
    lines = api.get("/api/v1/operators/reseller3/statement", headers=admin).json()
    assert [line["amount"] for line in lines] == [250000]
    password = api.put("/api/v1/operators/reseller3/password", json={}, headers=admin).json()["password"]
    assert (
        api.get("/api/v1/auth/me", headers=login(api, "reseller3", password)).json()["login"] == "reseller3"
    )
    assert api.post("/api/v1/operators/reseller3/block", headers=admin).json()["status"] == "blocked"
    noc = login(api, "noc")
    assert api.get("/api/v1/operators/reseller1", headers=noc).json()["fund_balance"] is None
    assert "wallet_balance" not in {
        key
        for key, value in api.get("/api/v1/customers/alice", headers=noc).json().items()
        if value is not None
    }


def test_customer_lifecycle_over_the_api(api):
    headers = login(api, "reseller1")
    edited = api.patch(
        "/api/v1/customers/alice", json={"name": "Alice A", "mac": "aa-bb-cc-dd-ee-ff"}, headers=headers
    )
    assert (edited.json()["name"], edited.json()["mac_binding"]) == ("Alice A", "AA:BB:CC:DD:EE:FF")
    jobs = api.get("/api/v1/enforcement-jobs", headers=login(api, "admin")).json()
    # A new MAC binding only meets a new login: the live session is cut, as from the CLI.
    assert [(job["customer"], job["action"], job["reason"]) for job in jobs] == [
        ("alice", "disconnect", "details_changed")
    ]
    renamed = api.patch("/api/v1/customers/alice", json={"name": "Alice B"}, headers=headers)
    assert renamed.json()["name"] == "Alice B"
    assert len(api.get("/api/v1/enforcement-jobs", headers=login(api, "admin")).json()) == 1
    assert api.post("/api/v1/customers/alice/suspend", headers=headers).json()["status"] == "suspended"
    assert api.get("/api/v1/customers/alice", headers=headers).json()["wallet_balance"] > 0  # refunded days
    assert api.post("/api/v1/customers/alice/resume", headers=headers).json()["status"] == "active"
    assert api.delete("/api/v1/customers/alice", headers=headers).json()["deleted_at"] is not None
    assert [
        c["username"] for c in api.get("/api/v1/customers?deleted=true", headers=headers).json()["items"]
    ] == ["alice"]
    assert api.post("/api/v1/customers/alice/restore", headers=headers).json()["deleted_at"] is None
    new = api.post("/api/v1/customers/alice/reset-password", headers=headers).json()["password"]
    assert api.get("/api/v1/me", headers=login(api, "subscriber:alice", new)).json()["username"] == "alice"


def test_a_subscriber_redeems_a_card_and_buys_from_its_wallet(api):
    reseller = login(api, "reseller1")
    card = api.post("/api/v1/cards/batches", json={"count": 1, "value": 60000}, headers=reseller).json()[
        "cards"
    ][0]
    subscriber = login(api, "subscriber:alice", "pw")
    before = api.get("/api/v1/me", headers=subscriber).json()
    assert before["wallet_balance"] == 0 and before["package"] == "Home 10M"
    redeemed = api.post("/api/v1/me/redeem", json={"pin": card["pin"]}, headers=subscriber)
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["wallet_balance_text"] == "600.00"
    again = api.post("/api/v1/me/redeem", json={"pin": card["pin"]}, headers=subscriber)
    assert again.status_code == 400
    assert [p["method"] for p in api.get("/api/v1/me/payments", headers=subscriber).json()][0] == "card"
    offered = api.get("/api/v1/me/packages", headers=subscriber).json()
    assert {p["name"] for p in offered} == {"Home 10M", "Lite 5M", "Office"}
    assert all(p["operator_price"] is None for p in offered)
    bought = api.post("/api/v1/me/buy", json={"package": "Home 10M"}, headers=subscriber).json()
    assert bought["wallet_balance"] == 10000 and bought["expires_at"] > before["expires_at"]
    usage = api.get("/api/v1/me/usage", headers=subscriber).json()
    assert usage["upload_bytes"] == usage["download_bytes"] == 0
    # Bob's card is not Alice's to use, and operators' endpoints are not hers.
    bob_card = api.post(
        "/api/v1/cards/batches", json={"count": 1, "value": 100}, headers=login(api, "reseller2")
    ).json()["cards"][0]
    assert api.post("/api/v1/me/redeem", json={"pin": bob_card["pin"]}, headers=subscriber).status_code == 400
    assert api.get("/api/v1/customers", headers=subscriber).status_code == 403
    audit = api.get("/api/v1/audit", headers=reseller).json()
    assert any(row["action"] == "card.redeem" and row["actor"] is None for row in audit)


def test_cors_is_off_by_default_and_on_for_listed_origins(engine, tmp_path, clock):
    from tests.api_world import make_client

    preflight = {"Origin": "https://panel.example", "Access-Control-Request-Method": "GET"}
    with make_client(engine, tmp_path, clock) as client:
        answer = client.options("/api/v1/customers", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
    with make_client(engine, tmp_path, clock, cors_origins="https://panel.example") as client:
        answer = client.options("/api/v1/customers", headers=preflight)
        assert answer.headers["access-control-allow-origin"] == "https://panel.example"


def test_guessing_card_pins_is_throttled_like_a_login(api):
    subscriber = login(api, "subscriber:alice", "pw")
    for attempt in range(5):
        wrong = api.post("/api/v1/me/redeem", json={"pin": f"000000000000{attempt:03d}0"}, headers=subscriber)
        assert wrong.status_code == 400, wrong.text
    card = api.post(
        "/api/v1/cards/batches", json={"count": 1, "value": 100}, headers=login(api, "reseller1")
    ).json()["cards"][0]
    locked = api.post("/api/v1/me/redeem", json={"pin": card["pin"]}, headers=subscriber)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    trail = api.get("/api/v1/audit", headers=login(api, "admin")).json()
    assert sum(row["action"] == "card.redeem_failed" for row in trail) == 5


def test_billing_runs_are_scoped_by_the_same_rule_as_the_cli(api, engine):
    """The admin side sees the ISP's totals; a seller its own customers' share; NOC users nothing."""
    runs.run_through(engine, world.TODAY, world.SETTINGS)
    admin = api.get("/api/v1/billing-runs", headers=login(api, "admin"))
    assert admin.status_code == 200 and [r["day"] for r in admin.json()] == [world.TODAY.isoformat()]
    assert isinstance(admin.json()[0]["customers_suspended"], int)
    mine = api.get("/api/v1/billing-runs", headers=login(api, "reseller2"))
    assert mine.status_code == 200, mine.text
    assert [
        (r["day"], r["customers_charged"], r["amount_charged"], r["customers_suspended"]) for r in mine.json()
    ] == [(world.TODAY.isoformat(), 0, 0, None)]
    assert api.get("/api/v1/billing-runs", headers=login(api, "r1noc")).status_code == 403


def test_a_distributor_sells_its_cards_and_a_batch_is_voided_over_the_api(api):
    reseller = login(api, "reseller1")
    batch = api.post(
        "/api/v1/cards/batches", json={"count": 3, "value": 10000, "distributor": "r1cards"}, headers=reseller
    ).json()
    assert [card["serial"] for card in batch["cards"]] == ["00001-00001", "00001-00002", "00001-00003"]
    distributor = login(api, "r1cards")
    sale = api.post(
        "/api/v1/cards/sales",
        json={"first": "00001-00001", "last": "00001-00002", "buyer": "Shop A", "commission": 1000},
        headers=distributor,
    )
    assert sale.status_code == 201, sale.text
    assert (sale.json()["amount_text"], sale.json()["cash_in_text"], sale.json()["distributor"]) == (
        "200.00",
        "190.00",
        "r1cards",
    )
    again = api.post(
        "/api/v1/cards/sales", json={"first": "00001-00002", "buyer": "Shop B"}, headers=distributor
    )
    assert again.status_code == 400 and "sold, redeemed or void already" in again.json()["error"]["message"]
    assert [s["buyer"] for s in api.get("/api/v1/cards/sales", headers=distributor).json()] == ["Shop A"]
    assert api.get("/api/v1/cards/sales", headers=login(api, "reseller2")).json() == []
    assert [c["sale"] for c in api.get("/api/v1/cards", headers=distributor).json()] == [1, 1, None]
    # A lost batch: only the card nobody bought is voided; the buyers' cards still redeem.
    voided = api.post("/api/v1/cards/batches/1/void", headers=reseller)
    assert voided.json() == {"batch": 1, "voided": 1}
    assert api.post("/api/v1/cards/batches/1/void", headers=login(api, "reseller2")).status_code in (403, 404)
    subscriber = login(api, "subscriber:alice", "pw")
    redeemed = api.post("/api/v1/me/redeem", json={"pin": batch["cards"][0]["pin"]}, headers=subscriber)
    assert redeemed.status_code == 200 and redeemed.json()["wallet_balance"] == 10000
    assert api.get("/api/v1/cards/sales", headers=reseller).json()[0]["redeemed"] == 1


def test_why_answers_as_radbill_why_does(api, cli):
    headers = login(api, "reseller1")

    def both() -> tuple[dict, dict]:
        answer = api.get("/api/v1/customers/alice/why", headers=headers)
        assert answer.status_code == 200, answer.text
        document = json.loads(cli("--json", "--as", "reseller1", "why", "alice").output)
        return answer.json(), document

    def comparable(attributes) -> list:
        return sorted([name, str(value)] for name, value in attributes if name != "Session-Timeout")

    found, document = both()
    assert (found["answer"], found["reason"]) == ("Access-Accept", "ok")
    assert comparable(found["attributes"]) == comparable(document["next_request"]["attributes"])
    assert found["sessions"] == [] and found["jobs"] == []
    assert api.post("/api/v1/customers/alice/suspend", headers=headers).status_code == 200
    found, document = both()
    assert found["answer"] == "Access-Reject" == document["next_request"]["answer"]
    assert found["reason"] == document["next_request"]["reason"] and found["message"]
    assert [job["action"] for job in found["jobs"]] == [job["action"] for job in document["jobs"]]
    assert api.get("/api/v1/customers/bob/why", headers=headers).status_code == 404  # reseller2's
