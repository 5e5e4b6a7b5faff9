"""Building Accounting-Requests and records for the accounting tests, and sending them with radclient."""

import hashlib
import os
import shutil
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyrad.packet import AcctPacket

from radiusd.accounting.record import AccountingRecord, record_from_packet
from radiusd.codec.attributes import attribute_map
from schema.dictionary import load_dictionary
from tests.radius import RadiusdProcess, metric, write_config

SECRET = b"testing123"
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def accounting_packet(**attributes) -> dict:
    """An Accounting-Request as a NAS sends it, decoded as radiusd receives it (its attribute map)."""
    attributes = {key.replace("_", "-"): value for key, value in attributes.items()}
    return attribute_map(AcctPacket(dict=load_dictionary(), secret=SECRET, **attributes).RequestPacket())


def make_record(
    status: str,
    session: str = "81000001",
    username: str = "demo",
    at: datetime = T0,
    upload: int | None = None,
    download: int | None = None,
    session_time: int | None = None,
    nas_ip: str = "127.0.0.1",
    cause: str | None = None,
    **extra,
) -> AccountingRecord:
    """A record as record_from_packet would make it, keyed like FreeRADIUS."""
    unique = (
        hashlib.md5(f"{username},{session},{nas_ip},,,".encode()).hexdigest()
        if status in ("Start", "Stop", "Interim-Update")
        else ""
    )
    return AccountingRecord(
        status=status,
        nas_ip_address=nas_ip,
        event_time=at,
        acct_session_id=session,
        acct_unique_id=unique,
        username=username,
        upload_bytes=upload,
        download_bytes=download,
        session_time=session_time,
        terminate_cause=cause,
        **extra,
    )


def record_of(
    packet, source_ip: str = "127.0.0.1", received_at: float | None = None, nas_id: int | None = None
):
    return record_from_packet(
        packet, nas_id, source_ip, T0.timestamp() if received_at is None else received_at
    )


# --- radiusd as a subprocess, and radclient sending files of requests ----------------


def require_radclient() -> str:
    found = shutil.which("radclient")
    if found is None:
        message = "radclient not found (apt-get install freeradius-utils)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class AccountingRadiusd(RadiusdProcess):
    """``radbill radiusd`` with its own spool, started once accounting answers; can be SIGKILLed."""

    def __init__(self, directory: Path, database_url: str, namespace: str | None = None, **radiusd):
        config, self.settings = write_config(directory, database_url, **radiusd)
        super().__init__(config, directory / "radiusd.log", namespace)
        self.directory = directory
        self.acct_port = self.settings["acct_port"]
        self.starts = 0

    def start(self, timeout: float = 30.0) -> "AccountingRadiusd":
        self.starts += 1
        self.log_path = self.directory / f"radiusd-{self.starts}.log"  # each run's own "answering" lines
        super().start(timeout)
        deadline = time.monotonic() + timeout
        while "answering accounting" not in self.log():
            assert time.monotonic() < deadline, f"accounting did not start:\n{self.log()}"
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown trigger runs, nothing is flushed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def metric(self, name: str, labels: dict | None = None) -> float:
        return (
            metric(self.settings["metrics_port"], name, labels, self.settings.get("bind", "127.0.0.1")) or 0.0
        )

    def wait_for_metric(self, name: str, labels: dict | None, predicate, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, labels)
            if predicate(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.1)


def request_file(path: Path, requests: list[dict]) -> Path:
    """A radclient input file: one block of ``Attribute = value`` lines per request."""
    path.write_text(
        "\n\n".join(
            "\n".join(f"{name} = {value}" for name, value in attributes.items()) for attributes in requests
        )
        + "\n"
    )
    return path


def _radclient_command(port: int, file: Path, parallel: int, host: str = "127.0.0.1") -> list[str]:
    return [
        require_radclient(),
        "-q",
        "-s",
        "-f",
        str(file),
        "-p",
        str(parallel),
        "-r",
        "3",
        "-t",
        "3",
        f"{host}:{port}",
        "acct",
        SECRET.decode(),
    ]


def send_file(
    port: int, file: Path, *, parallel: int = 1, host: str = "127.0.0.1"
) -> subprocess.CompletedProcess:
    """Send every request in ``file``; radclient exits non-zero if any went unanswered."""
    return subprocess.run(
        _radclient_command(port, file, parallel, host), capture_output=True, text=True, timeout=600
    )


def send_file_in_background(port: int, file: Path, *, parallel: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        _radclient_command(port, file, parallel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def acct(status: str, session: str, username: str = "demo", **attributes) -> dict:
    return {
        "Acct-Status-Type": status,
        "User-Name": username,
        "Acct-Session-Id": session,
        "NAS-IP-Address": "127.0.0.1",
        **attributes,
    }
