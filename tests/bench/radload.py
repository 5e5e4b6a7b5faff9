"""A RADIUS load driver around FreeRADIUS's own ``radclient``.

Used by the benchmarks (``storm.py``, the authentication flood) and by hand::

    python tests/bench/radload.py --server 127.0.0.1:1812 --secret testing123 --kind auth --users 100000

What it does, and why each part is there:

- **Requests.** Writes radclient request files for N subscribers (PAP
  Access-Request, Accounting Start, Interim-Update, shaped like a MikroTik
  PPPoE NAS sends them), a few thousand requests per file: radclient walks its
  whole request list on every pass, so one huge file slows it down badly.
- **Load.** Runs several radclient processes side by side, each on one file at
  a time, with the total parallelism (``-p``) split between them, until every
  file is done. radclient keeps its own retransmission (``-r``/``-t``) and
  prints a summary (``-s``): answered, rejected and lost requests.
- **Latency.** radclient reports no per-request latency, so tcpdump captures
  the load on the loopback interface and every answer is paired with the
  request last sent from its (client address, client port, RADIUS
  identifier); a retransmission is recognised by its unchanged content
  (``request_identity``). The latency of a request is the kernel capture timestamp of
  the answer minus that of the *first* transmission of the request: the time
  the request spent in the server, its socket buffer and the loopback, as a NAS
  would see it, without radclient's own scheduling; a request that needed
  retransmissions counts with its full wait. Every request is measured, not a
  sample. Packets tcpdump itself dropped are reported (``capture_dropped``).
- **Kernel drops.** The UDP ``RcvbufErrors`` counter of ``/proc/net/snmp`` is
  read before and after (machine-wide: it includes radclient's own sockets).

Throughput is answered requests divided by the wall time from the start of the
first radclient to the exit of the last one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

KINDS = ("auth", "acct-start", "acct-interim")
"""Request kinds: a PAP Access-Request, an Accounting Start, an Interim-Update."""

DEFAULT_PER_FILE = 2000
CAPTURE_SNAPLEN = 512  # room for a benchmark request's attributes
BLOCK_TIMEOUT = 1.1  # libpcap hands captured packets to tcpdump in blocks at most 1 s old


@dataclass(frozen=True)
class Subscriber:
    """One benchmark subscriber; everything else about it derives from ``index``."""

    index: int
    username: str
    password: str

    @property
    def mac(self) -> str:
        return "02:00:" + ":".join(f"{byte:02X}" for byte in self.index.to_bytes(4, "big"))

    @property
    def framed_ip(self) -> str:
        return f"10.{(self.index >> 16) & 255}.{(self.index >> 8) & 255}.{self.index & 255}"

    @property
    def session_id(self) -> str:
        return f"{self.index:08X}"


def subscribers(count: int, first: int = 1) -> Iterator[Subscriber]:
    """The benchmark's subscribers ``sub000001``/``pw000001`` and so on; the
    storm loads exactly these into both servers."""
    for index in range(first, first + count):
        yield Subscriber(index, f"sub{index:06d}", f"pw{index:06d}")


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def request_text(kind: str, subscriber: Subscriber, nas_ip: str = "127.0.0.1") -> str:
    """One request in radclient's input format (attribute lines)."""
    common = [
        f"User-Name = {_quoted(subscriber.username)}",
        f"NAS-IP-Address = {nas_ip}",
        'NAS-Identifier = "bench-nas"',
        f"NAS-Port = {subscriber.index & 0xFFFFFFFF}",
        'NAS-Port-Id = "ether1"',
        "NAS-Port-Type = Ethernet",
        "Service-Type = Framed-User",
        "Framed-Protocol = PPP",
        f"Calling-Station-Id = {_quoted(subscriber.mac)}",
        'Called-Station-Id = "pppoe-bench"',
    ]
    if kind == "auth":
        lines = common + [f"User-Password = {_quoted(subscriber.password)}"]
    elif kind in ("acct-start", "acct-interim"):
        lines = common + [
            f"Acct-Status-Type = {'Start' if kind == 'acct-start' else 'Interim-Update'}",
            f"Acct-Session-Id = {_quoted(subscriber.session_id)}",
            f"Framed-IP-Address = {subscriber.framed_ip}",
            "Acct-Authentic = RADIUS",
            "Acct-Delay-Time = 0",
        ]
        if kind == "acct-interim":
            lines += [
                "Acct-Session-Time = 300",
                f"Acct-Input-Octets = {1_000_000 + subscriber.index}",
                f"Acct-Output-Octets = {10_000_000 + subscriber.index}",
                "Acct-Input-Gigawords = 0",
                "Acct-Output-Gigawords = 0",
                "Acct-Input-Packets = 1000",
                "Acct-Output-Packets = 8000",
            ]
    else:
        raise ValueError(f"unknown request kind {kind!r}; one of {', '.join(KINDS)}")
    return "\n".join(lines) + "\n"


