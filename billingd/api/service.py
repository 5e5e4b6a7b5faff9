"""`radbill api`: uvicorn serving the API, Prometheus /metrics on its own port, systemd's notify protocol.

READY goes out once uvicorn has bound its port; WATCHDOG pings come from the
event loop itself (a wedged loop stops them and systemd restarts the
service); SIGHUP reloads the keys a running API can change (throttling,
token lifetimes, the billing time zone) and names the rest. On SIGTERM
uvicorn finishes the requests in flight, then ends by that signal (which
systemd counts as a clean stop).
"""

import asyncio
import signal
from collections.abc import Callable
from datetime import timedelta

import uvicorn
from prometheus_client import start_http_server
from sqlalchemy import Engine

from billingd.api.app import create_app
from billingd.api.security import load_signing_key
from billingd.api.state import ApiState, Decide
from schema.runtime import Reloader, Systemd, configure_logging
from schema.settings import Settings

RELOADABLE = frozenset(
    {
        "api.access_token_minutes",
        "api.refresh_token_days",
        "api.login_failures",
        "api.address_failures",
        "api.failure_window_seconds",
        "api.lockout_seconds",
        "billingd.timezone",
    }
)


def run(
    settings: Settings,
    engine: Engine,
    load_settings: Callable[[], Settings] | None = None,
    *,
    decide: Decide,
) -> None:
    """Serve until a signal; ``decide`` is radiusd's next answer, for ``why`` (given by the composition root)."""
    configure_logging("api", settings.log.level)
    systemd = Systemd.from_environment()
    api = settings.api
    app = create_app(settings, engine, load_signing_key(api.state_dir), decide=decide)
    if api.metrics_port:
        start_http_server(api.metrics_port, addr=api.bind, registry=app.state.api.registry)
    config = uvicorn.Config(
        app,
        host=api.bind,
        port=api.port,
        ssl_certfile=api.tls_certificate or None,
        ssl_keyfile=api.tls_key or None,
        proxy_headers=bool(api.proxies),
        forwarded_allow_ips=",".join(sorted(api.proxies)) or "",
        server_header=False,
        log_config=None,  # our logging (configure_logging), not uvicorn's
        access_log=True,
    )
    reloader = None
    if load_settings is not None:
        state = app.state.api
        reloader = Reloader(
            settings, load_settings, lambda new: _apply(state, new), RELOADABLE, systemd, "api"
        )
    try:
        asyncio.run(_serve(_Server(config, systemd), systemd, reloader, f"serving on {api.bind}:{api.port}"))
    finally:
        systemd.close()


class _Server(uvicorn.Server):
    """uvicorn's server, telling systemd when a signal starts its graceful shutdown."""

    def __init__(self, config: uvicorn.Config, systemd: Systemd):
        super().__init__(config)
        self.systemd = systemd

    def handle_exit(self, sig, frame) -> None:
        self.systemd.stopping()
        super().handle_exit(sig, frame)


def _apply(state: ApiState, settings: Settings) -> None:
    """The next request sees the new throttling, token lifetimes and time zone."""
    state.settings = settings
    state.signer.lifetime = timedelta(minutes=settings.api.access_token_minutes)


async def _serve(server: uvicorn.Server, systemd: Systemd, reloader: Reloader | None, status: str) -> None:
    serving = asyncio.ensure_future(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if serving.done():  # it could not start (a port in use): its error is raised here
        return await serving
    systemd.ready(status)
    if reloader is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reloader.reload)
    watchdog = asyncio.ensure_future(systemd.keep_alive_async())
    try:
        await serving
    finally:
        watchdog.cancel()
