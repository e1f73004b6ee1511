"""Case 1: the notebook suite under nbval, against the floor of as many one-cell notebooks.

Both run with the Makefile's nbval flags, first one notebook after another
(no ``-n 2``) and then as ``make nbval`` runs them (``-n 2 --dist
loadfile``).  The floor notebooks print one line, so what they cost is
pytest starting, a kernel per notebook, and nbval's bookkeeping: what the
course cannot go below.  pytest's JUnit XML gives the time of every cell
(setup, call and teardown, so a notebook's first cell carries its kernel's
start); the slow ones are matched against the waits their source asks for.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path
from typing import Any

import common
import nbformat
from table import Row, at_most

NBVAL = [
    "-m",
    "pytest",
    "--nbval",
    "--nbval-current-env",
    "--nbval-sanitize-with",
    "tests/nbval-sanitize.cfg",
    "--nbval-cell-timeout",
    "120",
    "-p",
    "no:cacheprovider",
    "-q",
]
PARALLEL = ["-n", "2", "--dist", "loadfile"]
TARGET = 1.3  # the suite over the floor, at most
SLOW_CELL = 0.25  # seconds: cells slower than this are listed with their reasons
QUICK_COUNT = 2  # notebooks in a quick run

#: What in a cell's source makes it take time: a kind, a pattern, and how to say so.
WAITS = [
    ("sleep", r"time\.sleep\(([\d.]+)\)", "`time.sleep({0})`: a fixed pause"),
    (
        "timeout",
        r"(?:wait_until_idle|wait_for_open_connections|wait_for_event|read_line|read_lines|read_until|read_all)"
        r"\([^)]*timeout=([\d.]+)",
        "waits out a {0} s timeout on purpose (shows that something does not happen)",
    ),
    ("deadline", r"grace_period=([\d.]+)", "a {0} s server-side deadline must pass"),
    (
        "check",
        r"\b(check_\w+)\(",
        "`{0}` on the unsolved starter: each reply that never comes costs the check's timeout "
        "(`CHECK_TIMEOUT`, {timeout:g} s)",
    ),
    (
        "subprocess",
        r"subprocess\.(?:Popen|run)\(",
        "starts a Python program in a subprocess (interpreter + imports)",
    ),
    ("plot", r"plt\.subplots|plt\.show", "draws a matplotlib figure"),
]
#: What the lead could do about each kind of wait.
REMEDIES = {
    "check": "exercise checks on the unsolved starters wait the whole `CHECK_TIMEOUT` for a reply that cannot "
    "come; a check could end as soon as the lab's error log shows the starter's `NotImplementedError` "
    "(or the connection closes): an event, not a timeout",
    "sleep": "`time.sleep` plays a busy client that reads late, which is the lesson: the cells already wait "
    "for the server's event first, and reading at once would let part of the reply arrive before an abort",
    "timeout": "cells that show that something does *not* happen wait out a timeout; 0.2 s shows it as well "
    "as 0.5-1 s",
    "deadline": "a server-side deadline has to expire; a shorter one shows the same",
    "subprocess": "starting a program costs an interpreter and Twisted's import; that is the lesson",
    "plot": "matplotlib draws a figure; that is the lesson",
    "work": "nothing in the source waits: the cell's own work",
}


def notebooks(quick: bool) -> list[Path]:
    found = sorted((common.REPO / "notebooks").glob("[0-9][0-9]-*.ipynb"))
    return found[:QUICK_COUNT] if quick else found


def floor_notebooks(directory: Path, count: int) -> list[Path]:
    """*count* notebooks of one cell that prints one line, its output stored as nbval expects."""
    paths = []
    for number in range(count):
        cell = nbformat.v4.new_code_cell(
            'print("ok")',
            execution_count=1,
            outputs=[nbformat.v4.new_output("stream", name="stdout", text="ok\n")],
        )
        notebook = nbformat.v4.new_notebook(cells=[cell])
        notebook.metadata["kernelspec"] = {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        }
        path = directory / f"{number:02d}-Floor.ipynb"
        nbformat.write(notebook, path)
        paths.append(path)
    return paths


def run_group(args: list[str], timeout: float) -> tuple[str, int]:
    """Run *args* in a process group of its own; its stdout and status.  On any failure, end the group."""
    process = subprocess.Popen(
        args,
        cwd=common.REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=timeout)
    except BaseException:  # a timeout, Ctrl-C: pytest's workers go too (kernels exit with their parent)
        for signal_number in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, signal_number)
                process.wait(5)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        raise
    return stdout, process.returncode


def nbval(paths: list[Path], parallel: bool, scratch: Path) -> dict[str, Any]:
    """Run nbval over *paths*; the wall time and every cell's time."""
    junit = scratch / f"junit-{time.monotonic_ns()}.xml"
    # -c: the repository's pytest settings even for notebooks outside it (the floor's).
    args = [common.PYTHON, *NBVAL, "-c", str(common.REPO / "pyproject.toml"), "--rootdir", str(common.REPO)]
    args += [*(PARALLEL if parallel else []), f"--junitxml={junit}", *map(str, paths)]
    started = time.perf_counter()
    stdout, status = run_group(args, timeout=900)
    wall = time.perf_counter() - started
    cells = []
    failed = []
    if junit.exists():
        for case in ElementTree.parse(junit).iter("testcase"):
            notebook = next(
                (path.name for path in paths if case.get("classname", "").endswith(path.name)), "?"
            )
            cells.append((notebook, case.get("name", "?"), float(case.get("time", 0))))
            if any(child.tag in ("failure", "error") for child in case):
                failed.append(f"{notebook} {case.get('name', '?')}")
    summary = (stdout.strip().splitlines() or ["(no output)"])[-1]
    return {
        "wall_s": wall,
        "status": status,
        "failed": failed,
        "summary": summary,
        "cells": cells,
    }


