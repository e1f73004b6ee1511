"""Keep notebooks in step with the package: module code in cells, navigation, the index.

The classes and functions a notebook cell defines are copies of the same
definitions in the notebook's section module (named in the notebook's
metadata as ``writing_servers.module``).  This script rewrites each such
definition from the module, so the module is the one source of truth; the
test suite runs it with ``--check`` and fails on any difference.

It also writes the navigation cells (tagged ``navigation``: contents,
previous, next) at the top and bottom of every numbered notebook, and the
list of notebooks in 00-Index (the cell tagged ``course-contents``).

Cells tagged ``howto-as-written`` or ``exercise`` are left alone: they show
code on purpose that is not the module's.

    python tools/sync_notebooks.py          # rewrite notebooks in place
    python tools/sync_notebooks.py --check  # exit 1 and list what differs
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
INDEX = "00-Index.ipynb"
EXEMPT_TAGS = {"howto-as-written", "exercise"}
NAV_TAG = "navigation"
CONTENTS_TAG = "course-contents"


@dataclass
class Notebook:
    path: Path
    node: nbformat.NotebookNode

    @property
    def title(self) -> str:
        for cell in self.node.cells:
            if cell.cell_type == "markdown" and NAV_TAG not in tags(cell):
                for line in cell.source.splitlines():
                    if line.startswith("# "):
                        return line[2:].strip()
        raise ValueError(f"{self.path.name}: no '# ' title in its first content cell")

    @property
    def summary(self) -> str:
        return str(self.node.metadata.get("writing_servers", {}).get("summary", ""))

    @property
    def module(self) -> str | None:
        name = self.node.metadata.get("writing_servers", {}).get("module")
        return str(name) if name else None


def tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def course(folder: Path = NOTEBOOKS) -> list[Notebook]:
    paths = sorted(folder.glob("[0-9][0-9]-*.ipynb"))
    return [Notebook(path, nbformat.read(path, as_version=4)) for path in paths]


# -- module code ------------------------------------------------------------------


def definitions(source: str) -> dict[str, str]:
    """Top-level class and function definitions in *source*, by name, as text."""
    tree = ast.parse(source)
    found = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            found[node.name] = "\n".join(source.splitlines()[first - 1 : node.end_lineno])
    return found


def synced_source(cell_source: str, module_source: str, where: str) -> str:
    """*cell_source* with each definition replaced by the module's text of it."""
    module_defs = definitions(module_source)
    result = cell_source
    for name, text in definitions(cell_source).items():
        if name not in module_defs:
            raise SystemExit(
                f"{where}: defines {name!r}, which its module does not; "
                f"add it to the module or tag the cell {sorted(EXEMPT_TAGS)}"
            )
        result = result.replace(text, module_defs[name])
    return result


def sync_code(notebook: Notebook) -> list[str]:
    """Update definition cells from the module; return what changed."""
    changed = []
    module_source = None
    if notebook.module:
        module_source = inspect.getsource(importlib.import_module(notebook.module))
    for number, cell in enumerate(notebook.node.cells):
        if cell.cell_type != "code" or tags(cell) & EXEMPT_TAGS:
            continue
        if not definitions(cell.source):
            continue
        where = f"{notebook.path.name} cell {number}"
        if module_source is None:
            raise SystemExit(f"{where}: defines code but the notebook names no writing_servers.module")
        new = synced_source(cell.source, module_source, where)
        if new != cell.source:
            cell.source = new
            changed.append(f"{where}: code differs from {notebook.module}")
    return changed


# -- navigation and the index ------------------------------------------------------


def navigation(notebooks: list[Notebook], index: int) -> str:
    parts = [f"[Contents]({INDEX})"]
    if index > 1:
        previous = notebooks[index - 1]
        parts.insert(0, f"< [{previous.title}]({previous.path.name})")
    if index + 1 < len(notebooks):
        following = notebooks[index + 1]
        parts.append(f"[{following.title}]({following.path.name}) >")
    return " | ".join(parts)


def contents(notebooks: list[Notebook]) -> str:
    rows = ["## The notebooks", ""]
    for notebook in notebooks[1:]:
        rows.append(f"- [{notebook.title}]({notebook.path.name}): {notebook.summary}")
    return "\n".join(rows)


def set_cell(notebook: Notebook, position: int, tag: str, source: str, changed: list[str]) -> None:
    """Make the cell at *position* a markdown cell tagged *tag* with *source*."""
    cells = notebook.node.cells
    existing = cells[position] if -len(cells) <= position < len(cells) else None
    if existing is not None and tag in tags(existing):
        if existing.source != source:
            existing.source = source
            changed.append(f"{notebook.path.name}: {tag} cell out of date")
        return
    cell = nbformat.v4.new_markdown_cell(source, metadata={"tags": [tag]})
    if position == -1:
        cells.append(cell)
    else:
        cells.insert(position, cell)
    changed.append(f"{notebook.path.name}: {tag} cell missing")


def sync_navigation(notebooks: list[Notebook]) -> list[str]:
    changed: list[str] = []
    for index, notebook in enumerate(notebooks):
        if index == 0:
            for cell in notebook.node.cells:
                if CONTENTS_TAG in tags(cell) and cell.source != contents(notebooks):
                    cell.source = contents(notebooks)
                    changed.append(f"{notebook.path.name}: course contents out of date")
            continue
        links = navigation(notebooks, index)
        set_cell(notebook, 0, NAV_TAG, links, changed)
        set_cell(notebook, -1, NAV_TAG, links, changed)
    return changed


def sync(check: bool, folder: Path = NOTEBOOKS) -> list[str]:
    """Bring every notebook in *folder* up to date (unless *check*); return what differed."""
    notebooks = course(folder)
    before = {notebook.path: nbformat.writes(notebook.node) for notebook in notebooks}
    changed = sync_navigation(notebooks)
    for notebook in notebooks:
        changed += sync_code(notebook)
    if not check:
        for notebook in notebooks:
            if nbformat.writes(notebook.node) != before[notebook.path]:
                nbformat.write(notebook.node, notebook.path)
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if anything differs")
    args = parser.parse_args()
    changed = sync(args.check)
    for entry in changed:
        print(entry)
    if args.check and changed:
        print("notebooks are out of step with the package: run `make sync`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
