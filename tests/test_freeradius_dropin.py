"""raddb/freeradius: Debian's FreeRADIUS 3.2 serving radbill's subscribers from radbill's database.

The stock configuration is copied, our module and site are put in, and the
real server is run against the test database and asked with the real radtest.
"""

import os
import shutil
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
    auth_port, acct_port = free_port(), free_port()
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
    assert answer["Mikrotik-Rate-Limit"] == "10000000/10000000"
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
        "Your package has expired: please renew",
    )
    with engine.begin() as connection:
        connection.execute(update(customers).where(customers.c.username == "demo").values(status="suspended"))
    answer = radtest(auth_port, "demo", "demo")
    assert (answer.code, answer["Reply-Message"]) == ("Access-Reject", "Your account is suspended")


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
