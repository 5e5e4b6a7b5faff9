"""The radpostauth log: every authentication attempt, written in batches.

The reactor only appends to a bounded buffer; a timer hands batches to a
database thread. If the database is down the buffer keeps the newest rows
(FIELD-NOTES 8: an operator wants the last attempts) and counts the ones
it had to give up. Passwords are never written.
"""

import logging
from collections import deque

from twisted.internet import task

from radiusd import metrics
from radiusd.view import queries

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
BATCH_ROWS = 5_000
MAX_PENDING_ROWS = 100_000


class PostAuthLog:
    def __init__(self, database, clock, *, max_pending: int = MAX_PENDING_ROWS):
        self._database = database
        self._clock = clock
        self._pending: deque[dict] = deque()
        self._max_pending = max_pending
        self._writing = False
        self._loop = task.LoopingCall(self.flush)
        self._loop.clock = clock

    def record(self, attempt: dict) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            metrics.POSTAUTH_DROPPED.inc()
        self._pending.append(attempt)

    def start(self) -> None:
        self._loop.start(FLUSH_SECONDS, now=False)

    def stop(self):
        if self._loop.running:
            self._loop.stop()
        return self.flush()

    def flush(self):
        if self._writing or not self._pending:
            return None
        batch = [self._pending.popleft() for _ in range(min(BATCH_ROWS, len(self._pending)))]
        self._writing = True
        d = self._database.run("radiusd.write_postauth", queries.insert_postauth, batch, write=True)
        d.addErrback(self._failed, batch)
        d.addBoth(self._written)
        return d

    def _failed(self, failure, batch: list[dict]) -> None:
        room = self._max_pending - len(self._pending)
        kept = batch[-room:] if room > 0 else []
        metrics.POSTAUTH_DROPPED.inc(len(batch) - len(kept))
        self._pending.extendleft(reversed(kept))
        log.debug("radpostauth batch not written, kept for later: %s", failure.getErrorMessage())

    def _written(self, _) -> None:
        self._writing = False
