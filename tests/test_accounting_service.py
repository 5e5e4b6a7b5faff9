"""Accounting's timers on a fake clock: the stale-session sweep and the spool retry."""

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from twisted.internet import task

from cli.demo import load_demo
from radiusd.accounting.service import AccountingService
from schema.errors import RadbillError
from schema.settings import RadiusdSettings, Settings
from schema.tables import change_log, sessions
from tests.accounting_helpers import T0, make_record
from tests.test_accounting_writer import ThreadCalls, fired

pytestmark = pytest.mark.daemon


class FakeReactor(task.Clock, ThreadCalls):
    """task.Clock for timers, ThreadCalls for what the writer thread hands back."""

    def __init__(self):
        task.Clock.__init__(self)
        ThreadCalls.__init__(self)
        self.triggers = []

    def addSystemEventTrigger(self, phase, event, function):
        self.triggers.append((phase, event, function))


@pytest.fixture
def service(engine, tmp_path):
    with engine.begin() as connection:
        load_demo(connection, T0)
    reactor = FakeReactor()
    reactor.advance(T0.timestamp())
    settings = Settings(radiusd=RadiusdSettings(spool_dir=str(tmp_path / "spool"), interim_interval=60))
    accounting = AccountingService(settings, engine, reactor)
    listeners = []
    accounting.start(lambda port, handler: listeners.append((port, handler)))
    assert listeners == [(1813, accounting.handler)]
    yield accounting, reactor
    done = fired([accounting.stop()])
    reactor.run_until(lambda: done)


def test_the_sweep_closes_silent_sessions_on_the_clock(service, engine):
    accounting, reactor = service
    results = fired(
        [
            accounting.writer.submit(make_record("Start", session="quiet", at=T0)),
            accounting.writer.submit(make_record("Start", session="chatty", at=T0)),
        ]
    )
    reactor.run_until(lambda: len(results) == 2)
    session_changes = select(func.count()).select_from(change_log).where(change_log.c.entity == "sessions")
    with engine.connect() as connection:
        opened = connection.execute(session_changes).scalar_one()
    assert opened >= 1  # the demo customer's open sessions changed (one row per customer per batch)
    for minute in range(1, 5):  # three silent intervals have passed after the fourth
        chatty = fired(
            [
                accounting.writer.submit(
                    make_record("Interim-Update", session="chatty", at=T0 + timedelta(minutes=minute))
                )
            ]
        )
        reactor.run_until(lambda: chatty)
        reactor.advance(60)  # the sweep runs every interim interval (60 s here)
        reactor.run_until(lambda: accounting._sweep.call is not None)  # it finished and is due again
    with engine.connect() as connection:
        rows = dict(connection.execute(select(sessions.c.acct_session_id, sessions.c.terminate_cause)).all())
        closed = connection.execute(session_changes).scalar_one() - opened
    assert rows == {"quiet": "Lost-Service", "chatty": None}
    assert closed == 1  # the sweep logged the change for radiusd's session counts


def test_an_unusable_spool_directory_is_a_clear_error(engine, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = Settings(radiusd=RadiusdSettings(spool_dir=str(blocker)))
    with pytest.raises(RadbillError, match="cannot use the accounting spool .*radiusd.spool_dir"):
        AccountingService(settings, engine, FakeReactor())
