"""The API under test: the billing world's ISP, every role with a password, an app on a test clock.

admin ── manager (customers, finance), noc
├── reseller1 (reseller_module) ── sub1 ── sub1's customer carol
│   ├── staff: r1manager (no permissions), r1noc, r1cards (card distributor)
│   └── customer alice
└── reseller2 ── customer bob
"""

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from billingd import credentials, operators
from billingd.api.app import create_app
from cli.context import radius_answer
from schema.settings import ApiSettings, Settings
from tests import billing_world as world

PASSWORD = "correct horse battery"
STAFF = {
    "manager": ("manager", "admin", ("customers", "finance")),
    "noc": ("noc", "admin", ()),
    "r1manager": ("manager", "reseller1", ()),
    "r1noc": ("noc", "reseller1", ()),
    "r1cards": ("card_distributor", "reseller1", ()),
}


class Clock:
    """The API's clock, moved by the tests."""

    def __init__(self):
        self.now = world.NOW

    def __call__(self):
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


def build_isp(engine) -> None:
    with engine.begin() as connection:
        world.build(connection)
        admin = world.actor(connection, "admin")
        for login, (role, parent, granted) in STAFF.items():
            operators.add_operator(connection, world.actor(connection, parent), login, role)
            for permission in granted:
                operators.permit(connection, admin, login, permission)
        for owner, username in (("reseller1", "alice"), ("reseller2", "bob"), ("sub1", "carol")):
            world.add_customer_of(connection, owner, username, world.on())
        for login in ("admin", "reseller1", "reseller2", "sub1", *STAFF):
            credentials.set_password(connection, world.actor(connection, "admin"), login, PASSWORD, world.NOW)


def make_client(engine, tmp_path, clock: Clock, **api) -> TestClient:
    settings = Settings(billingd=world.SETTINGS, api=ApiSettings(state_dir=str(tmp_path), **api))
    return TestClient(create_app(settings, engine, b"k" * 32, decide=radius_answer(settings), clock=clock))


def login(client: TestClient, who: str, password: str = PASSWORD) -> dict:
    """Authorization headers for an operator, or for a subscriber given as "subscriber:NAME"."""
    if who.startswith("subscriber:"):
        answer = client.post(
            "/api/v1/auth/subscriber/token", json={"username": who.split(":", 1)[1], "password": password}
        )
    else:
        answer = client.post("/api/v1/auth/token", json={"login": who, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(engine, tmp_path, clock) -> TestClient:
    build_isp(engine)
    with make_client(engine, tmp_path, clock) as client:
        yield client
