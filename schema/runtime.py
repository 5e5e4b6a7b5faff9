"""What both daemons do the same way: logging, the /metrics listener, the reactor."""

import logging
import sys

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.twisted import MetricsResource
from twisted.internet import reactor as default_reactor
from twisted.web.resource import Resource
from twisted.web.server import Site


def configure_logging(name: str, level: int = logging.INFO) -> logging.Logger:
    """Log lines to stderr (journald under systemd) and route Twisted's log there too."""
    from twisted.logger import STDLibLogObserver, globalLogBeginner

    logging.basicConfig(
        stream=sys.stderr, level=level, format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s"
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
