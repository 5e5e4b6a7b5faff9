"""systemd: the units pass ``systemd-analyze verify``; the daemons speak sd_notify to a fake NOTIFY_SOCKET.

The daemons run as subprocesses, as systemd runs them: READY only once they
serve, WATCHDOG from the reactor at half of WATCHDOG_USEC, STATUS lines,
SIGHUP applying what it can and naming what needs a restart, STOPPING on
SIGTERM with exit status 0.
"""

import asyncio
import configparser
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from radiusd.workers import WorkerRelay
from schema.runtime import Systemd
from tests.conftest import RADBILL, REPOSITORY, free_port
from tests.radius import pap, write_config

pytestmark = pytest.mark.interop

UNITS = sorted((REPOSITORY / "systemd").glob("*.service"))


class NotifySocket:
    """What systemd listens on: a datagram socket; each message is a dict of its KEY=value lines."""

    def __init__(self, directory: Path):
        self.path = directory / "notify"
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(self.path))
        self.received: list[dict[str, str]] = []

    def wait_for(self, key: str, value: str | None = None, timeout: float = 30.0) -> dict[str, str]:
        """The next message carrying ``key`` (with ``value``), reading past others."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(4096)
            except TimeoutError:
                break
            message = dict(line.partition("=")[::2] for line in data.decode().splitlines())
            self.received.append(message)
            if key in message and (value is None or message[key] == value):
                return message
        raise AssertionError(f"no {key}={value} within {timeout} s; received {self.received}")

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def notify_socket(tmp_path):
    listener = NotifySocket(tmp_path)
    yield listener
    listener.close()


def start_daemon(name: str, config: Path, notify: NotifySocket, log: Path, watchdog_usec: int = 400_000):
    env = {
        **os.environ,
        "RADBILL_CONFIG": str(config),
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": str(watchdog_usec),
    }
    env.pop("RADBILL_DATABASE_URL", None)
    return subprocess.Popen(
        RADBILL + [name], env=env, cwd=REPOSITORY, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(path)
    return parser


def test_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze not found (apt-get install systemd)")
        pytest.skip("systemd-analyze not found")
    radbill = tmp_path / "radbill"
    radbill.write_text("#!/bin/sh\n")
    radbill.chmod(0o755)
    for path in UNITS:  # verify wants ExecStart to exist
        (tmp_path / path.name).write_text(path.read_text().replace("/usr/local/bin/radbill", str(radbill)))
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / path.name) for path in UNITS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    ours = [line for line in result.stderr.splitlines() if "radbill" in line]
    assert result.returncode == 0 and not ours, result.stderr


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_units_are_notify_services_confined_to_their_user(path):
    service = unit(path)["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["User"] == service["Group"] == "radbill"
    assert service["ConfigurationDirectory"] == service["StateDirectory"] == "radbill"
    assert service["StateDirectoryMode"] == "0700" and service["UMask"] == "0077"
    # Every port radbill needs is above 1024 (RADIUS 1812/1813, CoA is sent from ephemeral ports).
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""


def test_systemd_notifier_speaks_to_abstract_and_path_sockets(tmp_path):
    name = f"radbill-test-{os.getpid()}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + name)
    listener.settimeout(5)
    environ = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    systemd = Systemd.from_environment(environ)
    assert environ == {} and systemd.watchdog_seconds == 2.0
    systemd.ready("serving")
    assert listener.recv(100) == b"READY=1\nSTATUS=serving"
    listener.close()
    other = Systemd.from_environment({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_seconds is None  # the watchdog is another process's
    silent = Systemd.from_environment({})
    assert not silent.enabled and silent.keep_alive(None) is None
    silent.ready("nobody listens")  # a no-op, not an error


def test_an_asyncio_daemon_pings_the_watchdog_from_its_event_loop():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd = Systemd(sock=theirs, watchdog_seconds=0.1)

    async def run_briefly():
        task = asyncio.ensure_future(systemd.keep_alive_async())
        await asyncio.sleep(0.5)
        task.cancel()

    asyncio.run(run_briefly())
    ours.setblocking(False)
    pings = []
    while True:
        try:
            pings.append(ours.recv(100))
        except BlockingIOError:
            break
    assert set(pings) == {b"WATCHDOG=1"} and 3 <= len(pings) <= 11  # every 0.05 s
    ours.close()
    theirs.close()


def test_worker_relay_is_ready_when_every_worker_is_and_pings_only_while_all_do():
    now = [0.0]
    sent = []

    class Recorder(Systemd):
        def notify(self, **fields):
            sent.append(fields)

    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
    children = {1000 + i: ours for i, (ours, _theirs) in enumerate(pairs)}
    relay = WorkerRelay(children, Recorder(watchdog_seconds=10.0), lambda: now[0])
    first, second = (ours for ours, _ in pairs)
    relay.received(first, b"READY=1\nSTATUS=5 subscribers")
    relay.tick()
    assert sent == []  # one worker is not the service
    relay.received(second, b"READY=1\nSTATUS=5 subscribers")
    relay.tick()
    assert sent[0] == {"READY": 1, "STATUS": "worker 0: 5 subscribers; worker 1: 5 subscribers"}
    assert sent[1:] == [{"WATCHDOG": 1}]  # both answered just now
    now[0] = 4.0
    relay.tick()
    assert len(sent) == 2  # not before half of WatchdogSec
    now[0] = 6.0
    relay.received(first, b"WATCHDOG=1")
    relay.received(second, b"WATCHDOG=1")
    relay.tick()
    assert sent[2:] == [{"WATCHDOG": 1}]
    now[0] = 17.0  # worker 1 wedged: pinged at 6, more than WatchdogSec ago
    relay.received(first, b"WATCHDOG=1")
    relay.tick()
    assert len(sent) == 3
    for ours, theirs in pairs:
        ours.close()
        theirs.close()


def test_radiusd_is_ready_when_it_answers_pings_the_watchdog_and_reloads_policy(
    cli, database_url, tmp_path, notify_socket
):
    cli("demo")
    config, values = write_config(tmp_path, database_url)
    process = start_daemon("radiusd", config, notify_socket, tmp_path / "radiusd.log")
    try:
        ready = notify_socket.wait_for("READY", "1")
        assert ready["STATUS"].startswith("2 subscribers, ")
        # READY means serving: the first request after it is answered.
        assert pap(values["auth_port"], "demo", "demo").code == "Access-Accept"
        assert pap(values["auth_port"], "expired", "expired").code == "Access-Reject"
        for _ in range(3):
            notify_socket.wait_for("WATCHDOG", "1", timeout=2)

        text = config.read_text()
        new_port = free_port(socket.SOCK_DGRAM)
        text = text.replace(f"auth_port = {values['auth_port']}", f"auth_port = {new_port}")
        config.write_text(
            text + 'expired_policy = "restrict"\nexpired_rate = "256k/256k"\n[log]\nlevel = "debug"\n'
        )
        process.send_signal(signal.SIGHUP)
        notify_socket.wait_for("RELOADING", "1")
        reloaded = notify_socket.wait_for("READY", "1")
        assert reloaded["STATUS"] == "reloaded; a restart is needed for radiusd.auth_port"
        restricted = pap(values["auth_port"], "expired", "expired")  # the old port: not rebound
        assert restricted.code == "Access-Accept" and restricted["Mikrotik-Rate-Limit"] == "256k/256k"

        config.write_text(text + 'expired_rate = "fast"\n')
        process.send_signal(signal.SIGHUP)
        refused = notify_socket.wait_for("READY", "1")
        assert refused["STATUS"].startswith("reload refused: configuration key 'radiusd.expired_rate'")
        assert pap(values["auth_port"], "expired", "expired").code == "Access-Accept"  # kept
    finally:
        status = stop(process)
    notify_socket.wait_for("STOPPING", "1", timeout=5)
    log = (tmp_path / "radiusd.log").read_text()
    assert status == 0, log
    assert "changed but only a restart applies them: radiusd.auth_port" in log


def test_billingd_is_ready_once_the_database_answers(cli, database_url, tmp_path, notify_socket):
    cli("demo")
    config = tmp_path / "radbill.toml"
    text = f'[database]\nurl = "{database_url}"\n[billingd]\nmetrics_port = {free_port()}\n'
    config.write_text(text)
    process = start_daemon("billingd", config, notify_socket, tmp_path / "billingd.log")
    try:
        ready = notify_socket.wait_for("READY", "1")
        assert ready["STATUS"].startswith("active; last billing day ")
        assert re.search(r"; enforcement jobs pending \d+, failed 0; 0 sessions open$", ready["STATUS"]), (
            ready["STATUS"]
        )
        for _ in range(3):
            notify_socket.wait_for("WATCHDOG", "1", timeout=2)
        config.write_text(
            text
            + 'grace_days = 5\nbind = "127.0.0.2"\n[notices]\nsms_url = "http://127.0.0.1:9/sms"\n[nas]\nbatch_size = 5\n'
        )
        process.send_signal(signal.SIGHUP)
        reloaded = notify_socket.wait_for("READY", "1")
        assert reloaded["STATUS"] == "reloaded; a restart is needed for billingd.bind"
    finally:
        status = stop(process)
    log = (tmp_path / "billingd.log").read_text()
    assert status == 0, log
    assert "configuration reloaded: billingd.grace_days, nas.batch_size, notices.sms_url" in log


def test_billingd_is_not_ready_while_the_database_is_unreachable(tmp_path, notify_socket):
    config = tmp_path / "radbill.toml"
    config.write_text(
        f'[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:{free_port()}/radbill"\n'
        f"[billingd]\nmetrics_port = {free_port()}\n"
    )
    process = start_daemon("billingd", config, notify_socket, tmp_path / "billingd.log")
    try:
        waiting = notify_socket.wait_for("STATUS", "waiting for the database")
        assert "READY" not in waiting
        with pytest.raises(AssertionError, match="no READY"):
            notify_socket.wait_for("READY", "1", timeout=3)
    finally:
        stop(process)


def test_radiusd_workers_are_ready_and_watched_through_their_parent(
    cli, database_url, tmp_path, notify_socket
):
    cli("demo")
    config, values = write_config(
        tmp_path, database_url, workers=2, metrics_port=0
    )  # not two free ports in a row
    process = start_daemon("radiusd", config, notify_socket, tmp_path / "radiusd.log")
    try:
        ready = notify_socket.wait_for("READY", "1")
        assert (
            ready["STATUS"].startswith("worker 0: 2 subscribers")
            and "; worker 1: 2 subscribers" in ready["STATUS"]
        )
        assert pap(values["auth_port"], "demo", "demo").code == "Access-Accept"
        for _ in range(3):
            notify_socket.wait_for("WATCHDOG", "1", timeout=2)
    finally:
        status = stop(process)
    assert status == 0, (tmp_path / "radiusd.log").read_text()
