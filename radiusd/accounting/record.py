"""Accounting records: what one Accounting-Request tells us, and how a session evolves.

Two pure parts, no socket and no database:

- ``record_from_packet`` turns the attribute map (radiusd.codec.attributes.attribute_map) of
  a verified Accounting-Request into an ``AccountingRecord``: plain data
  that can be spooled to disk and replayed, keyed on the same
  ``acctuniqueid`` FreeRADIUS computes.
- ``merge_session`` applies a record to the stored state of its session. It
  is idempotent and order-tolerant (FIELD-NOTES 10): counters never go down,
  a Stop without octets keeps the last values, an Interim-Update for an
  unknown session creates it, a Stop without a Start is recorded, and an
  Interim-Update after a Stop does not reopen the session.
"""

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from radiusd.codec.attributes import first, octets, text

START = "Start"
STOP = "Stop"
INTERIM = "Interim-Update"
ACCOUNTING_ON = "Accounting-On"
ACCOUNTING_OFF = "Accounting-Off"
SESSION_STATUSES = (START, STOP, INTERIM)
NAS_STATUSES = (ACCOUNTING_ON, ACCOUNTING_OFF)
_STORED_STATUSES = frozenset(SESSION_STATUSES + NAS_STATUSES)

# Column widths of the sessions table; longer values are cut, never refused,
# because a NAS retransmits a request we cannot store for ever.
_SESSION_ID_MAX = 64
_USERNAME_MAX = 64
_STATION_MAX = 50
_PORT_ID_MAX = 50

# A byte counter above this (1 EiB, 250 years at 1 Tbit/s) is no real count but a broken or
# hostile NAS (Gigawords make up to 2^64): it is clamped, so the record is stored and answered
# once, and sums of usage stay inside the databases' 64-bit integers (issue 11).
MAX_OCTETS = 2**60

_CLASS_UNIQUE_ID = re.compile(rb"^ai:([0-9a-f]{32})", re.IGNORECASE)


class AccountingError(ValueError):
    """The request cannot be accounted (RFC 2866 §5: a required attribute is missing)."""


@dataclass(slots=True)
class AccountingRecord:
    """One Accounting-Request, reduced to what radbill stores; never changed once built
    (not frozen only because a frozen dataclass costs twice the time to build, on every request).

    ``upload_bytes``/``download_bytes`` are Acct-Input/Output (the
    subscriber's upload/download, FIELD-NOTES 11) with their Gigawords, or
    None when the packet carried no counters.
    """

    status: str
    nas_ip_address: str
    event_time: datetime
    nas_id: int | None = None
    acct_session_id: str = ""
    acct_unique_id: str = ""
    username: str = ""
    nas_port_id: str | None = None
    nas_port_type: str | None = None
    framed_ip_address: str | None = None
    framed_ipv6_address: str | None = None
    framed_ipv6_prefix: str | None = None
    framed_interface_id: str | None = None
    delegated_ipv6_prefix: str | None = None
    calling_station_id: str | None = None
    called_station_id: str | None = None
    service_type: str | None = None
    framed_protocol: str | None = None
    acct_authentic: str | None = None
    connect_info: str | None = None
    class_: str | None = None
    session_time: int | None = None
    upload_bytes: int | None = None
    download_bytes: int | None = None
    terminate_cause: str | None = None

    @property
    def counters_clamped(self) -> bool:
        """A counter was above MAX_OCTETS and is stored as MAX_OCTETS."""
        return MAX_OCTETS in (self.upload_bytes, self.download_bytes)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["event_time"] = self.event_time.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict) -> "AccountingRecord":
        return cls(**{**data, "event_time": datetime.fromisoformat(data["event_time"])})


