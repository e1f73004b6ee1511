"""make bench's cases measure what they say, on small inputs: the rows, their figures, their verdicts."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from twisted.internet.protocol import Factory, Protocol

from writing_servers import lab

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO / "benchmarks"))  # the benchmarks import each other by bare name

import chat  # noqa: E402
import echo  # noqa: E402
import stage_times  # noqa: E402
import startup  # noqa: E402
import student_memory  # noqa: E402
from table import Row, judged  # noqa: E402

#: The chat driver and the floor chat are built on epoll, and the echo case pins threads to cores.
linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the echo and chat benchmarks use epoll and core pinning"
)


def assert_judged(row: Row, limit: float, at_most: bool) -> None:
    """The row has a finite positive ratio, and its verdict is that ratio against *limit*."""
    assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row
    met = row.ratio <= limit if at_most else row.ratio >= limit
    assert row.verdict == ("meets" if met else "misses"), row


def timed(tsv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MAKE_TEST_TIMES": str(tsv)}
    return subprocess.run(
        [sys.executable, str(REPO / "tools" / "timed.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def test_timed_passes_output_and_status_through_and_records_one_line(tmp_path: Path) -> None:
    """tools/timed.py runs the command, passes its output and exit status on, and appends stage, seconds, status, time, commit."""
    tsv = tmp_path / "build" / "times.tsv"
    command = "import sys, time; time.sleep(0.2); print('out'); print('err', file=sys.stderr); sys.exit(3)"
    result = timed(tsv, "unit", "--", sys.executable, "-c", command)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    timed(tsv, "lint", "--", sys.executable, "-c", "pass")
    first, second = (line.split("\t") for line in tsv.read_text().splitlines())
    assert first[0] == "unit" and 0.2 <= float(first[1]) < 30 and first[2] == "3"
    assert datetime.strptime(first[3], "%Y-%m-%dT%H:%M:%SZ")
    assert first[4] and first[4] != "unknown"
    assert second[0] == "lint" and second[2] == "0"


def test_timed_refuses_a_command_line_without_its_separator(tmp_path: Path) -> None:
    """Without `--` before the command, tools/timed.py prints its usage, exits 2 and records nothing."""
    tsv = tmp_path / "times.tsv"
    result = timed(tsv, "unit", sys.executable, "-c", "pass")
    assert result.returncode == 2 and "usage" in result.stderr
    assert not tsv.exists()


def test_stage_times_show_each_stages_latest_run_against_the_one_before(tmp_path: Path) -> None:
    """make bench reads the latest line of each stage, its ratio to the run before, and a failed stage's status."""
    tsv = tmp_path / "times.tsv"
    tsv.write_text(
        "lint\t4.00\t0\t2026-01-01T10:00:00Z\taaa1111\n"
        "unit\t100.00\t0\t2026-01-01T10:02:00Z\taaa1111\n"
        "not a line\n"
        "lint\t5.00\t0\t2026-01-02T10:00:00Z\tbbb2222\n"
        "unit\t150.00\t1\t2026-01-02T10:02:00Z\tbbb2222\n"
    )
    results = {"path": str(tsv), "runs": stage_times.read(tsv)}
    rows = {row.case: row for row in stage_times.rows(results)}
    assert rows["make test: lint"].ratio == pytest.approx(5.0 / 4.0)
    assert "5.0 s" in rows["make test: lint"].ours and "bbb2222" in rows["make test: lint"].ours
    assert rows["make test: lint"].verdict == "info"
    assert rows["make test: unit"].ratio == pytest.approx(1.5)
    assert rows["make test: unit"].verdict == "failed (exit 1)"
    assert rows["make test: nbval"].verdict == "no data"
    assert "unit (150 s)" in stage_times.findings(results)[0]


def test_stage_times_say_to_run_make_test_when_nothing_is_recorded(tmp_path: Path) -> None:
    """With no times file, the make test row says to run make test first."""
    results = {"path": str(tmp_path / "missing.tsv"), "runs": stage_times.read(tmp_path / "missing.tsv")}
    (row,) = stage_times.rows(results)
    assert "run `make test` first" in row.ours and row.verdict == "no data"


def test_startup_quick_measures_both_kernels_and_loads_nothing_heavy() -> None:
    """The quick start-up case times real kernels and fresh Pythons; the course's first cell loads no heavy module."""
    results = startup.run(quick=True)
    kernel_row, cell_row, heavy_row = startup.rows(results)
    for row in (kernel_row, cell_row):
        assert_judged(row, startup.TARGET, at_most=True)
    for kind in startup.KINDS:
        assert len(results[kind]["kernel"]) == startup.QUICK_KERNEL_ROUNDS
        # a kernel takes longer to answer than the first cell alone takes in a plain Python
        assert startup.medians(results, kind)["kernel_s"] > startup.medians(results, kind)["cell_s"] > 0
    assert (heavy_row.ours, heavy_row.verdict) == ("none", "meets")
    assert "lab.start()" in results["cells"]["course"]


