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
code on purpose that is not the module's.  A cell whose own metadata names a
``writing_servers.module`` is synced from that module instead: a definition
one section explains but another section's module holds.

Every numbered notebook ends its lesson with a *Clean up* step: a code cell
tagged ``clean-up`` whose source is exactly ``print(lab.clean_up())``, after
the exercises and their checks (so nothing they start outlives the notebook).
A notebook without one gets one, with its heading, just before
``## Further reading``.

A markdown cell tagged ``project`` ("Use it in your project") is written
whole from the module as one fenced block (```python ... ```): the
definitions its metadata names (``writing_servers.program``, say
``["CountingEchoFactory", "main"]``), the constants, definitions and imports
they use (definitions from other course modules inlined, so it needs only
Twisted), and a ``__main__`` guard that calls ``main()``; a complete program
to save in a file and run.  It is markdown, not code, because in a kernel
``__name__`` is ``"__main__"`` too: run as a cell, it would serve forever.

    python tools/sync_notebooks.py          # rewrite notebooks in place
    python tools/sync_notebooks.py --check  # exit 1 and list what differs
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
INDEX = "00-Index.ipynb"
EXEMPT_TAGS = {"howto-as-written", "exercise"}
PROJECT_TAG = "project"
PROGRAM_FENCE = "```python"
NAV_TAG = "navigation"
CONTENTS_TAG = "course-contents"
CLEAN_UP_TAG = "clean-up"
CLEAN_UP_SOURCE = "print(lab.clean_up())"
CLEAN_UP_TEXT = (
    "## Clean up\n\n"
    "Last, stop every server that is still listening. Stopping a server also drops the connections still open to\n"
    "it, so nothing this notebook started outlives it:"
)
FURTHER_READING = "## Further reading"


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


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
        return {node.name}
    if isinstance(node, ast.Assign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return {name.id for target in targets for name in ast.walk(target) if isinstance(name, ast.Name)}
    return set()


def _used_names(nodes: list[ast.stmt]) -> set[str]:
    used = {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name)}
    # Names in string annotations ("CountingEchoFactory") count too.
    for node in nodes:
        for constant in ast.walk(node):
            if isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                used.update(word for word in constant.value.replace(".", " ").split() if word.isidentifier())
    return used


def _definitions_with_needs(module: str, names: set[str], where: str) -> tuple[list[str], list[str]]:
    """Import lines and definition texts for *names* from *module*, dependencies first.

    Names a definition takes from another course module are inlined (so the
    program needs only Twisted); other imports are kept as they are.
    """
    source = inspect.getsource(importlib.import_module(module))
    tree = ast.parse(source)
    lines = source.splitlines()
    defined = {name for node in tree.body if not _is_import(node) for name in _bound_names(node)}
    missing = names - defined
    if missing:
        raise SystemExit(f"{where}: {module} has no {sorted(missing)} for its program")
    wanted = set(names)
    while True:  # add the module-level constants and definitions the chosen ones use
        chosen = [node for node in tree.body if not _is_import(node) and _bound_names(node) & wanted]
        more = (_used_names(chosen) & defined) - wanted
        if not more:
            break
        wanted |= more
    used = _used_names(chosen)
    imports: list[str] = []
    texts: list[str] = []
    for node in tree.body:
        if not _is_import(node) or not (_bound_names(node) & used or _is_future(node)):
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("writing_servers"):
            inlined = {alias.name for alias in node.names if (alias.asname or alias.name) in used}
            more_imports, more_texts = _definitions_with_needs(node.module or "", inlined, where)
            imports += more_imports
            texts += [text for text in more_texts if text not in texts]
        else:
            imports.append("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    for node in chosen:
        first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) else node.lineno
        texts.append("\n".join(lines[first - 1 : node.end_lineno]))
    return imports, texts


def _is_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.Import | ast.ImportFrom)


