"""The panel and the portal in-process (the whole API app, on SQLite and PostgreSQL): security, tenancy,
languages, sizes. The browser tests (test_pages_browser.py) walk the main flows in Chromium."""

import gzip
import json
import re
import threading

import pytest

from billingd import cards
from billingd.api.pages.i18n import best_language
from billingd.api.pages.session import COOKIE, CookieSigner, WebSession
from tests import api_world
from tests import billing_world as world

PAGE_BUDGET = 100 * 1024


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def log_in(client, who: str, password: str = api_world.PASSWORD, area: str = "panel"):
    token = csrf_of(client.get(f"/{area}/login").text)
    return client.post(f"/{area}/login", data={"login": who, "password": password, "csrf_token": token})


def post(client, path: str, page: str, **form):
    """Submit a form found on ``page`` (its CSRF token included)."""
    return client.post(path, data={"csrf_token": csrf_of(client.get(page).text), **form})


def flash(html: str) -> list[str]:
    return re.findall(r'class="flash [a-z]+"[^>]*>([^<]*)<', html)


def test_security_headers_and_cookie(api):
    answer = api.get("/panel/login")
    policy = answer.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "default-src 'none'" in policy
    assert answer.headers["x-frame-options"] == "DENY"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # plain HTTP here
    assert "<script>" not in answer.text and " on" not in re.sub(
        r"<script src=[^>]+>", "", answer.text
    ).split("<body>")[1].replace("option", "").replace(" one", "")  # no inline script, no on* handlers


def test_the_cookie_is_secure_over_tls(api):
    answer = api.get("https://testserver/panel/login")
    assert "secure" in answer.headers["set-cookie"].lower()


def test_a_tampered_or_old_cookie_is_ignored():
    signer = CookieSigner(b"k" * 32, max_age_seconds=60)
    session = WebSession.anonymous().signed_in("operator", 7, "reseller1")
    value = signer.dump(session)
    assert signer.load(value) == session
    payload, mac = value.rsplit(".", 1)
    assert signer.load(payload[:-2] + "AA." + mac) is None
    assert CookieSigner(b"x" * 32, 60).load(value) is None
    assert signer.load(value, now=session.issued_at + 61) is None


