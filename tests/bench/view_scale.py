"""radiusd at a million subscribers: view load time, memory per worker, change-log latency.

    .venv/bin/python tests/bench/view_scale.py [--users 1000000] [--workers 1 2] [--datadir DIR]

A durable PostgreSQL cluster (storm.py's) holds ``radbill`` with N customers
(storm.py's loader: ``sub000001``/``pw000001``...), every second one with an open
session. For each worker count, ``radbill radiusd`` is started and timed to
its first Access-Accept; then every process of it is measured from
/proc/PID/smaps_rollup: RSS, and PSS and USS, which count the pages workers
still share with the parent after forking once and the pages each owns. Then
``radbill customer reset-password`` of one subscriber, away and back, each
timed from the command's exit (its commit) to the first answer that follows it. With
``--requests K``, K Access-Requests for distinct subscribers are sent first
(as storm.py's auth phase does), so that the memory figures include the pages
that serving touches (copy-on-write). Access-Requests/s against the 100,000
figure: storm.py ``--only radbill --phases auth --users N``.

``--json FILE`` writes the results, one per worker count (memory in KiB by
PID, the parent first), for tests/bench/table.py. ``--datadir DIR`` keeps the cluster in DIR (created and loaded when empty,
reused afterwards), for repeated runs; without it the cluster is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import radload  # noqa: E402
import storm  # noqa: E402
from conftest import _postgres_bindir, free_port  # noqa: E402

ONLINE_EVERY = 2  # every second subscriber (the even ones) has an open session


class KeptPostgres(storm.BenchPostgres):
    """storm.py's durable cluster, in a directory of our choice that may already hold one."""

    def __init__(self, bindir: Path, datadir: Path):
        self.bindir = bindir
        self.datadir = datadir
        self.port = free_port()
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.settings = storm.BenchPostgres(bindir, durable=True).settings
        if not (datadir / "data").exists():
            datadir.mkdir(parents=True, exist_ok=True)
            if self._as_postgres:
                shutil.chown(datadir, "postgres", "postgres")
            self._run(
                "initdb",
                "-D",
                str(datadir / "data"),
                "-A",
                "trust",
                "-U",
                self.user,
                "--no-sync",
                "-E",
                "UTF8",
            )


def load(pg: storm.BenchPostgres, users: int, checkout: Path) -> None:
    """N subscribers (storm.py's), every ONLINE_EVERY-th with an open session on the bench NAS."""
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
        admin.execute("CREATE DATABASE radbill")
    storm.load_radbill(pg, users, checkout)
    with psycopg.connect(pg.conninfo("radbill")) as connection:
        connection.execute(
            "INSERT INTO sessions (acct_unique_id, acct_session_id, nas_id, nas_ip_address, customer_id,"
            " username, started_at, updated_at)"
            " SELECT md5(c.id::text), c.id::text, n.id, n.ip_address, c.id, c.username, now(), now()"
            " FROM customers c, nas n WHERE c.id %% %s = 0",
            (ONLINE_EVERY,),
        )
    storm.vacuum_analyze(pg, "radbill")


def has_database(pg: storm.BenchPostgres) -> bool:
    with psycopg.connect(pg.conninfo("postgres"), autocommit=True) as admin:
        return admin.execute("SELECT 1 FROM pg_database WHERE datname = 'radbill'").fetchone() is not None


def memory(pid: int) -> dict[str, int]:
    """KiB of RSS, PSS and USS (private clean + dirty) of one process, from smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"],
        "pss": fields["Pss"],
        "uss": fields["Private_Clean"] + fields["Private_Dirty"],
    }


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (radiusd's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def answer_after(
    server: storm.Server, subscriber: radload.Subscriber, accepted: bool, seconds: float
) -> float:
    """Seconds until an Access-Request for ``subscriber`` is answered as ``accepted``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        summary = storm.answers(server.auth, "auth", subscriber)
        if bool(summary.accepted) == accepted and (summary.accepted or summary.rejected):
            return time.monotonic() - started
    raise RuntimeError(
        f"{subscriber.username} not {'accepted' if accepted else 'rejected'} within {seconds} s"
    )


def change_latency(server: storm.Server, subscriber: radload.Subscriber, password: str) -> float:
    """``radbill customer reset-password`` of ``subscriber`` to ``password``: seconds from the
    command's exit to the first answer that follows it (Accept when it is theirs again)."""
    subprocess.run(
        [*server.command[:-1], "customer", "reset-password", "--password", password, subscriber.username],
        check=True,
        env=server.env,
        cwd=server.cwd,
        stdout=subprocess.DEVNULL,
    )
    return answer_after(server, subscriber, password == subscriber.password, 10.0)


