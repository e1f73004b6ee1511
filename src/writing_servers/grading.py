"""Grade students' notebooks: ``writing-servers grade PATH...``.

Each submitted notebook runs top to bottom in a kernel of its own (nbclient),
in a child process of its own, with a time limit; then the grader runs every
exercise check of that notebook on what the student's cells defined, whatever
the student did to the check cells.  The result is a table of students ×
exercises, ✓ or the first ✗ line, printed and written as CSV.

What a submission does to itself (hangs, kills its kernel, deletes or
reorders cells, renames a class, leaves servers running) is reported in its
row; it never stops the others, and costs them nothing beyond its own limit.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXERCISES", "Grade", "find_submissions", "grade", "grade_all", "write_csv"]

#: Each notebook's exercises, in order: the check and the name it checks.
#: tests/test_grading.py keeps this in step with the notebooks' check cells.
EXERCISES: dict[str, tuple[tuple[str, str], ...]] = {
    "protocols": (
        ("check_shouting_echo", "ShoutingEcho"),
        ("check_goodbye_qotd", "GoodbyeQOTD"),
        ("check_total_connections", "TotalCountingEchoFactory"),
    ),
    "closing": (("check_polite_but_firm", "PoliteButFirm"), ("check_file_server", "FileServer")),
    "serving": (
        ("check_listen_twice", "listen_twice"),
        ("check_private_unix_endpoint", "private_unix_endpoint"),
        ("check_limited_factory", "LimitedQOTDFactory"),
    ),
    "helper_protocols": (
        ("check_more_answers", "MoreAnswers"),
        ("check_line_reverser", "LineReverser"),
        ("check_netstring_echo", "NetstringEcho"),
    ),
    "state_machines": (
        ("check_who_chat", "WhoChat"),
        ("check_password_chat", "PasswordChat"),
        ("check_second_name_test", "test_second_name_in_one_chunk"),
    ),
    "simpler_protocol_creation": (
        ("check_rotating_quotes", "RotatingQOTDFactory"),
        ("check_greeting_factory", "greeting_factory"),
        ("check_blocklist", "BlocklistQOTDFactory"),
    ),
    "startup_shutdown": (
        ("check_announcing_logfile", "AnnouncingLogfileFactory"),
        ("check_line_numbering", "LineNumberingProtocol"),
        ("check_client_numbering", "ClientNumberingFactory"),
    ),
    "chat": (
        ("check_who_chat", "WhoChat"),
        ("check_announcing_chat", "AnnouncingChat"),
        ("check_private_chat", "PrivateChat"),
    ),
    "scaling": (
        ("check_per_recipient", "per_recipient_microseconds"),
        ("check_chat_full", "FullChatFactory"),
    ),
}

#: The course's notebooks, for telling which one a submission is and what it changed.
COURSE = Path(__file__).resolve().parent.parent.parent / "notebooks"
#: Seconds a submission's own cells may run, all together.
DEFAULT_TIME_LIMIT = 120.0
#: Seconds the checks may take after the student's cells (they wait at most a few seconds each).
CHECKS_LIMIT = 90.0
#: Seconds for starting the child and its kernel, beyond the two limits, before the child is killed.
_START_UP = 10.0
#: How the grading cell marks its one line of results in the kernel's output.
_MARKER = "writing-servers-grade: "


@dataclass
class Grade:
    """One submission's row: a result per exercise (``✓`` or ``✗ …``) and notes on what happened."""

    student: str
    path: Path
    notebook: str = ""
    results: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def solved(self) -> int:
        return sum(1 for result in self.results if result == "✓")


# -- finding submissions ------------------------------------------------------------


