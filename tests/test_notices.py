"""Notices: the fake SMS gateway receives each cause once; failures are retried, then given up."""

import json
import threading
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from billingd import notices
from schema.settings import NoticeSettings
from schema.tables import notice_outbox
from tests.conftest import free_port


class FakeGateway:
    """A real HTTP server on a free port that records every request and answers ``status``."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                gateway.requests.append(
                    dict(
                        method=self.command,
                        path=self.path,
                        headers=dict(self.headers),
                        body=self.rfile.read(length).decode(),
                    )
                )
                self.send_response(gateway.status)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway():
    fake = FakeGateway()
    yield fake
    fake.close()


def settings_for(gateway: FakeGateway, **overrides) -> NoticeSettings:
    return NoticeSettings(
        sms_url=f"http://127.0.0.1:{gateway.port}/send?to={{phone}}",
        sms_headers="Authorization: Bearer T0KEN\nContent-Type: application/x-www-form-urlencoded",
        sms_body="text={message}&from=ISP",
        **overrides,
    )


def rows(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(select(notice_outbox).order_by(notice_outbox.c.id)).all()


def queue(engine, settings, now):
    from zoneinfo import ZoneInfo

    with engine.begin() as connection:
        return notices.queue_reminders(connection, now, settings, ZoneInfo("Asia/Dhaka"))


def test_expiry_and_low_wallet_notices_reach_the_gateway_once_per_cause(cli, engine, gateway):
    cli("demo")
    cli(
        "customer",
        "add",
        "rasel",
        "--password",
        "pw",
        "--package",
        "PPPoE 10M",
        "--phone",
        "+8801711000001",
        "--name",
        "Rasel",
    )
    settings = settings_for(gateway, expiry_days=31, low_wallet="100")
    now = datetime.now(UTC)
    assert queue(engine, settings, now) == 2  # demo has no phone
    assert queue(engine, settings, now + timedelta(hours=1)) == 0  # the same causes
    sent = notices.deliver_due(engine, notices.SmsGateway(settings), now)
    assert sent == notices.Delivery(sent=2)
    assert (
        notices.deliver_due(engine, notices.SmsGateway(settings), now + timedelta(minutes=5))
        == notices.Delivery()
    )
    assert len(gateway.requests) == 2
    texts = sorted(urllib.parse.parse_qs(request["body"])["text"][0] for request in gateway.requests)
    assert texts[0].startswith("Dear Rasel, your PPPoE 10M internet expires on ")
    assert texts[1] == "Dear Rasel, your internet balance is 0.00. Please recharge."
    request = gateway.requests[0]
    assert request["method"] == "POST" and request["path"] == "/send?to=%2B8801711000001"
    assert request["headers"]["Authorization"] == "Bearer T0KEN"
    assert [(row.kind, row.status, row.attempts) for row in rows(engine)] == [
        ("expiry", "sent", 1),
        ("low_wallet", "sent", 1),
    ]

    # A top-up that leaves the wallet low is a new cause: told once more, and only once.
    cli("customer", "topup", "rasel", "20")
    assert queue(engine, settings, now) == 1
    assert queue(engine, settings, now) == 0
    notices.deliver_due(engine, notices.SmsGateway(settings), now)
    assert len(gateway.requests) == 3 and "20.00" in gateway.requests[-1]["body"]


def test_a_failing_gateway_is_retried_with_backoff_then_given_up(cli, engine, gateway):
    cli("demo")
    cli("operator", "contact", "reseller1", "--phone", "+8801711000002")
    cli("notice", "broadcast", "Maintenance tonight 2-4 AM")
    gateway.status = 500
    sender = notices.SmsGateway(settings_for(gateway))
    now = datetime.now(UTC)
    assert notices.deliver_due(engine, sender, now) == notices.Delivery(retried=1)
    assert (
        notices.deliver_due(engine, sender, now + timedelta(seconds=5)) == notices.Delivery()
    )  # not due yet
    at = now
    for attempt in range(2, notices.MAX_ATTEMPTS + 1):
        at += timedelta(seconds=notices.retry_delay(attempt - 1) + 1)
        notices.deliver_due(engine, sender, at)
    [row] = rows(engine)
    assert (row.status, row.attempts) == ("failed", notices.MAX_ATTEMPTS) and "500" in row.last_error
    assert len(gateway.requests) == notices.MAX_ATTEMPTS
    gateway.status = 200
    assert notices.deliver_due(engine, sender, at + timedelta(days=1)) == notices.Delivery()


def test_broadcast_reaches_every_active_reseller_below_with_a_phone(cli, engine, gateway):
    cli("demo")
    cli("operator", "contact", "reseller1", "--phone", "+8801711000003", "--email", "r1@example.net")
    result = cli("notice", "broadcast", "Maintenance tonight 2-4 AM")
    assert result.stdout == "queued for 1 resellers; billingd sends them\n"
    assert "no phone, not told: subreseller1" in result.stderr
    cli("--as", "reseller1", "operator", "contact", "subreseller1", "--phone", "+8801711000004")
    assert (
        "queued for 1 resellers"
        in cli("--as", "reseller1", "notice", "broadcast", "Fibre cut in Road 27").stdout
    )
    settings = NoticeSettings(
        sms_url=f"http://127.0.0.1:{gateway.port}/api",
        sms_headers="Content-Type: application/json",
        sms_body='{"to": "{phone}", "text": "{message}"}',
        sms_body_format="json",
    )
    assert notices.deliver_due(engine, notices.SmsGateway(settings), datetime.now(UTC)) == notices.Delivery(
        sent=2
    )
    bodies = sorted(
        (json.loads(request["body"])["to"], json.loads(request["body"])["text"])
        for request in gateway.requests
    )
    assert bodies == [
        ("+8801711000003", "Maintenance tonight 2-4 AM"),
        ("+8801711000004", "Fibre cut in Road 27"),
    ]
    cli("operator", "add", "noc1", "--role", "noc")
    assert "is not allowed to" in cli("--as", "noc1", "notice", "broadcast", "x", expect_exit=1).output
    assert "must not be empty" in cli("notice", "broadcast", "  ", expect_exit=1).output


def test_without_a_gateway_notices_are_only_logged(cli, engine, caplog):
    cli("demo")
    cli("operator", "contact", "reseller1", "--phone", "+8801711000005")
    cli("notice", "broadcast", "hello")
    with caplog.at_level("INFO"):
        assert notices.deliver_due(engine, notices.SmsGateway(NoticeSettings()), datetime.now(UTC)).sent == 1
    assert "SMS to +8801711000005 (no gateway configured, only logged): hello" in caplog.text
