"""Keeping the view current: the change log, session counts, usage.

Every write that can change a decision adds a row to ``change_log`` in its
own transaction (schema.changes.record_change). The follower reads the rows
it has not seen, reloads the customers, routers, packages and operators they
name, and applies them to the view on the reactor thread. SQLite is polled
every 200 ms; on PostgreSQL a LISTEN connection wakes the follower as soon
as a change commits, and a slower poll covers lost notifications.

Open sessions are counted the same way: every accounting batch (of any
radiusd sharing the database) that opens or closes a customer's session
logs a "sessions" change, and the follower recounts just those customers
(the radiusd that wrote the batch has counted them already, at commit).
A full recount every minute, in the same poll, is the safety net; counting
everyone every second cost a fifth of radiusd's CPU at 100,000 online.

PostgreSQL hands out sequence values at insert time but transactions commit
in any order, so "everything above the highest id seen" would skip a row
that commits late. ChangeCursor therefore remembers the holes below the
highest id it has seen and keeps asking for them until they fill or are old
enough to be a rolled-back transaction's burnt id.
"""

import logging
import threading
from datetime import UTC, datetime

from sqlalchemy.exc import DBAPIError
from twisted.internet import defer, task

from radiusd import metrics
from radiusd.view import queries
from radiusd.view.model import Snapshot
from radiusd.view.view import SubscriberView

log = logging.getLogger(__name__)

SQLITE_POLL_SECONDS = 0.2
POSTGRESQL_POLL_SECONDS = 1.0
USAGE_SECONDS = 1.0
SESSION_RECOUNT_SECONDS = 60.0
# Under an accounting storm every batch of every radiusd NOTIFYs; one poll
# per this many seconds takes them all, instead of one poll per batch.
WAKE_SECONDS = 0.1
GAP_TIMEOUT_SECONDS = 30.0
START_TAIL = 1000


class ChangeCursor:
    """Which change-log ids have been applied; pure, driven by the caller's clock.

    ``after`` is the id to read from: every id at or below it is applied or
    given up. Ids above it that were already applied are remembered, and the
    holes between them wait up to ``gap_timeout`` seconds.
    """

    def __init__(self, after: int, gap_timeout: float = GAP_TIMEOUT_SECONDS):
        self.after = after
        self._gap_timeout = gap_timeout
        self._applied: set[int] = set()
        self._holes: dict[int, float] = {}

    @classmethod
    def at_start(
        cls, last_id: int, tail_ids: list[int], now: float, gap_timeout: float = GAP_TIMEOUT_SECONDS
    ):
        """Start after a full load taken when ``last_id`` was the highest id;
        ``tail_ids`` are the ids present in the last START_TAIL, so an id
        below ``last_id`` whose transaction had not committed yet is still
        waited for."""
        cursor = cls(max(0, last_id - START_TAIL), gap_timeout)
        cursor.absorb([(change_id, None, None) for change_id in tail_ids], now)
        return cursor

    def unseen(self, rows: list[tuple]) -> list[tuple]:
        """The rows among ``rows`` not applied yet."""
        return [row for row in rows if row[0] > self.after and row[0] not in self._applied]

    def absorb(self, rows: list[tuple], now: float) -> list[tuple]:
        """Record rows ``(id, entity, entity_id)`` as applied; return the new ones."""
        new = self.unseen(rows)
        self._applied.update(row[0] for row in new)
        for row in new:
            self._holes.pop(row[0], None)
        self._note_holes(now)
        return new

    def pending_holes(self) -> int:
        return len(self._holes)

    def _note_holes(self, now: float) -> None:
        if self._applied:
            for change_id in range(self.after + 1, max(self._applied)):
                if change_id not in self._applied:
                    self._holes.setdefault(change_id, now)
        while True:
            following = self.after + 1
            if following in self._applied:
                self._applied.discard(following)
            elif following in self._holes and now - self._holes[following] >= self._gap_timeout:
                del self._holes[following]
            else:
                break
            self.after = following


def read_everything(connection, today) -> tuple[int, list[int], Snapshot]:
    """A full load: the change log's highest id and its last START_TAIL ids
    (see ChangeCursor.at_start), and every row the view holds."""
    last_id = queries.last_change_id(connection)
    tail = [row[0] for row in queries.read_change_ids(connection, max(0, last_id - START_TAIL), START_TAIL)]
    return last_id, tail, queries.read_snapshot(connection, today)


