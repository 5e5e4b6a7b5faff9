"""Start billingd: schedule the daily run, serve metrics."""

from sqlalchemy import Engine
from twisted.internet import reactor

from schema.daemon import configure_logging, listen_metrics
from schema.settings import Settings


def run(settings: Settings, engine: Engine) -> None:
    log = configure_logging("billingd")
    listen_metrics(settings.billingd.metrics_port, settings.billingd.bind)
    log.info("billingd started; metrics on %s:%d", settings.billingd.bind, settings.billingd.metrics_port)
    reactor.run()