def find_submissions(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    """``(student, notebook)`` for each notebook in *paths* (files, or folders searched whole).

    The student is the first folder under a given folder (nbgrader's
    ``submitted/<student>/<assignment>/``), or the file's own name.
    """
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            for notebook in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" in notebook.parts:
                    continue
                relative = notebook.relative_to(path)
                found.append((relative.parts[0] if len(relative.parts) > 1 else notebook.stem, notebook))
        elif path.suffix == ".ipynb" and path.is_file():
            found.append((path.stem, path))
        else:
            raise FileNotFoundError(f"{path}: not a notebook (.ipynb) or a folder")
    return found


def section_of(notebook: dict[str, Any], path: Path) -> str | None:
    """Which section a submission is: from its metadata, else from its file name's number."""
    module = notebook.get("metadata", {}).get("writing_servers", {}).get("module", "")
    if isinstance(module, str) and module.rsplit(".", 1)[-1] in EXERCISES:
        return module.rsplit(".", 1)[-1]
    number = path.name[:2]
    for course_notebook in sorted(COURSE.glob(f"{number}-*.ipynb")) if number.isdigit() else []:
        metadata = json.loads(course_notebook.read_text(encoding="utf-8"))["metadata"]
        name = str(metadata.get("writing_servers", {}).get("module", "")).rsplit(".", 1)[-1]
        if name in EXERCISES:
            return name
    return None


def changes_to_cells(notebook: dict[str, Any], section: str) -> list[str]:
    """Notes on check cells the student deleted and cells they reordered, against the course's copy."""
    original = _course_notebook(section)
    if original is None:
        return []
    checks = {cell["id"] for cell in original["cells"] if _calls_a_check(cell)}
    order = [cell.get("id") for cell in original["cells"]]
    submitted = [cell.get("id") for cell in notebook["cells"]]
    notes = []
    deleted = checks - set(submitted)
    if deleted:
        notes.append(f"{len(deleted)} check cell(s) deleted: the grader ran every check itself")
    kept = [cell for cell in submitted if cell in order]
    if kept != sorted(kept, key=order.index):
        notes.append("cells were reordered: they ran in the submitted order")
    return notes


def _course_notebook(section: str) -> dict[str, Any] | None:
    path = course_notebook_path(section)
    return None if path is None else json.loads(path.read_text(encoding="utf-8"))


def course_notebook_path(section: str) -> Path | None:
    """The course's notebook that teaches *section*, if the course's notebooks are here."""
    for path in sorted(COURSE.glob("[0-9][0-9]-*.ipynb")):
        metadata = json.loads(path.read_text(encoding="utf-8"))["metadata"]
        if str(metadata.get("writing_servers", {}).get("module", "")).endswith(f".{section}"):
            return path
    return None


def _calls_a_check(cell: dict[str, Any]) -> bool:
    source = "".join(cell.get("source", ""))
    return cell.get("cell_type") == "code" and any(f"{check}(" in source for check, _ in _all_checks())


def _all_checks() -> Iterable[tuple[str, str]]:
    for exercises in EXERCISES.values():
        yield from exercises


# -- grading one submission (in a child process) ------------------------------------


def grading_cell(section: str) -> str:
    """The cell the grader appends: run each check on the student's definitions, print one line of JSON."""
    return f"""\
def _writing_servers_grade():
    import importlib, json
    from writing_servers import lab
    namespace = globals()
    left = sorted(server.name for server in lab.servers())
    lab.stop_all()
    checks = importlib.import_module("writing_servers.exercises.{section}")
    results = []
    for check, name in {EXERCISES[section]!r}:
        if name not in namespace:
            results.append(f"✗ {{name}} is not defined: was its cell deleted, or the name changed?")
            continue
        try:
            report = getattr(checks, check)(namespace[name])
        except BaseException as error:
            results.append(f"✗ the check could not run: {{type(error).__name__}}: {{error}}")
            continue
        results.append("✓" if report.passed else "✗ " + (report.first_problem or "no check passed"))
    print({_MARKER!r} + json.dumps({{"left_running": left, "results": results}}))


_writing_servers_grade()
"""


def grade(
    path: Path, time_limit: float = DEFAULT_TIME_LIMIT, checks_limit: float = CHECKS_LIMIT
) -> dict[str, Any]:
    """Run the notebook at *path* and its checks in a fresh kernel; what the grader learnt, as a dict."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    raw = json.loads(path.read_text(encoding="utf-8"))
    section = section_of(raw, path)
    if section is None:
        return {"notebook": path.stem, "notes": ["not a notebook of this course: no exercises to grade"]}
    notes = changes_to_cells(raw, section)
    course_path = course_notebook_path(section)
    name = course_path.stem if course_path is not None else section
    notebook = nbformat.reads(json.dumps(raw), as_version=4)
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    notebook.cells = [*cells, nbformat.v4.new_code_cell(grading_cell(section))]
    deadline = float("inf")  # set when the first cell starts: the kernel's start-up is not the student's time
    running: list[int] = []
    ran_out: list[int] = []  # the student cell during which the time limit ran out

    def before_cell(cell: Any, cell_index: int, **_: Any) -> None:
        nonlocal deadline
        if not running:
            deadline = time.monotonic() + time_limit
        running.append(cell_index)
        if cell_index >= len(cells):  # the grading cell has its own limit
            client.timeout = int(checks_limit)
        elif ran_out:
            cell.source = "pass  # skipped: the time limit was used up"
        else:
            client.timeout = max(1, round(deadline - time.monotonic()))

    def after_cell(cell: Any, cell_index: int, **_: Any) -> None:
        # Interrupted at the limit (nbclient's interrupt_on_timeout), or finished just past it.
        if cell_index < len(cells) and not ran_out and time.monotonic() >= deadline - 0.5:
            ran_out.append(cell_index)

    client = NotebookClient(
        notebook,
        timeout=int(time_limit),
        kernel_name="python3",
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_execute=before_cell,
        on_cell_executed=after_cell,
    )
    try:
        client.execute()
    except DeadKernelError:
        notes.append(f"the kernel died while running code cell {running[-1] + 1}: nothing could be graded")
        return {"notebook": name, "section": section, "notes": notes}
    errors = [
        i + 1 for i, cell in enumerate(cells) if any(o.get("output_type") == "error" for o in cell.outputs)
    ]
    if ran_out:
        notes.append(
            f"the time limit ({time_limit:g} s) ran out in code cell {ran_out[0] + 1}: the cells after it were skipped"
        )
        errors = [number for number in errors if number < ran_out[0] + 1]  # that cell was interrupted
    if errors:
        notes.append(f"code cell(s) {', '.join(map(str, errors))} raised an error")
    found = _graded(notebook.cells[-1])
    if found is None:
        notes.append("the checks did not finish")
        return {"notebook": name, "section": section, "notes": notes}
    if found["left_running"]:
        notes.append(f"left servers running: {', '.join(found['left_running'])} (the grader stopped them)")
    return {"notebook": name, "section": section, "results": found["results"], "notes": notes}


def _graded(cell: Any) -> dict[str, Any] | None:
    for output in cell.outputs:
        for line in str(output.get("text", "")).splitlines():
            if line.startswith(_MARKER):
                return json.loads(line[len(_MARKER) :])  # type: ignore[no-any-return]
    return None


# -- grading many (in the parent) ---------------------------------------------------


def grade_all(
    submissions: Sequence[tuple[str, Path]],
    time_limit: float = DEFAULT_TIME_LIMIT,
    checks_limit: float = CHECKS_LIMIT,
) -> list[Grade]:
    """Grade each submission in a child process of its own, one after the other."""
    return [_grade_in_child(student, path, time_limit, checks_limit) for student, path in submissions]


def _grade_in_child(student: str, path: Path, time_limit: float, checks_limit: float) -> Grade:
    row = Grade(student=student, path=path, notebook=path.stem)
    started = time.monotonic()
    command = [sys.executable, "-m", "writing_servers.grading", str(path)]
    command += ["--time-limit", str(time_limit), "--checks-limit", str(checks_limit)]
    # A session of its own: on timeout the child, its kernel and anything they started go together.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = child.communicate(timeout=time_limit + checks_limit + _START_UP)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        row.notes.append(f"did not finish within its time limit ({time_limit:g} s): stopped")
        row.notebook, row.results = _not_graded(path)
    else:
        try:
            found = json.loads(out.decode().strip().splitlines()[-1])
        except (IndexError, ValueError):
            last = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            row.notes.append(f"the grader could not run it: {last[0]}")
        else:
            row.notebook = found.get("notebook", row.notebook)
            row.results = found.get("results", [])
            row.notes += found.get("notes", [])
            section = found.get("section")
            if section and not row.results:
                row.results = ["✗ not graded"] * len(EXERCISES[section])
    finally:
        _kill_session(child.pid)
    row.seconds = time.monotonic() - started
    return row


def _not_graded(path: Path) -> tuple[str, list[str]]:
    """The course notebook *path* is a copy of, and a "not graded" result for each of its exercises."""
    try:
        section = section_of(json.loads(path.read_text(encoding="utf-8")), path)
    except (OSError, ValueError):
        section = None
    if section is None:
        return path.stem, []
    course_path = course_notebook_path(section)
    return (course_path.stem if course_path else section), ["✗ not graded"] * len(EXERCISES[section])


def _kill_session(pid: int) -> None:
    """Stop whatever the child left in its session (a kernel that outlived it, a server it started)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the table ----------------------------------------------------------------------


def columns(grades: Sequence[Grade]) -> list[tuple[str, int]]:
    """``(notebook, exercise number)`` for every exercise any submission was graded on."""
    seen: dict[tuple[str, int], None] = {}
    for row in grades:
        for number in range(1, len(row.results) + 1):
            seen[(row.notebook[:2], number)] = None
    return sorted(seen)


def table(grades: Sequence[Grade]) -> str:
    """Students × exercises, ✓ or ✗ with a footnote giving the first ✗ line, then each row's notes."""
    heads = columns(grades)
    names = [f"{notebook}.{number}" for notebook, number in heads]
    width = max([len("student"), *(len(row.student) for row in grades)])
    lines = ["  ".join([f"{'student':<{width}}", *names, " time"])]
    footnotes: list[str] = []
    for row in grades:
        cells = []
        for (notebook, number), name in zip(heads, names, strict=True):
            result = (
                row.results[number - 1] if row.notebook[:2] == notebook and number <= len(row.results) else ""
            )
            if result.startswith("✗"):
                footnotes.append(f"[{len(footnotes) + 1}] {row.student} {name}: {result}")
                result = f"✗{len(footnotes)}"
            cells.append(f"{result:<{len(name)}}")
        lines.append("  ".join([f"{row.student:<{width}}", *cells, f"{row.seconds:4.0f}s"]))
    notes = [f"{row.student} ({row.notebook}): {note}" for row in grades for note in row.notes]
    for extra in (footnotes, notes):
        lines += ["", *extra] if extra else []
    return "\n".join(lines)


def write_csv(grades: Sequence[Grade], path: Path) -> None:
    """One row per submission: student, notebook, a column per exercise (✓ or the first ✗ line), notes."""
    heads = columns(grades)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["student", "notebook", *(f"{n}.{e}" for n, e in heads), "solved", "seconds", "notes"]
        )
        for row in grades:
            results = [
                row.results[number - 1] if row.notebook[:2] == notebook and number <= len(row.results) else ""
                for notebook, number in heads
            ]
            writer.writerow(
                [row.student, row.notebook, *results, row.solved, f"{row.seconds:.1f}", "; ".join(row.notes)]
            )


