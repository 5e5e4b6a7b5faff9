"""The duplicate-request cache of RFC 5080 section 2.2.2.

A NAS that hears nothing retransmits the same packet (same source address
and port, code, Identifier and Request Authenticator). The server must not
process it twice: while the first copy is being worked on the copy is
dropped, and once answered the copy gets the very same reply bytes. Entries
live for ``window`` seconds (RFC 5080 suggests the NAS's total retry time).
"""

from collections import OrderedDict

IN_PROGRESS = object()


class DuplicateCache:
    """Bounded map of request key -> (time, reply bytes or IN_PROGRESS).

    Entries are kept in insertion order, so expiry only looks at the front.
    Keys and entries are tuples of plain values, which the cyclic garbage
    collector stops tracking: a few hundred thousand of them cost no pauses.
    ``clock`` is a reactor or task.Clock (its ``seconds()`` is used).
    """

    def __init__(self, clock, window: float = 30.0, max_entries: int = 200_000):
        self._clock = clock
        self._window = window
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple] = OrderedDict()

    @staticmethod
    def key(address: tuple, data: bytes) -> tuple:
        """(source host, source port, code, identifier, Request Authenticator)."""
        return (address[0], address[1], data[0], data[1], data[4:20])

    def lookup(self, key: tuple):
        """Return the cached reply, IN_PROGRESS, or None if the request is new."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] + self._window < self._clock.seconds():
            return None
        return entry[1]

    def start(self, key: tuple) -> None:
        self._expire()
        self._entries[key] = (self._clock.seconds(), IN_PROGRESS)
        self._entries.move_to_end(key)

    def finish(self, key: tuple, reply: bytes | None) -> None:
        """Remember the reply; None (no answer) forgets the request, so a
        retransmission is processed afresh."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if reply is None:
            del self._entries[key]
        else:
            self._entries[key] = (entry[0], reply)

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        horizon = self._clock.seconds() - self._window
        entries = self._entries
        while entries:
            first_key, first = next(iter(entries.items()))
            if first[0] >= horizon and len(entries) < self._max_entries:
                break
            del entries[first_key]
