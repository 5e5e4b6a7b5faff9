"""The one way radiusd reaches the database: named transactions on a thread pool.

As in buildbot and synapse, each unit of work is one function of a
connection, run in a pool thread and handed back as a Deferred, so the
reactor thread never waits on the database. The name shows up in the
``radbill_radiusd_database_seconds`` metric and in log lines.
"""

import time

from sqlalchemy import Engine
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from radiusd.metrics import DATABASE_SECONDS


class Database:
    def __init__(self, engine: Engine, reactor, threads: int = 3):
        self.engine = engine
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="radiusd-db")
        reactor.callWhenRunning(self._pool.start)
        self._shutdown = reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def close(self) -> None:
        """Stop the threads now (tests; the daemon stops them at reactor shutdown)."""
        self._reactor.removeSystemEventTrigger(self._shutdown)
        self._pool.stop()

    def run(self, name: str, work, *args, write: bool = False):
        """Run ``work(connection, *args)`` in one transaction on a pool thread."""

        def transaction():
            started = time.monotonic()
            try:
                if write:
                    with self.engine.begin() as connection:
                        return work(connection, *args)
                with self.engine.connect() as connection:
                    return work(connection, *args)
            finally:
                DATABASE_SECONDS.labels(name).observe(time.monotonic() - started)

        return deferToThreadPool(self._reactor, self._pool, transaction)
