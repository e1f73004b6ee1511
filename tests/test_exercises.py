"""Every exercise check passes the reference solution and explains what an unsolved starter lacks.

Found from the notebooks themselves: cells tagged ``exercise`` are starters;
a cell calling ``check_<something>(Name)`` checks ``Name``; the section's
``writing_servers.solutions`` module defines the same ``Name``, solved.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

from writing_servers import lab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import sync_notebooks  # noqa: E402


def _check_calls(source: str) -> list[tuple[str, str]]:
    """``(check_function, argument_name)`` for each ``check_x(Name)`` or ``exercises.check_x(Name)`` in *source*."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and len(node.args) == 1 and isinstance(node.args[0], ast.Name)):
            continue
        function = node.func
        name = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
        if name.startswith("check_"):
            calls.append((name, node.args[0].id))
    return calls


def _cases() -> list[Any]:
    cases = []
    for notebook in sync_notebooks.course():
        starters = [c.source for c in notebook.node.cells if "exercise" in sync_notebooks.tags(c)]
        for cell in notebook.node.cells:
            if cell.cell_type == "code" and "exercise" not in sync_notebooks.tags(cell):
                for check, name in _check_calls(cell.source):
                    cases.append(
                        pytest.param(notebook, starters, check, name, id=f"{notebook.path.stem}:{check}")
                    )
    return cases


CASES = _cases()


def _section(notebook: sync_notebooks.Notebook) -> str:
    assert notebook.module is not None
    return notebook.module.rsplit(".", 1)[1]


def _check(notebook: sync_notebooks.Notebook, check: str) -> Any:
    return getattr(importlib.import_module(f"writing_servers.exercises.{_section(notebook)}"), check)


def test_every_section_notebook_has_two_to_four_checked_exercises() -> None:
    """Each section notebook ends with 2-4 exercises, each with a check cell."""
    for notebook in sync_notebooks.course()[1:]:
        count = sum(1 for case in CASES if case.values[0].path == notebook.path)
        assert 2 <= count <= 4, f"{notebook.path.name} has {count} checked exercises"


@pytest.mark.parametrize(("notebook", "starters", "check", "name"), CASES)
def test_solution_passes(
    notebook: sync_notebooks.Notebook, starters: list[str], check: str, name: str
) -> None:
    """The reference solution passes every line of its check."""
    solution = getattr(importlib.import_module(f"writing_servers.solutions.{_section(notebook)}"), name)
    report = _check(notebook, check)(solution)
    assert report.passed, repr(report)


@pytest.mark.parametrize(("notebook", "starters", "check", "name"), CASES)
def test_unsolved_starter_is_explained(
    notebook: sync_notebooks.Notebook, starters: list[str], check: str, name: str
) -> None:
    """The notebook's unsolved starter fails its check with readable lines, not an exception."""
    assert notebook.module is not None
    namespace: dict[str, Any] = dict(vars(importlib.import_module(notebook.module)))
    for source in starters:
        exec(compile(source, f"<{notebook.path.name} exercise>", "exec"), namespace)
    report = _check(notebook, check)(namespace[name])
    assert not report.passed
    text = repr(report)
    assert "✗" in text and "Traceback" not in text and 'File "' not in text
    assert lab.servers() == [], "the check left a server running"


def _numbered_cases() -> list[Any]:
    """``(notebook, number, check, name)``: each checked exercise with its number in its notebook."""
    numbered, counts = [], {}
    for case in CASES:
        notebook, _, check, name = case.values
        counts[notebook.path] = counts.get(notebook.path, 0) + 1
        numbered.append(pytest.param(notebook, counts[notebook.path], check, name, id=case.id))
    return numbered


@pytest.mark.parametrize(("notebook", "number", "check", "name"), _numbered_cases())
def test_solution_on_request_passes_when_pasted(
    notebook: sync_notebooks.Notebook, number: int, check: str, name: str
) -> None:
    """``solution(n)`` shows code that, run where the notebook's code runs, passes exercise n's check."""
    assert notebook.module is not None
    shown = importlib.import_module(f"writing_servers.exercises.{_section(notebook)}").solution(number)
    assert shown.why.strip() and "Why it works" in repr(shown)
    namespace: dict[str, Any] = dict(vars(importlib.import_module(notebook.module)))
    namespace.update(_imports_of(f"writing_servers.solutions.{_section(notebook)}"))
    exec(compile(shown.code, f"<solution({number})>", "exec"), namespace)
    assert name in namespace, f"solution({number}) does not define {name}"
    report = _check(notebook, check)(namespace[name])
    assert report.passed, repr(report)


def _imports_of(module_name: str) -> dict[str, Any]:
    """The names *module_name* imports, which the notebook imports in its own cells."""
    module = importlib.import_module(module_name)
    tree = ast.parse(Path(module.__file__ or "").read_text())
    names = [
        alias.asname or alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    return {name: getattr(module, name) for name in names if hasattr(module, name)}
