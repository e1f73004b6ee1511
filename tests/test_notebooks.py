"""The notebooks show the package's code, run as copied, and keep the course's shape."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import stats  # noqa: E402
import sync_notebooks  # noqa: E402

NOTEBOOKS = sync_notebooks.course()
#: ruff, reporting names used but never bound (F821) in the Python text on its stdin, as JSON.
UNDEFINED_NAMES = [
    *(sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F821"),
    *("--output-format", "json", "--stdin-filename", "cell.py", "-"),
]
SECTIONS = NOTEBOOKS[1:]


def _ids(notebooks: list[sync_notebooks.Notebook]) -> list[str]:
    return [notebook.path.stem for notebook in notebooks]


def _definition_cells() -> list[tuple[str, str]]:
    """Each definition cell, preceded by the notebook's earlier definition cells (and nothing else).

    A class too long for one short cell is split across two, the second
    building on the first: it runs after the cells that define what it uses,
    as in the notebook, with no help from the package or the runtime.
    """
    cells = []
    for notebook in NOTEBOOKS:
        earlier: list[str] = []
        for number, cell in enumerate(notebook.node.cells):
            exercise = "exercise" in sync_notebooks.tags(cell)  # builds on the notebook's own classes
            if cell.cell_type == "code" and not exercise and sync_notebooks.definitions(cell.source):
                cells.append((f"{notebook.path.stem}[{number}]", "\n\n".join([*earlier, cell.source])))
                earlier.append(cell.source)
    return cells


def test_course_has_index_and_sections() -> None:
    """00-Index and 01-Protocols exist, numbered in reading order."""
    names = [notebook.path.name for notebook in NOTEBOOKS]
    assert names[:2] == ["00-Index.ipynb", "01-Protocols.ipynb"]
    assert names == sorted(names)


def test_notebooks_match_the_package() -> None:
    """Module code in cells, navigation and the index are exactly what sync_notebooks.py would write."""
    assert sync_notebooks.sync(check=True) == []


def test_sync_detects_drift(tmp_path: Path) -> None:
    """A cell whose class differs from its module is reported (and would be rewritten)."""
    for notebook in NOTEBOOKS[:2]:
        node = nbformat.read(notebook.path, as_version=4)
        if notebook.module:
            cell = next(c for c in node.cells if c.cell_type == "code" and "class Echo(" in c.source)
            cell.source = cell.source.replace("self.transport.write(data)", "pass")
        nbformat.write(node, tmp_path / notebook.path.name)
    changed = sync_notebooks.sync(check=False, folder=tmp_path)
    assert any("code differs from writing_servers.protocols" in entry for entry in changed)
    assert sync_notebooks.sync(check=True, folder=tmp_path) == []


def test_sync_restores_the_clean_up_cell(tmp_path: Path) -> None:
    """A missing clean-up cell is put back before Further reading; an edited one is rewritten."""
    for notebook in NOTEBOOKS[:3]:
        node = nbformat.read(notebook.path, as_version=4)
        if notebook.path.name.startswith("01"):
            node.cells = [cell for cell in node.cells if "clean-up" not in sync_notebooks.tags(cell)]
        if notebook.path.name.startswith("02"):
            cell = next(c for c in node.cells if "clean-up" in sync_notebooks.tags(c))
            cell.source = "lab.stop_all()"
        nbformat.write(node, tmp_path / notebook.path.name)
    changed = [entry for entry in sync_notebooks.sync(check=False, folder=tmp_path) if "clean-up" in entry]
    assert [entry.split(" ")[0].rstrip(":") for entry in changed] == [
        "01-Protocols.ipynb",
        "02-loseConnection-and-abortConnection.ipynb",
    ]
    assert sync_notebooks.sync(check=True, folder=tmp_path) == []
    cells = nbformat.read(tmp_path / "01-Protocols.ipynb", as_version=4).cells
    at = next(n for n, cell in enumerate(cells) if "clean-up" in sync_notebooks.tags(cell))
    assert cells[at].source == sync_notebooks.CLEAN_UP_SOURCE
    assert cells[at - 1].source.startswith("## Clean up")
    assert cells[at + 1].source.startswith(sync_notebooks.FURTHER_READING)


@pytest.mark.parametrize("notebook", SECTIONS, ids=_ids(SECTIONS))
def test_clean_up_comes_after_every_server(notebook: sync_notebooks.Notebook) -> None:
    """The clean-up cell follows every cell that starts a server or a client, so the notebook ends clean."""
    cells = notebook.node.cells
    at = next(n for n, cell in enumerate(cells) if "clean-up" in sync_notebooks.tags(cell))
    later = [cell.source for cell in cells[at + 1 :] if cell.cell_type == "code"]
    assert not [
        source for source in later if "lab.listen(" in source or "connect(" in source or "check_" in source
    ]


@pytest.mark.parametrize(("where", "source"), _definition_cells(), ids=[w for w, _ in _definition_cells()])
def test_definition_cell_runs_on_its_own(where: str, source: str) -> None:
    """A cell that defines classes runs as a plain script after the notebook's earlier definitions: its imports are all there."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", source],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{where} does not run on its own:\n{result.stderr}"


