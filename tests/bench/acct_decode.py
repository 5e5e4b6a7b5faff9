"""The reactor thread's CPU per Accounting-Request, without sockets or a database.

    .venv/bin/python tests/bench/acct_decode.py [--requests 20000] [--repeat 5]

Builds the Accounting Starts and Interim-Updates storm.py sends (the
attributes of ``radload.request_text``, encoded by pyrad as radclient would)
and times, per request, best of ``--repeat`` rounds:

- handle: ``AccountingHandler.handle`` up to the writer (length check,
  Request Authenticator, attribute decoding, the record), the writer's
  Deferred left pending;
- reply: firing that Deferred, i.e. encoding the Accounting-Response;
- datagram: ``RadiusServerProtocol.datagramReceived`` end to end (known-NAS
  lookup, structure check, metrics, duplicate cache, handle, reply, write to
  a fake transport) with a writer that answers at once.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent.parent
sys.path[:0] = [str(BENCH), str(REPOSITORY)]

import radload  # noqa: E402
from pyrad.packet import AcctPacket  # noqa: E402
from twisted.internet import defer  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from radiusd.accounting.handler import AccountingHandler  # noqa: E402
from radiusd.protocol import RadiusServerProtocol  # noqa: E402
from radiusd.view.model import NasClient, Snapshot  # noqa: E402
from radiusd.view.view import SubscriberView  # noqa: E402
from schema.dictionary import load_dictionary  # noqa: E402

SECRET = b"testing123"
NAS = NasClient(1, "bench-nas", "127.0.0.1", SECRET, "auto")


def _value(text: str):
    text = text.strip()
    if text.startswith('"'):
        return text[1:-1]
    return int(text) if text.isdigit() else text


def requests(kind: str, count: int) -> list[bytes]:
    """``count`` requests of ``kind`` (acct-start or acct-interim), as radclient encodes radload's files."""
    dictionary = load_dictionary()
    encoded = []
    for index, subscriber in enumerate(radload.subscribers(count)):
        attributes = {}
        for line in radload.request_text(kind, subscriber).splitlines():
            name, _, value = line.partition(" = ")
            attributes[name] = _value(value)
        packet = AcctPacket(dict=dictionary, secret=SECRET, id=index & 255, **attributes)
        encoded.append(packet.RequestPacket())
    return encoded


class PendingWriter:
    def __init__(self):
        self.pending: list[defer.Deferred] = []

    def submit(self, record) -> defer.Deferred:
        stored = defer.Deferred()
        self.pending.append(stored)
        return stored


class DurableWriter:
    def submit(self, record) -> defer.Deferred:
        return defer.succeed(None)


class Transport:
    def __init__(self):
        self.sent = 0

    def write(self, data, address) -> None:
        self.sent += 1


def _microseconds(started: float, count: int) -> float:
    return (time.perf_counter() - started) / count * 1e6


def measure(datagrams: list[bytes]) -> dict[str, float]:
    addresses = [("127.0.0.1", 1024 + index % 60000) for index in range(len(datagrams))]
    writer = PendingWriter()
    handler = AccountingHandler(writer, Clock())
    started = time.perf_counter()
    answers = [handler.handle(data, NAS, address) for data, address in zip(datagrams, addresses)]
    handle = _microseconds(started, len(datagrams))
    replies: list[bytes] = []
    for answer in answers:
        answer.addCallback(replies.append)
    started = time.perf_counter()
    for stored in writer.pending:
        stored.callback(None)
    reply = _microseconds(started, len(datagrams))
    assert len(replies) == len(datagrams) and all(len(answer) == 20 for answer in replies)

    view = SubscriberView()
    view.apply(Snapshot(customers=[], nas=[NAS], packages={}, operators={}, full=True))
    clock = Clock()
    protocol = RadiusServerProtocol(view, AccountingHandler(DurableWriter(), clock), clock)
    protocol.transport = Transport()
    started = time.perf_counter()
    for data, address in zip(datagrams, addresses):
        protocol.datagramReceived(data, address)
    datagram = _microseconds(started, len(datagrams))
    assert protocol.transport.sent == len(datagrams)
    return {"handle": handle, "reply": reply, "datagram": datagram}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests of each kind per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    args = parser.parse_args(argv)
    print(f"{'request':<14}{'handle µs':>11}{'reply µs':>10}{'datagram µs':>13}")
    for kind in ("acct-start", "acct-interim"):
        datagrams = requests(kind, args.requests)
        rounds = []
        for _ in range(args.repeat):
            gc.collect()
            gc.disable()  # the timed phases keep thousands of Deferreds alive: no collections in the figures
            try:
                rounds.append(measure(datagrams))
            finally:
                gc.enable()
        best = {name: min(r[name] for r in rounds) for name in rounds[0]}
        print(f"{kind:<14}{best['handle']:>11.1f}{best['reply']:>10.1f}{best['datagram']:>13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
