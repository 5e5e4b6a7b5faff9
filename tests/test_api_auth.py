"""Logging in to the API: passwords, access and refresh tokens, throttling, login-as, API tokens."""

import json

from sqlalchemy import select

from schema.tables import audit_log, auth_sessions, operators
from tests.api_world import PASSWORD, login


def test_an_operator_logs_in_and_the_token_says_who_it_is(api):
    headers = login(api, "reseller1")
    me = api.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json() == {
        "kind": "operator",
        "login": "reseller1",
        "role": "reseller",
        "acting_for": None,
        "permissions": ["reseller_module"],
    }
    assert me.headers["X-Content-Type-Options"] == "nosniff"
    assert me.headers["Cache-Control"] == "no-store"


def test_unknown_login_and_wrong_password_get_the_same_answer(api, engine):
    unknown = api.post("/api/v1/auth/token", json={"login": "nobody", "password": "whatever-123"})
    wrong = api.post("/api/v1/auth/token", json={"login": "reseller1", "password": "whatever-123"})
    assert unknown.status_code == wrong.status_code == 401
    assert (
        unknown.json()
        == wrong.json()
        == {"error": {"code": "unauthenticated", "message": "wrong login or password"}}
    )
    with engine.connect() as connection:
        rows = (
            connection.execute(
                select(audit_log.c.details)
                .where(audit_log.c.action == "auth.login_failed")
                .order_by(audit_log.c.id)
            )
            .scalars()
            .all()
        )
    assert [(row["login"], row["reason"]) for row in rows] == [
        ("nobody", "unknown_login"),
        ("reseller1", "wrong_password"),
    ]
    metrics = api.app.state.api.registry
    assert (
        metrics.get_sample_value("radbill_api_logins_total", {"kind": "operator", "result": "wrong_password"})
        == 1
    )