def per_notebook(cells: list[tuple[str, str, float]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for notebook, _, seconds in cells:
        totals[notebook] += seconds
    return dict(totals)


def code_cells(path: Path) -> list[str]:
    notebook = nbformat.read(path, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def reasons(source: str, first: bool) -> list[str]:
    from writing_servers.exercises import CHECK_TIMEOUT

    found = ["the kernel starts (pytest setup) and the notebook's first imports run"] if first else []
    for _, pattern, text in WAITS:
        for match in re.finditer(pattern, source):
            reason = text.format(*match.groups(), timeout=CHECK_TIMEOUT)
            if reason not in found:
                found.append(reason)
    return found or ["nothing in the source waits: the work itself"]


def kind_of(source: str) -> str:
    """The first kind of wait in *source* (WAITS order), or "work"."""
    return next((kind for kind, pattern, _ in WAITS if re.search(pattern, source)), "work")


def slow_cells(paths: list[Path], cells: list[tuple[str, str, float]]) -> list[dict[str, Any]]:
    """Cells slower than SLOW_CELL, slowest first, with what in their source explains it."""
    sources = {path.name: code_cells(path) for path in paths}
    slow = []
    for notebook, name, seconds in cells:
        if seconds < SLOW_CELL or notebook not in sources:
            continue
        number = int(name.split()[-1])
        source = sources[notebook][number]
        slow.append(
            {
                "notebook": notebook,
                "cell": number,
                "seconds": seconds,
                "first_line": source.strip().splitlines()[0] if source.strip() else "",
                "reasons": reasons(source, first=number == 0),
                "kind": "kernel" if number == 0 else kind_of(source),
            }
        )
    return sorted(slow, key=lambda cell: -cell["seconds"])


def run(quick: bool) -> dict[str, Any]:
    paths = notebooks(quick)
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        floors = floor_notebooks(scratch, len(paths))
        serial, floor_serial = nbval(paths, False, scratch), nbval(floors, False, scratch)
        parallel, floor_parallel = nbval(paths, True, scratch), nbval(floors, True, scratch)
    return {
        "count": len(paths),
        "serial": serial,
        "parallel": parallel,
        "floor serial": floor_serial,
        "floor parallel": floor_parallel,
        "per notebook": per_notebook(serial["cells"]),
        "slow cells": slow_cells(paths, serial["cells"]),
    }


def verdict(ours: dict[str, Any], floor: dict[str, Any], ratio: float) -> str:
    if ours["status"] != 0 or floor["status"] != 0:
        return f"error: {ours['summary']}"
    return at_most(ratio, TARGET)


def rows(results: dict[str, Any]) -> list[Row]:
    count = results["count"]
    table = []
    for mode, label in (("serial", "one at a time"), ("parallel", "-n 2 --dist loadfile")):
        ours, floor = results[mode], results[f"floor {mode}"]
        ratio = ours["wall_s"] / floor["wall_s"]
        table.append(
            Row(
                f"nbval, {count} notebooks, {label}",
                f"{ours['wall_s']:.1f} s",
                floor=f"{count} one-cell notebooks {floor['wall_s']:.1f} s",
                ratio=ratio,
                target=f"≤ {TARGET} × floor",
                verdict=verdict(ours, floor, ratio),
            )
        )
    return table


def report(results: dict[str, Any]) -> str:
    serial = results["serial"]
    floor_each = results["floor serial"]["wall_s"] / results["count"]
    cells_per_notebook: dict[str, int] = defaultdict(int)
    waits: dict[str, float] = defaultdict(float)
    for notebook, _, _ in serial["cells"]:
        cells_per_notebook[notebook] += 1
    for cell in results["slow cells"]:
        if cell["cell"] != 0:
            waits[cell["notebook"]] += cell["seconds"]
    lines = [
        f"Serial run: {serial['summary']}. Floor: {results['floor serial']['wall_s']:.1f} s for "
        f"{results['count']} one-cell notebooks, {floor_each:.2f} s per notebook including pytest's start; "
        f"with -n 2: {results['parallel']['wall_s']:.1f} s against {results['floor parallel']['wall_s']:.1f} s.",
        "",
        "| notebook | code cells | seconds (cells' setup+call+teardown) | in slow cells past the first |",
        "|---|---|---|---|",
    ]
    for notebook, seconds in sorted(results["per notebook"].items(), key=lambda item: -item[1]):
        lines.append(
            f"| {notebook} | {cells_per_notebook[notebook]} | {seconds:.2f} | {waits.get(notebook, 0):.2f} |"
        )
    total_waits = sum(waits.values())
    above = serial["wall_s"] - results["floor serial"]["wall_s"]
    first_cells = sum(seconds for _, name, seconds in serial["cells"] if name == "Cell 0")
    floor_first = sum(seconds for _, _, seconds in results["floor serial"]["cells"])
    lines += [
        "",
        f"The serial suite takes {above:.1f} s more than its floor: {total_waits:.1f} s in the slow cells listed "
        f"below (past each notebook's first cell), {round(first_cells - floor_first, 1) + 0.0:.1f} s in first cells beyond the "
        f"floor's (imports: Twisted and the course), and the rest in the other cells' work.",
    ]
    if serial["failed"]:
        lines += [
            "",
            "Cells that failed in the serial run (the notebooks were being edited while this ran, or their "
            "stored outputs are stale): " + ", ".join(serial["failed"]) + ".",
        ]
    lines += [
        "",
        f"Cells slower than {SLOW_CELL} s (serial run), slowest first; {total_waits:.1f} s of the suite is spent "
        "in such cells past each notebook's first:",
        "",
        "| notebook | cell | seconds | starts with | why (from its source) |",
        "|---|---|---|---|---|",
    ]
    for cell in results["slow cells"]:
        first_line = cell["first_line"].replace("|", "\\|")
        lines.append(
            f"| {cell['notebook']} | {cell['cell']} | {cell['seconds']:.2f} | `{first_line}` "
            f"| {'; '.join(cell['reasons'])} |"
        )
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    serial, floor = results["serial"], results["floor serial"]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for cell in results["slow cells"]:
        if cell["kind"] != "kernel":
            by_kind[cell["kind"]].append(cell["seconds"])
    waited = sum(sum(times) for times in by_kind.values())
    found = [
        f"Notebooks: the serial suite takes {serial['wall_s']:.1f} s, {serial['wall_s'] / floor['wall_s']:.2f} × its "
        f"floor ({floor['wall_s']:.1f} s); {waited:.1f} s of it is in {sum(map(len, by_kind.values()))} cells "
        f"slower than {SLOW_CELL} s past each notebook's first. Without them: about "
        f"{(serial['wall_s'] - waited) / floor['wall_s']:.2f} × the floor."
    ]
    for kind, times in sorted(by_kind.items(), key=lambda item: -sum(item[1])):
        found.append(f"Notebooks, {len(times)} cell(s), {sum(times):.1f} s: {REMEDIES.get(kind, kind)}.")
    return found
