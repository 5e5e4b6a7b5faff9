"""The customer search: a part of the username, name, phone or customer ID, in any case, never across
two fields; on PostgreSQL answered by the trigram index instead of reading the table."""

import pytest
from sqlalchemy import select, text

from billingd import customers
from schema.tables import customer_search_text
from schema.tables import customers as customers_table
from tests import billing_world as world


@pytest.fixture
def isp(engine):
    with engine.begin() as connection:
        world.build(connection)
        for username, name, phone in (
            ("alice", "Alice Rahman", "01711-000111"),
            ("bob", "Bob Karim", None),
            ("carol", "Carol 100% Hossain", "01811-222333"),
        ):
            admin = world.add_customer_of(connection, "admin", username, world.on())
            customers.set_customer(connection, admin, username, world.on(), name=name, phone=phone)
    return engine


def found(connection, search: str) -> list[str]:
    admin = world.actor(connection, "admin")
    return [row["username"] for row in customers.list_customers(connection, admin, search=search)]


def test_search_matches_a_part_of_any_field_in_any_case(isp):
    with isp.begin() as connection:
        code = customers.show_customer(connection, world.actor(connection, "admin"), "bob")["customer_code"]
        assert found(connection, "ALI") == ["alice"]
        assert found(connection, "karim") == ["bob"]
        assert found(connection, "1811-22") == ["carol"]
        assert found(connection, code.lower()) == ["bob"]
        assert found(connection, "100%") == ["carol"]  # % and _ are the search's own letters
        assert found(connection, "1_0") == []
        assert found(connection, "  ") == ["alice", "bob", "carol"]


def test_a_match_never_spans_two_fields(isp):
    with isp.begin() as connection:
        assert found(connection, "Rahman") == ["alice"]
        assert found(connection, "alice Alice") == []  # username then name
        assert found(connection, "alice\nAlice") == []  # a newline is a space to the search


def test_postgresql_answers_the_search_from_the_trigram_index(isp):
    """list_customers filters on schema.tables.customer_search_text; the index is built on the same text."""
    if isp.dialect.name != "postgresql":
        pytest.skip("the trigram index is PostgreSQL's")
    query = select(customers_table.c.username).where(customer_search_text.ilike("%rahman%"))
    with isp.begin() as connection:
        connection.execute(text("SET LOCAL enable_seqscan = off"))  # three rows: show the index is usable
        compiled = query.compile(connection, compile_kwargs={"literal_binds": True})
        plan = "\n".join(connection.execute(text(f"EXPLAIN {compiled}")).scalars())
        assert "ix_customers_search_trgm" in plan, plan
        assert connection.execute(query).scalars().all() == ["alice"]
