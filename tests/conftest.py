"""Shared fixtures: every database test runs on SQLite and on a real PostgreSQL.

The PostgreSQL server is started once per session from the machine's own
binaries. These machines run everything as root and PostgreSQL refuses root,
so the server runs as the ``postgres`` user through runuser. pytest-postgresql
then gives each test a fresh database cloned from a migrated template.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from pytest_postgresql import factories

from schema import migrate
from schema.engine import make_engine

# Fixtures for every test module: the router fakes (fake_nas, fake_router), the API's (api, clock)
# and the headless browser (chromium).
pytest_plugins = ["tests.fakes.nas", "tests.fakes.routeros", "tests.api_world", "tests.browser"]

REPOSITORY = Path(__file__).resolve().parent.parent


# The tiers (setup.cfg registers them). A test module or test marks itself
# daemon, interop or bench; any other test is db when it uses a database,
# else unit, and a unit test that opens a socket or starts a program fails.
TIERS = ("unit", "db", "daemon", "interop", "bench")
_DATABASE_FIXTURES = {"database_url", "pg_connection", "pg_server", "sqlite_template"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker("db" if _DATABASE_FIXTURES & set(item.fixturenames) else "unit")


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request, monkeypatch):
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*_args, **_kwargs):
        raise AssertionError(
            "a unit test opened a socket or started a program: mark it daemon or interop (tests/conftest.py)"
        )

    for name in ("bind", "connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _postgres_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(candidates[-1]).parent if candidates else None


class PostgresServer:
    """A throw-away PostgreSQL cluster that tests may also stop and start.

    Its attributes are the ones pytest-postgresql's noproc fixture reads.
    """

    user = "postgres"
    password = None
    options = ""
    maintenance_dbname = "postgres"
    template_dbname = None
    host = "127.0.0.1"

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.datadir = Path(tempfile.mkdtemp(prefix="radbill-pg-"))
        self.port = free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(self.datadir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.datadir / "data"),
            "-A",
            "trust",
            "-U",
            self.user,
            "--no-sync",
            "-E",
            "UTF8",
        )

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            self._as_postgres + [str(self.bindir / program), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    # Server settings beyond the address: the tests' cluster is not durable
    # (the benchmarks' subclasses are).
    settings: tuple[str, ...] = ("fsync=off", "full_page_writes=off", "max_connections=200")

    def start(self) -> None:
        settings = f"-p {self.port} -k {self.datadir} -c listen_addresses={self.host} " + " ".join(
            f"-c {setting}" for setting in self.settings
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir / "data"),
            "-l",
            str(self.datadir / "log"),
            "-o",
            settings,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.datadir / "data"), "-m", mode, "-w", "stop")

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def remove(self) -> None:
        shutil.rmtree(self.datadir, ignore_errors=True)

    def postmaster_pid(self) -> int:
        return int((self.datadir / "data" / "postmaster.pid").read_text().split()[0])


@pytest.fixture(scope="session")
def pg_server():
    bindir = _postgres_bindir()
    if bindir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bindir)
    server.start()
    yield server
    try:
        server.stop("immediate")
    finally:
        server.remove()


def _migrate_template(host, port, user, dbname, password=None, **_):
    engine = make_engine(f"postgresql+psycopg://{user}@{host}:{port}/{dbname}")
    migrate.upgrade(engine)
    engine.dispose()


pg_template = factories.postgresql_noproc(depends_on="pg_server", dbname="radbill", load=[_migrate_template])
pg_connection = factories.postgresql("pg_template")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "radbill.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request, tmp_path) -> str:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "radbill.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    info = request.getfixturevalue("pg_connection").info
    return f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


class Cli:
    """Runs ``radbill`` in-process against the test database."""

    def __init__(self, database_url: str):
        self.env = {"RADBILL_DATABASE_URL": database_url, "RADBILL_CONFIG": ""}

    def __call__(self, *args: str, expect_exit: int = 0):
        from cli.main import radbill

        result = CliRunner().invoke(radbill, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == expect_exit, (
            f"radbill {' '.join(args)} -> {result.exit_code}\n{result.output}"
        )
        return result


@pytest.fixture
def cli(database_url) -> Cli:
    return Cli(database_url)


RADBILL = [sys.executable, "-m", "cli"]
