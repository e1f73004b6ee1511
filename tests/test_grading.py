"""``writing-servers grade`` on crafted submissions of notebook 01: each runs in a kernel of its own.

Solved, unsolved, wrong, broken, hanging, kernel-killing, tampered with: every
row says what happened, and no submission costs another anything.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from writing_servers import grading

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "01-Protocols.ipynb"
sys.path.insert(0, str(ROOT / "tools"))

import sync_notebooks  # noqa: E402

Edit = Callable[[nbformat.NotebookNode], None]


def _exercise_cells(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in notebook.cells if "exercise" in sync_notebooks.tags(cell)]


def _solve(notebook: nbformat.NotebookNode) -> None:
    """Replace each starter by its imports and the reference solution, as a student who solved it would."""
    solution = importlib.import_module("writing_servers.exercises.protocols").solution
    for number, cell in enumerate(_exercise_cells(notebook), 1):
        imports = [line for line in cell.source.splitlines() if line.startswith(("from ", "import "))]
        cell.source = "\n".join([*imports, "", solution(number).code])


def _then(*edits: Edit) -> Edit:
    def edit(notebook: nbformat.NotebookNode) -> None:
        for step in edits:
            step(notebook)

    return edit


def _exercise(number: int, source: str) -> Edit:
    def edit(notebook: nbformat.NotebookNode) -> None:
        _exercise_cells(notebook)[number - 1].source = source

    return edit


def _after_exercise(number: int, source: str) -> Edit:
    def edit(notebook: nbformat.NotebookNode) -> None:
        index = notebook.cells.index(_exercise_cells(notebook)[number - 1])
        notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(source))

    return edit


def _delete(which: Callable[[nbformat.NotebookNode], bool]) -> Edit:
    def edit(notebook: nbformat.NotebookNode) -> None:
        notebook.cells = [cell for cell in notebook.cells if not which(cell)]

    return edit


def _is_check(cell: nbformat.NotebookNode) -> bool:
    return (
        cell.cell_type == "code" and "check_" in cell.source and "exercise" not in sync_notebooks.tags(cell)
    )


def _swap_exercises(notebook: nbformat.NotebookNode) -> None:
    first, second = (notebook.cells.index(cell) for cell in _exercise_cells(notebook)[:2])
    notebook.cells[first], notebook.cells[second] = notebook.cells[second], notebook.cells[first]


STR_ECHO = """from twisted.internet.protocol import Protocol

class ShoutingEcho(Protocol):
    def dataReceived(self, data):
        self.transport.write(data.decode().upper())
"""

SUBMISSIONS: dict[str, Edit] = {
    "unsolved": lambda notebook: None,
    "solved": _solve,
    "wrong": _then(_solve, _exercise(1, STR_ECHO)),
    "broken": _then(_solve, _exercise(1, "class ShoutingEcho(Protocol)\n    pass\n")),
    "renamed": _then(_solve, lambda nb: setattr(_exercise_cells(nb)[0], "source", _renamed(nb))),
    "no-checks": _then(_solve, _delete(_is_check)),
    "reordered": _then(_solve, _swap_exercises),
    "no-clean-up": _then(_solve, _delete(lambda cell: "lab.clean_up()" in cell.source)),
    "kernel-killer": _then(_solve, _after_exercise(1, "import os\nos._exit(1)")),
}


def _renamed(notebook: nbformat.NotebookNode) -> str:
    source: str = _exercise_cells(notebook)[0].source
    return source.replace("class ShoutingEcho", "class ShoutEcho")


def _write(folder: Path, name: str, edit: Edit) -> Path:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    edit(notebook)
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def grades(tmp_path_factory: pytest.TempPathFactory) -> dict[str, grading.Grade]:
    folder = tmp_path_factory.mktemp("submissions")
    submissions = [(name, _write(folder, name, edit)) for name, edit in SUBMISSIONS.items()]
    return {row.student: row for row in grading.grade_all(submissions, time_limit=60)}


def test_nothing_is_lost(grades: dict[str, grading.Grade]) -> None:
    """Every submission has its row, each with a result for each of the notebook's three exercises."""
    assert list(grades) == list(SUBMISSIONS)
    for row in grades.values():
        assert row.notebook == "01-Protocols"
        assert len(row.results) == 3, row


