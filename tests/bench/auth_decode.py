"""The reactor thread's CPU per Access-Request, without sockets or a database.

    .venv/bin/python tests/bench/auth_decode.py [--users 20000] [--repeat 5]

Builds the PAP Access-Requests storm.py sends (the attributes of
``radload.request_text``, encoded by pyrad as radclient would), a view of
the same subscribers, and times ``RadiusServerProtocol.datagramReceived`` end
to end (known-NAS lookup, structure check, metrics, duplicate cache,
decoding, the policy, the Access-Accept, the radpostauth row handed on, the
write to a fake transport): the process CPU per request, best of
``--repeat`` rounds over every subscriber.

CPU time moves with whatever else the machine runs; instructions do not.
For those, count the whole run twice and take the difference, e.g. with
valgrind: (``--repeat 4`` minus ``--repeat 1``) / (3 x ``--users``)::

    valgrind --tool=cachegrind --cache-sim=no .venv/bin/python tests/bench/auth_decode.py --users 1000 --repeat 1
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parent.parent
sys.path[:0] = [str(BENCH), str(REPOSITORY)]

import radload  # noqa: E402
from pyrad.packet import AuthPacket  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402

from radiusd.auth.handler import AccessHandler  # noqa: E402
from radiusd.auth.policy import PackageState, PolicySettings  # noqa: E402
from radiusd.duplicates import DuplicateCache  # noqa: E402
from radiusd.protocol import RadiusServerProtocol  # noqa: E402
from radiusd.view.model import CustomerRow, NasClient, Snapshot  # noqa: E402
from radiusd.view.view import SubscriberView  # noqa: E402
from schema.dictionary import load_dictionary  # noqa: E402

SECRET = b"testing123"
NAS = NasClient(1, "bench-nas", "127.0.0.1", SECRET, "auto")


def requests(subscribers: list[radload.Subscriber]) -> list[bytes]:
    """Each subscriber's Access-Request, as radclient encodes radload's file."""
    dictionary = load_dictionary()
    encoded = []
    for index, subscriber in enumerate(subscribers):
        packet = AuthPacket(dict=dictionary, secret=SECRET, id=index & 255)
        for line in radload.request_text("auth", subscriber).splitlines():
            name, _, value = line.partition(" = ")
            value = value.strip('"')
            if name == "User-Password":
                packet[name] = packet.PwCrypt(value)
            else:
                packet.AddAttribute(name, int(value) if value.isdigit() else value)
        encoded.append(packet.RequestPacket())
    return encoded


class Transport:
    def __init__(self):
        self.sent = 0

    def write(self, data, address) -> None:
        self.sent += 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20000, help="subscribers, one request each per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    args = parser.parse_args(argv)
    subscribers = list(radload.subscribers(args.users))
    datagrams = requests(subscribers)
    expires = datetime.now(UTC) + timedelta(days=30)
    view = SubscriberView()
    view.apply(
        Snapshot(
            customers=[
                CustomerRow(
                    s.index,
                    s.username,
                    s.password,
                    "active",
                    1,
                    1,
                    expires,
                    100_000,
                    None,
                    None,
                    False,
                    False,
                )
                for s in subscribers
            ],
            nas=[NAS],
            packages={1: ("pppoe", PackageState(1, "daily", "10M/10M"))},
            operators={},
            full=True,
        )
    )
    clock = Clock()
    clock.advance(time.time())
    attempts: deque[dict] = deque(maxlen=args.users)
    protocol = RadiusServerProtocol(
        view, AccessHandler(view, PolicySettings(), clock, record_attempt=attempts.append), clock
    )
    protocol.transport = Transport()
    addresses = [("127.0.0.1", 1024 + index % 60000) for index in range(len(datagrams))]
    best = float("inf")
    for _ in range(args.repeat):
        protocol.duplicates = DuplicateCache(clock)  # every round's requests are new
        gc.collect()
        started = time.process_time()
        for data, address in zip(datagrams, addresses):
            protocol.datagramReceived(data, address)
        best = min(best, (time.process_time() - started) / len(datagrams))
        clock.advance(10)
    assert protocol.transport.sent == args.repeat * len(datagrams)
    assert all(attempt["reply"] == "Access-Accept" for attempt in attempts)
    print(f"datagramReceived, PAP Access-Request to Access-Accept: {best * 1e6:.1f} µs CPU per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