def _is_future(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and node.module == "__future__"


def program_source(module: str, names: list[str], where: str) -> str:
    """A complete program: the named definitions, what they need, and a ``__main__`` guard.

    The text is put through ruff (import order, formatting), as every cell is.
    """
    imports, texts = _definitions_with_needs(module, set(names), where)
    unique_imports = list(dict.fromkeys(imports))
    guard = 'if __name__ == "__main__":\n    raise SystemExit(main())'
    program = "\n".join(unique_imports) + "\n\n\n" + "\n\n\n".join([*texts, guard]) + "\n"
    for command in (["check", "--select", "I,F401", "--fix", "--quiet"], ["format", "--quiet"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", "program.py", "-"],
            input=program,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        program = result.stdout or program
    return program.rstrip("\n")


def program_block(program: str) -> str:
    """*program* as the source of a project cell: one fenced Python block."""
    return f"{PROGRAM_FENCE}\n{program}\n```"


def program_in(cell_source: str) -> str:
    """The program in a project cell's source (the inverse of :func:`program_block`)."""
    body = cell_source.removeprefix(PROGRAM_FENCE + "\n").removesuffix("\n```")
    if program_block(body) != cell_source:
        raise ValueError("a project cell is one fenced ```python block and nothing else")
    return body


def sync_code(notebook: Notebook) -> list[str]:
    """Update definition cells from the module; return what changed."""
    changed = []
    module_source = None
    if notebook.module:
        module_source = inspect.getsource(importlib.import_module(notebook.module))
    for number, cell in enumerate(notebook.node.cells):
        cell_module = cell.get("metadata", {}).get("writing_servers", {}).get("module")
        where = f"{notebook.path.name} cell {number}"
        if PROJECT_TAG in tags(cell):
            names = cell.metadata.get("writing_servers", {}).get("program", [])
            if cell.cell_type != "markdown" or module_source is None or not names:
                raise SystemExit(
                    f"{where}: a project cell is a markdown cell in a notebook with a module, "
                    "and its metadata lists the program's definitions"
                )
            new = program_block(program_source(notebook.module or "", list(names), where))
            if new != cell.source:
                cell.source = new
                changed.append(f"{where}: program differs from {notebook.module}")
            continue
        if cell.cell_type != "code" or tags(cell) & EXEMPT_TAGS:
            continue
        if not definitions(cell.source):
            continue
        if cell_module:  # a definition this notebook explains but another section's module holds
            source, module = inspect.getsource(importlib.import_module(cell_module)), cell_module
        elif module_source is not None:
            source, module = module_source, notebook.module
        else:
            raise SystemExit(f"{where}: defines code but the notebook names no writing_servers.module")
        new = synced_source(cell.source, source, where)
        if new != cell.source:
            cell.source = new
            changed.append(f"{where}: code differs from {module}")
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


# -- the clean-up step ---------------------------------------------------------------


def _runs_a_check(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and ("exercise" in tags(cell) or "check_" in cell.source)


def sync_clean_up(notebook: Notebook) -> list[str]:
    """Give a section notebook its clean-up cell, after every exercise; return what changed."""
    cells = notebook.node.cells
    name = notebook.path.name
    found = [number for number, cell in enumerate(cells) if CLEAN_UP_TAG in tags(cell)]
    if len(found) > 1:
        raise SystemExit(f"{name}: cells {found} are tagged {CLEAN_UP_TAG!r}; keep one")
    if not found:
        heading = [n for n, cell in enumerate(cells) if cell.source.startswith(FURTHER_READING)]
        if not heading:
            raise SystemExit(
                f"{name}: no clean-up cell, and no cell starting {FURTHER_READING!r} to put one before"
            )
        cells[heading[-1] : heading[-1]] = [
            nbformat.v4.new_markdown_cell(CLEAN_UP_TEXT),
            nbformat.v4.new_code_cell(CLEAN_UP_SOURCE, metadata={"tags": [CLEAN_UP_TAG]}),
        ]
        return [f"{name}: clean-up cell missing"]
    cell = cells[found[0]]
    if cell.cell_type != "code":
        raise SystemExit(f"{name} cell {found[0]}: the {CLEAN_UP_TAG!r} cell must be a code cell")
    later = [n for n, other in enumerate(cells) if n > found[0] and _runs_a_check(other)]
    if later:
        raise SystemExit(
            f"{name}: cells {later} (exercises and checks) come after the clean-up cell; move it"
        )
    if cell.source != CLEAN_UP_SOURCE:
        cell.source = CLEAN_UP_SOURCE
        return [f"{name} cell {found[0]}: clean-up cell differs from {CLEAN_UP_SOURCE!r}"]
    return []


def sync(check: bool, folder: Path = NOTEBOOKS) -> list[str]:
    """Bring every notebook in *folder* up to date (unless *check*); return what differed."""
    notebooks = course(folder)
    before = {notebook.path: nbformat.writes(notebook.node) for notebook in notebooks}
    changed = sync_navigation(notebooks)
    for notebook in notebooks:
        changed += sync_code(notebook)
    for notebook in notebooks[1:]:
        changed += sync_clean_up(notebook)
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
