"""Accounting's part of radiusd: the writer, its spool, its timers and its listener.

``start`` is called once the subscriber view has loaded (the listener finds
routers through it): it replays what a previous run left in the spool, then
answers Accounting-Requests on ``[radiusd] acct_port``. Two timers run on the
reactor's clock: a retry that replays the spool while the database is back,
and the sweep that closes sessions silent for three interim intervals.
"""

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from twisted.internet import task

from radiusd.accounting.handler import AccountingHandler
from radiusd.accounting.spool import Spool
from radiusd.accounting.writer import AccountingWriter
from schema.errors import RadbillError
from schema.settings import Settings

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
SWEEP_SECONDS = 60.0
# The writer thread waits on the database a dozen times per batch, and each
# time must win the GIL back from a busy reactor thread: with CPython's default
# 5 ms switch interval that wait, not the database, bounds accounting under
# load. 0.5 ms measured 1.6x the writer's throughput beside a busy thread.
SWITCH_INTERVAL_SECONDS = 0.0005


def spool_directory(spool_dir: str, worker: int) -> Path:
    """Each worker process owns one spool: appends and the replay cursor are never shared."""
    return Path(spool_dir) / f"worker-{worker}"


def adopt_orphan_spools(spool: Spool, spool_dir: str, workers: int) -> int:
    """Take over the spools of workers that no longer exist (``workers`` was lowered while they held records).

    Their records are appended to ``spool`` before they are marked replayed
    there; a crash in between replays them twice, which the idempotent
    writes make harmless.
    """
    adopted = 0
    for directory in sorted(Path(spool_dir).glob("worker-*")):
        index = directory.name.removeprefix("worker-")
        if not index.isdigit() or int(index) < workers:
            continue
        orphan = Spool(directory)
        try:
            if orphan.pending:
                records = [record for _offset, record in orphan.read(orphan.pending)]
                spool.append(records)
                orphan.advance(orphan.end, len(records))
                adopted += len(records)
                log.info("took over %d spooled accounting records from %s", len(records), directory)
        finally:
            orphan.close()
    return adopted


class AccountingService:
    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        reactor,
        *,
        worker: int = 0,
        sessions_counted: Callable[[dict[int, int], list[int]], None] = lambda counts, change_ids: None,
    ):
        """``sessions_counted``: see AccountingWriter (radiusd.view.follower.Follower.counted)."""
        self.settings = settings.radiusd
        self.reactor = reactor
        directory = spool_directory(self.settings.spool_dir, worker)
        try:
            self.spool = Spool(directory)
        except OSError as error:
            raise RadbillError(
                f"cannot use the accounting spool {directory}: {error.strerror} "
                f"(configuration key 'radiusd.spool_dir')"
            ) from None
        if worker == 0:
            adopt_orphan_spools(self.spool, self.settings.spool_dir, self.settings.workers)
        self.writer = AccountingWriter(
            engine,
            self.spool,
            settings.billingd.zone,
            reactor,
            queue_size=self.settings.acct_queue_size,
            sessions_counted=sessions_counted,
        )
        self.handler = AccountingHandler(self.writer, reactor)
        self._retry = task.LoopingCall(self.writer.retry)
        self._retry.clock = reactor
        self._sweep = task.LoopingCall(self.sweep)
        self._sweep.clock = reactor

    def start(self, add_listener) -> None:
        """Start writing, then listen with ``add_listener(port, handler)`` (radiusd.service.Radiusd)."""
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
        self.writer.start()
        self._retry.start(RETRY_SECONDS, now=False)
        self._sweep.start(min(SWEEP_SECONDS, self.settings.interim_interval), now=False)
        self.reactor.addSystemEventTrigger("before", "shutdown", self.stop)
        add_listener(self.settings.acct_port, self.handler)
        log.info(
            "radiusd answering accounting on %s:%d (spool %s)",
            self.settings.bind,
            self.settings.acct_port,
            self.spool.directory,
        )

    def sweep(self):
        now = datetime.fromtimestamp(self.reactor.seconds(), UTC)
        d = self.writer.close_stale(now, self.settings.interim_interval)
        d.addErrback(lambda failure: log.warning("stale-session sweep failed: %s", failure.getErrorMessage()))
        return d

    def stop(self):
        for timer in (self._retry, self._sweep):
            if timer.running:
                timer.stop()
        return self.writer.stop()
