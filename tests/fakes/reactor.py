"""Waiting on the real reactor for something a fake saw, with a deadline."""

import time

from twisted.internet import reactor, task


async def wait_until(predicate, timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await task.deferLater(reactor, 0.002, lambda: None)
