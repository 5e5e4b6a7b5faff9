"""The README's backup and restore, done for real: ``pg_dump -Fc``, ``pg_restore`` into a new database,
and the restored ledger passes ``radbill ledger verify`` with every balance as it was."""

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from schema.engine import make_engine
from schema.tables import customers, operators
from tests.conftest import Cli

pytestmark = pytest.mark.interop


def tool(pg_server, name: str) -> str:
    """pg_dump and friends of the running server's version."""
    for directory in (pg_server.bindir, Path(os.path.realpath(pg_server.bindir / "pg_ctl")).parent):
        if (directory / name).exists():
            return str(directory / name)
    return str(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))[-1])


@pytest.mark.postgresql
def test_a_pg_dump_restore_passes_ledger_verify(pg_server, pg_connection, tmp_path):
    info = pg_connection.info
    source = pg_server.url(info.dbname)
    cli = Cli(source)
    cli("demo")
    cli("customer", "topup", "demo", "250.75")
    cli("billing", "run")
    dump = tmp_path / "radbill.dump"
    connection = ["-h", pg_server.host, "-p", str(pg_server.port), "-U", pg_server.user]
    subprocess.run([tool(pg_server, "pg_dump"), *connection, "-Fc", "-f", str(dump), info.dbname], check=True)
    subprocess.run([tool(pg_server, "createdb"), *connection, "radbill_restored"], check=True)
    subprocess.run(
        [tool(pg_server, "pg_restore"), *connection, "-d", "radbill_restored", "--exit-on-error", str(dump)],
        check=True,
    )
    restored = pg_server.url("radbill_restored")
    try:
        assert "ok" in Cli(restored)("ledger", "verify").output.lower()
        engines = [make_engine(url) for url in (source, restored)]
        wallets, funds = [], []
        for engine in engines:
            with engine.connect() as db:
                wallets.append(db.execute(select(customers.c.username, customers.c.wallet_balance)).all())
                funds.append(db.execute(select(operators.c.login, operators.c.fund_balance)).all())
            engine.dispose()
        assert sorted(wallets[0]) == sorted(wallets[1]) and sorted(funds[0]) == sorted(funds[1])
        assert "up to date" in Cli(restored)("db", "current").output
        engine = make_engine(restored)
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as db:
            db.execute(text("UPDATE ledger_lines SET amount = amount + 1"))  # the triggers came back too
        engine.dispose()
    finally:
        subprocess.run([tool(pg_server, "dropdb"), *connection, "radbill_restored"], check=False)
