"""What the next Access-Request of a subscriber would get right now, without a router.

The customer's row is loaded into a one-subscriber view by radiusd's own
queries and decided by radiusd's own ``authorize``, as a PAP login with the
right password from ``device``. ``radbill why`` (billingd.reports.why) calls
it after the tenancy check.
"""

from datetime import datetime

from sqlalchemy import Connection

from radiusd.auth.facts import Credentials, RequestFacts
from radiusd.auth.policy import Decision, PolicySettings, authorize
from radiusd.view import queries
from radiusd.view.model import Snapshot
from radiusd.view.view import SubscriberView

# Attributes that only make sense for a real MS-CHAP request (they carry keys derived from the password).
_HIDDEN_ATTRIBUTES = frozenset(
    {"MS-CHAP2-Success", "MS-MPPE-Send-Key", "MS-MPPE-Recv-Key", "MS-CHAP-MPPE-Keys"}
)


def next_answer(
    connection: Connection,
    customer_id: int,
    username: str,
    device: str | None,
    now: datetime,
    *,
    settings: PolicySettings,
) -> Decision:
    view = SubscriberView()
    view.apply(
        Snapshot(
            customers=queries.read_customers(connection, {customer_id}),
            packages=queries.read_packages(connection),
            operators=queries.read_operators(connection),
            open_sessions=queries.count_open_sessions(connection, {customer_id}),
            open_session_ids={customer_id},
            used_bytes=queries.read_used_bytes(connection, now.date(), {customer_id}),
        )
    )
    subscriber = view.subscriber(username)
    facts = RequestFacts(
        username=username,
        credentials=Credentials("pap", password=subscriber.password if subscriber else None),
        calling_station_id=device,
    )
    decision = authorize(facts, subscriber, now, settings)
    shown = tuple((name, value) for name, value in decision.attributes if name not in _HIDDEN_ATTRIBUTES)
    return Decision(
        decision.accept, decision.reason, decision.message, shown, auth_method=decision.auth_method
    )