def test_startup_splits_a_cell_into_its_imports_and_the_rest() -> None:
    """The fresh-Python timing runs a cell's import statements first, then everything else."""
    imports, rest = startup.split_imports("import os\nx = 1\nfrom sys import path\nprint(x)")
    assert imports.splitlines() == ["import os", "from sys import path"]
    assert rest.splitlines() == ["x = 1", "print(x)"]


def test_memory_per_student_counts_what_a_kernel_holds() -> None:
    """A kernel holding 64 MiB more than the bare one is measured as such, and misses the 30 MiB goal."""
    import kernels

    bare = student_memory.bare_kernel()
    with kernels.kernel() as (manager, client):
        kernels.run_cell(client, kernels.BARE_CELL + "\nballast = b'x' * (64 << 20)")
        heavy = kernels.memory(manager)
    results = {"bare": bare, "course": {**heavy, "cells": 1}}
    assert 60 < student_memory.added(results, "rss_mib") < 80
    assert 0 < bare["uss_mib"] <= bare["pss_mib"] <= bare["rss_mib"]
    (row,) = student_memory.rows(results)
    assert row.verdict == "misses"


def test_memory_per_student_quick_runs_notebook_08_cells() -> None:
    """The quick form runs the first cells of notebook 08 in a real kernel and reports its memory."""
    results = student_memory.run(quick=True)
    assert results["course"]["cells"] == student_memory.QUICK_CELLS
    (row,) = student_memory.rows(results)
    assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0
    extra = student_memory.added(results, "rss_mib")
    assert row.verdict == ("meets" if extra <= student_memory.TARGET_MIB else "misses")


class SlowEcho(Protocol):
    """Echo that spends half a millisecond on each message: a server the lab made slower."""

    def dataReceived(self, data: bytes) -> None:
        time.sleep(0.0005)
        self.transport.write(data)  # type: ignore[union-attr]


@contextmanager
def slow_echo() -> Iterator[tuple[str, int]]:
    from twisted.internet import reactor

    port = lab.call(reactor.listenTCP, 0, Factory.forProtocol(SlowEcho), interface="127.0.0.1")
    try:
        yield (port.getHost().host, port.getHost().port)
    finally:
        lab.call(port.stopListening)


@linux_only
def test_echo_rows_judge_the_lab_against_bare_listen_tcp() -> None:
    """The echo script measures every server; each lab.listen row's verdict is its ratio to bare listenTCP."""
    output = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "echo.py"), "--placement", "split", "--rounds", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    split = json.loads(output.stdout)
    rows = echo.rows({"split": split, "pinned": split})
    assert len(rows) == 6
    for row in rows:
        if row.verdict == "info":
            assert "socketserver" in row.case and row.ratio is not None and row.ratio > 0
        else:
            assert_judged(row, echo.TARGET, at_most=True)


def test_a_slowed_echo_server_gets_a_worse_ratio() -> None:
    """Half a millisecond more per message shows as a ratio far over 1.05 against the bare server."""
    payload = b"x" * 31 + b"\n"
    with echo.bare_twisted_echo() as bare, slow_echo() as slow:
        with echo.client(bare) as fast_socket, echo.client(slow) as slow_socket:
            medians = {
                name: sorted(echo.round_trips(sock, payload, 40))[20]
                for name, sock in (("bare", fast_socket), ("slow", slow_socket))
            }
    ratio = medians["slow"] / medians["bare"]
    assert ratio > 2
    assert judged("echo", "", ratio, "≤", echo.TARGET, "bare listenTCP").verdict == "misses"


@linux_only
def test_chat_servers_speak_the_same_bytes_and_rows_judge_the_course_against_bare_twisted() -> None:
    """Every chat server passes the driver's byte-for-byte checks with 20 clients; the rows' verdicts follow the ratios."""
    results = {kind: chat.measure(kind, 20, 3, 0.3, burst=5) for kind in chat.KINDS}
    for figures in results.values():
        figures["rates"] = [figures["deliveries_per_s"]]
        assert figures["deliveries_per_s"] > 0 and figures["burst_dropped"] == 0
    fan_out, sustained, over_asyncio, fan_out_info, burst = chat.rows(results)
    assert_judged(fan_out, chat.FAN_OUT_OVER_BARE, at_most=True)
    assert_judged(sustained, chat.SUSTAINED_OVER_BARE, at_most=False)
    assert_judged(over_asyncio, chat.SUSTAINED_OVER_ASYNCIO, at_most=False)
    assert fan_out_info.verdict == "info" and burst.verdict == "meets"
