"""What every daemon does the same way: logging, the /metrics listener, systemd, SIGHUP."""

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.internet import reactor as default_reactor
from twisted.internet import task
from twisted.web.resource import Resource
from twisted.web.server import Site

from schema.errors import RadbillError
from schema.settings import Settings


def configure_logging(name: str, level: str = "info") -> logging.Logger:
    """Log lines to stderr (journald under systemd) and route Twisted's log there too."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
    )
    globalLogBeginner.beginLoggingTo([STDLibLogObserver()], redirectStandardIO=False)
    return logging.getLogger(name)


def listen_metrics(port: int, bind: str, *, registry: CollectorRegistry = REGISTRY, reactor=default_reactor):
    """Serve Prometheus metrics on http://bind:port/metrics; port 0 disables it."""
    if port == 0:
        return None
    root = Resource()
    root.putChild(b"metrics", MetricsResource(registry=registry))
    return reactor.listenTCP(port, Site(root), interface=bind)


class Systemd:
    """systemd's notification protocol (sd_notify(3)): one datagram of ``KEY=value`` lines per message.

    Without ``$NOTIFY_SOCKET`` (not started by systemd) every call does
    nothing. ``keep_alive`` sends ``WATCHDOG=1`` from the reactor at half of
    ``WatchdogSec``, so a reactor that stops turning stops the pings and
    systemd restarts the service. A forked worker gets a ``Systemd`` over an
    already connected socket (``sock``) whose other end its parent reads.
    """

    def __init__(self, address: str | None = None, *, sock=None, watchdog_seconds: float | None = None):
        self.watchdog_seconds = watchdog_seconds
        self._address = "\0" + address[1:] if address and address.startswith("@") else address
        self._socket = sock
        if sock is None and address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._warned = False

    @classmethod
    def from_environment(cls, environ=os.environ) -> "Systemd":
        """The notifier systemd asked for; the variables are removed so children do not inherit them."""
        address = environ.pop("NOTIFY_SOCKET", None)
        usec = environ.pop("WATCHDOG_USEC", None)
        pid = environ.pop("WATCHDOG_PID", None)
        watchdog = None
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            watchdog = int(usec) / 1_000_000
        return cls(address, watchdog_seconds=watchdog)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, **fields) -> None:
        """Send ``KEY=value`` lines in one datagram; a lost message is logged once, never raised."""
        if self._socket is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._address is None:
                self._socket.send(message)
            else:
                self._socket.sendto(message, self._address)
        except OSError as error:
            if not self._warned:
                self._warned = True
                logging.getLogger(__name__).warning("cannot notify systemd: %s", error)

    def ready(self, status: str) -> None:
        self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> None:
        self.notify(STATUS=status)

    def reloading(self) -> None:
        self.notify(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> None:
        self.notify(STOPPING=1, STATUS="stopping")

    def keep_alive(self, clock) -> task.LoopingCall | None:
        """Ping the watchdog from ``clock`` (the reactor) at half of WatchdogSec; None without one."""
        if self._socket is None or not self.watchdog_seconds:
            return None
        loop = task.LoopingCall(self.notify, WATCHDOG=1)
        loop.clock = clock
        loop.start(self.watchdog_seconds / 2, now=True)
        return loop

    async def keep_alive_async(self) -> None:
        """The watchdog for an asyncio daemon (``radbill api`` on uvicorn): run it as a task on its
        event loop, as ``keep_alive`` runs on a reactor; returns at once without a watchdog."""
        if self._socket is None or not self.watchdog_seconds:
            return
        while True:
            self.notify(WATCHDOG=1)
            await asyncio.sleep(self.watchdog_seconds / 2)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """``section.key`` of every setting whose value differs."""
    changed = []
    for section in dataclasses.fields(Settings):
        before, after = getattr(old, section.name), getattr(new, section.name)
        for key in dataclasses.fields(before):
            if getattr(before, key.name) != getattr(after, key.name):
                changed.append(f"{section.name}.{key.name}")
    return changed


class Reloader:
    """SIGHUP: read the configuration again, apply what can change in a running daemon, name the rest.

    ``apply(settings)`` puts the new values of the ``reloadable`` keys to
    work; every other changed key is logged (and shown in systemd's STATUS)
    as needing a restart. A configuration that does not load is refused
    whole and the running one kept.
    """

    def __init__(
        self,
        settings: Settings,
        load: Callable[[], Settings],
        apply: Callable[[Settings], None],
        reloadable: frozenset[str],
        systemd: Systemd,
        name: str,
    ):
        self.settings = settings
        self._load = load
        self._apply = apply
        self._reloadable = reloadable | {"log.level"}
        self._systemd = systemd
        self._log = logging.getLogger(name)

    def install(self, reactor) -> None:
        """Reload on SIGHUP, on the reactor thread (the handler only schedules it)."""
        signal.signal(signal.SIGHUP, lambda _signum, _frame: reactor.callFromThread(self.reload))

    def reload(self) -> tuple[list[str], list[str]]:
        """Returns (applied, needing a restart) as ``section.key`` names."""
        self._systemd.reloading()
        try:
            new = self._load()
        except RadbillError as error:
            self._log.error("reload refused, keeping the running configuration: %s", error)
            self._systemd.ready(f"reload refused: {error}")
            return [], []
        changed = changed_keys(self.settings, new)
        applied = [key for key in changed if key in self._reloadable]
        restart = [key for key in changed if key not in self._reloadable]
        for key in applied:
            section, name = key.split(".")
            values = dataclasses.replace(
                getattr(self.settings, section), **{name: getattr(getattr(new, section), name)}
            )
            self.settings = dataclasses.replace(self.settings, **{section: values})
        logging.getLogger().setLevel(self.settings.log.level.upper())
        self._apply(self.settings)
        self._log.info("configuration reloaded: %s", ", ".join(applied) or "nothing changed")
        status = "reloaded"
        if restart:
            self._log.warning("changed but only a restart applies them: %s", ", ".join(restart))
            status = f"reloaded; a restart is needed for {', '.join(restart)}"
        self._systemd.ready(status)
        return applied, restart