def test_solved_and_unsolved(grades: dict[str, grading.Grade]) -> None:
    assert grades["solved"].results == ["✓", "✓", "✓"]
    assert grades["solved"].notes == []
    assert grades["unsolved"].results == [
        "✗ ShoutingEcho.dataReceived is not written yet: send back the data, upper-cased",
        "✗ GoodbyeQOTD.connectionMade is not written yet: write the quote and 'Goodbye!', then close",
        "✗ TotalCountingEcho.connectionMade is not written yet: count this connection in both numbers, "
        "then greet with both",
    ]


def test_a_wrong_attempt_is_named_by_its_line(grades: dict[str, grading.Grade]) -> None:
    assert grades["wrong"].results == [
        '✗ ShoutingEcho.dataReceived, line 5: TypeError: Data must be bytes — write b"..." or text.encode()',
        "✓",
        "✓",
    ]


def test_broken_and_renamed_code_is_reported_and_the_rest_graded(grades: dict[str, grading.Grade]) -> None:
    missing = "✗ ShoutingEcho is not defined: was its cell deleted, or the name changed?"
    for name in ("broken", "renamed"):
        assert grades[name].results == [missing, "✓", "✓"], name
    assert any(note.endswith("raised an error") for note in grades["broken"].notes)


def test_tampering_is_noted_and_graded_anyway(grades: dict[str, grading.Grade]) -> None:
    assert grades["no-checks"].results == ["✓", "✓", "✓"]
    assert grades["no-checks"].notes == ["3 check cell(s) deleted: the grader ran every check itself"]
    assert grades["reordered"].results == ["✓", "✓", "✓"]
    # Exercise 1's check cell now runs before its class is defined: noted too.
    assert grades["reordered"].notes[0] == "cells were reordered: they ran in the submitted order"
    assert grades["no-clean-up"].results == ["✓", "✓", "✓"]
    [note] = grades["no-clean-up"].notes
    assert note.startswith("left servers running: ") and note.endswith("(the grader stopped them)")


def test_a_kernel_that_dies_is_reported(grades: dict[str, grading.Grade]) -> None:
    row = grades["kernel-killer"]
    assert row.results == ["✗ not graded"] * 3
    [note] = row.notes
    assert note.startswith("the kernel died while running code cell ")


def test_a_hanging_submission_costs_only_its_own_time_limit(tmp_path: Path) -> None:
    """One that sleeps is interrupted at its limit; one that ignores interrupts is killed; the next is graded."""
    sleeper = _write(tmp_path, "sleeper", _then(_solve, _after_exercise(1, "import time\ntime.sleep(600)")))
    stubborn = _write(
        tmp_path,
        "stubborn",
        _then(
            _solve,
            _after_exercise(
                1, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass"
            ),
        ),
    )
    solved = _write(tmp_path, "solved", _solve)
    rows = grading.grade_all([("sleeper", sleeper), ("stubborn", stubborn), ("solved", solved)], 8, 15)
    by_name = {row.student: row for row in rows}
    assert by_name["sleeper"].results[0] == "✓"
    assert by_name["sleeper"].notes[0].startswith("the time limit (8 s) ran out")
    assert by_name["stubborn"].notes == ["did not finish within its time limit (8 s): stopped"]
    assert by_name["stubborn"].results == ["✗ not graded"] * 3
    assert not any(note.endswith("raised an error") for note in by_name["sleeper"].notes)  # only interrupted
    assert by_name["stubborn"].seconds < 8 + 15 + grading._START_UP + 5
    assert by_name["solved"].results == ["✓", "✓", "✓"]


