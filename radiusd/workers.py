"""radiusd's worker processes: ``[radiusd] workers = N`` forks N copies of one radiusd.

Each worker is a whole radiusd (its own reactor, view and database pool)
binding the same ports with SO_REUSEPORT, so the kernel spreads the routers'
packets over the CPUs. The parent only supervises: it forwards signals,
ends them all when one fails, and speaks to systemd for all of them.
"""

import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable

from schema.runtime import Systemd

log = logging.getLogger("radiusd")


def run_workers(count: int, serve_worker: Callable[[int, Systemd], int], systemd: Systemd) -> int:
    """Fork ``count`` workers, each running ``serve_worker(index, its systemd)`` to its exit
    status, and supervise them; the exit status of the first that failed, else 0."""
    children = {}
    for index in range(count):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        pid = os.fork()
        if pid == 0:
            ours.close()
            status = 1
            try:
                status = serve_worker(index, Systemd(sock=theirs, watchdog_seconds=systemd.watchdog_seconds))
            except BaseException:
                log.exception("radiusd worker %d failed", index)
            finally:
                os._exit(status)
        theirs.close()
        children[pid] = ours
    log.info("radiusd started %d workers: %s", count, ", ".join(map(str, children)))
    return _supervise(children, systemd)


def _supervise(children: dict[int, socket.socket], systemd: Systemd) -> int:
    """Forward SIGTERM/SIGINT/SIGHUP to the workers; when one ends, end them all.

    Each worker notifies its parent over its own socket, in systemd's
    protocol; the parent speaks for all of them: READY once every worker is
    serving, WATCHDOG only while every worker has pinged within WatchdogSec.
    """

    def forward(signum, _frame):
        for pid in children:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    relay = WorkerRelay(children, systemd, time.monotonic)
    status = 0
    remaining = set(children)
    while remaining:
        readable, _, _ = select.select([children[pid] for pid in remaining], [], [], relay.tick_seconds)
        for channel in readable:
            relay.received(channel, channel.recv(4096))
        relay.tick()
        while remaining:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            remaining.discard(pid)
            code = os.waitstatus_to_exitcode(wait_status)
            if remaining and code != 0:
                log.error("worker %d ended with status %d; stopping the others", pid, code)
                forward(signal.SIGTERM, None)
            status = status or code
    return status


class WorkerRelay:
    """The parent's side of its workers' notifications (see _supervise); ``clock`` is monotonic seconds."""

    def __init__(self, children: dict[int, socket.socket], systemd: Systemd, clock: Callable[[], float]):
        self._workers = {channel: index for index, channel in enumerate(children.values())}
        self._systemd = systemd
        self._clock = clock
        self._ready: set[int] = set()
        self._pinged: dict[int, float] = {}
        self._status: dict[int, str] = {}
        self._announced = False
        self._last_ping = float("-inf")
        self.tick_seconds = (systemd.watchdog_seconds or 2.0) / 4

    def received(self, channel: socket.socket, message: bytes) -> None:
        worker = self._workers[channel]
        fields = dict(line.partition("=")[::2] for line in message.decode(errors="replace").splitlines())
        now = self._clock()
        if fields.get("READY") == "1":
            self._ready.add(worker)
            self._pinged[worker] = now
        if fields.get("WATCHDOG") == "1":
            self._pinged[worker] = now
        if "STATUS" in fields:
            self._status[worker] = fields["STATUS"]
            if self._announced:
                self._systemd.status(self.status())

    def status(self) -> str:
        return "; ".join(f"worker {index}: {self._status[index]}" for index in sorted(self._status))

    def tick(self) -> None:
        now = self._clock()
        if not self._announced and len(self._ready) == len(self._workers):
            self._announced = True
            self._systemd.ready(self.status())
        watchdog = self._systemd.watchdog_seconds
        if not self._announced or not watchdog or now - self._last_ping < watchdog / 2:
            return
        silent = [index for index, pinged in self._pinged.items() if now - pinged > watchdog]
        if silent:
            log.error("worker %s stopped answering its watchdog", ", ".join(map(str, silent)))
            return
        self._last_ping = now
        self._systemd.notify(WATCHDOG=1)
