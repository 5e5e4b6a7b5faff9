"""Running one Twisted job from a command (``customer disconnect``, ``nas test``)."""

from twisted.python.failure import Failure


def run_on_reactor(start):
    """Run the reactor until ``start(reactor)``'s Deferred fires; return its result (or raise its error).

    A command runs once per process, so the reactor is started and stopped here once.
    """
    from twisted.internet import defer, reactor

    outcome = []

    def begin() -> None:
        result = defer.maybeDeferred(start, reactor)
        result.addBoth(outcome.append)
        result.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(begin)
    reactor.run(installSignalHandlers=False)
    (result,) = outcome
    if isinstance(result, Failure):
        result.raiseException()
    return result