class Follower:
    """Loads the view, then keeps it current; survives a database outage."""

    def __init__(self, view: SubscriberView, database, clock, *, poll_interval: float):
        self.view = view
        self._database = database
        self._clock = clock
        self._poll_interval = poll_interval
        self._cursor: ChangeCursor | None = None
        self._polling = False
        self._poll_again = False
        self._reading_usage = False
        self._recounted_at = clock.seconds()
        self._counted_change_ids: set[int] = set()
        self._last_poll = float("-inf")
        self._wake_call = None
        self._database_up = True
        self._caught_up_at = clock.seconds()
        self._loops: list[task.LoopingCall] = []
        metrics.DATABASE_UP.set(1)
        metrics.VIEW_STALENESS.set_function(lambda: self._clock.seconds() - self._caught_up_at)
        metrics.VIEW_SUBSCRIBERS.set_function(lambda: len(self.view))
        metrics.VIEW_NAS.set_function(lambda: len(self.view.nas_by_ip))

    def load(self, preloaded: tuple[int, list[int], Snapshot] | None = None):
        """Read everything once, or take ``preloaded`` (what read_everything read
        before this worker was forked); the Deferred fires when the view is filled."""
        if preloaded is not None:
            return defer.maybeDeferred(self._loaded, preloaded)
        return self._database.run("radiusd.load_view", self._read_all).addCallback(self._loaded)

    def _read_all(self, connection):
        self._recounted_at = self._clock.seconds()
        return read_everything(connection, self._today())

    def _loaded(self, result) -> None:
        last_id, tail, snapshot = result
        self._cursor = ChangeCursor.at_start(last_id, tail, self._clock.seconds())
        self.view.apply(snapshot)
        self._caught_up_at = self._clock.seconds()
        log.info("view loaded: %d subscribers, %d routers", len(self.view), len(self.view.nas_by_ip))

    def start(self) -> None:
        """Start polling the change log and refreshing usage."""
        for interval, step in ((self._poll_interval, self.poll), (USAGE_SECONDS, self.refresh_usage)):
            loop = task.LoopingCall(step)
            loop.clock = self._clock
            loop.start(interval, now=True)
            self._loops.append(loop)

    def stop(self) -> None:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self._wake_call is not None and self._wake_call.active():
            self._wake_call.cancel()

    def wake(self) -> None:
        """A NOTIFY arrived: poll now, or WAKE_SECONDS after the last poll began."""
        if self._wake_call is not None and self._wake_call.active():
            return
        delay = self._last_poll + WAKE_SECONDS - self._clock.seconds()
        if delay <= 0:
            self.poll()
        else:
            self._wake_call = self._clock.callLater(delay, self.poll)

    def poll(self):
        if self._polling:
            self._poll_again = True
            return None
        self._polling = True
        started = self._last_poll = self._clock.seconds()
        d = self._database.run("radiusd.follow_changes", self._read_changes, started)
        d.addCallback(self._changes_read, started)
        d.addErrback(self._failed)
        d.addBoth(self._poll_done)
        return d

    def counted(self, counts: dict[int, int], change_ids: list[int]) -> None:
        """This process's accounting counted these customers' open sessions at commit: apply the
        counts now, and do not count them again when their "sessions" changes come by."""
        self.view.apply(Snapshot(open_sessions=counts, open_session_ids=set(counts)))
        self._counted_change_ids.update(change_ids)

    def _read_changes(self, connection, now: float):
        rows = queries.read_change_ids(connection, self._cursor.after)
        new = [
            row
            for row in self._cursor.unseen(rows)
            if not (row[1] == "sessions" and row[0] in self._counted_change_ids)
        ]
        snapshot = queries.read_changed(connection, new) if new else None
        if now - self._recounted_at >= SESSION_RECOUNT_SECONDS:
            snapshot = snapshot or Snapshot()
            snapshot.open_sessions, snapshot.open_session_ids = queries.count_open_sessions(connection), None
            self._recounted_at = now
        self._cursor.absorb(rows, now)  # only once the rows are read: a failure re-reads them
        return snapshot, len(rows) == queries.CHANGE_BATCH

    def _changes_read(self, result, started: float) -> None:
        snapshot, more = result
        after = self._cursor.after
        self._counted_change_ids = {change_id for change_id in self._counted_change_ids if change_id > after}
        if snapshot is not None:
            self.view.apply(snapshot)
        if more:
            self._poll_again = True
        else:
            self._caught_up_at = started
        self._reachable()

    def _poll_done(self, _) -> None:
        self._polling = False
        if self._poll_again:
            self._poll_again = False
            self.poll()

    def refresh_usage(self):
        if self._reading_usage:
            return None
        self._reading_usage = True
        d = self._database.run("radiusd.read_usage", queries.read_used_bytes, self._today())
        d.addCallback(self._usage_read)
        d.addErrback(self._failed)
        d.addBoth(self._usage_read_done)
        return d

    def _today(self):
        return datetime.fromtimestamp(self._clock.seconds(), UTC).date()

    def _usage_read(self, used) -> None:
        self.view.apply(Snapshot(used_bytes=used))
        self._reachable()

    def _usage_read_done(self, _) -> None:
        self._reading_usage = False

    def _failed(self, failure) -> None:
        if not failure.check(DBAPIError, OSError):
            log.error("keeping the view current failed: %s", failure.getTraceback())
            return
        if self._database_up:
            self._database_up = False
            metrics.DATABASE_UP.set(0)
            log.warning(
                "database unreachable (%s); answering from the last known state",
                failure.getErrorMessage().splitlines()[0] if failure.getErrorMessage() else failure.type,
            )

    def _reachable(self) -> None:
        if not self._database_up:
            self._database_up = True
            metrics.DATABASE_UP.set(1)
            log.info("database reachable again; the view is catching up")


def listen_for_changes(url: str, channel: str, wake, stop: threading.Event) -> None:
    """PostgreSQL LISTEN loop, run in its own daemon thread: call ``wake``
    (thread-safe) on every notification; reconnect after an outage."""
    import psycopg

    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f"LISTEN {channel}")
                wake()  # catch up on anything committed while we were not listening
                while not stop.is_set():
                    for _ in connection.notifies(timeout=1.0, stop_after=1):
                        wake()
        except psycopg.Error as error:
            log.debug("LISTEN %s connection lost: %s", channel, error)
            stop.wait(1.0)
