"""The one bridge from a reactor to the database: named transactions on a thread pool.

As in buildbot and synapse, each unit of work is one function of a
connection, run in a pool thread and handed back as a Deferred, so the
reactor thread never waits on the database. Units of work return plain data
(tuples, dicts, dataclasses), never rows or connections, which belong to the
thread. The name labels ``radbill_database_transaction_seconds`` and log lines.

radiusd, the enforcement worker (nas/) and billingd all come in here. The
pool has as many threads as the engine keeps connections, so a thread never
waits for a connection; the engine's overflow is left for the few holders of
a :func:`dedicated_connection` (the accounting writer's group commit, the
billing lock).
"""

import time

from prometheus_client import Histogram
from sqlalchemy import Connection, Engine
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

TRANSACTION_SECONDS = Histogram(
    "radbill_database_transaction_seconds",
    "Duration of the daemons' database transactions, by name (component.what).",
    ["transaction"],
)
_THREADS_WITHOUT_A_SIZED_POOL = 3  # SQLite in memory: one connection per thread, no size


def pool_threads(engine: Engine) -> int:
    """As many threads as the engine pools connections."""
    size = getattr(engine.pool, "size", None)
    return size() if callable(size) else _THREADS_WITHOUT_A_SIZED_POOL


def dedicated_connection(engine: Engine) -> Connection:
    """A connection one thread keeps for its whole life, outside the pool's threads.

    For work that must not queue behind other transactions (the accounting
    writer, whose speed is one connection's round trips) or that holds a
    session-level state (the billing advisory lock).
    """
    return engine.connect()


class Pool:
    def __init__(self, engine: Engine, reactor, *, name: str, threads: int | None = None):
        self.engine = engine
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads or pool_threads(engine), name=name)
        reactor.callWhenRunning(self._pool.start)
        self._shutdown = reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def close(self) -> None:
        """Stop the threads now (tests; a daemon's pool stops at reactor shutdown)."""
        self._reactor.removeSystemEventTrigger(self._shutdown)
        self._pool.stop()

    def run(self, name: str, work, *args, write: bool = False):
        """Run ``work(connection, *args)`` in one transaction on a pool thread.

        ``write`` commits at the end (and rolls back on an error); otherwise
        the connection only reads.
        """

        def transaction():
            if write:
                with self.engine.begin() as connection:
                    return work(connection, *args)
            with self.engine.connect() as connection:
                return work(connection, *args)

        return self.call(name, transaction)

    def call(self, name: str, function, *args):
        """Run ``function(*args)`` on a pool thread, timed under ``name``: work that
        manages its own transactions (a billing run, one per day) or connection."""

        def timed():
            started = time.monotonic()
            try:
                return function(*args)
            finally:
                TRANSACTION_SECONDS.labels(name).observe(time.monotonic() - started)

        return deferToThreadPool(self._reactor, self._pool, timed)