def write_request_files(
    kind: str,
    subs: Iterable[Subscriber],
    directory: Path,
    per_file: int = DEFAULT_PER_FILE,
    nas_ip: str = "127.0.0.1",
) -> list[Path]:
    """Write the requests into files of at most ``per_file`` requests each."""
    if per_file < 1:
        raise ValueError("per_file must be at least 1")
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    batch: list[str] = []

    def flush() -> None:
        path = directory / f"{kind}-{len(files):04d}.txt"
        path.write_text("\n".join(batch))
        files.append(path)
        batch.clear()

    for subscriber in subs:
        batch.append(request_text(kind, subscriber, nas_ip))
        if len(batch) == per_file:
            flush()
    if batch:
        flush()
    return files


# --- latency from a packet capture ------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Request latencies in seconds, by the nearest-rank method."""

    samples: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency | None:
        if not values:
            return None
        ordered = sorted(values)

        def rank(fraction: float) -> float:
            return ordered[max(0, math.ceil(len(ordered) * fraction) - 1)]

        return cls(len(ordered), rank(0.50), rank(0.90), rank(0.99), ordered[-1])


@dataclass(frozen=True)
class CaptureStats:
    latency: Latency | None
    requests: int  # distinct requests seen on the wire
    answered: int
    retransmissions: int  # copies of a request sent again
    unanswered: int


REQUEST_CODES = {1, 4, 12, 40, 43}  # Access-, Accounting-, Status-Server, Disconnect-, CoA-Request
_LINK_HEADER = {0: 4, 1: 14, 101: 0, 113: 16, 276: 20}  # DLT null, Ethernet, raw, Linux SLL, SLL2


def _pcap_records(path: Path) -> Iterator[tuple[float, bytes]]:
    """(timestamp, IP packet) for every record of a classic pcap file."""
    data = path.read_bytes()
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    fraction = 1e-9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
    linktype = struct.unpack_from(endian + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype not in _LINK_HEADER:
        raise ValueError(f"{path}: unsupported link type {linktype}")
    skip = _LINK_HEADER[linktype]
    record = struct.Struct(endian + "IIII")
    offset = 24
    while offset + 16 <= len(data):
        seconds, subseconds, captured, _ = record.unpack_from(data, offset)
        offset += 16
        yield seconds + subseconds * fraction, data[offset + skip : offset + captured]
        offset += captured


ACCT_DELAY_TIME = 41


def request_identity(radius: bytes) -> bytes:
    """What stays the same when a client sends a request again.

    An Access-Request is retransmitted unchanged, so its authenticator names
    it. radclient re-sends an Accounting-Request from scratch, with a new
    identifier and Acct-Delay-Time (RFC 2866 section 5.2) and so a new
    authenticator: its attributes without Acct-Delay-Time name it.
    """
    if radius[0] != 4:
        return bytes(radius[4:20])
    kept = bytearray(radius[:1])
    offset = 20
    while offset + 2 <= len(radius):
        length = radius[offset + 1]
        if length < 2:
            break
        if radius[offset] != ACCT_DELAY_TIME:
            kept += radius[offset : offset + length]
        offset += length
    return bytes(kept)


def pair_requests(path: Path, server_ports: Iterable[int]) -> CaptureStats:
    """Pair each request with its answer in a capture of the server's ports.

    An answer belongs to the request last sent from its (address, port,
    identifier); its latency is counted from the first transmission of that
    request (see ``request_identity``).
    """
    ports = set(server_ports)
    on_the_wire: dict[tuple[bytes, int, int], bytes] = {}
    first_sent: dict[bytes, float] = {}
    latencies: list[float] = []
    requests = retransmissions = 0
    for stamp, packet in _pcap_records(path):
        if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != 17:
            continue
        header = (packet[0] & 15) * 4
        udp = packet[header:]
        if len(udp) < 8 + 20:
            continue
        source_port, destination_port = struct.unpack_from("!HH", udp)
        radius = udp[8:]
        if destination_port in ports and radius[0] in REQUEST_CODES:
            identity = packet[12:16] + request_identity(radius)
            if identity in first_sent:
                retransmissions += 1
            else:
                first_sent[identity] = stamp
                requests += 1
            on_the_wire[(packet[12:16], source_port, radius[1])] = identity
        elif source_port in ports:
            identity = on_the_wire.pop((packet[16:20], destination_port, radius[1]), None)
            sent = first_sent.pop(identity, None) if identity is not None else None
            if sent is not None:
                latencies.append(stamp - sent)
    return CaptureStats(Latency.of(latencies), requests, len(latencies), retransmissions, len(first_sent))


class PacketCapture:
    """tcpdump on the loopback for the duration of a ``with`` block."""

    def __init__(self, path: Path, host: str, ports: Iterable[int], interface: str = "lo"):
        self.path = path
        self.ports = tuple(ports)
        self.dropped: int | None = None
        port_filter = " or ".join(f"port {port}" for port in self.ports)
        # -w - : we open the file, so tcpdump's dropping of root privileges does not matter.
        self.command = [
            "tcpdump",
            "-i",
            interface,
            "-n",
            "-s",
            str(CAPTURE_SNAPLEN),
            "-B",
            "65536",
            "-w",
            "-",
            f"udp and host {host} and ({port_filter})",
        ]
        self._process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("tcpdump") is not None

    def __enter__(self) -> PacketCapture:
        with self.path.open("wb") as sink:
            self._process = subprocess.Popen(self.command, stdout=sink, stderr=subprocess.PIPE, text=True)
        assert self._process.stderr is not None
        for line in self._process.stderr:  # "tcpdump: listening on lo, ..." once the filter is in place
            if "listening on" in line:
                return self
        self._process.wait()
        raise RuntimeError(
            f"tcpdump failed to start (exit {self._process.returncode}): {' '.join(self.command)}"
        )

    def __exit__(self, *exc_info) -> None:
        assert self._process is not None and self._process.stderr is not None
        time.sleep(BLOCK_TIMEOUT)  # tcpdump drops a block not yet handed over at SIGINT
        self._process.send_signal(signal.SIGINT)
        tail = self._process.stderr.read()
        self._process.wait(timeout=30)
        found = re.search(r"(\d+) packets? dropped by kernel", tail)
        self.dropped = int(found.group(1)) if found else None

    def stats(self) -> CaptureStats:
        return pair_requests(self.path, self.ports)


# --- running radclient -----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    secret: str

    @classmethod
    def parse(cls, server: str, secret: str) -> Target:
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"server must be HOST:PORT, got {server!r}")
        return cls(host, int(port), secret)


