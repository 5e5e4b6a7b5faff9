"""Start radiusd: wire settings, database, view and listeners together, then run.

``Radiusd`` is the composition: one view, one database pool, the follower
that keeps the view current, and one listener per port. Accounting adds
itself with ``add_listener(acct_port, handler)`` and reuses the view's
routers, the packet checks and a duplicate cache of its own.

With ``[radiusd] workers = N`` the process reads the view once, then forks
N workers before the reactor starts (radiusd/workers.py); each starts from
that view in memory it shares with the others until it changes it
(copy-on-write), follows the change log itself, binds the ports with
SO_REUSEPORT and serves metrics on ``metrics_port + its index``.
"""

import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from twisted.internet import task

from radiusd import metrics
from radiusd.accounting.service import AccountingService
from radiusd.accounting.store import take_over_stale_sessions
from radiusd.auth.handler import AccessHandler
from radiusd.auth.postauth import PostAuthLog
from radiusd.auth.why import next_answer
from radiusd.protocol import RadiusServerProtocol
from radiusd.sockets import listen_udp
from radiusd.view import queries
from radiusd.view.follower import (
    POSTGRESQL_POLL_SECONDS,
    SQLITE_POLL_SECONDS,
    Follower,
    listen_for_changes,
    read_everything,
)
from radiusd.view.view import SubscriberView
from radiusd.workers import run_workers
from schema.changes import NOTIFY_CHANNEL
from schema.engine import is_sqlite
from schema.pool import Pool
from schema.runtime import Reloader, Systemd, configure_logging, listen_metrics
from schema.settings import RadiusdSettings, Settings

log = logging.getLogger("radiusd")

# What cli may use besides running radiusd: the next answer for ``radbill why``.
__all__ = ["Radiusd", "next_answer", "run", "serve"]

LOAD_RETRY_SECONDS = 2.0
STATUS_SECONDS = 10.0
# What SIGHUP applies to a running radiusd; anything else changed needs a restart.
RELOADABLE = frozenset(
    f"radiusd.{key}"
    for key in ("interim_interval", "expired_policy", "expired_pool", "expired_address_list", "expired_rate")
)


class Radiusd:
    def __init__(
        self, settings: RadiusdSettings, engine: Engine, reactor, *, reuse_port: bool = False, preloaded=None
    ):
        """``preloaded``: the view as read_everything read it before forking, or None to read it at start."""
        self.settings = settings
        self._preloaded = preloaded
        self.engine = engine
        self.reactor = reactor
        self.reuse_port = reuse_port
        self.view = SubscriberView()
        self.database = Pool(engine, reactor, name="radiusd-db")
        poll = SQLITE_POLL_SECONDS if is_sqlite(engine) else POSTGRESQL_POLL_SECONDS
        self.follower = Follower(self.view, self.database, reactor, poll_interval=poll)
        self.postauth = PostAuthLog(self.database, reactor)
        self.access = AccessHandler(
            self.view,
            settings,
            reactor,
            record_attempt=self.postauth.record,
            message_authenticator_seen=self._store_message_authenticator_seen,
            take_over=self._take_over,
        )
        self.ports = []
        self._stop_listening = threading.Event()

    def add_listener(self, port: int, handler) -> RadiusServerProtocol:
        protocol = RadiusServerProtocol(self.view, handler, self.reactor)
        self.ports.append(
            listen_udp(
                self.reactor,
                protocol,
                self.settings.bind,
                port,
                receive_buffer=self.settings.receive_buffer,
                reuse_port=self.reuse_port,
            )
        )
        return protocol

    def start(self):
        """Load the view with the period's usage (retrying while the database is away), then listen."""
        d = self.follower.load(self._preloaded)
        d.addCallbacks(self._loaded, self._load_failed)
        return d

    def apply(self, settings: RadiusdSettings) -> None:
        """SIGHUP: the policy settings decide the next Access-Request."""
        self.access.settings = settings
        self.settings = settings

    def _load_failed(self, failure):
        if not failure.check(DBAPIError, OSError):
            return failure
        log.error(
            "cannot load the subscribers (%s); retrying in %.0f s",
            failure.getErrorMessage().splitlines()[0],
            LOAD_RETRY_SECONDS,
        )
        return task.deferLater(self.reactor, LOAD_RETRY_SECONDS, self.start)

    def _loaded(self, _):
        # The view's hundred thousand rows live as long as the process: keep
        # them out of the cyclic garbage collector's full passes, whose pauses
        # would otherwise show up in the latency tail.
        gc.freeze()
        self.add_listener(self.settings.auth_port, self.access)
        self.follower.start()
        self.postauth.start()
        if not is_sqlite(self.engine):
            url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            thread = threading.Thread(
                target=listen_for_changes,
                name="radiusd-listen",
                daemon=True,
                args=(url, NOTIFY_CHANNEL, self._wake, self._stop_listening),
            )
            thread.start()
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        log.info("radiusd answering authentication on %s:%d", self.settings.bind, self.settings.auth_port)

    def _wake(self) -> None:
        self.reactor.callFromThread(self.follower.wake)

    def _take_over(self, subscriber, client, calling_station_id, now):
        d = self.database.run(
            "radiusd.take_over_stale_sessions",
            take_over_stale_sessions,
            subscriber.id,
            client.id,
            calling_station_id,
            now,
            self.settings.interim_interval,
            write=True,
        )
        d.addCallback(self._taken_over, subscriber, client)
        return d

    def _taken_over(self, outcome, subscriber, client) -> int:
        for reason, count in outcome.taken.items():
            metrics.TAKEOVERS.labels(reason, client.name).inc(count)
            log.info(
                "closed %d stale session(s) of %s (%s) to let a new login in from NAS %s",
                count,
                subscriber.username,
                reason,
                client.name,
            )
        if outcome.open_sessions:
            self.follower.counted(outcome.open_sessions, outcome.change_ids)
        return sum(outcome.taken.values())

    def _store_message_authenticator_seen(self, client) -> None:
        d = self.database.run(
            "radiusd.message_authenticator_seen",
            queries.mark_message_authenticator_seen,
            client.id,
            write=True,
        )
        d.addErrback(
            lambda failure: log.warning(
                "could not store that NAS %s signs its requests: %s", client.name, failure.getErrorMessage()
            )
        )

    def stop(self):
        self._stop_listening.set()
        self.follower.stop()
        return self.postauth.stop()


