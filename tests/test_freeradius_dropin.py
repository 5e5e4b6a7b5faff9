"""raddb/freeradius: Debian's FreeRADIUS 3.2 serving radbill's subscribers from radbill's database.

The stock configuration is copied, our module and site are put in, and the
real server is run against the test database and asked with the real radtest.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from schema.tables import customers, radacct
from tests.conftest import REPOSITORY, free_port
from tests.radius import radclient, radtest

STOCK = Path("/etc/freeradius/3.0")
DROP_IN = REPOSITORY / "raddb" / "freeradius"

# In CI a missing FreeRADIUS is a failure, never a skip.
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(
        not os.environ.get("CI") and (shutil.which("freeradius") is None or not STOCK.is_dir()),
        reason="Debian's freeradius is not installed (apt-get install freeradius freeradius-postgresql)",
    ),
]


def _connection_settings(database_url: str) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f'dialect = "sqlite"\n\tsqlite {{\n\t\tfilename = "{url.database}"\n\t\tbusy_timeout = 10000\n\t}}\n'
    return (
        f'dialect = "postgresql"\n\tserver = "{url.host}"\n\tport = {url.port}\n'
        f'\tlogin = "{url.username}"\n\tpassword = ""\n\tradius_db = "{url.database}"\n'
    )


def _install(target: Path, database_url: str, auth_port: int, acct_port: int) -> None:
    """Stock FreeRADIUS config plus the drop-in, as an operator would set it up."""
    shutil.copytree(STOCK, target, symlinks=True)
    for site in (target / "sites-enabled").iterdir():
        site.unlink()
    (target / "mods-enabled" / "eap").unlink(missing_ok=True)
    radiusd_conf = target / "radiusd.conf"
    radiusd_conf.write_text(
        "\n".join(
            line
            for line in radiusd_conf.read_text().splitlines()
            if line.strip() not in ("user = freerad", "group = freerad")
        )
    )
    shutil.copytree(DROP_IN / "mods-config" / "sql" / "radbill", target / "mods-config" / "sql" / "radbill")
    module = (DROP_IN / "mods-available" / "radbill").read_text()
    module = module.replace('dialect = "postgresql"\n', _connection_settings(database_url), 1)
    (target / "mods-enabled" / "radbill").write_text(module)
    site = (DROP_IN / "sites-available" / "radbill").read_text()
    site = site.replace("port = 1812", f"port = {auth_port}").replace("port = 1813", f"port = {acct_port}")
    site = site.replace("ipaddr = *", "ipaddr = 127.0.0.1")
    (target / "sites-enabled" / "radbill").write_text(site)


@pytest.fixture
def freeradius(cli, database_url, tmp_path):
    cli("demo")
    auth_port, acct_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    raddb = tmp_path / "raddb"
    _install(raddb, database_url, auth_port, acct_port)
    log = (tmp_path / "freeradius.log").open("w")
    server = subprocess.Popen(
        ["freeradius", "-f", "-l", "stdout", "-d", str(raddb)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while "Ready to process requests" not in (tmp_path / "freeradius.log").read_text():
            assert server.poll() is None, (tmp_path / "freeradius.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "FreeRADIUS did not start"
            time.sleep(0.1)
        yield auth_port, acct_port
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.mark.parametrize("method", ["pap", "chap", "mschap"])
def test_an_active_subscriber_gets_the_package(freeradius, method):
    auth_port, _ = freeradius
    answer = radtest(auth_port, "demo", "demo", method)
    assert answer.code == "Access-Accept", answer
    assert answer["Mikrotik-Rate-Limit"] == "10M/10M"  # as radiusd says it
    assert answer["Acct-Interim-Interval"] == "300"
    assert 29 * 86400 < int(answer["Session-Timeout"]) <= 30 * 86400
    if method == "mschap":
        assert answer.get("MS-CHAP-MPPE-Keys")  # radtest speaks MS-CHAPv1


def test_wrong_password_and_unknown_user_are_rejected(freeradius):
    auth_port, _ = freeradius
    assert radtest(auth_port, "demo", "wrong").code == "Access-Reject"
    assert radtest(auth_port, "nobody", "demo").code == "Access-Reject"


def test_expired_and_suspended_are_rejected_with_a_reason(freeradius, engine):
    auth_port, _ = freeradius
    answer = radtest(auth_port, "expired", "expired")
    assert (answer.code, answer["Reply-Message"]) == (
        "Access-Reject",
        "Balance exhausted: please recharge",  # daily, wallet empty: radiusd's words
    )
    with engine.begin() as connection:
        connection.execute(update(customers).where(customers.c.username == "demo").values(status="suspended"))
    answer = radtest(auth_port, "demo", "demo")
    assert (answer.code, answer["Reply-Message"]) == ("Access-Reject", "Account suspended")


def test_mac_binding_and_case_insensitive_names(freeradius, engine):
    auth_port, _ = freeradius
    with engine.begin() as connection:
        connection.execute(
            update(customers).where(customers.c.username == "demo").values(mac_binding="AA:BB:CC:DD:EE:FF")
        )

    def login_from(mac: str) -> str:
        return radclient(
            auth_port, ['User-Name = "DEMO"', 'User-Password = "demo"', f'Calling-Station-Id = "{mac}"']
        ).code

    assert login_from("AA:BB:CC:DD:EE:FF") == "Access-Accept"
    assert login_from("11:22:33:44:55:66") == "Access-Reject"


def test_accounting_lands_in_radacct_and_counts_for_simultaneous_use(freeradius, engine):
    auth_port, acct_port = freeradius
    start = [
        'User-Name = "demo"',
        "Acct-Status-Type = Start",
        'Acct-Session-Id = "81a00001"',
        "NAS-IP-Address = 127.0.0.1",
        "NAS-Port = 1",
        "Framed-IP-Address = 10.9.0.2",
    ]
    assert radclient(acct_port, start, kind="acct").code == "Accounting-Response"
    with engine.connect() as connection:
        row = connection.execute(select(radacct)).mappings().one()
    assert (row["username"], row["acctsessionid"], row["acctstoptime"]) == ("demo", "81a00001", None)
    # FreeRADIUS's PostgreSQL queries cast to inet, which reads back with its prefix length.
    assert row["framedipaddress"] in ("10.9.0.2", "10.9.0.2/32")
    assert radtest(auth_port, "demo", "demo").code == "Access-Reject", "the demo package allows one session"
    stop = [line.replace("Start", "Stop") for line in start]
    stop += ["Acct-Session-Time = 60", "Acct-Input-Octets = 1000", "Acct-Output-Octets = 5000"]
    assert radclient(acct_port, stop, kind="acct").code == "Accounting-Response"
    with engine.connect() as connection:
        row = connection.execute(select(radacct)).mappings().one()
    assert (row["acctinputoctets"], row["acctoutputoctets"]) == (1000, 5000) and row[
        "acctstoptime"
    ] is not None
    assert radtest(auth_port, "demo", "demo").code == "Access-Accept"


# --- one source for both servers (issue 10) ----------------------------------------------------


def test_generated_conf_is_what_radiusds_policy_says_now():
    """Messages, interim interval and rate SQL of the drop-in are generated from radiusd's
    policy; a change to one without `python -m radiusd.auth.freeradius` fails here."""
    from radiusd.auth.freeradius import DROP_IN, render

    for name, content in render().items():
        assert (DROP_IN / name).read_text() == content, name


def _rate_limits():
    from hypothesis import strategies as st

    from schema.ratelimit import RateLimit

    rates = st.sampled_from([1, 999, 1000, 1500, 64_000, 1_000_000, 2_500_000, 10**9, 100 * 10**9])

    @st.composite
    def rate_limit(draw):
        rx, tx = draw(rates), draw(rates)
        values = dict(rx_rate=rx, tx_rate=tx, priority=draw(st.integers(1, 8)))
        if draw(st.booleans()):
            values.update(
                burst_rx=rx * 2,
                burst_tx=tx * 3,
                threshold_rx=max(1, rx // 2),
                threshold_tx=tx,
                burst_time_rx=draw(st.integers(1, 3600)),
                burst_time_tx=draw(st.integers(1, 3600)),
            )
        if draw(st.booleans()):
            values.update(min_rx=max(1, rx // 4), min_tx=tx)
        return RateLimit(**values)

    return rate_limit()


def test_rate_limit_sql_is_to_mikrotik_on_both_databases(engine):
    from hypothesis import given, settings
    from sqlalchemy import text

    from radiusd.auth.freeradius import rate_limit_sql

    columns = dict(
        rate_rx="rx_rate",
        rate_tx="tx_rate",
        burst_rx="burst_rx",
        burst_tx="burst_tx",
        burst_threshold_rx="threshold_rx",
        burst_threshold_tx="threshold_tx",
        burst_time_rx="burst_time_rx",
        burst_time_tx="burst_time_tx",
        priority="priority",
        min_rx="min_rx",
        min_tx="min_tx",
    )
    row = ", ".join(f"CAST(:{column} AS BIGINT) AS {column}" for column in columns)
    query = text(f"SELECT {rate_limit_sql()} FROM (SELECT {row}) AS m")

    @settings(max_examples=60, deadline=None)
    @given(_rate_limits())
    def check(rate):
        values = {column: getattr(rate, attribute) for column, attribute in columns.items()}
        if values["priority"] == 8 and values["min_rx"] is None:
            values["priority"] = None  # as a package without a priority stores it
        with engine.connect() as connection:
            assert connection.execute(query, values).scalar() == rate.to_mikrotik()

    check()


# One table of scenarios through both servers, over the same database: each changes demo (its
# customer row, its master package, its operator) from the state `radbill demo` leaves, then logs in.
MAC = "AA:BB:CC:DD:EE:01"
PARITY = [
    ("active, PAP", {}, {}, None, "pap", ()),
    ("active, CHAP", {}, {}, None, "chap", ()),
    ("active, MS-CHAPv1", {}, {}, None, "mschap", ()),
    ("wrong password", {}, {}, None, "pap-wrong", ()),
    ("unknown user", {}, {}, None, "pap-nobody", ()),
    ("suspended", {"status": "suspended"}, {}, None, "pap", ()),
    ("disabled", {"status": "disabled"}, {}, None, "pap", ()),
    ("operator blocked", {}, {}, "blocked", "pap", ()),
    ("expired, wallet empty", {"expires_at": "past", "wallet_balance": 0}, {}, None, "pap", ()),
    ("expired, wallet full", {"expires_at": "past", "wallet_balance": 5000}, {}, None, "pap", ()),
    ("bound MAC, same device", {"mac_binding": MAC}, {}, None, "pap", (f'Calling-Station-Id = "{MAC}"',)),
    (
        "bound MAC, dashes",
        {"mac_binding": MAC},
        {},
        None,
        "pap",
        ('Calling-Station-Id = "aa-bb-cc-dd-ee-01"',),
    ),
    (
        "bound MAC, other device",
        {"mac_binding": MAC},
        {},
        None,
        "pap",
        ('Calling-Station-Id = "11:22:33:44:55:66"',),
    ),
    ("static IP", {"static_ip": "100.64.9.9"}, {}, None, "pap", ()),
    (
        "pool, profile, address list",
        {},
        {"ip_pool": "pool-10m", "profile": "ten", "address_list": "paying"},
        None,
        "pap",
        (),
    ),
    (
        "burst, priority, minimum",
        {},
        {
            "rate_rx": 10_000_000,
            "rate_tx": 4_000_000,
            "burst_rx": 20_000_000,
            "burst_tx": 8_000_000,
            "burst_threshold_rx": 8_000_000,
            "burst_threshold_tx": 3_000_000,
            "burst_time_rx": 16,
            "burst_time_tx": 16,
            "priority": 5,
            "min_rx": 1_500_000,
            "min_tx": 512_000,
        },
        None,
        "pap",
        (),
    ),
    ("priority only", {}, {"priority": 3}, None, "pap", ()),
    ("one session open", {}, {}, "session", "pap", ()),
]
# Attributes each server signs or encrypts afresh per reply: compared by presence only.
_PER_REPLY = {"Message-Authenticator", "MS-CHAP-MPPE-Keys", "MS-MPPE-Send-Key", "MS-MPPE-Recv-Key"}


@pytest.fixture
def both_servers(freeradius, database_url, tmp_path):
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("the parity table runs over PostgreSQL, where both servers run in production")
    from tests.radius import RadiusdProcess, write_config

    config, settings = (
        write_config(tmp_path / "radiusd", database_url) if (tmp_path / "radiusd").mkdir() is None else None
    )
    with RadiusdProcess(config, tmp_path / "radiusd.log"):
        yield {"radbill radiusd": settings["auth_port"], "FreeRADIUS": freeradius[0]}


def _ask(port: int, how: str, extra) -> tuple:
    if how in ("chap", "mschap"):
        answer = radtest(port, "demo", "demo", how)
    else:
        user, password = {"pap-wrong": ("demo", "wrong"), "pap-nobody": ("nobody", "demo")}.get(
            how, ("demo", "demo")
        )
        answer = radclient(port, [f'User-Name = "{user}"', f'User-Password = "{password}"', *extra])
    assert answer is not None, f"no answer on port {port}"
    attributes = {}
    for name, values in answer.attributes.items():
        if name in _PER_REPLY:
            attributes[name] = "(present)"
        elif name == "Session-Timeout":
            attributes[name] = round(int(values[0]), -2)  # seconds to expiry, read a moment apart
        else:
            attributes[name] = values
    return answer.code, attributes


def _set_up(engine, customer_changes: dict, package_changes: dict, extra: str | None) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from schema.changes import record_change
    from schema.tables import master_packages, operators, packages, sessions

    with engine.begin() as connection:
        demo = connection.execute(select(customers).where(customers.c.username == "demo")).one()
        changes = dict(customer_changes)
        if changes.get("expires_at") == "past":
            changes["expires_at"] = datetime.now(UTC) - timedelta(hours=1)
        if changes:
            connection.execute(update(customers).where(customers.c.id == demo.id).values(**changes))
            record_change(connection, "customer", demo.id)
        if package_changes:
            master = connection.execute(
                select(packages.c.master_package_id).where(packages.c.id == demo.package_id)
            ).scalar()
            connection.execute(
                update(master_packages).where(master_packages.c.id == master).values(**package_changes)
            )
            record_change(connection, "master_package", master)
        if extra == "blocked":
            connection.execute(
                update(operators).where(operators.c.id == demo.operator_id).values(status="blocked")
            )
            record_change(connection, "operator", demo.operator_id)
        if extra == "session":
            values = dict(acctsessionid="p1", acctuniqueid="p1", username="demo", nasipaddress="127.0.0.1")
            connection.execute(insert(radacct).values(**values, acctstarttime=datetime.now(UTC)))
            connection.execute(
                insert(sessions).values(
                    acct_unique_id="p1",
                    acct_session_id="p1",
                    nas_ip_address="127.0.0.1",
                    customer_id=demo.id,
                    username="demo",
                    started_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
            record_change(connection, "sessions", demo.id)


@pytest.mark.parametrize(
    ("customer_changes", "package_changes", "extra", "how", "attributes"),
    [scenario[1:] for scenario in PARITY],
    ids=[scenario[0] for scenario in PARITY],
)
def test_radiusd_and_freeradius_give_the_same_answers(
    both_servers, engine, customer_changes, package_changes, extra, how, attributes
):
    """Issue 10: the same request over the same database gets the same answer, Reply-Message
    and attributes from `radbill radiusd` and from the FreeRADIUS drop-in."""
    _set_up(engine, customer_changes, package_changes, extra)
    deadline = time.monotonic() + 5  # radiusd applies the change log within a second
    while True:
        answers = {name: _ask(port, how, attributes) for name, port in both_servers.items()}
        if answers["radbill radiusd"] == answers["FreeRADIUS"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert answers["radbill radiusd"] == answers["FreeRADIUS"]
    assert answers["FreeRADIUS"][0] in ("Access-Accept", "Access-Reject")