@dataclass(frozen=True)
class Summary:
    """radclient's ``-s`` summary."""

    accepted: int = 0
    rejected: int = 0
    lost: int = 0

    def __add__(self, other: Summary) -> Summary:
        return Summary(self.accepted + other.accepted, self.rejected + other.rejected, self.lost + other.lost)


_SUMMARY_FIELDS = {"Accepted": "accepted", "Rejected": "rejected", "Lost": "lost"}


def parse_summary(output: str) -> Summary:
    values = {}
    for name, value in re.findall(r"^\s*(Accepted|Rejected|Lost)\s*:\s*(\d+)", output, re.MULTILINE):
        values[_SUMMARY_FIELDS[name]] = int(value)
    if len(values) != len(_SUMMARY_FIELDS):
        raise RuntimeError(f"radclient printed no summary:\n{output}")
    return Summary(**values)


@dataclass(frozen=True)
class LoadResult:
    kind: str
    requests: int
    answered: int
    rejected: int
    lost: int
    elapsed: float
    rate: float  # answered requests per second
    retransmissions: int | None  # from the capture; None without one
    latency: Latency | None
    capture_dropped: int | None
    rcvbuf_errors: int | None  # machine-wide UDP receive-buffer drops during the run

    def line(self) -> str:
        text = (
            f"{self.kind}: {self.answered}/{self.requests} answered in {self.elapsed:.2f} s = {self.rate:,.0f}/s, "
            f"rejected {self.rejected}, lost {self.lost}"
        )
        if self.retransmissions is not None:
            text += f", retransmitted {self.retransmissions}"
        if self.latency:
            text += f", latency p50 {self.latency.p50 * 1000:.2f} ms p99 {self.latency.p99 * 1000:.2f} ms"
        if self.rcvbuf_errors:
            text += f", kernel rcvbuf drops {self.rcvbuf_errors}"
        return text


def radclient_command(
    request_file: Path, target: Target, command: str, parallel: int, retries: int, timeout: float
) -> list[str]:
    return [
        "radclient",
        "-q",
        "-s",
        "-f",
        str(request_file),
        "-p",
        str(parallel),
        "-r",
        str(retries),
        "-t",
        str(timeout),
        f"{target.host}:{target.port}",
        command,
        target.secret,
    ]


def udp_rcvbuf_errors() -> int | None:
    """The kernel's count of UDP datagrams dropped for a full receive buffer."""
    try:
        lines = [
            line.split()
            for line in Path("/proc/net/snmp").read_text().splitlines()
            if line.startswith("Udp:")
        ]
        return int(dict(zip(lines[0], lines[1]))["RcvbufErrors"])
    except (OSError, IndexError, KeyError, ValueError):
        return None


