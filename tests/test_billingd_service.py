"""billingd's schedule (task.Clock), its single active instance, its metrics."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
import pytest_twisted
from prometheus_client import CollectorRegistry
from twisted.internet import defer, reactor, task
from twisted.python import threadable

from billingd import runs
from billingd.service import STANDBY_RETRY_SECONDS, Leadership, Metrics, Scheduler, due_through, next_run
from schema.pool import Pool
from schema.settings import BillingdSettings

DHAKA = ZoneInfo("Asia/Dhaka")
SETTINGS = BillingdSettings(run_at="00:05", timezone="Asia/Dhaka")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_run_is_the_local_run_time():
    # 2026-11-24 17:00 UTC is 23:00 in Dhaka (UTC+6): the next 00:05 there is 18:05 UTC.
    assert next_run(utc(2026, 11, 24, 17, 0), time(0, 5), DHAKA) == utc(2026, 11, 24, 18, 5)
    assert next_run(utc(2026, 11, 24, 18, 5), time(0, 5), DHAKA) == utc(2026, 11, 25, 18, 5)
    assert due_through(utc(2026, 11, 24, 17, 0), time(0, 5), DHAKA) == date(2026, 11, 24)
    assert due_through(utc(2026, 11, 23, 18, 1), time(0, 5), DHAKA) == date(2026, 11, 23)
    assert due_through(utc(2026, 11, 24, 18, 6), time(0, 5), DHAKA) == date(2026, 11, 25)


def test_next_run_across_a_daylight_saving_change():
    berlin = ZoneInfo("Europe/Berlin")
    # The night clocks go back (2026-10-25), 02:30 local happens at 00:30 UTC (first fold).
    assert next_run(utc(2026, 10, 24, 23, 0), time(2, 30), berlin) == utc(2026, 10, 25, 0, 30)
    assert next_run(utc(2026, 10, 25, 2, 0), time(2, 30), berlin) == utc(2026, 10, 26, 1, 30)


class FakeLeadership:
    def __init__(self, held=True):
        self.held = held
        self.released = False

    def acquire(self):
        return self.held

    def release(self):
        self.released = True


def _scheduler(clock, leadership, calls, result_for=None):
    def work(through):
        calls.append(through)
        day = runs.DayResult(through, 10, 2, 12345, 1, seconds=1.5)
        return defer.succeed([day])

    registry = CollectorRegistry()
    return Scheduler(clock, SETTINGS, leadership, work, Metrics(registry)), registry


def test_catches_up_at_start_then_runs_at_run_at():
    clock = task.Clock()
    clock.advance(utc(2026, 11, 24, 17, 0).timestamp())  # 23:00 in Dhaka
    calls = []
    scheduler, registry = _scheduler(clock, FakeLeadership(), calls)
    scheduler.start()
    assert calls == [date(2026, 11, 24)]
    clock.advance(64 * 60)  # 00:04 in Dhaka
    assert calls == [date(2026, 11, 24)]
    clock.advance(60)  # 00:05
    assert calls == [date(2026, 11, 24), date(2026, 11, 25)]
    clock.advance(24 * 3600)
    assert calls[-1] == date(2026, 11, 26)
    assert registry.get_sample_value("radbill_billingd_customers_charged_total") == 30
    assert registry.get_sample_value("radbill_billingd_customers_suspended_total") == 6
    assert registry.get_sample_value("radbill_billingd_amount_charged_minor_units_total") == 3 * 12345
    assert registry.get_sample_value("radbill_billingd_run_seconds_count") == 3
    assert registry.get_sample_value("radbill_billingd_active") == 1
    scheduler.stop()
    assert not clock.getDelayedCalls()


def test_a_standby_instance_waits_and_takes_over(caplog):
    clock = task.Clock()
    clock.advance(utc(2026, 11, 24, 17, 0).timestamp())
    calls = []
    leadership = FakeLeadership(held=False)
    scheduler, registry = _scheduler(clock, leadership, calls)
    with caplog.at_level("INFO", logger="billingd.service"):
        scheduler.start()
        clock.advance(600)
        assert calls == [] and registry.get_sample_value("radbill_billingd_active") == 0
        leadership.held = True  # the active instance died
        clock.advance(STANDBY_RETRY_SECONDS)  # the next try takes the lock
    assert calls == [date(2026, 11, 24)]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("standing by" in message for message in messages) == 1  # not at every try
    assert "took over as the active billingd" in messages


def test_a_failed_run_is_retried():
    clock = task.Clock()
    clock.advance(utc(2026, 11, 24, 17, 0).timestamp())
    attempts = []

    def work(through):
        attempts.append(through)
        return defer.fail(RuntimeError("database down")) if len(attempts) == 1 else defer.succeed([])

    registry = CollectorRegistry()
    Scheduler(clock, SETTINGS, FakeLeadership(), work, Metrics(registry)).start()
    assert registry.get_sample_value("radbill_billingd_run_failures_total") == 1
    clock.advance(300)
    assert attempts == [date(2026, 11, 24), date(2026, 11, 24)]


@pytest.mark.postgresql
def test_only_one_instance_holds_the_lock_on_postgresql(pg_connection):
    from schema.engine import make_engine

    info = pg_connection.info
    url = f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{info.dbname}"
    first, second = make_engine(url), make_engine(url)
    one, two = Leadership(first, None), Leadership(second, None)
    try:
        assert one.try_acquire() is True
        assert one.try_acquire() is True  # still ours
        assert two.try_acquire() is False
        one.release_now()
        assert two.try_acquire() is True
    finally:
        one.release_now()
        two.release_now()
        first.dispose()
        second.dispose()


def test_sqlite_is_a_single_host(engine):
    if engine.dialect.name == "sqlite":
        assert Leadership(engine, None).try_acquire() is True


@pytest.mark.interop
def test_the_daemon_runs_the_day_and_serves_metrics(tmp_path):
    """`radbill billingd` end to end: catches up today at start, then serves /metrics."""
    import os
    import subprocess
    import time as clock
    import urllib.request

    from tests.conftest import RADBILL, free_port

    port = free_port()
    config = tmp_path / "radbill.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/radbill.sqlite"\n'
        f'[billingd]\nmetrics_port = {port}\nrun_at = "00:00"\n'
    )
    env = {**os.environ, "RADBILL_CONFIG": str(config)}
    env.pop("RADBILL_DATABASE_URL", None)
    subprocess.run(RADBILL + ["demo"], env=env, check=True, capture_output=True)
    daemon = subprocess.Popen(
        RADBILL + ["billingd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = clock.monotonic() + 20
        while True:
            try:
                metrics = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
                )
                if "radbill_billingd_active 1.0" in metrics:
                    break
            except OSError:
                pass
            assert clock.monotonic() < deadline, "billingd did not start"
            clock.sleep(0.2)
        assert "radbill_billingd_run_seconds" in metrics
    finally:
        daemon.terminate()
        daemon.wait(10)


@pytest_twisted.ensureDeferred
async def test_the_lock_is_taken_and_given_up_off_the_reactor_thread(engine):
    database = Pool(engine, reactor, name="billingd-db")
    leadership = Leadership(engine, database)
    on_reactor = []

    def watched(method):
        def call():
            on_reactor.append(threadable.isInIOThread())
            return method()

        return call

    leadership.try_acquire = watched(leadership.try_acquire)
    leadership.release_now = watched(leadership.release_now)
    try:
        assert await leadership.acquire() is True
        await leadership.release()
    finally:
        database.close()
    assert on_reactor == [False, False]
