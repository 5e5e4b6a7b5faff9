"""The accounting writer: group commit on one database thread, spool on outage.

The reactor thread hands each record to ``submit`` and gets a Deferred that
fires only once the record is durable, in the database or fsync'd in the
spool, so the Accounting-Response is never sent for a record that could
still be lost (RFC 2866 §2: the server replies only after recording it).

One thread owns the database connection and the spool. It takes whatever
records are waiting (up to ``max_batch``) and commits them in one
transaction, so under load many requests share one commit instead of paying
one each. The queue is bounded: when it is full a request is refused at once
and the NAS retransmits, rather than waiting behind an ever longer queue
(FIELD-NOTES 7).

When the database is unreachable the batch goes to the spool instead, and so
does every later batch until the spool has been replayed, which keeps the
records in order. ``retry`` (called from a timer) asks the thread to replay;
``start`` replays what a previous run left behind.
"""

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge, Histogram
from psycopg.errors import TransactionRollback
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from twisted.internet import defer

from radiusd.accounting.record import AccountingRecord
from radiusd.accounting.spool import Spool
from radiusd.accounting.store import MISSED_INTERIMS, apply_records, close_stale_sessions
from schema.pool import dedicated_connection

log = logging.getLogger(__name__)

RECORDS = Counter(
    "radbill_radiusd_accounting_records",
    "Accounting records by outcome: stored in the database, "
    "spooled while it was down, failed (refused by the database), queue_full (dropped)",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "radbill_radiusd_accounting_batch_size",
    "Records committed per transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
COMMIT_SECONDS = Histogram(
    "radbill_radiusd_accounting_commit_seconds",
    "Time to apply and commit one batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
QUEUE_DEPTH = Gauge(
    "radbill_radiusd_accounting_queue_depth", "Accounting records waiting for the database writer"
)
SPOOL_DEPTH = Gauge(
    "radbill_radiusd_accounting_spool_depth", "Accounting records in the spool, not yet in the database"
)
SPOOL_REPLAYED = Counter(
    "radbill_radiusd_accounting_spool_replayed", "Spooled accounting records replayed into the database"
)
DATABASE_UP = Gauge(
    "radbill_radiusd_accounting_database_up",
    "1 while accounting records reach the database, 0 while spooling",
)
SESSIONS_CLOSED = Counter(
    "radbill_radiusd_accounting_sessions_closed",
    "Sessions closed by radiusd, not by a Stop: nas_reboot (Accounting-On/Off), lost_service (sweep)",
    ["cause"],
)
QUOTA_JOBS = Counter(
    "radbill_radiusd_accounting_quota_enforcements", "Enforcement jobs queued because a quota was used up"
)


COMMIT_ATTEMPTS = 3


class _OutageAt(Exception):
    """The database went away while committing; records from ``start`` on were not committed."""

    def __init__(self, start: int, error: Exception):
        super().__init__(str(error))
        self.start = start
        self.error = error


class QueueFull(Exception):
    """The writer is behind; the request is dropped and the NAS will retransmit."""


def is_outage(error: Exception) -> bool:
    """A database we cannot reach (or that lost our connection, or kept failing with
    deadlocks), as opposed to one that refused a record."""
    return isinstance(error, (OperationalError, InterfaceError)) or (
        isinstance(error, DBAPIError) and error.connection_invalidated
    )


@dataclass(slots=True)
class _Job:
    """A unit of work for the writer thread; ``deferred`` fires on the reactor thread."""

    deferred: defer.Deferred
    record: AccountingRecord | None = None
    control: Callable | None = None


_STOP = object()


def _call_all(calls: list[tuple]) -> None:
    for call, args in calls:
        call(*args)


class AccountingWriter:
    def __init__(
        self,
        engine: Engine,
        spool: Spool,
        zone: ZoneInfo,
        reactor,
        *,
        queue_size: int = 10_000,
        max_batch: int = 500,
        sessions_counted: Callable[[dict[int, int], list[int]], None] = lambda counts, change_ids: None,
    ):
        """``sessions_counted(counts, change_ids)`` is called on the reactor thread after each commit that
        opened or closed sessions, with the open sessions of their customers and the ids of the "sessions"
        changes it logged (radiusd.view.follower.Follower.counted)."""
        self.engine = engine
        self._sessions_counted = sessions_counted
        self.spool = spool
        self.zone = zone
        self.reactor = reactor
        self.max_batch = max_batch
        # SimpleQueue: put and get in C, no Python lock and condition per request on the reactor
        # thread; the bound is checked by submit (the only thread that adds records).
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._queue_size = queue_size
        self._thread = threading.Thread(target=self._run, name="accounting-writer", daemon=True)
        self._stopped = defer.Deferred()
        self._retry_queued = False
        self._database_up = True
        self._connection: Connection | None = None  # the writer thread's own
        self._for_reactor: list[tuple] = []  # calls handed to the reactor thread once per batch
        SPOOL_DEPTH.set(spool.pending)
        DATABASE_UP.set(1)

    # --- reactor side ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if self.spool.pending:
            log.info("accounting spool holds %d records from before; replaying", self.spool.pending)
            self.retry()

    def submit(self, record: AccountingRecord) -> defer.Deferred:
        """Store one record; the Deferred fires once it is durable."""
        if self._queue.qsize() >= self._queue_size:
            RECORDS.labels("queue_full").inc()
            return defer.fail(QueueFull(f"{self._queue_size} accounting records already waiting"))
        job = _Job(defer.Deferred(), record=record)
        self._queue.put(job)
        return job.deferred

    def retry(self) -> None:
        """Try to replay the spool into the database (called by a timer while spooling)."""
        if self.spool.pending and not self._retry_queued:
            self._retry_queued = True
            self._control(self._replay_from_timer)

    def close_stale(self, now: datetime, interim_interval: int) -> defer.Deferred:
        """Close sessions silent for three interim intervals (the periodic sweep)."""
        return self._control(lambda: self._sweep(now, interim_interval))

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def stop(self) -> defer.Deferred:
        """Finish what is queued, then end the thread (a shutdown trigger)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            return self._stopped
        return defer.succeed(None)

    def _control(self, work: Callable) -> defer.Deferred:
        job = _Job(defer.Deferred(), control=work)
        self._queue.put(job)  # control jobs are few; never refused
        return job.deferred

    def _reply(self, job: _Job, result=None, error: Exception | None = None) -> None:
        if error is None:
            self._later(job.deferred.callback, result)
        else:
            self._later(job.deferred.errback, error)

    def _later(self, call: Callable, *args) -> None:
        """Run ``call(*args)`` on the reactor thread after this batch (writer thread only)."""
        self._for_reactor.append((call, args))

    def _hand_over(self) -> None:
        """One wake-up of the reactor per batch, not one per record."""
        if self._for_reactor:
            calls, self._for_reactor = self._for_reactor, []
            self.reactor.callFromThread(_call_all, calls)

    # --- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [job for job in jobs if isinstance(job, _Job) and job.record is not None]
            QUEUE_DEPTH.set(self._queue.qsize())  # once a batch, not twice a record
            if records:
                try:
                    self._write(records)
                except Exception as error:  # a bug must not end the thread every request waits on
                    log.exception("accounting writer failed on a batch of %d; not acknowledged", len(records))
                    for job in records:
                        self._reply(job, error=error)
            for job in jobs:
                if job is _STOP:
                    self._hand_over()
                    self._disconnect()
                    self.spool.close()
                    self.reactor.callFromThread(self._stopped.callback, None)
                    return
                if job.control is not None:
                    try:
                        self._reply(job, job.control())
                    except Exception as error:  # reported to the caller's Deferred
                        self._reply(job, error=error)
            self._hand_over()

    def _connect(self) -> Connection:
        """The writer keeps one connection: no pool checkout and liveness ping per batch."""
        if self._connection is None:
            self._connection = dedicated_connection(self.engine)
            if self._connection.dialect.name == "postgresql":
                # Every statement of a batch looks its rows up by key. Plan each with its
                # values (a cached generic plan cannot hash a list of varying length and
                # scans it linearly), and never by hashing or merging a whole table: that
                # costs the size of the table per batch (14 ms at 50,000 sessions, where
                # 400 index lookups take 3 ms).
                for setting in (
                    "plan_cache_mode = force_custom_plan",
                    "enable_hashjoin = off",
                    "enable_mergejoin = off",
                ):
                    self._connection.exec_driver_sql(f"SET {setting}")
                self._connection.commit()
        return self._connection

    def _disconnect(self) -> None:
        """After a failure: the next batch starts on a fresh connection."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except Exception as error:  # a dead connection may fail to close; it is gone either way
                log.debug("closing the accounting writer's connection: %s", error)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        connection = self._connect()
        try:
            with connection.begin():
                yield connection
        except BaseException:
            self._disconnect()
            raise

    def _commit(self, records: list[AccountingRecord]):
        started = time.perf_counter()
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with self._transaction() as connection:
                    outcome = apply_records(connection, records, self.zone)
                break
            except OperationalError as error:
                # Another instance locked the same sessions in another order: just try again.
                if not isinstance(error.orig, TransactionRollback) or attempt == COMMIT_ATTEMPTS:
                    raise
        COMMIT_SECONDS.observe(time.perf_counter() - started)
        BATCH_SIZE.observe(len(records))
        if outcome.open_sessions:
            self._later(self._sessions_counted, outcome.open_sessions, outcome.change_ids)
        if outcome.closed:
            SESSIONS_CLOSED.labels("nas_reboot").inc(outcome.closed)
        if outcome.quota_jobs:
            QUOTA_JOBS.inc(len(outcome.quota_jobs))
            for customer, period in outcome.quota_jobs:
                log.info(
                    "customer %d used up the quota of the period starting %s; enforcement queued",
                    customer,
                    period,
                )
        return outcome

    def _write(self, jobs: list[_Job]) -> None:
        if self.spool.pending:
            self._spool(jobs)
            return
        records = [job.record for job in jobs]
        refused: dict[int, Exception] = {}
        try:
            self._commit_isolating(records, refused)
        except _OutageAt as outage:
            self._database_down(outage.error)
            self._answer_committed(jobs[: outage.start], refused)
            self._spool(jobs[outage.start :])
            return
        self._answer_committed(jobs, refused)

    def _answer_committed(self, jobs: list[_Job], refused: dict[int, Exception]) -> None:
        """Acknowledge the stored jobs; a refused one gets its error (no answer: it was not recorded)."""
        RECORDS.labels("stored").inc(len(jobs) - len(refused))
        for index, job in enumerate(jobs):
            error = refused.get(index)
            if error is None:
                self._reply(job)
                continue
            RECORDS.labels("failed").inc()
            log.error(
                "accounting record refused by the database, not acknowledged: user %s NAS %s session %s: %s",
                job.record.username,
                job.record.nas_ip_address,
                job.record.acct_session_id,
                error,
            )
            self._reply(job, error=error)

    def _commit_isolating(self, records: list[AccountingRecord], refused: dict[int, Exception]) -> None:
        """Commit records in order; a part the database refuses is halved until the records at
        fault stand alone (``refused`` gets them by index), so one poisoned record costs about
        2 log2(batch) commits, not one per record. Raises _OutageAt when the database goes away,
        naming the first record not committed."""
        parts = [(0, len(records))]
        while parts:
            start, end = parts.pop()
            try:
                self._commit(records[start:end])
            except Exception as error:
                if is_outage(error):
                    raise _OutageAt(start, error) from error
                if end - start == 1:
                    refused[start] = error
                else:
                    middle = (start + end) // 2
                    parts += [(middle, end), (start, middle)]

    def _spool(self, jobs: list[_Job]) -> None:
        try:
            self.spool.append([job.record for job in jobs])
        except OSError as error:
            log.error(
                "cannot write the accounting spool %s: %s; requests not acknowledged", self.spool.path, error
            )
            for job in jobs:
                self._reply(job, error=error)
            return
        RECORDS.labels("spooled").inc(len(jobs))
        SPOOL_DEPTH.set(self.spool.pending)
        for job in jobs:
            self._reply(job)

    def _database_down(self, error: Exception) -> None:
        if self._database_up:
            log.error("database unreachable, spooling accounting records to %s: %s", self.spool.path, error)
        self._database_up = False
        DATABASE_UP.set(0)

    def _replay_from_timer(self) -> int:
        self._later(setattr, self, "_retry_queued", False)
        return self.replay()

    def replay(self) -> int:
        """Commit spooled records in order, chunk by chunk; stop at the first outage. Writer thread only."""
        replayed = 0
        while self.spool.pending:
            chunk = self.spool.read(self.max_batch)
            if not chunk:
                break
            records = [record for _offset, record in chunk]
            refused: dict[int, Exception] = {}
            try:
                self._commit_isolating(records, refused)
            except _OutageAt as outage:
                self._database_down(outage.error)
                return replayed  # the chunk is replayed again, idempotently
            for index, error in sorted(refused.items()):
                RECORDS.labels("failed").inc()
                log.error(
                    "spooled accounting record refused by the database, skipped: user %s NAS %s session %s: %s",
                    records[index].username,
                    records[index].nas_ip_address,
                    records[index].acct_session_id,
                    error,
                )
            self.spool.advance(chunk[-1][0], len(chunk))
            replayed += len(chunk)
            SPOOL_REPLAYED.inc(len(chunk))
            SPOOL_DEPTH.set(self.spool.pending)
        if replayed:
            log.info("replayed %d spooled accounting records into the database", replayed)
        self._database_up = True
        DATABASE_UP.set(1)
        return replayed

    def _sweep(self, now: datetime, interim_interval: int) -> int:
        if self.spool.pending:
            return 0  # the database is behind the spool; closing now could close live sessions
        with self._transaction() as connection:
            outcome = close_stale_sessions(connection, now, interim_interval)
        if outcome.closed:
            SESSIONS_CLOSED.labels("lost_service").inc(outcome.closed)
            self._later(self._sessions_counted, outcome.open_sessions, outcome.change_ids)
            log.info(
                "closed %d sessions silent for %d interim intervals (Lost-Service)",
                outcome.closed,
                MISSED_INTERIMS,
            )
        return outcome.closed
