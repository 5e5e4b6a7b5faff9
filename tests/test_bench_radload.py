"""Smoke test of the benchmark load driver (tests/bench/radload.py), so it does not rot.

The real radclient and tcpdump against a minimal RADIUS responder: a few
hundred requests, well under a few seconds.
"""

import hashlib
import os
import shutil
import socket
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "bench"))
import radload  # noqa: E402

pytestmark = pytest.mark.bench

SECRET = b"smoke-secret"
ANSWER = {1: 2, 4: 5}  # Access-Request -> Access-Accept, Accounting-Request -> Accounting-Response


class Responder(threading.Thread):
    """Answers every Access- and Accounting-Request with an empty Accept or
    Response (RFC 2865 section 3: Response Authenticator), ignoring one in
    ``skip_every`` first transmissions so retransmissions happen."""

    def __init__(self, skip_every: int = 0):
        super().__init__(daemon=True)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.skip_every = skip_every
        self.seen: set[bytes] = set()
        self.received = 0

    def run(self) -> None:
        while True:
            try:
                request, peer = self.socket.recvfrom(4096)
            except OSError:
                return
            self.received += 1
            if len(request) < 20 or request[0] not in ANSWER:
                continue
            if self.skip_every and request not in self.seen and self.received % self.skip_every == 0:
                self.seen.add(request)
                continue
            header = bytes([ANSWER[request[0]], request[1]]) + (20).to_bytes(2, "big")
            authenticator = hashlib.md5(header + request[4:20] + SECRET).digest()
            try:
                self.socket.sendto(header + authenticator, peer)
            except OSError:  # closed by the fixture while answering a straggler
                return

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def responder():
    if shutil.which("radclient") is None:
        pytest.skip("radclient not installed (apt-get install freeradius-utils)")
    server = Responder(skip_every=97)
    server.start()
    yield server
    server.close()
    server.join(timeout=5)


def test_request_files_split_and_are_radclient_input(tmp_path):
    files = radload.write_request_files(
        "acct-interim", radload.subscribers(5, first=41), tmp_path, per_file=2
    )
    assert [len(path.read_text().split("\n\n")) for path in files] == [2, 2, 1]
    first = files[0].read_text()
    assert 'User-Name = "sub000041"' in first and "Acct-Status-Type = Interim-Update" in first
    assert 'Calling-Station-Id = "02:00:00:00:00:29"' in first and "Framed-IP-Address = 10.0.0.41" in first


def test_latency_percentiles_by_nearest_rank():
    latency = radload.Latency.of([float(value) for value in range(100, 0, -1)])
    assert (latency.samples, latency.p50, latency.p90, latency.p99, latency.max) == (100, 50, 90, 99, 100)


@pytest.mark.parametrize("kind", ["auth", "acct-start"])
def test_load_against_a_responder(responder, tmp_path, kind):
    capture = shutil.which("tcpdump") is not None and os.geteuid() == 0
    if os.environ.get("CI"):
        assert capture, "CI runs as root with tcpdump installed (.ci/run)"
    files = radload.write_request_files(kind, radload.subscribers(600), tmp_path, per_file=150)
    target = radload.Target("127.0.0.1", responder.port, SECRET.decode())
    result = radload.run_load(
        kind, files, target, processes=2, parallel=64, retries=3, timeout=0.3, capture=capture
    )
    assert (result.requests, result.answered, result.lost, result.rejected) == (600, 600, 0, 0)
    assert result.rate > 0
    if capture:
        assert result.retransmissions >= len(responder.seen) > 0  # the responder ignored those first copies
        assert result.latency.samples == 600
        # Requests the responder ignored waited for radclient's 0.3 s retransmission.
        assert result.latency.max >= 0.3 > result.latency.p50


def test_cli_reports_lost_requests(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        status = radload.main(
            [
                "--server",
                f"127.0.0.1:{port}",
                "--secret",
                "x",
                "--users",
                "3",
                "--retries",
                "1",
                "--timeout",
                "0.2",
                "--no-capture",
                "--json",
            ]
        )
    assert status == 1
    assert '"lost": 3' in capsys.readouterr().out
