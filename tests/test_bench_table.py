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


def test_quick_run_prints_every_row_with_figures_and_the_machine(tmp_path):
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
    figures = {row[0]: row[1:] for row in body}
    storm_labels = [
        "Access-Requests/s, 16 in flight",
        "Access-Request p99 ms, 16 in flight",
        "Access-Request p99 ms, 4 in flight",
        "Accounting Start/s",
        "Accounting Interim/s",
    ]
    assert [row[0] for row in body[: len(storm_labels)]] == storm_labels
    for label in storm_labels:
        freeradius, radbill, ratio, _ = figures[label]
        assert re.fullmatch(NUMBER, freeradius) and re.fullmatch(NUMBER, radbill), (label, figures[label])
        assert ratio == "" or re.fullmatch(r"\d+\.\d\dx", ratio), (label, ratio)
    for label, (freeradius, radbill, *_) in figures.items():
        if "CPU ms per accounting record" in label:
            assert re.fullmatch(rf"{NUMBER} / {NUMBER}", freeradius) and re.fullmatch(
                rf"{NUMBER} / {NUMBER}", radbill
            )
    assert re.fullmatch(rf"{NUMBER} s", figures["daily run over 200 customers: first day"][1])
    assert re.fullmatch(rf"{NUMBER} s, 0 problems", figures["ledger verify after it"][1])
    view = [row for row in body if row[0].startswith("radiusd at 500 subscribers, 1 worker: ")]
    assert [
        re.fullmatch(pattern, row[2]) is not None
        for pattern, row in zip(
            (rf"{NUMBER} s", rf"{NUMBER} MiB \({NUMBER} MiB\)", rf"{NUMBER} s / {NUMBER} s"),
            view,
            strict=True,
        )
    ] == [True] * 3, view
    [machine] = [line for line in lines if line.startswith("Measured on ")]
    cpu = next(
        line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
    )
    assert cpu.split(":", 1)[1].strip() in machine and f", {os.cpu_count()} cores," in machine
    assert f"{datetime.now(UTC):%Y-%m-%d}" in machine
    assert {"storm.json", "storm-auth.json", "daily.json", "view.json"} <= {
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