class StatusLine:
    """systemd's STATUS for one radiusd process: subscribers loaded, requests per second, accounting backlog."""

    def __init__(self, server: Radiusd, accounting: AccountingService, clock):
        self._server = server
        self._accounting = accounting
        self._clock = clock
        self._last = (clock.seconds(), self._requests())

    @staticmethod
    def _requests() -> float:
        return sum(
            sample.value
            for metric in metrics.REQUESTS.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )

    def __call__(self) -> str:
        now, requests = self._clock.seconds(), self._requests()
        then, before = self._last
        self._last = (now, requests)
        rate = (requests - before) / (now - then) if now > then else 0.0
        return (
            f"{len(self._server.view)} subscribers, {rate:.0f} requests/s, "
            f"accounting queue {self._accounting.writer.queue_depth}, spool {self._accounting.spool.pending}"
        )


def serve(
    settings: Settings,
    engine: Engine,
    *,
    worker: int = 0,
    reuse_port: bool = False,
    systemd: Systemd | None = None,
    load_settings: Callable[[], Settings] | None = None,
    preloaded=None,
) -> int:
    """Run one radiusd process until it is stopped; the exit status.

    READY goes to systemd once the view and usage are loaded and both ports
    are bound; then WATCHDOG pings from this reactor and a STATUS line every
    few seconds. SIGTERM stops the listeners and lets the accounting writer
    commit what it has queued before the process ends.
    """
    from twisted.internet import reactor

    systemd = systemd or Systemd()
    server = Radiusd(settings.radiusd, engine, reactor, reuse_port=reuse_port, preloaded=preloaded)
    accounting = AccountingService(
        settings, engine, reactor, worker=worker, sessions_counted=server.follower.counted
    )
    metrics_port = settings.radiusd.metrics_port + worker if settings.radiusd.metrics_port else 0
    listen_metrics(metrics_port, settings.radiusd.bind)
    if load_settings is not None:

        def apply(new: Settings) -> None:
            server.apply(new.radiusd)
            accounting.settings = new.radiusd

        Reloader(settings, load_settings, apply, RELOADABLE, systemd, "radiusd").install(reactor)
    failed = []

    def cannot_start(failure):
        log.error("radiusd cannot start: %s", failure.getTraceback())
        failed.append(failure)
        reactor.stop()

    def serving(_):
        status = StatusLine(server, accounting, reactor)
        systemd.ready(status())
        systemd.keep_alive(reactor)
        task.LoopingCall(lambda: systemd.status(status())).start(STATUS_SECONDS, now=False)
        reactor.addSystemEventTrigger("before", "shutdown", systemd.stopping)

    def started():
        d = server.start()
        d.addCallback(lambda _: accounting.start(server.add_listener))
        d.addCallback(serving)
        d.addErrback(cannot_start)

    reactor.callWhenRunning(started)
    reactor.run()
    return 1 if failed else 0


def run(settings: Settings, engine: Engine, load_settings: Callable[[], Settings] | None = None) -> None:
    configure_logging("radiusd", settings.log.level)
    systemd = Systemd.from_environment()
    if settings.radiusd.workers == 1:
        sys.exit(serve(settings, engine, systemd=systemd, load_settings=load_settings))
    preloaded = read_before_forking(engine)

    def serve_worker(index: int, worker_systemd: Systemd) -> int:
        engine.dispose(close=False)  # the parent's connections are not the worker's to use
        return serve(
            settings,
            engine,
            worker=index,
            reuse_port=True,
            systemd=worker_systemd,
            load_settings=load_settings,
            preloaded=preloaded,
        )

    sys.exit(run_workers(settings.radiusd.workers, serve_worker, systemd))


def read_before_forking(engine: Engine):
    """The view, read once for all workers (retrying while the database is away).

    Forked after this, every worker starts from the same pages, shared until
    a worker writes to them, instead of each reading and holding its own
    copy (at a million subscribers: 20 s and 1 GiB per worker). Frozen, the
    objects stay out of the workers' garbage collector, whose passes would
    write to every page they walk.
    """
    while True:
        started = time.monotonic()
        try:
            with engine.connect() as connection:
                preloaded = read_everything(connection, datetime.now(UTC).date())
            break
        except (DBAPIError, OSError) as error:
            log.error(
                "cannot load the subscribers (%s); retrying in %.0f s",
                str(error).splitlines()[0],
                LOAD_RETRY_SECONDS,
            )
            time.sleep(LOAD_RETRY_SECONDS)
    engine.dispose()  # the workers open their own connections
    gc.freeze()
    log.info("view read for the workers in %.1f s", time.monotonic() - started)
    return preloaded
