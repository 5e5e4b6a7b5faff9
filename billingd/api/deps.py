"""The dependencies routes declare: the request's transaction, who is calling, the calendar.

A route's signature says what it needs (``db: Db, actor: OperatorActor``);
the transaction commits when the route returns, before the answer is sent,
and rolls back when it raises. Who the caller is, and whether a session is
still alive, is decided by :mod:`billingd.credentials`; what the caller may
do is decided by the domain function the route calls.
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, insert, select

from billingd import credentials
from billingd.api.state import ApiState
from billingd.customers import Calendar
from schema.errors import Forbidden, RadbillError, Unauthenticated
from schema.tables import idempotency_keys
from schema.tenancy import Actor

_bearer = HTTPBearer(auto_error=False, description="An access token from /auth/token, or an API token")


async def api_state(request: Request) -> ApiState:
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


# The dependencies that only compute are ``async def``: FastAPI runs each plain ``def`` dependency in
# its thread pool, a hand-off that costs more than their work; those that wait on the database stay
# plain functions, off the event loop.


def _transaction(state: State) -> Iterator[Connection]:
    with state.engine.begin() as connection:
        yield connection


# scope="function": the commit happens when the route returns, before the answer goes out.
Db = Annotated[Connection, Depends(_transaction, scope="function")]


async def now(state: State) -> datetime:
    return state.clock()


Now = Annotated[datetime, Depends(now)]


async def calendar(state: State, instant: Now) -> Calendar:
    return Calendar(instant, state.settings.billingd.zone)


Today = Annotated[Calendar, Depends(calendar)]


async def client_address(request: Request) -> str:
    """The peer address (uvicorn resolves X-Forwarded-For from [api] trusted_proxies)."""
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def _principal(
    request: Request,
    state: State,
    db: Db,
    instant: Now,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor | credentials.Subscriber:
    if bearer is None:
        raise Unauthenticated("log in first: send Authorization: Bearer TOKEN")
    token = bearer.credentials
    if token.startswith(credentials.API_TOKEN_PREFIX):
        request.state.principal_key = "token:" + credentials.token_hash(token)[:16]
        return credentials.api_token_actor(db, token, instant)
    session_id = state.signer.session_of(token, instant)
    request.state.session_id = session_id
    request.state.principal_key = f"session:{session_id}"
    return credentials.session_principal(db, session_id, instant)


Principal = Annotated[Actor | credentials.Subscriber, Depends(_principal, scope="function")]


async def _operator(principal: Principal) -> Actor:
    if not isinstance(principal, Actor):
        raise Forbidden("this is for operators; subscribers use /api/v1/me")
    return principal


async def _subscriber(principal: Principal) -> credentials.Subscriber:
    if not isinstance(principal, credentials.Subscriber):
        raise Forbidden("this is for subscribers (log in at /api/v1/auth/subscriber/token)")
    return principal


OperatorActor = Annotated[Actor, Depends(_operator, scope="function")]
CurrentSubscriber = Annotated[credentials.Subscriber, Depends(_subscriber, scope="function")]


class Idempotency:
    """A POST with an ``Idempotency-Key`` header does its work once (FIELD-NOTES 27).

    The answer is stored in the request's own transaction, so either the work
    and its stored answer both commit or neither does; a retry with the same
    key gets the stored answer, a different request under the same key is refused.
    """

    def __init__(self, request: Request, db: Db, key: str | None):
        self.request, self.db, self.key = request, db, key

    def once(
        self,
        compute: Callable[[], Any],
        body: Any = None,
        status_code: int = 200,
        kept: Callable[[Any], Any] | None = None,
    ) -> Any:
        """``compute()`` once per key; ``kept`` turns its answer into what a retry gets (a secret
        shown once, such as a card's PIN, is not stored)."""
        if not self.key:
            return compute()
        principal = getattr(self.request.state, "principal_key", "anonymous")
        fingerprint = request_fingerprint(self.request, jsonable_encoder(body))
        return answer_once(
            self.db, principal, self.key, fingerprint, compute, status_code=status_code, kept=kept
        )[0]


def request_fingerprint(request: Request, body: Any) -> str:
    """What makes two requests under one key the same request: method, path, query and body."""
    return hashlib.sha256(
        f"{request.method} {request.url.path}?{request.url.query} ".encode()
        + json.dumps(body, sort_keys=True).encode()
    ).hexdigest()


def answer_once(
    connection: Connection,
    principal: str,
    key: str,
    fingerprint: str,
    compute: Callable[[], Any],
    *,
    status_code: int = 200,
    kept: Callable[[Any], Any] | None = None,
) -> tuple[Any, bool]:
    """``compute()``'s answer and False the first time ``principal`` sends ``key``; the kept answer
    and True when the same request comes again (the API's Idempotency-Key, the panel's one-time
    forms). The key is stored in the caller's transaction, with the work it guards."""
    if len(key) > 200:
        raise RadbillError("Idempotency-Key: at most 200 characters")
    principal = principal[:40]
    stored = (
        connection.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.principal == principal, idempotency_keys.c.key == key
            )
        )
        .mappings()
        .first()
    )
    if stored is not None:
        if stored["request"] != fingerprint:
            raise RadbillError("Idempotency-Key was already used for a different request")
        response = stored["response"]
        return (response if isinstance(response, (dict, list)) else json.loads(response)), True
    answer = jsonable_encoder(compute())
    connection.execute(
        insert(idempotency_keys).values(
            principal=principal,
            key=key,
            request=fingerprint,
            status_code=status_code,
            response=kept(answer) if kept else answer,
        )
    )
    return answer, False


async def _idempotency(
    request: Request,
    db: Db,
    key: Annotated[
        str | None,
        Header(alias="Idempotency-Key", description="Retry-safe POST: the same key returns the first answer"),
    ] = None,
) -> Idempotency:
    return Idempotency(request, db, key)


Once = Annotated[Idempotency, Depends(_idempotency, scope="function")]