def test_no_token_is_401_and_a_garbage_token_too(api):
    assert api.get("/api/v1/auth/me").status_code == 401
    answer = api.get("/api/v1/auth/me", headers={"Authorization": "Bearer nonsense"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"


def test_access_tokens_expire_and_refresh_rotates(api, clock):
    answer = api.post("/api/v1/auth/token", json={"login": "reseller1", "password": PASSWORD}).json()
    assert answer["expires_in"] == 900
    clock.advance(minutes=16)
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    assert api.get("/api/v1/auth/me", headers=headers).status_code == 401
    fresh = api.post("/api/v1/auth/refresh", json={"refresh_token": answer["refresh_token"]})
    assert fresh.status_code == 200
    assert fresh.json()["refresh_token"] != answer["refresh_token"]
    new_headers = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert api.get("/api/v1/auth/me", headers=new_headers).status_code == 200
    # The old refresh token replayed: the session ends, the new tokens with it.
    assert (
        api.post("/api/v1/auth/refresh", json={"refresh_token": answer["refresh_token"]}).status_code == 401
    )
    assert api.get("/api/v1/auth/me", headers=new_headers).status_code == 401
    assert (
        api.post("/api/v1/auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]}).status_code
        == 401
    )


def test_logout_ends_the_session(api):
    answer = api.post("/api/v1/auth/token", json={"login": "reseller1", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    assert api.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert api.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert (
        api.post("/api/v1/auth/refresh", json={"refresh_token": answer["refresh_token"]}).status_code == 401
    )


def test_a_login_is_locked_after_five_failures_whatever_the_password(api, clock, engine):
    for _ in range(5):
        assert (
            api.post(
                "/api/v1/auth/token", json={"login": "reseller2", "password": "bad-password"}
            ).status_code
            == 401
        )
    locked = api.post("/api/v1/auth/token", json={"login": "reseller2", "password": PASSWORD})
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    # An unknown login is locked the same way: the answer does not tell them apart.
    for _ in range(5):
        api.post("/api/v1/auth/token", json={"login": "ghost", "password": "bad-password"})
    assert api.post("/api/v1/auth/token", json={"login": "ghost", "password": "x"}).status_code == 429
    clock.advance(minutes=16)
    assert (
        api.post("/api/v1/auth/token", json={"login": "reseller2", "password": PASSWORD}).status_code == 200
    )


def test_blocked_operators_and_everyone_below_them_are_refused(api, engine):
    sub_headers = login(api, "sub1")
    staff_headers = login(api, "r1noc")
    admin = login(api, "admin")
    with engine.begin() as connection:
        from billingd import operators as domain
        from tests.billing_world import actor

        domain.set_status(connection, actor(connection, "admin"), "reseller1", "blocked")
    assert api.get("/api/v1/auth/me", headers=sub_headers).status_code == 401
    assert api.get("/api/v1/auth/me", headers=staff_headers).status_code == 401
    for who in ("reseller1", "sub1", "r1noc"):
        assert api.post("/api/v1/auth/token", json={"login": who, "password": PASSWORD}).status_code == 401
    assert (
        api.post("/api/v1/auth/subscriber/token", json={"username": "alice", "password": "pw"}).status_code
        == 401
    )
    assert api.get("/api/v1/auth/me", headers=admin).status_code == 200


def test_a_subscriber_logs_in_with_its_pppoe_password(api):
    assert (
        api.post("/api/v1/auth/subscriber/token", json={"username": "ALICE", "password": "nope"}).status_code
        == 401
    )
    headers = login(api, "subscriber:alice", "pw")
    assert api.get("/api/v1/auth/me", headers=headers).json()["kind"] == "subscriber"
    # A subscriber token is not an operator's.
    assert api.get("/api/v1/audit", headers=headers).status_code == 403


def test_login_as_a_descendant_is_audited_with_both_identities(api, engine):
    admin = login(api, "reseller1")
    answer = api.post("/api/v1/auth/login-as", json={"login": "sub1"}, headers=admin)
    assert answer.status_code == 200, answer.text
    as_sub = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    me = api.get("/api/v1/auth/me", headers=as_sub).json()
    assert (me["login"], me["acting_for"]) == ("sub1", "reseller1")
    # Not a sibling, and not from under a login-as.
    assert api.post("/api/v1/auth/login-as", json={"login": "reseller2"}, headers=admin).status_code == 403
    assert api.post("/api/v1/auth/login-as", json={"login": "sub1"}, headers=as_sub).status_code == 403
    trail = api.get("/api/v1/audit", headers=admin).json()
    login_as = [row for row in trail if row["action"] == "auth.login_as"]
    assert [(row["actor"], row["acting_as"]) for row in login_as] == [("reseller1", "sub1")]
    # sub1's own trail shows it too; reseller2's does not.
    assert any(
        row["action"] == "auth.login_as"
        for row in api.get("/api/v1/audit", headers=login(api, "sub1")).json()
    )
    assert not any(
        row["action"] == "auth.login_as"
        for row in api.get("/api/v1/audit", headers=login(api, "reseller2")).json()
    )


def test_api_tokens_act_as_their_operator_until_revoked(api):
    admin = login(api, "admin")
    created = api.post("/api/v1/operators/reseller2/tokens", json={"name": "crm"}, headers=admin)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert token.startswith("rbt_")
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/auth/me", headers=bearer).json()["login"] == "reseller2"
    listed = api.get("/api/v1/operators/reseller2/tokens", headers=admin).json()
    assert [row["name"] for row in listed] == ["crm"] and "token" not in listed[0]
    # reseller1 cannot make or revoke a sibling's tokens.
    r1 = login(api, "reseller1")
    assert api.post("/api/v1/operators/reseller2/tokens", json={"name": "x"}, headers=r1).status_code == 404
    assert api.delete(f"/api/v1/tokens/{created.json()['id']}", headers=r1).status_code == 404
    assert api.delete(f"/api/v1/tokens/{created.json()['id']}", headers=admin).status_code == 200
    assert api.get("/api/v1/auth/me", headers=bearer).status_code == 401


def test_a_new_password_ends_every_session(api, engine):
    headers = login(api, "reseller2")
    with engine.begin() as connection:
        from billingd import credentials
        from tests.billing_world import NOW, actor

        credentials.set_password(connection, actor(connection, "admin"), "reseller2", "another password", NOW)
        assert (
            connection.execute(select(operators.c.password_hash).where(operators.c.login == "reseller2"))
            .scalar()
            .startswith("$argon2id$")
        )
        assert connection.execute(select(auth_sessions.c.revoked_at)).scalars().all()
    assert api.get("/api/v1/auth/me", headers=headers).status_code == 401
    assert (
        json.dumps(api.get("/api/v1/audit", headers=login(api, "admin")).json()).find("another password")
        == -1
    )
