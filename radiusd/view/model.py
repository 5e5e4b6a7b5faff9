"""The rows radiusd's view is made of, as the queries read them and the view holds them."""

from dataclasses import dataclass, field
from datetime import datetime

from radiusd.auth.policy import PackageState


@dataclass(frozen=True)
class NasClient:
    """A router allowed to talk to us, with its shared secret."""

    id: int
    name: str
    ip_address: str
    secret: bytes
    require_message_authenticator: str  # yes, no or auto (RFC 3579 / BlastRADIUS)
    message_authenticator_seen: bool = False

    def requires_message_authenticator(self) -> bool:
        return self.require_message_authenticator == "yes" or (
            self.require_message_authenticator == "auto" and self.message_authenticator_seen
        )


@dataclass(frozen=True)
class CustomerRow:
    id: int
    username: str
    password: str
    status: str
    package_id: int
    operator_id: int
    expires_at: datetime | None
    wallet_balance: int
    mac_binding: str | None
    static_ip: str | None
    deleted: bool
    unpaid: bool


@dataclass(frozen=True)
class OperatorRow:
    id: int
    parent_id: int | None
    blocked: bool


@dataclass
class Snapshot:
    """Rows read from the database in one transaction, to be applied at once.

    ``None`` for a table means "not read"; for customers and routers,
    ``*_ids`` name the rows that were asked for (those not returned are gone).
    """

    customers: list[CustomerRow] = field(default_factory=list)
    customer_ids: set[int] | None = None
    nas: list[NasClient] = field(default_factory=list)
    nas_ids: set[int] | None = None
    packages: dict[int, tuple[str, PackageState]] | None = None
    operators: dict[int, OperatorRow] | None = None
    # Open sessions per customer: of the customers in open_session_ids, or of all when it is None.
    open_sessions: dict[int, int] | None = None
    open_session_ids: set[int] | None = None
    # Bytes used this period per customer with a quota; None when not read.
    used_bytes: dict[int, int] | None = None
    full: bool = False