def _main(argv: Sequence[str]) -> int:
    """The child's entry point: grade one notebook, print one line of JSON."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m writing_servers.grading")
    parser.add_argument("path", type=Path)
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT)
    parser.add_argument("--checks-limit", type=float, default=CHECKS_LIMIT)
    args = parser.parse_args(argv)
    print(json.dumps(grade(args.path, args.time_limit, args.checks_limit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))


# -- nbgrader -----------------------------------------------------------------------

#: nbgrader's metadata for a read-only autograder test cell worth one point.
_NBGRADER_TEST = {
    "grade": True,
    "locked": True,
    "points": 1,
    "schema_version": 3,
    "solution": False,
    "task": False,
}


def nbgrader_source(path: Path) -> Any:
    """*path*'s notebook made an nbgrader source notebook: each check cell an autograder test.

    A check cell's ``check_x(Name)`` becomes ``check_x(Name).assert_passed()``,
    worth one point; nbgrader gives the point when the cell raises nothing, and
    shows the report's lines when it does.  The exercise cells stay as they
    are, for the students to edit.
    """
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    number = 0
    for cell in notebook.cells:
        if "exercise" in cell.get("metadata", {}).get("tags", []) or not _calls_a_check(cell):
            continue
        number += 1
        cell.source = _asserting(cell.source)
        cell.metadata["nbgrader"] = {**_NBGRADER_TEST, "grade_id": f"check-{number}"}
    return notebook


def _asserting(source: str) -> str:
    """*source* with each statement that is a bare ``check_x(...)`` call ending in ``.assert_passed()``."""
    import ast

    lines = source.splitlines()
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        name = getattr(getattr(call, "func", None), "id", None) or getattr(
            getattr(call, "func", None), "attr", ""
        )
        if isinstance(call, ast.Call) and str(name).startswith("check_") and node.end_lineno is not None:
            lines[node.end_lineno - 1] += ".assert_passed()"
    return "\n".join(lines)
