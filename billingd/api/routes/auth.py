"""Logins: operators, subscribers, refresh, logout, login-as, and who am I; operators' API tokens."""

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from billingd import credentials
from billingd.api.deps import ClientAddress, Db, Now, OperatorActor, Principal, State
from billingd.api.models import (
    ApiTokenIn,
    ApiTokenOut,
    ErrorOut,
    LoginAsIn,
    MeOut,
    NewApiTokenOut,
    OperatorLogin,
    RefreshIn,
    SubscriberLogin,
    TokenOut,
)
from billingd.api.routes import ERRORS
from billingd.api.state import ApiState
from schema.errors import Unauthenticated
from schema.tenancy import Actor

router = APIRouter(tags=["auth"])
_LOGIN_ERRORS = {
    401: {"model": ErrorOut, "description": "Wrong login or password (the same answer for an unknown login)"},
    429: {"model": ErrorOut, "description": "Too many failed logins; see Retry-After"},
}


def _tokens(state: ApiState, result: credentials.LoginResult, subject: str, instant) -> TokenOut:
    access = state.signer.issue(result.session_id, subject, instant)
    return TokenOut(
        access_token=access.token,
        expires_in=int(state.signer.lifetime.total_seconds()),
        expires_at=access.expires_at,
        refresh_token=result.refresh_token,
    )


def _refused(message: str) -> JSONResponse:
    """A 401 returned, not raised: the request's transaction commits the failure count and its audit row."""
    return JSONResponse(
        {"error": {"code": "unauthenticated", "message": message}},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _answer(state: ApiState, kind: str, result: credentials.LoginResult, subject: str, instant):
    state.metrics.logins.labels(kind, result.failure or "ok").inc()
    if result.failure is not None:
        return _refused(credentials.WRONG_CREDENTIALS)
    return _tokens(state, result, subject, instant)


@router.post(
    "/auth/token", summary="Operator login: an access token and a refresh token", responses=_LOGIN_ERRORS
)
def operator_token(
    body: OperatorLogin, db: Db, state: State, instant: Now, address: ClientAddress
) -> TokenOut:
    result = credentials.login_operator(db, body.login, body.password, address, instant, state.settings.api)
    return _answer(state, "operator", result, f"operator:{body.login}", instant)


@router.post(
    "/auth/subscriber/token",
    summary="Subscriber login with the PPPoE/Hotspot username and password",
    responses=_LOGIN_ERRORS,
)
def subscriber_token(
    body: SubscriberLogin, db: Db, state: State, instant: Now, address: ClientAddress
) -> TokenOut:
    result = credentials.login_subscriber(
        db, body.username, body.password, address, instant, state.settings.api
    )
    return _answer(state, "subscriber", result, f"subscriber:{body.username}", instant)


@router.post(
    "/auth/refresh",
    summary="A new access token and a new refresh token (the old one stops working)",
    responses=_LOGIN_ERRORS,
)
def refresh(body: RefreshIn, db: Db, state: State, instant: Now) -> TokenOut:
    result = credentials.refresh(db, body.refresh_token, instant, state.settings.api)
    if result.failure is not None:
        state.metrics.logins.labels("refresh", result.failure).inc()
        return _refused("unknown or used refresh token: log in again")
    state.metrics.logins.labels("refresh", "ok").inc()
    return _tokens(state, result, f"session:{result.session_id}", instant)


@router.post(
    "/auth/logout",
    summary="End this login session (its access and refresh tokens)",
    status_code=204,
    responses=ERRORS,
)
def logout(request: Request, principal: Principal, db: Db, instant: Now) -> Response:
    session_id = getattr(request.state, "session_id", None)
    if session_id is None:
        raise Unauthenticated("API tokens are revoked with DELETE /api/v1/tokens/{id}, not logged out")
    credentials.logout(db, session_id, instant)
    return Response(status_code=204)


@router.post(
    "/auth/login-as",
    summary="Act as a descendant operator (support without its password; audited with both identities)",
    responses=ERRORS,
)
def login_as(
    body: LoginAsIn, actor: OperatorActor, db: Db, state: State, instant: Now, address: ClientAddress
) -> TokenOut:
    result = credentials.login_as(db, actor, body.login, address, instant, state.settings.api)
    state.metrics.logins.labels("login_as", "ok").inc()
    return _tokens(state, result, f"operator:{actor.login}>{body.login}", instant)


@router.get("/auth/me", summary="Who this token is", responses=ERRORS)
def me(principal: Principal, db: Db) -> MeOut:
    if isinstance(principal, Actor):
        acting_for = None
        if principal.caller_id != principal.id:
            acting_for = credentials.operator_login(db, principal.caller_id)
        return MeOut(
            kind="operator",
            login=principal.login,
            role=principal.role,
            acting_for=acting_for,
            permissions=sorted(principal.permissions),
        )
    return MeOut(kind="subscriber", login=principal.username)


@router.get(
    "/operators/{login}/tokens",
    summary="An operator's API tokens (never the tokens themselves)",
    responses=ERRORS,
)
def list_tokens(login: str, actor: OperatorActor, db: Db) -> list[ApiTokenOut]:
    return [
        ApiTokenOut(**_public(row))
        for row in credentials.list_api_tokens(db, actor)
        if row["operator"] == login
    ]


@router.post(
    "/operators/{login}/tokens",
    summary="A long-lived API token for an integration (shown once)",
    status_code=201,
    responses=ERRORS,
)
def create_token(login: str, body: ApiTokenIn, actor: OperatorActor, db: Db, instant: Now) -> NewApiTokenOut:
    row, token = credentials.create_api_token(db, actor, login, body.name, instant, days=body.days)
    return NewApiTokenOut(**_public(row), token=token)


@router.delete("/tokens/{token_id}", summary="Revoke an API token", responses=ERRORS)
def revoke_token(token_id: int, actor: OperatorActor, db: Db, instant: Now) -> ApiTokenOut:
    return ApiTokenOut(**_public(credentials.revoke_api_token(db, actor, token_id, instant)))


def _public(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "operator_id"}
