"""HEAD answers like GET without the body, on every GET route of the API and the pages (from the
route tables, so a new page is covered), in-process and through a real uvicorn server."""

import re

from fastapi.routing import APIRoute
from starlette.routing import Mount

from billingd import cards
from billingd.api import pages
from tests import billing_world as world
from tests.api_server import ApiServer
from tests.api_world import PASSWORD, build_isp, login
from tests.test_pages import log_in

# A value for each path parameter of a GET route: objects the admin sees (built below).
PARAMETERS = {"username": "alice", "login": "reseller1", "batch": "1"}


def get_paths(app) -> list[str]:
    """Every GET route: the API's from its OpenAPI document, the pages' from their routers."""
    routes = [path for path, methods in app.openapi()["paths"].items() if "get" in methods]
    for router in (pages.ROUTERS, [pages_app(app).router]):
        for route in (route for each in router for route in getattr(each, "routes", [each])):
            if isinstance(route, APIRoute) and "GET" in route.methods:
                routes.append(route.path)
    return [re.sub(r"\{(\w+)\}", lambda found: PARAMETERS[found.group(1)], path) for path in routes]


def pages_app(app):
    return next(route.app for route in app.routes if isinstance(route, Mount) and route.path == "")


def test_head_answers_every_get_route_without_a_body(api, engine):
    with engine.begin() as connection:
        cards.create_batch(
            connection, world.actor(connection, "admin"), 2, api.app.state.api.card_pin_key, value=50000
        )
    headers = login(api, "admin")
    log_in(api, "admin")
    paths = get_paths(api.app)
    assert "/api/v1/customers/{username}" not in paths and "/api/v1/customers/alice" in paths
    assert "/panel/customers/alice" in paths and "/portal/" in paths
    for path in paths:
        got = api.get(path, headers=headers, follow_redirects=False)
        head = api.head(path, headers=headers, follow_redirects=False)
        assert head.status_code == got.status_code != 405, path
        assert head.content == b"", path
        assert head.headers.get("content-type") == got.headers.get("content-type"), path
        if got.status_code == 200 and "content-length" in got.headers and "gzip" not in str(got.headers):
            assert head.headers["content-length"] == got.headers["content-length"], path


def test_head_through_a_real_server(database_url, engine, tmp_path):
    build_isp(engine)
    with ApiServer(database_url, tmp_path) as server:
        token = server.login("reseller1", PASSWORD)["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        for path, headers in (
            ("/api/v1/customers?limit=5", bearer),
            ("/api/v1/openapi.json", {}),
            ("/panel/login", {}),
            ("/healthz", {}),
        ):
            got = server.client.get(path, headers=headers)
            head = server.client.head(path, headers=headers)
            assert got.status_code == head.status_code == 200, path
            assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
        assert server.client.head("/api/v1/customers").status_code == 401  # a HEAD proves nothing either


def test_a_post_only_route_answers_head_as_it_answers_get(api):
    """HEAD is only ever a GET: it never reaches a POST route's handler."""
    got, head = api.get("/api/v1/auth/token"), api.head("/api/v1/auth/token")
    assert head.status_code == got.status_code and got.status_code in (404, 405) and head.content == b""
