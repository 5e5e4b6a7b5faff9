"""The README's Benchmarks table from one command: the headline benchmarks, one markdown table.

    .venv/bin/python tests/bench/table.py              # full sizes (make bench): an hour or more, quiet machine
    .venv/bin/python tests/bench/table.py --quick      # tiny sizes: checks this driver, not the figures
    .venv/bin/python tests/bench/table.py --keep DIR   # also keep each benchmark's JSON and output in DIR

It runs, one after the other, each benchmark as a subprocess with ``--json``:

- ``storm.py --users 100000 --rounds 3``: FreeRADIUS 3.2 + rlm_sql and radbill
  side by side, 1,024 requests in flight (each phase's median round);
- ``storm.py --phases auth --parallel 64`` with the same users and rounds: the
  Access-Request latency at 64 in flight;
- ``storm.py --only radbill --phases auth --users 1000000``: radbill's
  Access-Requests/s with a million subscribers, against the first run's;
- ``daily_run.py --customers 1000000 --verify``: the daily run's first day and
  steady state, ``ledger verify``, peak RSS;
- ``view_scale.py --users 1000000``: radiusd's view at a million subscribers,
  the time to its first answer, the memory per worker and how soon a CLI
  change decides the next request (its ``--json`` is the list of its
  per-worker-count results).

A benchmark that is not there, fails, or writes no JSON leaves "not measured"
(and why) in its rows instead of stopping the others. The benchmarks' own
output goes to stderr as they run; stdout gets only the table and, under it,
the machine (CPU model, cores, memory, PostgreSQL, the commit, the date and
the load average at the start and the end), ready to paste.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPOSITORY = BENCH.parents[1]
sys.path[:0] = [str(BENCH), str(BENCH.parent)]

import radload  # noqa: E402
import storm  # noqa: E402
from conftest import _postgres_bindir  # noqa: E402

COLUMNS = ("figure", "FreeRADIUS 3.2 + rlm_sql", "radbill", "radbill / FreeRADIUS", "target")


@dataclass(frozen=True)
class Sizes:
    users: int  # storm's subscribers
    rounds: int
    in_flight: tuple[int, int]  # the storm's, then the second auth run's
    customers: int  # the daily run's
    subscribers: int  # the view's
    storm_extra: tuple[str, ...] = ()
    view_extra: tuple[str, ...] = ()


FULL = Sizes(100_000, 3, (1024, 64), 1_000_000, 1_000_000)
# Enough to go through every benchmark's whole path, on a busy machine too.
QUICK = Sizes(
    200,
    1,
    (16, 4),
    200,
    500,
    ("--processes", "1", "--quiet-wait", "0", "--pause", "0"),
    ("--workers", "1"),
)


@dataclass(frozen=True)
class Bench:
    name: str  # its JSON file's stem
    script: str
    arguments: Callable[[Sizes], list[str]]


BENCHES = (
    Bench(
        "storm",
        "storm.py",
        lambda s: (
            ["--users", str(s.users), "--rounds", str(s.rounds), "--parallel", str(s.in_flight[0])]
            + list(s.storm_extra)
        ),
    ),
    Bench(
        "storm-auth",
        "storm.py",
        lambda s: (
            ["--users", str(s.users), "--rounds", str(s.rounds), "--parallel", str(s.in_flight[1])]
            + ["--phases", "auth", *s.storm_extra]
        ),
    ),
    Bench(
        "storm-scale",
        "storm.py",
        lambda s: (
            [
                "--only",
                "radbill",
                "--phases",
                "auth",
                "--users",
                str(s.subscribers),
                "--rounds",
                str(s.rounds),
            ]
            + ["--parallel", str(s.in_flight[0]), *s.storm_extra]
        ),
    ),
    Bench("daily", "daily_run.py", lambda s: ["--customers", str(s.customers), "--verify"]),
    Bench("view", "view_scale.py", lambda s: ["--users", str(s.subscribers), *s.view_extra]),
)


@dataclass(frozen=True)
class NotMeasured:
    """Why a benchmark has no figures."""

    reason: str


def run(bench: Bench, sizes: Sizes, workdir: Path) -> dict | list | NotMeasured:
    """The benchmark's JSON, or why there is none; its output goes to stderr and to workdir."""
    script = BENCH / bench.script
    if not script.exists():
        return NotMeasured(f"tests/bench/{bench.script} is not there")
    output = workdir / f"{bench.name}.json"
    command = [sys.executable, str(script), *bench.arguments(sizes), "--json", str(output)]
    print(f"$ {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    with open(workdir / f"{bench.name}.log", "wb") as log:
        process = subprocess.Popen(command, cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for line in process.stdout:
            log.write(line)
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
        process.wait()
    print(
        f"{bench.script}: exit {process.returncode} after {time.monotonic() - started:.0f} s", file=sys.stderr
    )
    if not output.exists():
        last = (workdir / f"{bench.name}.log").read_text(errors="replace").strip().splitlines()[-1:]
        return NotMeasured(
            f"{bench.script} exited {process.returncode}" + (f": {last[0][:120]}" if last else "")
        )
    return json.loads(output.read_text())


# --- rows --------------------------------------------------------------------------


def _phases(rounds: list[list[dict]]) -> dict[str, storm.Phase]:
    """A server's median round per phase, as storm.py's own table has them."""

    def phase(data: dict) -> storm.Phase:
        load = data["load"]
        latency = load["latency"] and radload.Latency(**load["latency"])
        return storm.Phase(**{**data, "load": radload.LoadResult(**{**load, "latency": latency})})

    rounds = [[phase(data) for data in phases] for phases in rounds if phases]
    return {chosen.load.kind: chosen for chosen in storm.median_phases(rounds)} if rounds else {}


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _p99_ms(phase: storm.Phase | None) -> float | None:
    return phase.load.latency.p99 * 1000 if phase and phase.load.latency else None


def storm_rows(main: dict | NotMeasured, auth: dict | NotMeasured, sizes: Sizes) -> list[tuple[str, ...]]:
    high, low = sizes.in_flight
    servers = ("freeradius", "radbill")
    phases = {
        name: _phases(main[name]) if isinstance(main, dict) and main.get(name) else {} for name in servers
    }
    auth_phases = {
        name: _phases(auth[name]) if isinstance(auth, dict) and auth.get(name) else {} for name in servers
    }

    def missing(result: dict | NotMeasured) -> str:
        why = (
            result.reason if isinstance(result, NotMeasured) else "the server did not finish; see its output"
        )
        return f"not measured ({why})"

    def cells(table, kind: str, figure: Callable[[storm.Phase], float | None], digits: int, source):
        values = [figure(table[name][kind]) if kind in table[name] else None for name in servers]
        shown = [missing(source) if value is None else _number(value, digits) for value in values]
        ratio = f"{values[1] / values[0]:.2f}x" if None not in values and values[0] else ""
        return shown, ratio

    def rate(phase: storm.Phase) -> float:
        return phase.load.rate

    rows = []
    for label, table, kind, figure, digits, source, target, with_ratio in (
        (f"Access-Requests/s, {high:,} in flight", phases, "auth", rate, 0, main, "radbill ≥ 5x", True),
        (f"Access-Request p99 ms, {high:,} in flight", phases, "auth", _p99_ms, 1, main, "reported", False),
        (
            f"Access-Request p99 ms, {low:,} in flight",
            auth_phases,
            "auth",
            _p99_ms,
            1,
            auth,
            "reported",
            False,
        ),
        ("Accounting Start/s", phases, "acct-start", rate, 0, main, "radbill ≥ 2x", True),
        ("Accounting Interim/s", phases, "acct-interim", rate, 0, main, "radbill ≥ 2x", True),
    ):
        shown, ratio = cells(table, kind, figure, digits, source)
        rows.append((label, *shown, ratio if with_ratio else "", target))
    for label, figure in (
        ("server CPU ms per accounting record (Start / Interim)", lambda p: p.server_cpu_ms),
        (
            "server + PostgreSQL CPU ms per accounting record (Start / Interim)",
            lambda p: p.server_cpu_ms + p.postgres_cpu_ms,
        ),
    ):
        shown = []
        for name in servers:
            if {"acct-start", "acct-interim"} <= phases[name].keys():
                shown.append(
                    " / ".join(f"{figure(phases[name][kind]):.2f}" for kind in ("acct-start", "acct-interim"))
                )
            else:
                shown.append(missing(main))
        rows.append((label, *shown, "", ""))
    return rows


def scale_rows(at_scale: dict | NotMeasured, main: dict | NotMeasured, sizes: Sizes) -> list[tuple[str, ...]]:
    """radbill's Access-Requests/s with the view's subscribers, against the storm's figure."""
    label = f"Access-Requests/s at {sizes.subscribers:,} subscribers (radbill alone, {sizes.in_flight[0]:,} in flight)"
    target = f"within 10% of {sizes.users:,} subscribers'"
    if isinstance(at_scale, NotMeasured) or not at_scale.get("radbill"):
        why = at_scale.reason if isinstance(at_scale, NotMeasured) else "radbill did not finish"
        return [(label, "-", f"not measured ({why})", "", target)]
    rate = _phases(at_scale["radbill"])["auth"].load.rate
    base = _phases(main["radbill"]).get("auth") if isinstance(main, dict) and main.get("radbill") else None
    against = f" ({rate / base.load.rate:.0%} of {_number(base.load.rate)})" if base else ""
    return [(label, "-", f"{_number(rate)}{against}", "", target)]


def daily_rows(figures: dict | NotMeasured, sizes: Sizes) -> list[tuple[str, ...]]:
    about = f"daily run over {sizes.customers:,} customers"
    labels = (
        f"{about}: first day",
        f"{about}: steady state (next day)",
        f"{about}: peak RSS, bench / PostgreSQL",
        "ledger verify after it",
    )
    targets = ("< 20 s", "< 20 s", "reported", "< 30 s")
    if isinstance(figures, NotMeasured):
        shown = [f"not measured ({figures.reason})"] * len(labels)
    else:
        days = [f"{run['seconds']:.1f} s" for run in figures["runs"]] + ["not measured"] * 2
        peak = figures["peak_rss_mib"]
        verify = figures.get("verify")
        shown = [
            *days[:2],
            f"{_number(peak['bench'])} / {_number(peak['postgres'])} MiB",
            f"{verify['seconds']:.1f} s, {verify['problems']} problems" if verify else "not measured",
        ]
    return [
        (label, "-", figure, "", target) for label, figure, target in zip(labels, shown, targets, strict=True)
    ]


def view_rows(figures: list | NotMeasured, sizes: Sizes) -> list[tuple[str, ...]]:
    about = f"radiusd at {sizes.subscribers:,} subscribers"
    labels = (
        "view loaded, first answer after start",
        "RSS (PSS) per worker",
        "a CLI change decides the next request (Reject / Accept again)",
    )
    targets = ("< 10 s", "< 600 MiB", "< 1 s")
    if isinstance(figures, NotMeasured) or not figures:
        why = f"not measured ({figures.reason})" if isinstance(figures, NotMeasured) else "not measured"
        return [
            (f"{about}: {label}", "-", why, "", target) for label, target in zip(labels, targets, strict=True)
        ]
    rows = []
    for result in figures:
        workers = result["workers"]
        processes = list(result["memory"].values())
        # With more than one worker the first process is the parent that forked them.
        per_worker = processes if workers == 1 else processes[1:]
        rss = max(process["rss"] for process in per_worker) / 1024
        pss = max(process["pss"] for process in per_worker) / 1024
        shown = (
            f"{result['ready_s']:.1f} s",
            f"{rss:,.0f} MiB ({pss:,.0f} MiB)",
            f"{result['reject_s']:.2f} s / {result['accept_s']:.2f} s",
        )
        each = f"{about}, {workers} worker{'s' if workers > 1 else ''}"
        rows += [
            (f"{each}: {label}", "-", figure, "", target)
            for label, figure, target in zip(labels, shown, targets, strict=True)
        ]
    return rows


def rows_of(build: Callable, results: list, sizes: Sizes) -> list[tuple[str, ...]]:
    """``build``'s rows; "not measured" in them when a benchmark's JSON is not what it reads
    (the benchmarks change under their owners' hands)."""
    try:
        return build(*results, sizes)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        unexpected = NotMeasured(f"unexpected JSON: {type(error).__name__} {error}")
        return build(*[unexpected] * len(results), sizes)


# --- the table -----------------------------------------------------------------------


def markdown(rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| --- | ---: | ---: | ---: | --- |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _first_line(command: list[str]) -> str:
    try:
        return (
            subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        )
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine(load_at_start: float) -> str:
    """What the figures were measured on, for the line under the table."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    bindir = _postgres_bindir()
    postgres = _first_line([str(bindir / "postgres"), "--version"]) if bindir else ""
    postgres = (
        "PostgreSQL " + postgres.split()[2]
        if postgres.startswith("postgres (PostgreSQL)")
        else "PostgreSQL ?"
    )
    freeradius = _first_line(["freeradius", "-v"]) if shutil.which("freeradius") else ""
    version = re.search(r"FreeRADIUS Version (\S+?),", freeradius)
    freeradius = f"FreeRADIUS {version.group(1)}" if version else "FreeRADIUS ?"
    commit = _first_line(["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"])
    return (
        f"Measured on {cpu}, {os.cpu_count()} cores, {memory_kib / 2**20:.1f} GiB, {postgres}, {freeradius}; "
        f"radbill {commit}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
        f"load average {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the driver, not the figures")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep each benchmark's JSON and output here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    load_at_start = os.getloadavg()[0]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="radbill-table-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = {bench.name: run(bench, sizes, workdir) for bench in BENCHES}
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = [
        *rows_of(storm_rows, [results["storm"], results["storm-auth"]], sizes),
        *rows_of(scale_rows, [results["storm-scale"], results["storm"]], sizes),
        *rows_of(daily_rows, [results["daily"]], sizes),
        *rows_of(view_rows, [results["view"]], sizes),
    ]
    print(markdown(rows))
    print()
    print(machine(load_at_start))
    print(f"Command: .venv/bin/python tests/bench/table.py{' --quick' if args.quick else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
