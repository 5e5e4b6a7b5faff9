"""Start radiusd: wire settings, database and listeners together, then run."""

from sqlalchemy import Engine
from twisted.internet import reactor

from schema.daemon import configure_logging, listen_metrics
from schema.settings import Settings


def run(settings: Settings, engine: Engine) -> None:
    log = configure_logging("radiusd")
    listen_metrics(settings.radiusd.metrics_port, settings.radiusd.bind)
    log.info("radiusd started; metrics on %s:%d", settings.radiusd.bind, settings.radiusd.metrics_port)
    reactor.run()
