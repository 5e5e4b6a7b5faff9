"""Building Accounting-Requests and records for the accounting tests."""

import hashlib
from datetime import datetime, timezone

from pyrad.packet import AcctPacket

from radiusd.accounting import AccountingRecord, record_from_packet
from radiusd.dictionary import load_dictionary

SECRET = b"testing123"
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=timezone.utc)


def accounting_packet(**attributes) -> AcctPacket:
    """An Accounting-Request as a NAS sends it, decoded as radiusd receives it."""
    attributes = {key.replace("_", "-"): value for key, value in attributes.items()}
    sent = AcctPacket(dict=load_dictionary(), secret=SECRET, **attributes)
    return AcctPacket(dict=load_dictionary(), secret=SECRET, packet=sent.RequestPacket())


def make_record(status: str, session: str = "81000001", username: str = "demo", at: datetime = T0,
                upload: int | None = None, download: int | None = None, session_time: int | None = None,
                nas_ip: str = "127.0.0.1", cause: str | None = None, **extra) -> AccountingRecord:
    """A record as record_from_packet would make it, keyed like FreeRADIUS."""
    unique = hashlib.md5(f"{username},{session},{nas_ip},,,".encode()).hexdigest() if status in (
        "Start", "Stop", "Interim-Update") else ""
    return AccountingRecord(status=status, nas_ip_address=nas_ip, event_time=at, acct_session_id=session,
                            acct_unique_id=unique, username=username, upload_bytes=upload, download_bytes=download,
                            session_time=session_time, terminate_cause=cause, **extra)


def record_of(packet, source_ip: str = "127.0.0.1", received_at: float | None = None, nas_id: int | None = None):
    return record_from_packet(packet, nas_id, source_ip, T0.timestamp() if received_at is None else received_at)