def measure(pg, args, workers: int, workdir: Path) -> dict:
    auth_port, acct_port, metrics_port = (
        free_port(socket.SOCK_DGRAM),
        free_port(socket.SOCK_DGRAM),
        free_port(),
    )
    config = storm.radbill_config(
        workdir,
        pg.url("radbill"),
        auth_port,
        acct_port,
        metrics_port,
        [f"radiusd.workers={workers}", f'radiusd.spool_dir="{workdir / "spool"}"'],
    )
    checkout = args.radbill_checkout.resolve()
    server = storm.Server(
        "radbill",
        [storm.radbill_python(checkout), "-m", "cli", "--config", str(config), "radiusd"],
        {**os.environ, "RADBILL_DATABASE_URL": pg.url("radbill")},
        checkout,
        radload.Target("127.0.0.1", auth_port, storm.SECRET),
        radload.Target("127.0.0.1", acct_port, storm.SECRET),
        workdir / f"radiusd-{workers}.log",
        "radbill",
        metrics_port,
    )
    started = time.monotonic()
    with storm.running(server, args.start_seconds) as process:
        ready = time.monotonic() - started
        result = {"workers": workers, "ready_s": ready}
        if args.requests:
            files = radload.write_request_files(
                "auth", radload.subscribers(args.requests), workdir / "requests", radload.DEFAULT_PER_FILE
            )
            load = radload.run_load("auth", files, server.auth, processes=2, parallel=256, workdir=workdir)
            result["served"] = load.line()
        pids = process_tree(process.pid)
        result["memory"] = {pid: memory(pid) for pid in pids}
        probe = next(radload.subscribers(1, first=3))  # odd: no open session
        result["reject_s"] = change_latency(server, probe, "changed")
        result["accept_s"] = change_latency(server, probe, probe.password)
        result["log"] = [
            line
            for line in server.log.read_text().splitlines()
            if "view loaded" in line or "view read" in line
        ]
    return result


def report(results: list[dict], users: int) -> str:
    lines = [
        f"radiusd with {users:,} subscribers (durable PostgreSQL, load avg {os.getloadavg()[0]:.1f}):",
        "| workers | first Accept after start | process | RSS MiB | PSS MiB | USS MiB | new password -> Reject | old password -> Accept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for index, mem in enumerate(result["memory"].values()):
            if result["workers"] == 1:
                role = "worker 0"
            else:
                role = "parent" if index == 0 else f"worker {index - 1}"
            first = (str(result["workers"]), f"{result['ready_s']:.1f} s") if index == 0 else ("", "")
            changes = (
                (f"{result['reject_s']:.2f} s", f"{result['accept_s']:.2f} s") if index == 0 else ("", "")
            )
            lines.append(
                f"| {first[0]} | {first[1]} | {role} | {mem['rss'] / 1024:.0f} | {mem['pss'] / 1024:.0f} "
                f"| {mem['uss'] / 1024:.0f} | {changes[0]} | {changes[1]} |"
            )
    for result in results:
        for line in result["log"]:
            lines.append(f"workers={result['workers']}: {line.strip()}")
        if "served" in result:
            lines.append(f"workers={result['workers']}: before measuring memory: {result['served']}")
    return "\n".join(lines)


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="worker counts to measure (none: only load the database)",
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="Access-Requests to serve before measuring memory"
    )
    parser.add_argument("--datadir", type=Path, help="keep (and reuse) the loaded cluster here")
    parser.add_argument(
        "--json", type=Path, help="also write the results (one per worker count) to this file"
    )
    parser.add_argument("--start-seconds", type=float, default=120.0)
    parser.add_argument(
        "--radbill-checkout", type=Path, default=BENCH.parent.parent, help="the radbill checkout to run"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bindir = _postgres_bindir()
    if bindir is None or shutil.which("radclient") is None:
        raise SystemExit("view_scale.py: needs PostgreSQL's server binaries and radclient (freeradius-utils)")
    with ExitStack() as cleanup:
        workdir = Path(tempfile.mkdtemp(prefix="radbill-view-scale-"))
        cleanup.callback(shutil.rmtree, workdir, True)
        if args.datadir:
            pg = KeptPostgres(bindir, args.datadir.resolve())
        else:
            pg = storm.BenchPostgres(bindir, durable=True)
            cleanup.callback(pg.remove)
        pg.start()
        cleanup.callback(pg.stop, "fast")
        if not has_database(pg):
            started = time.monotonic()
            load(pg, args.users, args.radbill_checkout.resolve())
            print(f"{args.users:,} subscribers loaded in {time.monotonic() - started:.0f} s", flush=True)
        with psycopg.connect(pg.conninfo("radbill")) as connection:
            users = connection.execute("SELECT count(*) FROM customers").fetchone()[0]
        results = []
        for workers in args.workers:
            results.append(measure(pg, args, workers, workdir))
            print(f"workers={workers}: ready in {results[-1]['ready_s']:.1f} s", flush=True)
        print(report(results, users))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
