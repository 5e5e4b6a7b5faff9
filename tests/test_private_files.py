"""Files radbill creates are its owner's alone (0600 / 0700) whatever the umask,
the systemd units say so too, and a database radbill may only read can be read."""

import configparser
import os
import stat
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from cli.main import radbill
from radiusd.accounting.spool import Spool
from schema import migrate
from schema.engine import make_engine
from tests.conftest import RADBILL, REPOSITORY


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    previous = os.umask(0o000)
    yield
    os.umask(previous)


def test_a_new_sqlite_database_and_its_wal_and_shm_are_owner_only(tmp_path, open_umask):
    path = tmp_path / "state" / "db" / "radbill.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT count(*) FROM customers"))
        files = [path, path.with_name("radbill.sqlite-wal"), path.with_name("radbill.sqlite-shm")]
        assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
    engine.dispose()
    assert mode(path.parent) == mode(path.parent.parent) == 0o700


def test_spool_directory_and_files_are_owner_only(tmp_path, open_umask):
    spool = Spool(tmp_path / "spool" / "worker-0")
    spool.append([])
    spool.advance(spool.end, 0)
    assert mode(tmp_path / "spool") == mode(tmp_path / "spool" / "worker-0") == 0o700
    created = sorted((tmp_path / "spool" / "worker-0").iterdir())
    assert created and {file.name: mode(file) for file in created} == {file.name: 0o600 for file in created}


def test_systemd_units_keep_state_private():
    units = sorted((REPOSITORY / "systemd").glob("*.service"))
    assert units
    for unit in units:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read(unit)
        service = parser["Service"]
        assert (service.get("StateDirectoryMode"), service.get("UMask")) == ("0700", "0077"), unit.name


def _as_nobody(function):
    """Run ``function`` in a child process as the user nobody (root may write any file)."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            os.write(writer, function().encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        output = pipe.read()
    os.waitpid(child, 0)
    return output


@pytest.mark.interop
@pytest.mark.interop
def test_a_database_we_may_only_read_is_read_and_a_write_is_one_line(tmp_path):
    """A read-only copy (file not writable, directory not writable, no -shm left) is still readable."""
    shared = Path("/var/tmp") / f"radbill-readonly-{os.getpid()}" if os.geteuid() == 0 else tmp_path / "ro"
    shared.mkdir()
    try:
        path = shared / "radbill.sqlite"
        url = f"sqlite:///{path}"
        env = {"RADBILL_DATABASE_URL": url, "RADBILL_CONFIG": ""}
        runner = CliRunner()
        subprocess.run(RADBILL + ["db", "upgrade"], env=env, check=True, capture_output=True)
        subprocess.run(RADBILL + ["operator", "add", "admin", "--role", "admin"], env=env, check=True)
        assert sorted(file.name for file in shared.iterdir()) == ["radbill.sqlite"]
        path.chmod(0o444)
        shared.chmod(0o555)

        def run(*args):
            result = runner.invoke(radbill, list(args), env=env)
            return f"{result.exit_code}|{result.stdout}|{result.stderr}"

        def both():
            return (
                run("operator", "list")
                + "\n#\n"
                + run("nas", "add", "n", "--ip", "10.0.0.1", "--secret", "s")
            )

        output = _as_nobody(both) if os.geteuid() == 0 else both()
        listed, added = output.split("\n#\n")
        assert listed.startswith("0|LOGIN") and "admin" in listed
        assert added == "1||radbill: error: cannot use the database: attempt to write a readonly database\n"
    finally:
        shared.chmod(0o755)
        path.chmod(0o644)
        for file in shared.iterdir():
            file.unlink()
        shared.rmdir()
