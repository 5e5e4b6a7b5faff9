"""`radbill api`: uvicorn serving the API, and Prometheus /metrics on its own port."""

import logging

import uvicorn
from prometheus_client import start_http_server
from sqlalchemy import Engine

from billingd.api.app import create_app
from billingd.api.security import load_or_create_key
from schema.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, engine: Engine) -> None:
    api = settings.api
    app = create_app(settings, engine, load_or_create_key(api.state_dir))
    if api.metrics_port:
        start_http_server(api.metrics_port, addr=api.bind, registry=app.state.api.registry)
    uvicorn.run(
        app,
        host=api.bind,
        port=api.port,
        ssl_certfile=api.tls_certificate or None,
        ssl_keyfile=api.tls_key or None,
        proxy_headers=bool(api.proxies),
        forwarded_allow_ips=",".join(sorted(api.proxies)) or "",
        server_header=False,
        log_level="info",
        access_log=True,
    )
