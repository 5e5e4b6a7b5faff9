"""A plain ASGI middleware that sets headers on every answer and reports each one when it is done.

``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware) runs each request
in a task of its own with a stream between it and the application: more
work than most endpoints' own. This one only wraps ``send``.
"""

import time
from collections.abc import Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class OnAnswer:
    """``start(scope, headers, seconds)`` may change the headers as the answer starts (``seconds``
    since the request came); ``done(scope, status, seconds)`` is called when the application returns."""

    def __init__(
        self,
        app: ASGIApp,
        start: Callable[[Scope, MutableHeaders, float], None],
        done: Callable[[Scope, int, float], None] | None = None,
    ):
        self.app, self.start, self.done = app, start, done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500  # what the client gets if the application fails before it answers

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.start(scope, MutableHeaders(scope=message), time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, answer)
        finally:
            if self.done is not None:
                self.done(scope, status, time.perf_counter() - started)
