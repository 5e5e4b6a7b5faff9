"""billingd: run the day's billing at ``[billingd] run_at`` in ``[billingd] timezone``,
and the enforcement outbox worker that tells the routers (nas/worker.py).

Only one billingd is active at a time: on PostgreSQL it holds a session
advisory lock (the others stand by and try it every few seconds, so one takes
over within seconds of the active one dying: PostgreSQL frees the lock as
soon as the dead process's connection closes); on SQLite there is one host,
so it is always active.
Each run catches up every missed day in order (:func:`billingd.runs.run_through`).
Timers use the clock they are given (``task.Clock`` in tests); the database
work, the lock included, runs on the daemon's :class:`schema.pool.Pool`, so the
reactor stays free for /metrics.
"""

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from twisted.internet import defer, task

from billingd import notices, runs
from billingd.calendar import local_day
from nas.worker import EnforcementWorker
from schema.engine import is_sqlite
from schema.pool import Pool, dedicated_connection
from schema.runtime import Reloader, Systemd, configure_logging, listen_metrics
from schema.settings import BillingdSettings, NasSettings, NoticeSettings, Settings
from schema.tables import billing_runs, enforcement_jobs, sessions

log = logging.getLogger(__name__)
ADVISORY_LOCK_KEY = 0x7261_6462_696C_6C64 & 0x7FFF_FFFF_FFFF_FFFF  # "radbilld"
# A try of the lock is one cheap statement; the README promises a takeover within 10 s.
STANDBY_RETRY_SECONDS = 5.0
FAILURE_RETRY_SECONDS = 300.0
DATABASE_RETRY_SECONDS = 2.0
STATUS_SECONDS = 30.0
NOTICE_QUEUE_SECONDS = 3600.0
NOTICE_SEND_SECONDS = 5.0
# What SIGHUP applies to a running billingd; anything else changed needs a restart.
RELOADABLE = frozenset(
    [f"billingd.{key}" for key in ("run_at", "timezone", "invoice_due_days", "grace_days")]
    + [f"notices.{field.name}" for field in dataclasses.fields(NoticeSettings)]
    # The enforcement worker's knobs it reads at each pass; its CoA client keeps its timeout and retries.
    + [f"nas.{field.name}" for field in dataclasses.fields(NasSettings) if not field.name.startswith("coa_")]
)


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
            "radbill_billingd_run_seconds",
            "Time to run one billing day",
            buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.charged = Counter(
            "radbill_billingd_customers_charged", "Customers charged by daily runs", registry=registry
        )
        self.suspended = Counter(
            "radbill_billingd_customers_suspended", "Customers suspended by runs", registry=registry
        )
        self.amount = Counter(
            "radbill_billingd_amount_charged_minor_units",
            "Money charged by daily runs (minor units)",
            registry=registry,
        )
        self.invoices = Counter(
            "radbill_billingd_invoices_issued", "Monthly invoices issued", registry=registry
        )
        self.last_day = Gauge(
            "radbill_billingd_last_day_timestamp_seconds",
            "The last billing day completed (UTC midnight)",
            registry=registry,
        )
        self.active = Gauge(
            "radbill_billingd_active", "1 when this instance holds the billing lock", registry=registry
        )
        self.failures = Counter(
            "radbill_billingd_run_failures", "Runs that failed and will be retried", registry=registry
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
        self.active = False
        self.standing_by = False

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

    def apply(self, settings: Settings) -> None:
        """SIGHUP: new run time, time zone and invoice terms; a pending run is rescheduled."""
        self.settings = settings.billingd
        if self.call is not None and self.call.active() and not self.running and self.active:
            self.call.cancel()
            self._schedule_next_run()

    def _schedule(self, delay: float) -> None:
        self.call = self.clock.callLater(max(delay, 0.0), self.tick)

    def _schedule_next_run(self) -> None:
        next_instant = next_run(self.now(), self.settings.run_time, self.settings.zone)
        log.info("next billing run at %s", next_instant.astimezone(self.settings.zone).isoformat())
        self._schedule((next_instant - self.now()).total_seconds())

    @defer.inlineCallbacks
    def tick(self):
        self.call = None
        self.active = yield self.leadership.acquire()
        if not self.active:
            self.metrics.active.set(0)
            if not self.standing_by:  # once, not at every try
                log.info(
                    "another billingd is active; standing by (trying every %.0f s)", STANDBY_RETRY_SECONDS
                )
            self.standing_by = True
            self._schedule(STANDBY_RETRY_SECONDS)
            return
        if self.standing_by:
            log.info("took over as the active billingd")
        self.standing_by = False
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


@dataclass(frozen=True)
class Health:
    """What billingd looks at every STATUS_SECONDS: systemd's STATUS line and the gauges alerts watch."""

    last_day: date | None
    jobs_pending: int
    jobs_failed: int
    sessions_open: int


def read_health(engine: Engine) -> Health:
    with engine.connect() as connection:
        counts = dict(
            connection.execute(
                select(enforcement_jobs.c.status, func.count())
                .where(enforcement_jobs.c.status.in_(("pending", "failed")))
                .group_by(enforcement_jobs.c.status)
            ).all()
        )
        last_day = connection.execute(
            select(func.max(billing_runs.c.day)).where(billing_runs.c.finished_at.is_not(None))
        ).scalar()
        open_sessions = connection.execute(
            select(func.count()).select_from(sessions).where(sessions.c.stopped_at.is_(None))
        ).scalar()
    return Health(last_day, counts.get("pending", 0), counts.get("failed", 0), open_sessions)


class HealthGauges:
    """The figures of :class:`Health` on /metrics, and whether the database answered the last look."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.database_up = Gauge(
            "radbill_billingd_database_up",
            "1 while billingd's database answers, 0 while it does not",
            registry=registry,
        )
        self.jobs = Gauge(
            "radbill_billingd_enforcement_jobs",
            "Enforcement outbox jobs not done, by status (pending, failed)",
            ["status"],
            registry=registry,
        )
        self.sessions = Gauge(
            "radbill_billingd_sessions_open",
            "Open sessions (every radiusd's) in the database",
            registry=registry,
        )

    def update(self, health: Health, metrics: Metrics) -> None:
        self.database_up.set(1)
        self.jobs.labels("pending").set(health.jobs_pending)
        self.jobs.labels("failed").set(health.jobs_failed)
        self.sessions.set(health.sessions_open)
        if health.last_day is not None:
            metrics.last_day.set(datetime.combine(health.last_day, time(0), tzinfo=UTC).timestamp())


def status_line(health: Health, scheduler: "Scheduler") -> str:
    """systemd's STATUS for billingd: active or standing by, the last day run, the enforcement backlog."""
    role = "active" if scheduler.active else "standing by"
    return (
        f"{role}; last billing day {health.last_day or 'none'}; "
        f"enforcement jobs pending {health.jobs_pending}, failed {health.jobs_failed}; "
        f"{health.sessions_open} sessions open"
    )


class NoticeSender:
    """The notices outbox on billingd's clock: reminders queued hourly, due notices sent every few
    seconds, both only by the active instance (billingd/notices.py)."""

    def __init__(self, engine: Engine, database: Pool, settings: Settings, scheduler: "Scheduler", clock):
        self.engine = engine
        self.database = database
        self.settings = settings
        self.scheduler = scheduler
        self.gateway = notices.SmsGateway(settings.notices)
        self._loops = [
            (task.LoopingCall(self.queue), NOTICE_QUEUE_SECONDS),
            (task.LoopingCall(self.send), NOTICE_SEND_SECONDS),
        ]
        for loop, _ in self._loops:
            loop.clock = clock

    def apply(self, settings: Settings) -> None:
        """SIGHUP: new reminder rules and gateway for the next look."""
        self.settings = settings
        self.gateway = notices.SmsGateway(settings.notices)

    def start(self) -> None:
        for loop, interval in self._loops:
            loop.start(interval, now=True)

    def stop(self) -> None:
        for loop, _ in self._loops:
            if loop.running:
                loop.stop()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.scheduler.clock.seconds(), UTC)

    def queue(self):
        if not self.scheduler.active:
            return None

        def queue_in_transaction():
            with self.engine.begin() as connection:
                return notices.queue_reminders(
                    connection, self._now(), self.settings.notices, self.settings.billingd.zone
                )

        d = self.database.call("billingd.queue_notices", queue_in_transaction)
        d.addCallback(lambda queued: queued and log.info("queued %d reminder notices", queued))
        return d.addErrback(
            lambda failure: log.warning("queueing notices failed: %s", failure.getErrorMessage())
        )

    def send(self):
        if not self.scheduler.active:
            return None
        d = self.database.call(
            "billingd.send_notices", notices.deliver_due, self.engine, self.gateway, self._now()
        )
        return d.addErrback(
            lambda failure: log.warning("sending notices failed: %s", failure.getErrorMessage())
        )