@pytest.mark.parametrize("notebook", SECTIONS, ids=_ids(SECTIONS))
def test_definition_cells_use_only_names_they_have(notebook: sync_notebooks.Notebook) -> None:
    """Every name a definition cell uses is imported or defined there or in an earlier cell (ruff's F821).

    Running a cell catches a missing import only where the name is used at
    once; one used inside a method (a module gained an import) fails only
    when that method runs.
    """
    earlier: set[str] = set()
    missing = []
    for number, cell in enumerate(notebook.node.cells):
        if cell.cell_type != "code":
            continue
        if "exercise" not in sync_notebooks.tags(cell) and sync_notebooks.definitions(cell.source):
            result = subprocess.run(
                UNDEFINED_NAMES,
                input=cell.source,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
            undefined = {entry["message"].split("`")[1] for entry in json.loads(result.stdout)}
            missing += [f"cell {number}: {name}" for name in sorted(undefined - earlier)]
        for statement in ast.parse(cell.source).body:
            earlier |= sync_notebooks._bound_names(statement)
    assert missing == []


@pytest.mark.parametrize("notebook", SECTIONS, ids=_ids(SECTIONS))
def test_section_notebook_has_the_course_structure(notebook: sync_notebooks.Notebook) -> None:
    """Each section opens with what you'll do/learn/need and ends with exercises and further reading."""
    text = "\n".join(cell.source for cell in notebook.node.cells if cell.cell_type == "markdown")
    for heading in ["**What you'll do**", "**What you'll learn**", "**What you'll need**"]:
        assert heading in text, f"{notebook.path.name} lacks {heading}"
    assert "## On your own" in text
    assert "## Further reading" in text
    assert notebook.module, f"{notebook.path.name} names no section module in its metadata"
    assert notebook.summary, f"{notebook.path.name} has no one-line summary for the index"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_outputs_are_clean(notebook: sync_notebooks.Notebook) -> None:
    """Every code cell was run, nothing failed, and no kernel-specific path or stderr was stored."""
    for number, cell in enumerate(notebook.node.cells):
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"cell {number} was never run: make notebooks"
        for output in cell.outputs:
            assert output.output_type != "error", f"cell {number} stored an error"
            assert output.get("name") != "stderr", f"cell {number} wrote to stderr: {output.text!r}"
            text = str(output.get("text", "")) + str(output.get("data", {}).get("text/plain", ""))
            assert "ipykernel_" not in text, f"cell {number} shows a kernel-specific path"


@pytest.mark.parametrize("notebook", SECTIONS, ids=_ids(SECTIONS))
def test_section_fits_a_class_period(notebook: sync_notebooks.Notebook) -> None:
    """The core path and the exercises are within tools/stats.py's budgets, and the stated minutes are honest."""
    assert stats.measure(notebook.path).problems() == []


def _replaced_definitions(cells: list[nbformat.NotebookNode]) -> list[str]:
    """Names a cell imports from writing_servers after an earlier cell defined them, unannounced."""
    defined: dict[str, int] = {}
    found = []
    for number, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        announced = cell.source.lstrip().startswith("#") and "takes over" in cell.source.splitlines()[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("writing_servers"):
                for alias in node.names:
                    name = alias.asname or alias.name
                    if name in defined and not announced:
                        found.append(
                            f"cell {number} imports {name} from {node.module}; cell {defined[name]} defined it"
                        )
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                defined[node.name] = number
    return found


@pytest.mark.parametrize("notebook", SECTIONS, ids=_ids(SECTIONS))
def test_a_students_definition_is_never_silently_replaced(notebook: sync_notebooks.Notebook) -> None:
    """No cell imports from the package a name the notebook defined earlier, unless its first line says it takes over."""
    assert _replaced_definitions(notebook.node.cells) == []


def test_a_silent_replacement_is_found() -> None:
    """The check above finds an unannounced re-import, and accepts one announced in the cell's first line."""
    cells = [
        nbformat.v4.new_code_cell("class ChatRoom:\n    pass"),
        nbformat.v4.new_code_cell("from writing_servers.state_machines import ChatRoom, LineChat"),
        nbformat.v4.new_code_cell(
            "# From here on the package's ChatRoom takes over from the one above.\n"
            "from writing_servers.state_machines import ChatRoom"
        ),
    ]
    assert _replaced_definitions(cells) == [
        "cell 1 imports ChatRoom from writing_servers.state_machines; cell 0 defined it"
    ]
