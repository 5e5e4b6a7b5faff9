"""The group-commit writer and its spool, with a real writer thread and a real database."""

import queue
import threading
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from cli.demo import load_demo
from radiusd.accounting import writer as accounting_writer
from radiusd.accounting.spool import Spool
from radiusd.accounting.writer import AccountingWriter, QueueFull
from schema.tables import customer_usage, radacct, sessions
from tests.accounting_helpers import T0, make_record

pytestmark = pytest.mark.daemon


class ThreadCalls:
    """Stands in for the reactor: callFromThread queues the call, the test runs it."""

    def __init__(self):
        self.from_thread = queue.Queue()

    def callFromThread(self, function, *args):
        self.from_thread.put((function, args))

    def run_until(self, condition, timeout: float = 10.0):
        while not condition():
            function, args = self.from_thread.get(timeout=timeout)
            function(*args)


def fired(deferreds):
    results = []
    for d in deferreds:
        d.addBoth(results.append)
    return results


@pytest.fixture
def db(engine):
    with engine.begin() as connection:
        load_demo(connection, T0)
    return engine


def start_writer(engine, spool_dir, **options):
    reactor = ThreadCalls()
    writer = AccountingWriter(engine, Spool(spool_dir), ZoneInfo("Asia/Dhaka"), reactor, **options)
    writer.start()
    return writer, reactor


def stop(writer, reactor):
    done = fired([writer.stop()])
    reactor.run_until(lambda: done)


def count(engine, table):
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar()


def stream(n: int, prefix: str = "s"):
    """n sessions, each Start then Interim then Stop."""
    records = []
    for i in range(n):
        session = f"{prefix}{i}"
        records += [
            make_record("Start", session=session),
            make_record(
                "Interim-Update", session=session, at=T0 + timedelta(minutes=5), upload=100, download=1000
            ),
            make_record("Stop", session=session, at=T0 + timedelta(minutes=6), upload=150, download=1500),
        ]
    return records


def test_records_arriving_together_share_a_commit_and_answer_after_it(db, tmp_path):
    before = accounting_writer.BATCH_SIZE._sum.get()
    writer, reactor = start_writer(db, tmp_path / "spool")
    observed = []
    original = writer._commit
    writer._commit = lambda records: (observed.append(len(records)), original(records))[1]
    results = fired([writer.submit(record) for record in stream(50)])
    reactor.run_until(lambda: len(results) == 150)
    assert all(result is None for result in results)
    assert sum(observed) == 150 and len(observed) < 150  # grouped, not one commit each
    assert count(db, radacct) == 50 and count(db, sessions) == 50
    assert accounting_writer.BATCH_SIZE._sum.get() - before == 150
    stop(writer, reactor)


def test_a_full_queue_refuses_at_once(db, tmp_path):
    writer = AccountingWriter(db, Spool(tmp_path / "spool"), ZoneInfo("UTC"), ThreadCalls(), queue_size=2)
    # not started: nothing drains the queue
    results = fired([writer.submit(record) for record in stream(1)])
    assert len(results) == 1 and results[0].check(QueueFull)  # the first two wait, the third is refused


class Outage:
    """Makes the writer's commits fail as if the database were unreachable, until lifted."""

    def __init__(self, writer):
        self.down = True
        self._commit = writer._commit
        writer._commit = self.commit

    def commit(self, records):
        if self.down:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
        return self._commit(records)


def test_outage_spools_then_replays_in_order_exactly_once(db, tmp_path):
    writer, reactor = start_writer(db, tmp_path / "spool")
    outage = Outage(writer)
    records = stream(20)
    results = fired([writer.submit(record) for record in records[:30]])
    reactor.run_until(lambda: len(results) == 30)
    assert all(result is None for result in results)  # acknowledged: durable in the spool
    assert writer.spool.pending == 30 and count(db, radacct) == 0
    # while records are spooled, new ones queue behind them even if the database is back
    outage.down = False
    more = fired([writer.submit(record) for record in records[30:]])
    reactor.run_until(lambda: len(more) == 30)
    assert count(db, radacct) == 0 and writer.spool.pending == 60
    writer.retry()
    reactor.run_until(lambda: writer.spool.pending == 0 and not writer._retry_queued)
    assert count(db, radacct) == 20
    with db.connect() as connection:
        assert connection.execute(
            select(customer_usage.c.upload_bytes, customer_usage.c.download_bytes)
        ).all() == [(20 * 150, 20 * 1500)]
        assert connection.execute(select(func.count()).where(radacct.c.acctstoptime.is_(None))).scalar() == 0
    assert (tmp_path / "spool" / "accounting.spool").stat().st_size == 0
    stop(writer, reactor)