def database_reachable(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def run(settings: Settings, engine: Engine, load_settings: Callable[[], Settings] | None = None) -> None:
    """Run billingd until SIGTERM; READY goes to systemd once the database answers."""
    from twisted.internet import reactor

    configure_logging("billingd", settings.log.level)
    systemd = Systemd.from_environment()
    listen_metrics(settings.billingd.metrics_port, settings.billingd.bind)

    database = Pool(engine, reactor, name="billingd-db")

    def work(through: date):
        return database.call("billingd.run_through", runs.run_through, engine, through, scheduler.settings)

    scheduler = Scheduler(reactor, settings.billingd, Leadership(engine, database), work, Metrics())
    # The enforcement outbox worker (nas/): tells the routers about what the runs and commands changed.
    worker = EnforcementWorker(database, settings.nas, zone=settings.billingd.zone, reactor=reactor)
    notice_sender = NoticeSender(engine, database, settings, scheduler, reactor)
    if load_settings is not None:

        def apply(new: Settings) -> None:
            scheduler.apply(new)
            notice_sender.apply(new)
            worker.settings = new.nas

        Reloader(settings, load_settings, apply, RELOADABLE, systemd, "billingd").install(reactor)
    gauges = HealthGauges()

    def look():
        """Read the health off the reactor; publish it as STATUS and gauges."""

        def seen(health: Health) -> str:
            gauges.update(health, scheduler.metrics)
            return status_line(health, scheduler)

        return database.call("billingd.health", read_health, engine).addCallback(seen)

    def report_status():
        def unreachable(failure):
            gauges.database_up.set(0)
            systemd.status(f"database unreachable: {failure.getErrorMessage().splitlines()[0]}")

        return look().addCallbacks(systemd.status, unreachable)

    @defer.inlineCallbacks
    def start():
        while True:
            try:
                yield database.call("billingd.database_reachable", database_reachable, engine)
                break
            except DBAPIError as error:
                log.error("database unreachable (%s); retrying", str(error.orig).splitlines()[0])
                systemd.status("waiting for the database")
                yield task.deferLater(reactor, DATABASE_RETRY_SECONDS, lambda: None)
        scheduler.start()
        worker.start()
        notice_sender.start()
        status = yield look()
        systemd.ready(status)
        systemd.keep_alive(reactor)
        task.LoopingCall(report_status).start(STATUS_SECONDS, now=False)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", systemd.stopping)
    reactor.addSystemEventTrigger("before", "shutdown", scheduler.stop)
    reactor.addSystemEventTrigger("before", "shutdown", worker.stop)
    reactor.addSystemEventTrigger("before", "shutdown", notice_sender.stop)
    log.info(
        "billingd started: runs at %s %s; metrics on %s:%d",
        settings.billingd.run_at,
        settings.billingd.timezone,
        settings.billingd.bind,
        settings.billingd.metrics_port,
    )
    reactor.run()
