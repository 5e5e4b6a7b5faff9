"""``radbill radiusd`` as a subprocess, and the real ``radclient`` to talk to it."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import RADBILL, REPOSITORY, free_port

SECRET = "testing123"


def require_radclient() -> str:
    found = shutil.which("radclient")
    if found is None:
        message = "radclient not found (apt-get install freeradius-utils)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class RadiusdProcess:
    """One radbill radiusd with its own ports, spool and log, in ``directory``."""

    def __init__(self, directory: Path, database_url: str, interim_interval: int = 300):
        self.directory = directory
        self.auth_port = free_port(socket.SOCK_DGRAM)
        self.acct_port = free_port(socket.SOCK_DGRAM)
        self.metrics_port = free_port()
        self.spool_dir = directory / "spool"
        self.config = directory / "radbill.toml"
        self.config.write_text(
            f'[database]\nurl = "{database_url}"\n'
            f'[radiusd]\nauth_port = {self.auth_port}\nacct_port = {self.acct_port}\n'
            f'metrics_port = {self.metrics_port}\nspool_dir = "{self.spool_dir}"\ninterim_interval = {interim_interval}\n'
        )
        self.log = directory / "radiusd.log"
        self.process: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "RADBILL_CONFIG": str(self.config)}
        env.pop("RADBILL_DATABASE_URL", None)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(RADBILL + ["radiusd"], cwd=REPOSITORY, env=env, stdout=log, stderr=log)
        if wait:
            self.wait_for_log("answering accounting")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text(errors="replace"):
                return
            if self.process.poll() is not None:
                raise AssertionError(f"radiusd ended with {self.process.returncode}:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"radiusd did not log {text!r} in {timeout}s:\n{self.log.read_text()}")

    def metric(self, name: str, labels: str = "") -> float:
        """One sample from /metrics, e.g. metric("radiusd_accounting_records_total", 'outcome="stored"')."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        selector = re.escape(name + (f"{{{labels}}}" if labels else ""))
        match = re.search(rf"^{selector} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def wait_for_metric(self, name: str, labels: str, predicate, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            value = self.metric(name, labels)
            if predicate(value) or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no shutdown trigger runs, nothing is flushed."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request_file(path: Path, requests: list[dict]) -> Path:
    """A radclient input file: one block of ``Attribute = value`` lines per request."""
    blocks = []
    for attributes in requests:
        lines = []
        for name, value in attributes.items():
            lines.append(f"{name} = {value}")
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n")
    return path


def _radclient_command(port: int, file: Path, parallel: int, retries: int, timeout: int, kind: str) -> list[str]:
    return [require_radclient(), "-q", "-s", "-f", str(file), "-p", str(parallel), "-r", str(retries),
            "-t", str(timeout), f"127.0.0.1:{port}", kind, SECRET]


def radclient(port: int, file: Path, *, parallel: int = 1, retries: int = 3, timeout: int = 3,
              kind: str = "acct") -> subprocess.CompletedProcess:
    """Send every request in ``file``; radclient exits non-zero if any went unanswered."""
    return subprocess.run(_radclient_command(port, file, parallel, retries, timeout, kind),
                          capture_output=True, text=True, timeout=600)


def radclient_in_background(port: int, file: Path, *, parallel: int = 1, retries: int = 3, timeout: int = 3,
                            kind: str = "acct") -> subprocess.Popen:
    return subprocess.Popen(_radclient_command(port, file, parallel, retries, timeout, kind),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def acct(status: str, session: str, username: str = "demo", **attributes) -> dict:
    return {"Acct-Status-Type": status, "User-Name": username, "Acct-Session-Id": session,
            "NAS-IP-Address": "127.0.0.1", **attributes}