def test_spool_left_by_a_crash_is_replayed_at_start(db, tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(stream(5))
    spool.close()
    with open(tmp_path / "spool" / "accounting.spool", "ab") as torn:
        torn.write(b"\x00\x00\x01\x00garbage")  # a frame cut short by the crash
    writer, reactor = start_writer(db, tmp_path / "spool")
    reactor.run_until(lambda: writer.spool.pending == 0 and not writer._retry_queued)
    assert count(db, radacct) == 5
    stop(writer, reactor)


def test_replay_interrupted_after_commit_does_not_double_usage(db, tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(stream(3))
    writer, reactor = start_writer(db, tmp_path / "spool", max_batch=4)
    # a crash after the first chunk's commit but before its cursor moved: replay it again
    chunk = spool.read(4)
    with db.begin() as connection:
        from radiusd.accounting.store import apply_records

        apply_records(connection, [record for _, record in chunk], ZoneInfo("Asia/Dhaka"))
    reactor.run_until(lambda: writer.spool.pending == 0 and not writer._retry_queued)
    with db.connect() as connection:
        assert connection.execute(select(customer_usage.c.upload_bytes)).scalar() == 3 * 150
    stop(writer, reactor)


def test_a_record_the_database_refuses_fails_alone(db, tmp_path):
    writer, reactor = start_writer(db, tmp_path / "spool")
    good = stream(2)
    bad = make_record(
        "Start", session="bad", nas_ip="x" * 100
    )  # longer than nasipaddress allows on PostgreSQL
    results = fired([writer.submit(record) for record in good[:3] + [bad] + good[3:]])
    reactor.run_until(lambda: len(results) == 7)
    failures = [result for result in results if result is not None]
    if db.dialect.name == "postgresql":
        assert len(failures) == 1
    assert count(db, radacct) == 2 + (0 if failures else 1)
    for failure in failures:
        failure.trap(Exception)
    stop(writer, reactor)


def test_sweep_runs_on_the_writer_thread(db, tmp_path):
    writer, reactor = start_writer(db, tmp_path / "spool")
    results = fired([writer.submit(make_record("Start", session="quiet"))])
    reactor.run_until(lambda: results)
    closed = fired([writer.close_stale(T0 + timedelta(minutes=16), 300)])
    reactor.run_until(lambda: closed)
    assert closed == [1]
    stop(writer, reactor)


def test_spools_of_workers_that_no_longer_exist_are_taken_over(tmp_path):
    from radiusd.accounting.service import adopt_orphan_spools, spool_directory

    for worker in (0, 1, 2):
        Spool(spool_directory(str(tmp_path), worker)).append(stream(1, prefix=f"w{worker}-"))
    own = Spool(spool_directory(str(tmp_path), 0))
    assert adopt_orphan_spools(own, str(tmp_path), workers=2) == 3  # worker-2's three records
    assert own.pending == 6 and Spool(spool_directory(str(tmp_path), 2)).pending == 0
    assert Spool(spool_directory(str(tmp_path), 1)).pending == 3  # a live worker's spool is its own
    assert adopt_orphan_spools(own, str(tmp_path), workers=2) == 0


def test_a_failed_append_leaves_no_half_frame(tmp_path):
    spool = Spool(tmp_path)
    spool.append(stream(1))

    class DiskFull:
        def __init__(self, file):
            self._file = file

        def write(self, data):
            self._file.write(data[: len(data) // 2])
            self._file.flush()
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self._file, name)

    real = spool._file
    spool._file = DiskFull(real)
    with pytest.raises(OSError):
        spool.append(stream(1, prefix="lost"))
    spool._file = real
    spool.append(stream(1, prefix="later"))
    assert [record.acct_session_id for _, record in Spool(tmp_path).read(10)] == ["s0"] * 3 + ["later0"] * 3


def test_spool_cursor_survives_reopening_and_a_crash_after_truncating(tmp_path):
    spool = Spool(tmp_path)
    spool.append(stream(2))  # six records
    first = spool.read(4)
    spool.advance(first[-1][0], 4)
    again = Spool(tmp_path)
    assert again.pending == 2 and [r for _, r in again.read(10)] == [r for _, r in spool.read(10)]
    again.advance(again.end, 2)
    assert (tmp_path / "accounting.spool").stat().st_size == 0
    (tmp_path / "accounting.cursor").write_text("999")  # crashed after truncating, before the cursor moved
    spool = Spool(tmp_path)
    spool.append(stream(1, prefix="new"))
    assert Spool(tmp_path).pending == 3


def test_a_poisoned_record_is_isolated_by_halving_not_one_commit_per_record(db, tmp_path):
    """Issue 11: one record the database refuses used to cost one transaction per record of
    its batch; halving finds it in about 2 log2(batch) commits, and the rest are stored."""
    writer, reactor = start_writer(db, tmp_path / "spool", max_batch=64)
    commits = []
    commit = writer._commit

    def poisoned_commit(records):
        commits.append(len(records))
        if any(record.acct_session_id == "s40" for record in records):
            raise ValueError("poisoned")
        return commit(records)

    writer._commit = poisoned_commit
    records = [make_record("Start", session=f"s{i}") for i in range(64)]
    release = threading.Event()
    writer._control(release.wait)  # hold the thread, so the 64 records make one batch
    results = fired([writer.submit(record) for record in records])
    release.set()
    reactor.run_until(lambda: len(results) == 64)
    failures = [index for index, result in enumerate(results) if result is not None]
    assert failures == [40]
    results[40].trap(ValueError)
    assert count(db, sessions) == 63
    assert len(commits) <= 2 * 6 + 2  # 64 = 2^6 (and maybe one taken with the hold): far from 64 + 1
    stop(writer, reactor)