def test_the_command_prints_the_table_and_writes_csv(tmp_path: Path) -> None:
    """Folders of students (nbgrader's submitted/<student>/<assignment>/) become rows named by student."""
    for student, edit in (("ada", _solve), ("bob", SUBMISSIONS["unsolved"])):
        (tmp_path / "submitted" / student / "ps1").mkdir(parents=True)
        _write(tmp_path / "submitted" / student / "ps1", "01-Protocols", edit)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "writing_servers",
            "grade",
            str(tmp_path / "submitted"),
            "--csv",
            str(tmp_path / "g.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert out.splitlines()[0].split() == ["student", "01.1", "01.2", "01.3", "time"]
    assert out.splitlines()[1].split()[:4] == ["ada", "✓", "✓", "✓"]
    assert out.splitlines()[2].split()[:4] == ["bob", "✗1", "✗2", "✗3"]
    assert "[1] bob 01.1: ✗ ShoutingEcho.dataReceived is not written yet" in out
    rows = list(csv.DictReader((tmp_path / "g.csv").open(encoding="utf-8")))
    assert [(row["student"], row["solved"]) for row in rows] == [("ada", "3"), ("bob", "0")]


def test_the_exercise_table_matches_the_notebooks() -> None:
    """grading.EXERCISES lists each notebook's check cells, in order."""
    from test_exercises import CASES

    found: dict[str, list[tuple[str, str]]] = {}
    for case in CASES:
        notebook, _, check, name = case.values
        found.setdefault(notebook.module.rsplit(".", 1)[1], []).append((check, name))
    assert {section: tuple(pairs) for section, pairs in found.items()} == grading.EXERCISES


def test_nbgrader_source_makes_each_check_cell_an_autograder_test() -> None:
    """Check cells get nbgrader's test metadata and assert; exercise cells stay the students' to edit."""
    notebook = grading.nbgrader_source(NOTEBOOK)
    tests = [cell for cell in notebook.cells if "nbgrader" in cell.metadata]
    assert [cell.metadata.nbgrader.grade_id for cell in tests] == ["check-1", "check-2", "check-3"]
    assert all(cell.metadata.nbgrader.points == 1 and cell.metadata.nbgrader.locked for cell in tests)
    assert tests[0].source.splitlines()[-1] == "check_shouting_echo(ShoutingEcho).assert_passed()"
    assert all("nbgrader" not in cell.metadata for cell in _exercise_cells(notebook))


@pytest.mark.skipif(
    importlib.util.find_spec("nbgrader") is None,
    reason="nbgrader is not installed (pip install -e '.[nbgrader]' to run this test)",
)
def test_nbgrader_autogrades_the_course(tmp_path: Path) -> None:
    """nbgrader's own generate_assignment and autograde score a solved and an unsolved 01: 3 and 0 of 3."""
    (tmp_path / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.CourseDirectory.course_id = 'writing-servers'\nc.CourseDirectory.root = {str(tmp_path)!r}\n"
    )
    command = [sys.executable, "-m", "writing_servers", "nbgrader-source", str(NOTEBOOK), "--to"]
    subprocess.run([*command, str(tmp_path / "source" / "ps1")], check=True, timeout=120)
    bin_folder = str(Path(sys.executable).parent)  # nbgrader runs alembic from PATH
    env = {**os.environ, "PATH": bin_folder + ":" + os.environ["PATH"]}

    def nbgrader(*words: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "nbgrader", *words],
            cwd=tmp_path,
            env=env,
            check=True,
            timeout=300,
            capture_output=True,
        )

    nbgrader("generate_assignment", "ps1", "--force")
    released = tmp_path / "release" / "ps1" / NOTEBOOK.name
    for student, edit in (("ada", _solve), ("bob", SUBMISSIONS["unsolved"])):
        folder = tmp_path / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        notebook = nbformat.read(released, as_version=4)
        edit(notebook)
        nbformat.write(notebook, folder / NOTEBOOK.name)
    nbgrader("autograde", "ps1", "--force")
    nbgrader("export")
    rows = list(csv.DictReader((tmp_path / "grades.csv").open(encoding="utf-8")))
    assert sorted((row["student_id"], row["score"], row["max_score"]) for row in rows) == [
        ("ada", "3.0", "3.0"),
        ("bob", "0.0", "3.0"),
    ]
