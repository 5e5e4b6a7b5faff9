"""schema.pool: named transactions off the reactor thread, committed or rolled back whole."""

import pytest
import pytest_twisted
from prometheus_client import REGISTRY
from sqlalchemy import insert, select, update
from twisted.internet import reactor
from twisted.python import threadable

from schema.pool import Pool, pool_threads
from schema.tables import operators


@pytest.fixture
def database(engine):
    pool = Pool(engine, reactor, name="test-db")
    yield pool
    pool.close()


def _add_admin(connection) -> None:
    connection.execute(insert(operators).values(login="admin", role="admin", name="Administrator"))


def _admin_name(connection) -> tuple[str, bool]:
    name = connection.execute(select(operators.c.name).where(operators.c.login == "admin")).scalar_one()
    return name, threadable.isInIOThread()


def _rename(connection, name: str, fail: bool = False) -> None:
    connection.execute(update(operators).where(operators.c.login == "admin").values(name=name))
    if fail:
        raise RuntimeError("half-way")


def _seconds_count(name: str) -> float:
    return REGISTRY.get_sample_value("radbill_database_transaction_seconds_count", {"transaction": name}) or 0


@pytest_twisted.ensureDeferred
async def test_work_runs_off_the_reactor_and_is_timed_by_name(database):
    await database.run("test.add_admin", _add_admin, write=True)
    before = _seconds_count("test.read_admin")
    name, on_reactor = await database.run("test.read_admin", _admin_name)
    assert (name, on_reactor) == ("Administrator", False)
    assert _seconds_count("test.read_admin") == before + 1


@pytest_twisted.ensureDeferred
async def test_a_write_commits_whole_or_not_at_all(database):
    await database.run("test.add_admin", _add_admin, write=True)
    await database.run("test.rename", _rename, "Head office", write=True)
    assert (await database.run("test.read_admin", _admin_name))[0] == "Head office"
    with pytest.raises(RuntimeError, match="half-way"):
        await database.run("test.rename", _rename, "Never", True, write=True)
    assert (await database.run("test.read_admin", _admin_name))[0] == "Head office"


def test_as_many_threads_as_the_engine_pools_connections(engine):
    assert pool_threads(engine) == engine.pool.size()