def _count_requests(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.startswith("User-Name"))


def run_radclients(
    files: Sequence[Path],
    target: Target,
    command: str,
    processes: int,
    parallel: int,
    retries: int,
    timeout: float,
) -> tuple[Summary, float]:
    """Run one radclient per file, ``processes`` at a time; (summed summary, wall time)."""
    per_process = max(1, parallel // processes)
    pending = list(files)
    running: list[tuple[subprocess.Popen, Path]] = []
    total = Summary()
    started = time.perf_counter()
    while pending or running:
        while pending and len(running) < processes:
            request_file = pending.pop(0)
            output = request_file.with_suffix(".out")
            with output.open("w") as sink:  # a file, not a pipe: no pipe to fill up with complaints
                running.append(
                    (
                        subprocess.Popen(
                            radclient_command(request_file, target, command, per_process, retries, timeout),
                            stdout=sink,
                            stderr=subprocess.STDOUT,
                        ),
                        output,
                    )
                )
        still_running = []
        for process, output in running:
            if process.poll() is None:
                still_running.append((process, output))
            else:  # radclient exits 1 when requests were lost or rejected
                total += parse_summary(output.read_text())
        running = still_running
        if running:
            time.sleep(0.005)
    return total, time.perf_counter() - started


def run_load(
    kind: str,
    files: Sequence[Path],
    target: Target,
    *,
    processes: int = 4,
    parallel: int = 1024,
    retries: int = 3,
    timeout: float = 3.0,
    capture: bool | None = None,
    workdir: Path | None = None,
) -> LoadResult:
    """Send every request in ``files`` to ``target`` and measure.

    ``capture`` None means: capture when tcpdump is installed and we may use it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    command = "auth" if kind == "auth" else "acct"
    requests = sum(_count_requests(path) for path in files)
    if capture is None:
        capture = PacketCapture.available() and os.geteuid() == 0
    rcvbuf_before = udp_rcvbuf_errors()
    sniffer = None
    with tempfile.TemporaryDirectory(prefix="radload-", dir=workdir) as scratch:
        if capture:
            sniffer = PacketCapture(Path(scratch) / f"{kind}.pcap", target.host, [target.port])
            with sniffer:
                summary, elapsed = run_radclients(
                    files, target, command, processes, parallel, retries, timeout
                )
            wire = sniffer.stats()
        else:
            summary, elapsed = run_radclients(files, target, command, processes, parallel, retries, timeout)
            wire = None
    rcvbuf_after = udp_rcvbuf_errors()
    answered = summary.accepted + summary.rejected
    return LoadResult(
        kind=kind,
        requests=requests,
        answered=answered,
        rejected=summary.rejected,
        lost=summary.lost,
        elapsed=elapsed,
        rate=answered / elapsed if elapsed else 0.0,
        retransmissions=wire.retransmissions if wire else None,
        latency=wire.latency if wire else None,
        capture_dropped=sniffer.dropped if sniffer else None,
        rcvbuf_errors=None if rcvbuf_before is None or rcvbuf_after is None else rcvbuf_after - rcvbuf_before,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="127.0.0.1:1812", help="HOST:PORT of the RADIUS server")
    parser.add_argument("--secret", default="testing123")
    parser.add_argument("--kind", choices=KINDS, default="auth")
    parser.add_argument(
        "--users", type=int, default=10_000, help="how many subscribers (sub000001...) send one request each"
    )
    parser.add_argument("--first", type=int, default=1, help="index of the first subscriber")
    parser.add_argument("--processes", type=int, default=4, help="radclient processes side by side")
    parser.add_argument(
        "--parallel", type=int, default=1024, help="requests in flight, split between the processes"
    )
    parser.add_argument(
        "--per-file", type=int, default=DEFAULT_PER_FILE, help="requests per radclient input file"
    )
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds before radclient retransmits")
    parser.add_argument("--nas-ip", default="127.0.0.1", help="NAS-IP-Address in the requests")
    parser.add_argument("--no-capture", action="store_true", help="skip tcpdump (no latency figures)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    target = Target.parse(args.server, args.secret)
    with tempfile.TemporaryDirectory(prefix="radload-") as scratch:
        files = write_request_files(
            args.kind, subscribers(args.users, args.first), Path(scratch), args.per_file, args.nas_ip
        )
        result = run_load(
            args.kind,
            files,
            target,
            processes=args.processes,
            parallel=args.parallel,
            retries=args.retries,
            timeout=args.timeout,
            capture=False if args.no_capture else None,
        )
    print(json.dumps(asdict(result), indent=2) if args.json else result.line())
    return 0 if result.lost == 0 and result.answered == result.requests else 1


if __name__ == "__main__":
    sys.exit(main())
