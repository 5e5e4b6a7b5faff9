"""The one-command benchmark table (tests/bench/table.py), so the driver does not rot.

``table.py --quick`` runs every headline benchmark at a few hundred
subscribers (about a minute) and the test checks the table it prints: every
row, figures where the benchmark ran, the machine under it. Not the figures
themselves: those are measured by hand on a quiet machine.
"""

import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "bench"))
import table  # noqa: E402

from tests.conftest import REPOSITORY  # noqa: E402

pytestmark = pytest.mark.bench

NUMBER = r"[\d,]+(\.\d+)?"


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


PAIR = rf"{NUMBER} / {NUMBER}"
# Each row of the quick table, and what its FreeRADIUS and radbill cells hold when measured.
QUICK_ROWS = {
    "Access-Requests/s, 16 in flight": (NUMBER, NUMBER),
    "Access-Request p99 ms, 16 in flight": (NUMBER, NUMBER),
    "Access-Request p99 ms, 4 in flight": (NUMBER, NUMBER),
    "Accounting Start/s": (NUMBER, NUMBER),
    "Accounting Interim/s": (NUMBER, NUMBER),
    "server CPU ms per accounting record (Start / Interim)": (PAIR, PAIR),
    "server + PostgreSQL CPU ms per accounting record (Start / Interim)": (PAIR, PAIR),
    "Access-Requests/s at 500 subscribers (radbill alone, 16 in flight)": (
        "-",
        rf"{NUMBER} \(\d+% of {NUMBER}\)",
    ),
    "daily run over 200 customers: first day": ("-", rf"{NUMBER} s"),
    "daily run over 200 customers: steady state (next day)": ("-", rf"{NUMBER} s"),
    "daily run over 200 customers: peak RSS, bench / PostgreSQL": ("-", rf"{PAIR} MiB"),
    "ledger verify after it": ("-", rf"{NUMBER} s, 0 problems"),
    "radiusd at 500 subscribers: view loaded, first answer after start": ("-", rf"{NUMBER} s"),
    "radiusd at 500 subscribers: RSS (PSS) per worker": ("-", rf"{NUMBER} MiB \({NUMBER} MiB\)"),
    "radiusd at 500 subscribers: a CLI change decides the next request (Reject / Accept again)": (
        "-",
        rf"{NUMBER} s / {NUMBER} s",
    ),
}


def measured_or_says_why(pattern: str, cell: str) -> bool:
    """A figure as the row has it, or "not measured" with the benchmark's own reason: on a shared
    machine a benchmark may fail (a port taken meanwhile), but the table must not misread one."""
    if re.fullmatch(pattern, cell):
        return True
    return cell.startswith("not measured (") and "unexpected JSON" not in cell


def test_quick_run_prints_every_row_and_the_machine(tmp_path):
    missing = [program for program in ("radclient", "freeradius", "tcpdump") if shutil.which(program) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    result = subprocess.run(
        [sys.executable, "tests/bench/table.py", "--quick", "--keep", str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    header, separator, *body = [cells(line) for line in lines if line.startswith("|")]
    assert header == list(table.COLUMNS) and len(separator) == len(header)
    assert all(len(row) == len(header) for row in body), body
    # The view's rows name the worker count when it ran (one, in quick mode).
    rows = {row[0].replace(" subscribers, 1 worker:", " subscribers:"): row[1:] for row in body}
    assert list(rows) == list(QUICK_ROWS)
    for label, (freeradius, radbill) in QUICK_ROWS.items():
        shown_freeradius, shown_radbill, ratio, _ = rows[label]
        assert measured_or_says_why(freeradius, shown_freeradius), (label, shown_freeradius)
        assert measured_or_says_why(radbill, shown_radbill), (label, shown_radbill)
        assert ratio == "" or re.fullmatch(r"\d+\.\d\dx", ratio), (label, ratio)
    [machine] = [line for line in lines if line.startswith("Measured on ")]
    cpu = next(
        line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
    )
    assert cpu.split(":", 1)[1].strip() in machine and f", {os.cpu_count()} cores," in machine
    assert f"{datetime.now(UTC):%Y-%m-%d}" in machine
    assert {"storm.log", "storm-auth.log", "storm-scale.log", "daily.log", "view.log"} <= {
        path.name for path in tmp_path.iterdir()
    }


def test_a_benchmark_that_did_not_run_says_why_in_its_rows():
    gone = table.NotMeasured("tests/bench/view_scale.py is not there")
    rows = table.view_rows(gone, table.FULL) + table.daily_rows(
        table.NotMeasured("daily_run.py exited 1"), table.FULL
    )
    assert [row[2] for row in rows] == ["not measured (tests/bench/view_scale.py is not there)"] * 3 + [
        "not measured (daily_run.py exited 1)"
    ] * 4
    storm = table.storm_rows(
        table.NotMeasured("storm.py exited 1"), table.NotMeasured("storm.py exited 1"), table.FULL
    )
    assert all(row[1] == row[2] == "not measured (storm.py exited 1)" for row in storm)
    assert (
        storm[0][0] == "Access-Requests/s, 1,024 in flight"
        and storm[2][0] == "Access-Request p99 ms, 64 in flight"
    )


def test_json_a_benchmark_no_longer_writes_that_way_says_so_in_its_rows():
    rows = table.rows_of(table.view_rows, [[{"workers": 1, "load_seconds": 7.5}]], table.FULL)
    assert [row[2] for row in rows] == ["not measured (unexpected JSON: KeyError 'memory')"] * 3
