"""Helpers for tests that talk to a real ``radbill radiusd`` with FreeRADIUS's radclient.

``RadiusdProcess`` starts the daemon as a subprocess on free ports with its
own TOML file; ``radclient`` sends one request and parses the answer as
radclient prints it. Accounting tests can reuse both.
"""

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import RADBILL, REPOSITORY, free_port

SECRET = "testing123"


@dataclass
class Reply:
    code: str
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> str:
        return self.attributes[name][0]

    def get(self, name: str):
        return self.attributes.get(name, [None])[0]


_RECEIVED = re.compile(r"^Received (\S+) Id")
_ATTRIBUTE = re.compile(r"^\s+(\S+) = (.*)$")


def radclient(
    port: int,
    lines: list[str],
    *,
    secret: str = SECRET,
    host: str = "127.0.0.1",
    timeout: float = 3.0,
    retries: int = 1,
    kind: str = "auth",
) -> Reply | None:
    """Send one request (attribute lines as radclient reads them); None if no answer."""
    result = subprocess.run(
        ["radclient", "-x", "-r", str(retries), "-t", str(timeout), f"{host}:{port}", kind, secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return _parse(result.stdout)


def _parse(output: str) -> Reply | None:
    """The reply as radclient -x prints it: "Received CODE Id ..." then indented attributes."""
    reply = None
    for line in output.splitlines():
        received = _RECEIVED.match(line)
        if received:
            reply = Reply(received.group(1))
        elif reply is not None and (attribute := _ATTRIBUTE.match(line)):
            value = attribute.group(2).strip()
            if value.startswith('"') and value.endswith('"'):
                value = value[1:-1]
            reply.attributes.setdefault(attribute.group(1), []).append(value)
    return reply


def pap(port: int, username: str, password: str, *extra: str, **options) -> Reply | None:
    return radclient(
        port,
        [
            f'User-Name = "{username}"',
            f'User-Password = "{password}"',
            "NAS-IP-Address = 127.0.0.1",
            "Message-Authenticator = 0x00",
            *extra,
        ],
        **options,
    )


def radtest(
    port: int, username: str, password: str, method: str = "pap", secret: str = SECRET, ppp: bool = False
) -> Reply | None:
    """The operator's tool itself: ``radtest -t METHOD user password host:port 0 secret``."""
    result = subprocess.run(
        ["radtest", "-t", method, username, password, f"127.0.0.1:{port}", "0", secret, "1" if ppp else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return _parse(result.stdout)


def write_config(directory: Path, database_url: str, **radiusd) -> tuple[Path, dict]:
    """A TOML file with free ports; returns its path and the [radiusd] values."""
    # Each test's own accounting spool, so no record spooled in one test is replayed into another's database.
    values = {
        "auth_port": free_port(socket.SOCK_DGRAM),
        "acct_port": free_port(socket.SOCK_DGRAM),
        "metrics_port": free_port(),
        "spool_dir": str(directory / "spool"),
        **radiusd,
    }
    lines = ["[database]", f'url = "{database_url}"', "[radiusd]"]
    for key, value in values.items():
        lines.append(f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"')
    path = directory / "radbill.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, values


class RadiusdProcess:
    """``radbill radiusd`` in a subprocess, in a network namespace (another host) if one is
    named; waits until it answers."""

    def __init__(self, config: Path, log_path: Path, namespace: str | None = None):
        self.config = config
        self.log_path = log_path
        self.namespace = namespace
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "RadiusdProcess":
        env = {**os.environ, "RADBILL_CONFIG": str(self.config)}
        env.pop("RADBILL_DATABASE_URL", None)
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            in_namespace(self.namespace, RADBILL + ["radiusd"]),
            env=env,
            cwd=REPOSITORY,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "answering authentication" in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"radiusd exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"radiusd did not start in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        terminate(self.process)
        if self.process is not None:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *_):
        self.stop()


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM a still-running daemon; SIGKILL it if it has not exited within 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_change(check, timeout: float = 1.0, interval: float = 0.0) -> float:
    """Poll until check() is true, ``interval`` seconds apart; return how long it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"no change within {timeout} s"
        time.sleep(interval)
    return time.monotonic() - started


def in_namespace(namespace: str | None, command: list[str]) -> list[str]:
    """``command`` as run in that network namespace (``ip netns exec``), or as it is."""
    return command if namespace is None else ["ip", "netns", "exec", namespace, *command]


def metric(port: int, name: str, labels: dict | None = None, host: str = "127.0.0.1") -> float | None:
    """Read one sample from a daemon's /metrics."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    text = urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (
                labels is None or all(sample.labels.get(k) == v for k, v in labels.items())
            ):
                return sample.value
    return None