def test_login_and_logout_end_the_session(api):
    assert log_in(api, "reseller1").status_code == 200
    assert api.get("/panel/").status_code == 200
    post(api, "/panel/logout", "/panel/")
    answer = api.get("/panel/", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/panel/login"


def test_a_wrong_password_is_refused_and_throttled_with_the_api(api):
    answer = log_in(api, "reseller1", "wrong")
    assert answer.status_code == 401 and flash(answer.text) == ["Wrong login or password."]
    counted = api.app.state.api.registry.get_sample_value(
        "radbill_api_logins_total", {"kind": "operator", "result": "wrong_password"}
    )
    assert counted == 1  # in the API's metrics too
    for _ in range(4):
        log_in(api, "reseller1", "wrong")
    # The API and the panel share one count: the login is locked for both.
    assert (
        api.post(
            "/api/v1/auth/token", json={"login": "reseller1", "password": api_world.PASSWORD}
        ).status_code
        == 429
    )
    assert log_in(api, "reseller1").status_code == 429


def test_forms_without_the_csrf_token_are_refused(api):
    log_in(api, "reseller1")
    before = api.get("/panel/customers/alice").text
    answer = api.post("/panel/customers/alice/renew", data={"cash": "yes"})
    assert answer.status_code == 403 and "This form has expired" in answer.text
    answer = api.post("/panel/customers/alice/renew", data={"cash": "yes", "csrf_token": "forged"})
    assert answer.status_code == 403
    assert re.search(r'id="expires">([^<]*)', api.get("/panel/customers/alice").text).group(1) == re.search(
        r'id="expires">([^<]*)', before
    ).group(1)
    anonymous = api.__class__(api.app)
    assert anonymous.post("/panel/login", data={"login": "reseller1", "password": "x"}).status_code == 403


def test_siblings_and_strangers_see_nothing(api):
    log_in(api, "reseller2")
    answer = api.get("/panel/customers/alice")
    assert answer.status_code == 404 and "R1-0001" not in answer.text
    assert post(api, "/panel/customers/alice/suspend", "/panel/").status_code == 404
    assert "alice" not in api.get("/panel/customers").text
    assert "alice" not in api.get("/panel/customers.csv").text
    assert api.get("/panel/operators/sub1").status_code == 404
    assert api.get("/panel/statement?operator=reseller1").status_code == 404


def test_noc_users_see_no_money(api):
    log_in(api, "r1noc")
    page = api.get("/panel/customers/alice").text
    assert 'id="wallet"' not in page and "Renew one period" not in page
    assert "Collected today" not in api.get("/panel/").text
    assert "wallet_balance" not in api.get("/panel/customers.csv").text
    assert api.get("/panel/statement").status_code == 403


def test_reseller_lifecycle_through_the_pages(api, engine):
    log_in(api, "reseller1")
    answer = post(
        api,
        "/panel/customers/new",
        "/panel/customers/new",
        username="Dave",
        password="pw1",
        package="Home 10M",
    )
    assert flash(answer.text) == ["Customer dave added."]
    for action, form, expected in (
        ("edit", {"name": "Dave D", "phone": "01710000001", "mac": "aa:bb:cc:dd:ee:01"}, "Saved."),
        ("suspend", {}, "Suspended."),
        ("resume", {}, "Resumed."),  # today's share paid from the refund of the suspension
        ("topup", {"amount": "1000"}, "Payment recorded."),
        ("change-package", {"package": "Home 10M"}, None),  # refused, in the domain's words
        ("renew", {}, "Renewed: one more period bought."),
        ("change-package", {"package": "Lite 5M"}, "Package changed."),
        ("reset-password", {"password": "new-secret"}, "Password changed."),
        ("delete", {}, "Deleted (it can be restored)."),
        ("restore", {}, "Restored (suspended until resumed or renewed)."),
    ):
        answer = post(api, f"/panel/customers/dave/{action}", "/panel/customers/dave", **form)
        if expected is None:
            assert answer.status_code == 400 and flash(answer.text) == [
                "customer dave is already on Home 10M"
            ]
        else:
            assert flash(answer.text) == [expected], action
    assert "new-secret" not in api.get("/panel/customers/dave").text  # never shown back
    with engine.begin() as connection:
        row = world.customer(connection, "dave")
    assert row["password"] == "new-secret" and row["status"] == "suspended"
    assert (row["name"], row["phone"], row["mac_binding"]) == ("Dave D", "01710000001", "AA:BB:CC:DD:EE:01")


def test_search_filters_and_pages(api):
    log_in(api, "admin")
    rows = api.get("/panel/customers?q=car").text
    assert "carol" in rows and "alice" not in rows
    partial = api.get("/panel/customers?q=al", headers={"HX-Request": "true"}).text
    assert "alice" in partial and "<html" not in partial  # htmx gets the rows only
    assert "bob" not in api.get("/panel/customers?status=suspended").text
    csv_text = api.get("/panel/customers.csv").text.splitlines()
    assert csv_text[0].startswith("username,customer_code") and len(csv_text) == 4


def test_login_as_shows_a_banner_and_a_way_back(api, engine):
    log_in(api, "reseller1")
    answer = post(api, "/panel/act-as", "/panel/operators/sub1", login="sub1")
    assert "You are acting as sub1." in answer.text and "Back to reseller1" in answer.text
    assert "alice" not in api.get("/panel/customers").text  # sub1 sees only its own (carol)
    answer = post(api, "/panel/act-as/end", "/panel/")
    assert "You are acting as" not in answer.text
    assert "alice" in api.get("/panel/customers").text
    answer = post(api, "/panel/act-as", "/panel/operators", login="bob-the-stranger")
    assert flash(answer.text)
    log_in(api, "reseller2")
    assert "acting as" not in post(api, "/panel/act-as", "/panel/", login="sub1").text.lower()


def test_operators_fund_block_and_cards(api):
    log_in(api, "reseller1")
    answer = post(api, "/panel/operators/sub1/fund", "/panel/operators/sub1", amount="100")
    assert flash(answer.text) == ["Fund topped up."] and 'id="fund">1650.00<' in answer.text  # 1550 + 100
    page = api.get("/panel/cards").text
    answer = post(
        api, "/panel/cards", "/panel/cards", count="3", package="Home 10M", issue_key=issue_key_of(page)
    )
    # The print view is the answer to the issue, the one page with the PINs, kept by no cache.
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert flash(answer.text) == ["3 cards issued."] and answer.text.count('class="pin"') == 3
    pins = re.findall(r'class="pin">([\d ]+)<', answer.text)
    listing = api.get("/panel/cards").text + api.get("/panel/cards.csv").text
    assert "pin" not in api.get("/panel/cards.csv").text.splitlines()[0]
    assert not [pin for pin in pins if pin.replace(" ", "") in listing.replace(" ", "")]
    assert api.get("/panel/cards/1/print").status_code == 404
    answer = post(
        api,
        "/panel/operators",
        "/panel/operators",
        login="agent7",
        role="card_distributor",
        password="long enough pw",
    )
    assert flash(answer.text) == ["Operator agent7 added."]
    assert (
        "wallet of" in api.get("/panel/statement?operator=sub1").text
        or "fund" in api.get("/panel/statement?operator=sub1").text
    )
    answer = post(api, "/panel/operators/sub1/block", "/panel/operators/sub1")
    assert "blocked" in answer.text


def _pin_key(api) -> bytes:
    """The card PIN key the served application hashes with."""
    return api.app.state.api.card_pin_key


def test_subscriber_portal(api, engine):
    with engine.begin() as connection:
        pin = cards.create_batch(
            connection, world.actor(connection, "reseller1"), 1, _pin_key(api), value=100000
        )[0]["pin"]
    assert log_in(api, "bob", "wrong", area="portal").status_code == 401
    log_in(api, "alice", "pw", area="portal")
    home = api.get("/portal/").text
    assert (
        "Home 10M" in home and "10 Mbit/s down" in home and "pw" not in re.sub(r"<[^>]+>", "", home).split()
    )
    answer = post(api, "/portal/redeem", "/portal/", pin=pin)
    assert flash(answer.text) == ["Card accepted."] and re.search(r'id="wallet">1000.00<', answer.text)
    answer = post(api, "/portal/buy", "/portal/", package="Lite 5M")
    assert flash(answer.text) == ["Package bought."]
    assert "Lite 5M" in re.search(r"Package</dt><dd>([^<]*)", answer.text).group(1)
    assert post(api, "/portal/buy", "/portal/", package="Office-private").status_code == 400
    answer = post(api, "/portal/password", "/portal/", current="pw", new="fresh-pw")
    assert flash(answer.text) == ["Password changed. Use the new one on your router too."]
    assert api.get("/panel/", follow_redirects=False).status_code == 303  # a subscriber is no operator
    post(api, "/portal/logout", "/portal/")
    assert log_in(api, "alice", "fresh-pw", area="portal").status_code == 200


def test_bengali_pages(api):
    api.cookies.set("radbill_lang", "bn")
    assert 'lang="bn"' in api.get("/panel/login").text
    assert "লগইন" in api.get("/panel/login").text
    assert best_language(None, "bn-BD,bn;q=0.9,en;q=0.5", ["en", "bn"]) == "bn"
    assert best_language(None, "fr, de;q=0.8", ["en", "bn"]) == "en"
    assert best_language("en", "bn", ["en", "bn"]) == "en"


@pytest.mark.parametrize(
    "who,area,paths",
    [
        (
            "reseller1",
            "panel",
            [
                "/panel/",
                "/panel/customers",
                "/panel/customers/alice",
                "/panel/operators",
                "/panel/cards",
                "/panel/statement",
            ],
        ),
        ("alice", "portal", ["/portal/"]),
    ],
)
def test_every_page_is_small(api, who, area, paths):
    log_in(api, who, api_world.PASSWORD if area == "panel" else "pw", area=area)
    assets = sum(
        len(gzip.compress(api.get(f"/static/{name}").content)) for name in ("htmx.min.js", "radbill.css")
    )
    for path in paths:
        answer = api.get(path, headers={"accept-encoding": "gzip"})
        assert answer.status_code == 200
        assert len(gzip.compress(answer.content)) + assets < PAGE_BUDGET, path


def test_static_files_are_cached_and_vendored(api):
    answer = api.get("/static/htmx.min.js")
    assert answer.status_code == 200 and "immutable" in answer.headers["cache-control"]
    assert answer.text.startswith("/* htmx 2.0.11")
    assert COOKIE not in answer.headers.get("set-cookie", "")


def test_dashboard_figures(api):
    log_in(api, "reseller1")
    post(api, "/panel/customers/alice/renew", "/panel/customers/alice", cash="yes")
    page = api.get("/panel/").text
    assert re.search(r"Collected today</dt><dd>1500.00<", page)  # alice and carol at activation, the renewal
    assert re.search(r'status=active">2<', page)  # alice and sub1's carol
    assert 'hx-get="/panel/dashboard/chart"' in page
    fragment = api.get("/panel/dashboard/chart", headers={"HX-Request": "true"}).text
    assert "<html" not in fragment and "<svg" in fragment
    assert re.search(r'id="charged">\d+\.\d\d<', fragment)
    assert "<html" in api.get("/panel/dashboard/chart").text  # without JavaScript: a page of its own
    log_in(api, "r1noc")
    assert api.get("/panel/dashboard/chart").status_code == 403


def issue_key_of(html: str) -> str:
    return re.search(r'name="issue_key" value="([^"]+)"', html).group(1)


def test_a_resent_issue_form_issues_no_second_batch(api, engine):
    """Refreshing the print view resends its form: the form's one-time key issues nothing more and
    sends the resend back to the cards page, naming the batch."""
    log_in(api, "reseller1")
    page = api.get("/panel/cards").text
    form = {"csrf_token": csrf_of(page), "issue_key": issue_key_of(page), "count": "2", "package": "Home 10M"}
    assert api.post("/panel/cards", data=form).text.count('class="pin"') == 2

    def issued() -> int:
        with engine.connect() as connection:
            return len(cards.list_cards(connection, world.actor(connection, "reseller1")))

    before = issued()
    resent = api.post("/panel/cards", data=form, follow_redirects=False)
    assert resent.status_code == 303 and resent.headers["location"] == "/panel/cards"
    answer = api.get("/panel/cards")
    assert 'class="pin"' not in answer.text and "was issued by this form already" in flash(answer.text)[0]
    assert issued() == before
    # Another form with the same key is refused; a fresh form issues anew; a form without a key, nothing.
    other = api.post("/panel/cards", data={**form, "count": "5"})
    assert "already used for a different request" in flash(other.text)[0] and issued() == before
    assert api.post("/panel/cards", data={**form, "issue_key": issue_key_of(answer.text)}).status_code == 200
    assert issued() == before + 2
    form.pop("issue_key")
    assert "out of date" in flash(api.post("/panel/cards", data=form).text)[0] and issued() == before + 2


@pytest.mark.postgresql
def test_a_form_sent_twice_at_once_issues_one_batch(api, engine, monkeypatch):
    """A double click: both sendings find the key unused and make a batch; the one that stores the
    key second is rolled back (PostgreSQL's unique key) and answered as a resend."""
    if engine.dialect.name != "postgresql":
        pytest.skip(
            "SQLite serialises writers at BEGIN IMMEDIATE: the second sending waits, then finds the key"
        )
    log_in(api, "reseller1")
    page = api.get("/panel/cards").text
    form = {"csrf_token": csrf_of(page), "issue_key": issue_key_of(page), "count": "2", "package": "Home 10M"}
    both_made_one = threading.Barrier(2, timeout=30)
    create_batch = cards.create_batch

    def in_step(*args, **kwargs):
        made = create_batch(*args, **kwargs)
        both_made_one.wait()
        return made

    def issued() -> int:
        with engine.connect() as connection:
            return len(cards.list_cards(connection, world.actor(connection, "reseller1")))

    before = issued()
    monkeypatch.setattr(cards, "create_batch", in_step)
    answers = []
    sendings = [
        threading.Thread(
            target=lambda: answers.append(api.post("/panel/cards", data=form, follow_redirects=False))
        )
        for _ in range(2)
    ]
    for sending in sendings:
        sending.start()
    for sending in sendings:
        sending.join(60)
    assert sorted(answer.status_code for answer in answers) == [200, 303]
    assert [answer.text.count('class="pin"') for answer in answers if answer.status_code == 200] == [2]
    assert issued() == before + 2


def test_a_batch_is_voided_and_its_cards_refused(api, engine):
    with engine.begin() as connection:
        batch = cards.create_batch(
            connection, world.actor(connection, "reseller1"), 2, _pin_key(api), value=10000
        )
    log_in(api, "reseller2")
    assert post(api, f"/panel/cards/{batch[0]['batch_id']}/void", "/panel/").status_code == 404  # a sibling's
    log_in(api, "reseller1")
    answer = post(api, f"/panel/cards/{batch[0]['batch_id']}/void", "/panel/cards")
    assert flash(answer.text) == ["2 unused cards voided."]
    log_in(api, "alice", "pw", area="portal")
    answer = post(api, "/portal/redeem", "/portal/", pin=batch[0]["pin"])
    assert answer.status_code == 400 and "PIN is not valid" in flash(answer.text)[0]


def test_a_reseller_sets_its_sub_resellers_prices(api):
    log_in(api, "reseller1")
    answer = post(
        api,
        "/panel/operators/sub1/assign",
        "/panel/operators/sub1",
        package="Lite 5M",
        operator_price="260",
        customer_price="320",
        visibility="private",
    )
    assert flash(answer.text) == ["Price list changed."]
    row = re.search(r"<tr><td>Lite 5M</td>(.*?)</tr>", answer.text).group(1)
    assert "260.00" in row and "320.00" in row and "private" in row
    log_in(api, "reseller2")
    assert post(
        api, "/panel/operators/sub1/assign", "/panel/", package="Lite 5M", operator_price="1"
    ).status_code in (
        403,
        404,
    )


def test_wrong_pins_are_throttled_with_the_api(api):
    log_in(api, "alice", "pw", area="portal")
    for _ in range(5):
        answer = post(api, "/portal/redeem", "/portal/", pin="4000000000000002")
        assert answer.status_code == 400
    answer = post(api, "/portal/redeem", "/portal/", pin="4000000000000002")
    assert answer.status_code == 429 and flash(answer.text) == ["Too many wrong PINs. Try again later."]


def test_a_new_sub_reseller_without_fund_is_warned(api):
    log_in(api, "reseller1")
    post(
        api,
        "/panel/operators",
        "/panel/operators",
        login="sub9",
        role="sub_reseller",
        password="long enough pw",
    )
    post(
        api, "/panel/operators/sub9/assign", "/panel/operators/sub9", package="Lite 5M", operator_price="250"
    )
    log_in(api, "sub9", "long enough pw")
    page = api.get("/panel/").text
    assert "Low fund: 0.00 left." in page and 'role="alert"' in page
    answer = post(
        api, "/panel/customers/new", "/panel/customers/new", username="x1", password="p", package="Lite 5M"
    )
    assert answer.status_code == 400 and "cannot add customers" in flash(answer.text)[0]


def test_a_long_statement_shows_its_latest_lines(api, monkeypatch):
    from billingd.api.pages import panel

    monkeypatch.setattr(panel, "STATEMENT_LINES", 2)
    log_in(api, "admin")
    page = api.get("/panel/statement?operator=reseller1&from=2026-11-01&to=2026-11-30").text
    assert "Only the latest 2 lines" in page and page.count("<tr><td>2026-11-") == 2
    every = api.get("/panel/statement.csv?operator=reseller1&from=2026-11-01&to=2026-11-30").text.splitlines()
    assert len(every) > 3


def test_a_customer_page_shows_its_open_sessions_only(api, engine):
    from sqlalchemy import insert, select

    from schema.tables import enforcement_jobs, sessions

    with engine.begin() as connection:
        for number, name in enumerate(("alice", "bob")):
            connection.execute(
                insert(sessions).values(
                    acct_unique_id=f"u{number}",
                    acct_session_id=f"s{number}",
                    nas_ip_address="10.0.0.1",
                    customer_id=world.customer(connection, name)["id"],
                    username=name,
                    framed_ip_address=f"100.64.0.{number + 1}",
                    started_at=world.NOW,
                    download_bytes=3 * 1024**3,
                )
            )
    log_in(api, "reseller1")
    page = api.get("/panel/customers/alice").text
    table = re.search(r'<table id="sessions">.*?</table>', page, re.S).group(0)
    assert "100.64.0.1" in table and "100.64.0.2" not in table and "3.0 GiB" in table
    assert re.search(r"Online now</dt><dd>1<", api.get("/panel/").text)  # bob is reseller2's
    answer = post(api, "/panel/customers/alice/disconnect", "/panel/customers/alice")
    assert flash(answer.text) == ["Disconnect queued: the router drops the session within seconds."]
    with engine.begin() as connection:
        jobs = connection.execute(select(enforcement_jobs.c.action, enforcement_jobs.c.reason)).all()
    assert ("disconnect", "noc") in [tuple(job) for job in jobs]


def test_a_distributor_sells_cards_in_the_panel(api, engine):
    with engine.begin() as connection:
        cards.create_batch(
            connection,
            world.actor(connection, "reseller1"),
            4,
            _pin_key(api),
            value=5000,
            distributor="r1cards",
        )
    log_in(api, "r1cards")
    page = api.get("/panel/cards").text
    assert "Sell cards" in page and "No sales yet." in page
    answer = post(
        api,
        "/panel/cards/sell",
        "/panel/cards",
        first="00001-00001",
        last="00001-00003",
        buyer="Shop A",
        commission="7.50",
    )
    assert flash(answer.text) == ["3 cards sold to Shop A: 142.50 to hand in."]
    assert "Shop A" in answer.text and "150.00" in answer.text
    answer = post(api, "/panel/cards/sell", "/panel/cards", first="00001-00003", buyer="Shop B")
    assert "sold, redeemed or void already" in flash(answer.text)[0]
    log_in(api, "reseller2")
    assert "Shop A" not in api.get("/panel/cards").text
    log_in(api, "r1noc")
    answer = post(api, "/panel/cards/sell", "/panel/", first="00001-00004", buyer="Shop C")
    assert flash(answer.text) == ["r1noc (noc) is not allowed to sell recharge cards"]


def test_a_customer_page_gives_the_why_verdict_of_radbill_why(api, cli):
    """The page and `radbill why` share one composition (cli.context.radius_answer): the same answer,
    reason and attributes, and the page follows the customer's state."""

    def verdict(page: str) -> tuple[str, dict]:
        section = re.search(r'<section class="panel" id="verdict">(.*?)</section>', page, re.S).group(1)
        answer = re.search(r"<strong>([^<]+)</strong> \(([^)]+)\)", section).groups()
        attributes = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", section))
        attributes.pop("Session-Timeout", None)  # counts down from the moment it is asked
        return " ".join(answer), attributes

    def cli_verdict() -> tuple[str, dict]:
        document = json.loads(cli("--json", "--as", "reseller1", "why", "alice").output)["next_request"]
        attributes = {name: str(value) for name, value in document["attributes"] if name != "Session-Timeout"}
        return f"{document['answer']} {document['reason']}", attributes

    log_in(api, "reseller1")
    answer, attributes = verdict(api.get("/panel/customers/alice").text)
    assert answer == "Access-Accept ok" and "Mikrotik-Rate-Limit" in attributes
    assert (answer, attributes) == cli_verdict()
    post(api, "/panel/customers/alice/suspend", "/panel/customers/alice")
    answer, attributes = verdict(api.get("/panel/customers/alice").text)
    assert answer.startswith("Access-Reject ") and (answer, attributes) == cli_verdict()
