"""Who is calling, resolved on every API request and page in two queries (the session, then the
operator tree with its permissions), with every check resolve_actor makes."""

import pytest
from sqlalchemy import event

from billingd import credentials, operators
from schema.errors import Unauthenticated
from schema.settings import ApiSettings
from schema.tenancy import resolve_actor, resolve_actor_by_id
from tests import billing_world as world
from tests.api_world import PASSWORD, build_isp

SETTINGS = ApiSettings(state_dir="/nonexistent")


class Statements:
    """Counts the statements sent on a connection."""

    def __init__(self, connection):
        self.count = 0
        event.listen(connection, "before_cursor_execute", self._seen)

    def _seen(self, *_):
        self.count += 1


def session_of(connection, login: str) -> int:
    result = credentials.login_operator(connection, login, PASSWORD, "127.0.0.1", world.NOW, SETTINGS)
    assert result.session_id is not None, result.failure
    return result.session_id


def test_a_session_is_resolved_in_two_queries_to_the_same_actor_as_resolve_actor(engine):
    build_isp(engine)
    with engine.begin() as connection:
        session = session_of(connection, "r1manager")
        acting = credentials.login_as(
            connection, world.actor(connection, "reseller1"), "sub1", "127.0.0.1", world.NOW, SETTINGS
        ).session_id
        for session_id, expected in ((session, ("r1manager", None)), (acting, ("reseller1", "sub1"))):
            counted = Statements(connection)
            found = credentials.session_principal(connection, session_id, world.NOW)
            assert counted.count == 2
            assert found == resolve_actor(connection, *expected, audited=False)
        assert resolve_actor_by_id(connection, found.caller_id, found.id) == found


def test_a_block_above_ends_the_session_at_once(engine):
    build_isp(engine)
    with engine.begin() as connection:
        session = session_of(connection, "r1noc")
        operators.set_status(connection, world.actor(connection, "admin"), "reseller1", "blocked")
        with pytest.raises(Unauthenticated, match="reseller1"):
            credentials.session_principal(connection, session, world.NOW)