def acct_unique_id(attributes: dict, nas_ip_address: str) -> str:
    """FreeRADIUS 3.2's ``acct_unique`` policy (raddb/policy.d/accounting), exactly.

    With a Class of the form ``ai:<32 hex>`` (set by ``insert_acct_class``)
    it is ``md5("<hex>,<Acct-Session-Id>")``; otherwise
    ``md5("User-Name,Acct-Session-Id,NAS-IP,NAS-Identifier,NAS-Port-Id,NAS-Port")``
    where NAS-IP is NAS-IPv6-Address, else NAS-IP-Address (which FreeRADIUS's
    ``preprocess`` fills from the source address when absent). Lower-case hex.
    """
    session_id = text(attributes, "Acct-Session-Id") or ""
    klass = first(attributes, "Class")
    matched = _CLASS_UNIQUE_ID.match(klass) if isinstance(klass, bytes) else None
    if matched:
        material = f"{matched.group(1).decode()},{session_id}"
    else:
        parts = [
            text(attributes, "User-Name") or "",
            session_id,
            nas_ip_address,
            text(attributes, "NAS-Identifier") or "",
            text(attributes, "NAS-Port-Id") or "",
            text(attributes, "NAS-Port") or "",
        ]
        material = ",".join(parts)
    return hashlib.md5(material.encode("utf-8", "surrogateescape")).hexdigest()


def _nas_ip_address(attributes, source_ip: str) -> str:
    return text(attributes, "NAS-IPv6-Address") or text(attributes, "NAS-IP-Address") or source_ip


def _event_time(attributes, received_at: float) -> datetime:
    """When the event happened on the NAS.

    Event-Timestamp is that time itself (RFC 2869 §5.3); without it, the
    arrival time less Acct-Delay-Time, the seconds the NAS spent retrying
    (RFC 2866 §5.2).
    """
    stamp = first(attributes, "Event-Timestamp")
    if stamp is not None:
        return datetime.fromtimestamp(int(stamp), UTC)
    delay = int(first(attributes, "Acct-Delay-Time") or 0)
    return datetime.fromtimestamp(received_at - delay, UTC)


def _class_text(attributes) -> str | None:
    value = first(attributes, "Class")
    if value is None:
        return None
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def _counter(attributes, low: str, high: str) -> int | None:
    value = octets(attributes, low, high)
    return None if value is None else min(value, MAX_OCTETS)


def record_from_packet(
    attributes: dict, nas_id: int | None, source_ip: str, received_at: float
) -> AccountingRecord | None:
    """Build the record of a verified Accounting-Request; None for a status radbill does not store (Failed, ...).

    Raises AccountingError when Acct-Status-Type is missing, or a session
    record lacks Acct-Session-Id (RFC 2866 §5.1, §5.5: both MUST be present).
    """
    status = first(attributes, "Acct-Status-Type")
    if status is None:
        raise AccountingError("no Acct-Status-Type")
    if status not in _STORED_STATUSES:
        return None
    nas_ip_address = _nas_ip_address(attributes, source_ip)
    event_time = _event_time(attributes, received_at)
    if status in NAS_STATUSES:
        return AccountingRecord(
            status=status,
            nas_ip_address=nas_ip_address,
            event_time=event_time,
            nas_id=nas_id,
            terminate_cause=text(attributes, "Acct-Terminate-Cause"),
        )
    session_id = text(attributes, "Acct-Session-Id")
    if not session_id:
        raise AccountingError(f"{status} without Acct-Session-Id")
    session_time = first(attributes, "Acct-Session-Time")
    return AccountingRecord(
        status=status,
        nas_ip_address=nas_ip_address,
        event_time=event_time,
        nas_id=nas_id,
        acct_session_id=session_id[:_SESSION_ID_MAX],
        acct_unique_id=acct_unique_id(attributes, nas_ip_address),
        username=text(attributes, "User-Name", _USERNAME_MAX) or "",
        nas_port_id=text(attributes, "NAS-Port-Id", _PORT_ID_MAX) or text(attributes, "NAS-Port"),
        nas_port_type=text(attributes, "NAS-Port-Type"),
        framed_ip_address=text(attributes, "Framed-IP-Address"),
        framed_ipv6_address=text(attributes, "Framed-IPv6-Address"),
        framed_ipv6_prefix=text(attributes, "Framed-IPv6-Prefix"),
        framed_interface_id=text(attributes, "Framed-Interface-Id"),
        delegated_ipv6_prefix=text(attributes, "Delegated-IPv6-Prefix"),
        calling_station_id=text(attributes, "Calling-Station-Id", _STATION_MAX),
        called_station_id=text(attributes, "Called-Station-Id"),
        service_type=text(attributes, "Service-Type"),
        framed_protocol=text(attributes, "Framed-Protocol"),
        acct_authentic=text(attributes, "Acct-Authentic"),
        connect_info=text(attributes, "Connect-Info"),
        class_=_class_text(attributes),
        session_time=None if session_time is None else int(session_time),
        upload_bytes=_counter(attributes, "Acct-Input-Octets", "Acct-Input-Gigawords"),
        download_bytes=_counter(attributes, "Acct-Output-Octets", "Acct-Output-Gigawords"),
        terminate_cause=text(attributes, "Acct-Terminate-Cause"),
    )


