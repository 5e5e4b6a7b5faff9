"""radiusd's in-memory view of everything an Access-Request needs.

The hot path reads only this: routers by source address, customers by user
name, their package, their owner's standing, open sessions and usage. It is
filled at start and kept current by radiusd.view.follower from the change log; it
is only ever changed on the reactor thread, so it needs no locks. If the
database goes away the view simply stops changing and radiusd keeps
answering from the last known state.
"""

import logging
from dataclasses import replace

from radiusd.auth.policy import PackageState, Subscriber
from radiusd.view.model import Customers, NasClient, OperatorRow, Snapshot
from schema.identity import canonical_ip
from schema.tenancy import ancestry

log = logging.getLogger(__name__)


class SubscriberView:
    def __init__(self):
        self.nas_by_ip: dict[str, NasClient] = {}
        self._nas_ip_by_id: dict[int, str] = {}
        self._customers = Customers()
        self._packages: dict[int, tuple[str, PackageState]] = {}
        self._blocked_operators: set[int] = set()
        self.open_sessions: dict[int, int] = {}
        self.used_bytes: dict[int, int] = {}
        self.loaded = False

    # --- reading (hot path) ---------------------------------------------------

    def nas_for(self, address: str) -> NasClient | None:
        client = self.nas_by_ip.get(address)
        if client is None and ":" in address:  # a socket's address is always valid
            client = self.nas_by_ip.get(canonical_ip(address))
        return client

    def subscriber(self, username: str) -> Subscriber | None:
        """The subscriber state for a (normalised) user name, or None."""
        row = self._customers.get(username)
        if row is None:
            return None
        package = self._packages.get(row.package_id)
        if package is None:  # its master package was refused at load (logged then): treat as unknown
            log.debug("customer %s has package %d which radiusd does not know", username, row.package_id)
            return None
        customer_type, package_state = package
        return Subscriber(
            id=row.id,
            username=row.username,
            password=row.password,
            status=row.status,
            customer_type=customer_type,
            package=package_state,
            expires_at=row.expires_at,
            wallet_balance=row.wallet_balance,
            mac_binding=row.mac_binding,
            static_ip=row.static_ip,
            deleted=row.deleted,
            unpaid=row.unpaid,
            operator_blocked=row.operator_id in self._blocked_operators,
            used_bytes=self.used_bytes.get(row.id, 0),
            open_sessions=self.open_sessions.get(row.id, 0),
        )

    def __len__(self) -> int:
        return len(self._customers)

    # --- writing (reactor thread, from the follower or accounting) ---------------

    def apply(self, snapshot: Snapshot) -> None:
        if snapshot.full:
            self.nas_by_ip, self._nas_ip_by_id = {}, {}
            self._customers = Customers() if snapshot.all_customers is None else snapshot.all_customers
        if snapshot.operators is not None:
            self._blocked_operators = _blocked_with_descendants(snapshot.operators)
        if snapshot.packages is not None:
            self._packages = snapshot.packages
        for customer_id in snapshot.customer_ids or ():
            self._customers.forget(customer_id)
        for row in snapshot.customers:
            self._customers.add(row)
        if snapshot.open_sessions is not None:
            self._apply_open_sessions(snapshot.open_sessions, snapshot.open_session_ids)
        if snapshot.used_bytes is not None:
            self.used_bytes = snapshot.used_bytes
        for nas_id in snapshot.nas_ids or ():
            self.nas_by_ip.pop(self._nas_ip_by_id.pop(nas_id, None), None)
        for client in snapshot.nas:
            self.nas_by_ip.pop(self._nas_ip_by_id.pop(client.id, None), None)
            self.nas_by_ip[client.ip_address] = client
            self._nas_ip_by_id[client.id] = client.ip_address
        self.loaded = True

    def mark_message_authenticator_seen(self, client: NasClient) -> NasClient:
        seen = replace(client, message_authenticator_seen=True)
        if self.nas_by_ip.get(client.ip_address) is client:
            self.nas_by_ip[client.ip_address] = seen
        return seen

    def _apply_open_sessions(self, counts: dict[int, int], customer_ids: set[int] | None) -> None:
        if customer_ids is None:
            self.open_sessions = counts
            return
        for customer_id in customer_ids:
            if counts.get(customer_id):
                self.open_sessions[customer_id] = counts[customer_id]
            else:
                self.open_sessions.pop(customer_id, None)


def _blocked_with_descendants(operators: dict[int, OperatorRow]) -> set[int]:
    """An operator is cut off when it or any ancestor is blocked."""
    parents = {row.id: row.parent_id for row in operators.values()}
    blocked = {row.id for row in operators.values() if row.blocked}
    return {operator_id for operator_id in operators if blocked.intersection(ancestry(parents, operator_id))}
