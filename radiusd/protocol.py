"""The UDP side of radiusd: one DatagramProtocol per listening port.

It knows nothing of authentication or accounting. For every datagram it
finds the router by source address *before* decoding anything (an unknown
source costs one dict lookup), checks the packet's structure, answers a
retransmission from the duplicate cache (RFC 5080 section 2.2.2), and hands
a new request to its handler: an object with ``codes`` (the packet codes it
serves) and ``handle(data, client, address)`` returning the reply bytes, a
Deferred of them (accounting answers once the record is durable), or raising
packets.Drop. Whatever happens, the protocol keeps answering.
"""

import logging
import time

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from radiusd import metrics
from radiusd.codec.packets import Drop, check_datagram
from radiusd.duplicates import IN_PROGRESS, DuplicateCache
from radiusd.view.view import SubscriberView

log = logging.getLogger(__name__)

WARNING_INTERVAL_SECONDS = 60.0
# Spoofed sources are each new: besides once a minute per address, at most this
# many unknown-source warnings a minute in all, then one line with the rest's count.
UNKNOWN_SOURCE_WARNINGS = 10
# Drops an operator must hear about (a wrong secret, a NAS that stopped
# signing): warned once a minute per router, the rest only counted.
_WARNED_CAUSES = frozenset({"bad_message_authenticator", "missing_message_authenticator"})
_CODE_NAMES = {1: "Access-Request", 4: "Accounting-Request", 12: "Status-Server"}
_REQUESTS = metrics.LabelCache(metrics.REQUESTS)
_LATENCY = metrics.LabelCache(metrics.LATENCY)
_DROPS = metrics.LabelCache(metrics.DROPS)


class RadiusServerProtocol(DatagramProtocol):
    def __init__(self, view: SubscriberView, handler, clock, duplicates: DuplicateCache | None = None):
        self.view = view
        self.handler = handler
        self.codes = frozenset(handler.codes)
        self.clock = clock
        self.duplicates = duplicates if duplicates is not None else DuplicateCache(clock)
        self._warned: dict[tuple, float] = {}
        self._unknown_window = float("-inf")
        self._unknown_warned = 0
        self._unknown_unwarned = 0

    def datagramReceived(self, data: bytes, address) -> None:
        started = time.perf_counter()
        client = self.view.nas_for(address[0])
        if client is None:
            self._drop_unknown(address[0])
            return
        try:
            check_datagram(data, self.codes)
        except Drop as drop:
            self._dropped(drop, client, address)
            return
        code = _CODE_NAMES.get(data[0], str(data[0]))
        _REQUESTS(code, client.name).inc()
        key = DuplicateCache.key(address, data)
        cached = self.duplicates.lookup(key)
        if cached is not None:
            metrics.DUPLICATES.inc()
            if cached is not IN_PROGRESS:
                self.transport.write(cached, address)
            return
        self.duplicates.start(key)
        try:
            reply = self.handler.handle(data, client, address)
        except Drop as drop:
            self.duplicates.finish(key, None)
            self._dropped(drop, client, address)
            return
        except Exception:
            self.duplicates.finish(key, None)
            _DROPS("internal_error").inc()
            log.exception("internal error handling a %s from NAS %s", code, client.name)
            return
        if isinstance(reply, Deferred):
            reply.addCallback(self._answer, key, address, code, started)
            reply.addErrback(self._failed, key, client, address, code)
        else:
            self._answer(reply, key, address, code, started)

    def _answer(self, reply: bytes | None, key, address, code: str, started: float) -> None:
        self.duplicates.finish(key, reply)
        if reply is not None:
            self.transport.write(reply, address)
            _LATENCY(code).observe(time.perf_counter() - started)

    def _failed(self, failure, key, client, address, code: str) -> None:
        self.duplicates.finish(key, None)
        if failure.check(Drop):
            self._dropped(failure.value, client, address)
        else:
            _DROPS("internal_error").inc()
            log.error(
                "internal error handling a %s from NAS %s: %s", code, client.name, failure.getTraceback()
            )

    def _dropped(self, drop: Drop, client, address) -> None:
        _DROPS(drop.cause).inc()
        if drop.cause in _WARNED_CAUSES and self._may_warn((address[0], drop.cause)):
            log.warning("dropping requests from NAS %s (%s): %s", client.name, address[0], drop)
        else:
            log.debug("dropped a packet from NAS %s (%s:%d): %s", client.name, address[0], address[1], drop)

    def _drop_unknown(self, host: str) -> None:
        _DROPS("unknown_nas").inc()
        if self._may_warn((host, "unknown_nas")) and self._may_warn_of_unknown():
            log.warning(
                "dropping packets from %s: not a known NAS (radbill nas add NAME --ip %s ...)", host, host
            )

    def _may_warn_of_unknown(self) -> bool:
        """The global limit on unknown-source warnings (UNKNOWN_SOURCE_WARNINGS a minute)."""
        now = self.clock.seconds()
        if now - self._unknown_window >= WARNING_INTERVAL_SECONDS:
            if self._unknown_unwarned:
                log.warning(
                    "dropped packets from %d more unknown sources in the last minute without a warning each "
                    '(radbill_radiusd_drops_total{cause="unknown_nas"} counts them all)',
                    self._unknown_unwarned,
                )
            self._unknown_window, self._unknown_warned, self._unknown_unwarned = now, 0, 0
        if self._unknown_warned < UNKNOWN_SOURCE_WARNINGS:
            self._unknown_warned += 1
            return True
        self._unknown_unwarned += 1
        return False

    def _may_warn(self, key: tuple) -> bool:
        """At most one warning a minute per key, so a flood cannot flood the log."""
        now = self.clock.seconds()
        last = self._warned.get(key)
        if last is not None and now - last < WARNING_INTERVAL_SECONDS:
            return False
        if len(self._warned) > 10_000:
            self._warned.clear()
        self._warned[key] = now
        return True