@dataclass(frozen=True)
class SessionState:
    """What the database holds about one session (sessions + radacct)."""

    started_at: datetime | None = None
    updated_at: datetime | None = None
    stopped_at: datetime | None = None
    session_time: int | None = None
    interval: int | None = None
    upload_bytes: int = 0
    download_bytes: int = 0
    terminate_cause: str | None = None
    framed_ip_address: str | None = None
    connect_info_start: str | None = None
    connect_info_stop: str | None = None

    @property
    def is_open(self) -> bool:
        return self.stopped_at is None


def _later(first: datetime | None, second: datetime) -> datetime:
    return second if first is None or second > first else first


def merge_session(state: SessionState | None, record: AccountingRecord) -> SessionState:
    """The session after ``record``; applying the same record again changes nothing.

    PostgreSQL applies the same rule in SQL (store._merged_state); tests/test_accounting_store.py
    holds the two to each other."""
    state = state or SessionState()
    upload = max(state.upload_bytes, record.upload_bytes or 0)
    download = max(state.download_bytes, record.download_bytes or 0)
    session_time = (
        state.session_time
        if record.session_time is None
        else max(state.session_time or 0, record.session_time)
    )
    inferred_start = record.event_time - timedelta(seconds=record.session_time or 0)
    changes: dict = dict(
        upload_bytes=upload,
        download_bytes=download,
        session_time=session_time,
        framed_ip_address=record.framed_ip_address or state.framed_ip_address,
    )
    if record.status == START:
        # The Start's own time is authoritative, also when an Interim or Stop came first.
        changes.update(
            started_at=record.event_time,
            updated_at=_later(state.updated_at, record.event_time),
            connect_info_start=record.connect_info or state.connect_info_start,
        )
    elif record.status == INTERIM:
        changes.update(started_at=state.started_at or inferred_start)
        if state.is_open:
            previous = state.updated_at or state.started_at
            if previous is not None and record.event_time > previous:
                changes.update(interval=int((record.event_time - previous).total_seconds()))
            changes.update(updated_at=_later(state.updated_at, record.event_time))
    elif record.status == STOP:
        changes.update(started_at=state.started_at or inferred_start)
        if state.is_open:
            changes.update(
                stopped_at=record.event_time,
                updated_at=_later(state.updated_at, record.event_time),
                terminate_cause=record.terminate_cause,
                connect_info_stop=record.connect_info,
            )
    else:
        raise ValueError(f"{record.status} is not a session record")
    if changes.get("session_time") is None and changes.get("stopped_at") and changes.get("started_at"):
        changes["session_time"] = int((changes["stopped_at"] - changes["started_at"]).total_seconds())
    return dataclasses.replace(state, **changes)
