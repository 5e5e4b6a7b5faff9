"""Start radiusd: wire settings, database, view and listeners together, then run.

``Radiusd`` is the composition: one view, one database pool, the follower
that keeps the view current, and one listener per port. Accounting adds
itself with ``add_listener(acct_port, handler)`` and reuses the view's
routers, the packet checks and a duplicate cache of its own.

With ``[radiusd] workers = N`` the process forks N workers before the
reactor starts; each binds the ports with SO_REUSEPORT, keeps its own view
and serves metrics on ``metrics_port + its index``.
"""

import gc
import logging
import os
import signal
import sys
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from twisted.internet import task

from radiusd.accounting.service import AccountingService
from radiusd.auth.handler import AccessHandler
from radiusd.auth.postauth import PostAuthLog
from radiusd.protocol import RadiusServerProtocol
from radiusd.sockets import listen_udp
from radiusd.view import queries
from radiusd.view.follower import POSTGRESQL_POLL_SECONDS, SQLITE_POLL_SECONDS, Follower, listen_for_changes
from radiusd.view.view import SubscriberView
from schema.changes import NOTIFY_CHANNEL
from schema.engine import is_sqlite
from schema.pool import Pool
from schema.runtime import configure_logging, listen_metrics
from schema.settings import RadiusdSettings, Settings

log = logging.getLogger("radiusd")

LOAD_RETRY_SECONDS = 2.0


class Radiusd:
    def __init__(self, settings: RadiusdSettings, engine: Engine, reactor, *, reuse_port: bool = False):
        self.settings = settings
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
        """Load the view (retrying while the database is away), then listen."""
        d = self.follower.load()
        d.addCallbacks(self._loaded, self._load_failed)
        return d

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


def serve(settings: Settings, engine: Engine, *, worker: int = 0, reuse_port: bool = False) -> int:
    """Run one radiusd process until it is stopped; the exit status."""
    from twisted.internet import reactor

    server = Radiusd(settings.radiusd, engine, reactor, reuse_port=reuse_port)
    accounting = AccountingService(
        settings, engine, reactor, worker=worker, sessions_counted=server.follower.counted
    )
    metrics_port = settings.radiusd.metrics_port + worker if settings.radiusd.metrics_port else 0
    listen_metrics(metrics_port, settings.radiusd.bind)
    failed = []

    def cannot_start(failure):
        log.error("radiusd cannot start: %s", failure.getTraceback())
        failed.append(failure)
        reactor.stop()

    def started():
        d = server.start()
        d.addCallback(lambda _: accounting.start(server.add_listener))
        d.addErrback(cannot_start)

    reactor.callWhenRunning(started)
    reactor.run()
    return 1 if failed else 0


def run(settings: Settings, engine: Engine) -> None:
    configure_logging("radiusd")
    workers = settings.radiusd.workers
    if workers == 1:
        sys.exit(serve(settings, engine))
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            engine.dispose(close=False)
            status = 1
            try:
                status = serve(settings, engine, worker=index, reuse_port=True)
            except BaseException:
                log.exception("radiusd worker %d failed", index)
            finally:
                os._exit(status)
        children.append(pid)
    log.info("radiusd started %d workers: %s", workers, ", ".join(map(str, children)))
    sys.exit(_supervise(children))


def _supervise(children: list[int]) -> int:
    """Forward SIGTERM/SIGINT to the workers; when one ends, end them all."""

    def forward(signum, _frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    remaining = set(children)
    while remaining:
        pid, wait_status = os.wait()
        remaining.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if remaining and code != 0:
            log.error("worker %d ended with status %d; stopping the others", pid, code)
            forward(signal.SIGTERM, None)
        status = status or code
    return status
