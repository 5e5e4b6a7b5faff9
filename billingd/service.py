"""billingd: run the day's billing at ``[billingd] run_at`` in ``[billingd] timezone``,
and the enforcement outbox worker that tells the routers (nas/worker.py).

Only one billingd is active at a time: on PostgreSQL it holds a session
advisory lock (the others stand by and retry every minute, so one takes over
if the active one dies); on SQLite there is one host, so it is always active.
Each run catches up every missed day in order (:func:`billingd.runs.run_through`).
Timers use the clock they are given (``task.Clock`` in tests); the database
work, the lock included, runs on the daemon's :class:`schema.pool.Pool`, so the
reactor stays free for /metrics.
"""

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from twisted.internet import defer

from billingd import runs
from billingd.prices import local_day
from nas.worker import EnforcementWorker
from schema.engine import is_sqlite
from schema.pool import Pool, dedicated_connection
from schema.runtime import configure_logging, listen_metrics
from schema.settings import BillingdSettings, Settings

log = logging.getLogger(__name__)
ADVISORY_LOCK_KEY = 0x7261_6462_696C_6C64 & 0x7FFF_FFFF_FFFF_FFFF  # "radbilld"
STANDBY_RETRY_SECONDS = 60.0
FAILURE_RETRY_SECONDS = 300.0


def next_run(now: datetime, run_at: time, zone: ZoneInfo) -> datetime:
    """The next instant (UTC) at which the local clock shows ``run_at``, strictly after ``now``."""
    today = local_day(now, zone)
    for offset in range(3):
        candidate = datetime.combine(today + timedelta(days=offset), run_at, tzinfo=zone).astimezone(UTC)
        if candidate > now:
            return candidate
    raise AssertionError("unreachable: a day always has a run time")


def due_through(now: datetime, run_at: time, zone: ZoneInfo) -> date:
    """The last local day whose run time has passed at ``now``."""
    local = now.astimezone(zone)
    return local.date() if local.time() >= run_at else local.date() - timedelta(days=1)


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.duration = Histogram(
            "radbill_billing_run_duration_seconds",
            "Time to run one billing day",
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.charged = Counter(
            "radbill_billing_customers_charged", "Customers charged by daily runs", registry=registry
        )
        self.suspended = Counter(
            "radbill_billing_customers_suspended", "Customers suspended by runs", registry=registry
        )
        self.amount = Counter(
            "radbill_billing_amount_charged_minor_units",
            "Money charged by daily runs (minor units)",
            registry=registry,
        )
        self.invoices = Counter(
            "radbill_billing_invoices_issued", "Monthly invoices issued", registry=registry
        )
        self.last_day = Gauge(
            "radbill_billing_last_day_timestamp_seconds",
            "The last billing day completed (UTC midnight)",
            registry=registry,
        )
        self.active = Gauge(
            "radbill_billingd_active", "1 when this instance holds the billing lock", registry=registry
        )
        self.failures = Counter(
            "radbill_billing_run_failures", "Runs that failed and will be retried", registry=registry
        )

    def record(self, result: runs.DayResult) -> None:
        if result.already_done:
            return
        self.duration.observe(result.seconds)
        self.charged.inc(result.customers_charged)
        self.suspended.inc(result.customers_suspended)
        self.amount.inc(result.amount_charged)
        self.invoices.inc(result.invoices)
        self.last_day.set(datetime.combine(result.day, time(0), tzinfo=UTC).timestamp())


class Leadership:
    """One active billingd among several hosts: a PostgreSQL session advisory lock.

    The lock lives in the session of a dedicated connection; ``acquire`` and
    ``release`` use it on the pool's threads, never on the reactor's.
    """

    def __init__(self, engine: Engine, database: Pool):
        self.engine = engine
        self._database = database
        self._connection = None

    def acquire(self) -> defer.Deferred:
        """A Deferred of True while this instance holds the lock."""
        return self._database.call("billingd.acquire_lock", self.try_acquire)

    def release(self) -> defer.Deferred:
        return self._database.call("billingd.release_lock", self.release_now)

    def try_acquire(self) -> bool:
        if is_sqlite(self.engine):
            return True
        try:
            if self._connection is None:
                self._connection = dedicated_connection(self.engine)
            held = self._connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            ).scalar()
            self._connection.commit()
            return bool(held)
        except DBAPIError:
            log.warning("lost the database connection that holds the billing lock; will retry", exc_info=True)
            self.release_now()
            return False

    def release_now(self) -> None:
        """Give the lock up; the session is discarded, not pooled, so no lock outlives it."""
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT pg_advisory_unlock_all()"))
                self._connection.invalidate()
                self._connection.close()
            except DBAPIError:
                pass
            self._connection = None


class Scheduler:
    """Fires the day's work at run_at, catches up at start, stands by when another instance runs.

    ``work(through)`` returns a Deferred of the list of DayResults; the
    composition root runs it in a thread, tests call it directly.
    """

    def __init__(self, clock, settings: BillingdSettings, leadership, work, metrics: Metrics):
        self.clock = clock
        self.settings = settings
        self.leadership = leadership
        self.work = work
        self.metrics = metrics
        self.call = None
        self.running = False

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def start(self) -> None:
        self.tick()

    def stop(self):
        """Cancel the timer and give the lock up (a Deferred the shutdown waits for)."""
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None
        return self.leadership.release()

    def _schedule(self, delay: float) -> None:
        self.call = self.clock.callLater(max(delay, 0.0), self.tick)

    def _schedule_next_run(self) -> None:
        next_instant = next_run(self.now(), self.settings.run_time, self.settings.zone)
        log.info("next billing run at %s", next_instant.astimezone(self.settings.zone).isoformat())
        self._schedule((next_instant - self.now()).total_seconds())

    @defer.inlineCallbacks
    def tick(self):
        self.call = None
        held = yield self.leadership.acquire()
        if not held:
            self.metrics.active.set(0)
            log.info("another billingd is active; standing by")
            self._schedule(STANDBY_RETRY_SECONDS)
            return
        self.metrics.active.set(1)
        through = due_through(self.now(), self.settings.run_time, self.settings.zone)
        self.running = True
        try:
            results = yield self.work(through)
        except Exception:
            self.metrics.failures.inc()
            log.exception("billing run through %s failed; retrying in %d s", through, FAILURE_RETRY_SECONDS)
            self._schedule(FAILURE_RETRY_SECONDS)
            return
        finally:
            self.running = False
        for result in results:
            self.metrics.record(result)
        self._schedule_next_run()


def run(settings: Settings, engine: Engine) -> None:
    from twisted.internet import reactor

    configure_logging("billingd")
    listen_metrics(settings.billingd.metrics_port, settings.billingd.bind)

    database = Pool(engine, reactor, name="billingd-db")

    def work(through: date):
        return database.call("billingd.run_through", runs.run_through, engine, through, settings.billingd)

    scheduler = Scheduler(reactor, settings.billingd, Leadership(engine, database), work, Metrics())
    reactor.callWhenRunning(scheduler.start)
    reactor.addSystemEventTrigger("before", "shutdown", scheduler.stop)
    # The enforcement outbox worker (nas/): tells the routers about what the runs and commands changed.
    worker = EnforcementWorker(database, reactor=reactor)
    reactor.callWhenRunning(worker.start)
    reactor.addSystemEventTrigger("before", "shutdown", worker.stop)
    log.info(
        "billingd started: runs at %s %s; metrics on %s:%d",
        settings.billingd.run_at,
        settings.billingd.timezone,
        settings.billingd.bind,
        settings.billingd.metrics_port,
    )
    reactor.run()
