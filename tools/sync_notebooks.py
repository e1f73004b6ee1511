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

A markdown cell tagged ``project`` ("Use it in your project") points to a
complete program to copy: a file ``src/writing_servers/examples/<name>.py``
that this script writes from the module.  The cell's metadata names the
definitions the program is built from (``writing_servers.program``, say
``["CountingEchoFactory", "main"]``), its ``name`` (what ``writing-servers
export NAME`` takes) and what to ``show``: the definitions that are new in
the program (at most 40 lines; usually just ``main``).  The file holds those
definitions, the constants, definitions and imports they use (definitions
from other course modules inlined, so it needs only Twisted), and a
``__main__`` guard that calls ``main()``.  The cell is markdown, not code,
because in a kernel ``__name__`` is ``"__main__"`` too: run as a cell, the
program would serve forever.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stats  # tools/stats.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
INDEX = "00-Index.ipynb"
EXEMPT_TAGS = {"howto-as-written", "exercise"}
PROJECT_TAG = "project"
EXAMPLES = ROOT / "src" / "writing_servers" / "examples"
#: The most lines a project cell shows of its program; the rest is in the file.
SHOWN_LINES = 40
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


def program_source(module: str, names: list[str], where: str, docstring: str = "") -> str:
    """A complete program: the named definitions, what they need, and a ``__main__`` guard.

    The text is put through ruff (import order, formatting), as every cell is.
    """
    imports, texts = _definitions_with_needs(module, set(names), where)
    unique_imports = list(dict.fromkeys(imports))
    guard = 'if __name__ == "__main__":\n    raise SystemExit(main())'
    head = f'"""{docstring}"""\n\n' if docstring else ""
    program = head + "\n".join(unique_imports) + "\n\n\n" + "\n\n\n".join([*texts, guard]) + "\n"
    for command in (["check", "--select", "I,F401,UP037", "--fix", "--quiet"], ["format", "--quiet"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", "program.py", "-"],
            input=program,
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
        program = result.stdout or program
    return program.rstrip("\n") + "\n"


@dataclass
class Program:
    """The standalone program a notebook's project cell points to."""

    notebook: Notebook
    name: str  # what `writing-servers export NAME` takes
    roots: list[str]  # the definitions it is built from
    show: list[str]  # the definitions the cell shows

    @property
    def path(self) -> Path:
        return EXAMPLES / f"{self.name.replace('-', '_')}.py"

    def docstring(self) -> str:
        number, _, title = self.notebook.title.partition(". ")
        main = importlib.import_module(self.notebook.module or "").main
        summary = (main.__doc__ or "").splitlines()[0].removesuffix("; return the exit status.")
        return (
            f"Notebook {number} ({title.partition(':')[0]}) as a program: {summary[:1].lower()}{summary[1:]}.\n\n"
            "A program of the writing-servers course that needs only Twisted (pip install twisted).\n"
            f"Run it with `python {self.path.name}`; `--help` lists its options.\n\n"
            f"Written from {self.notebook.module} by tools/sync_notebooks.py: change the module, not this file.\n"
        )

    def source(self, where: str) -> str:
        return program_source(self.notebook.module or "", self.roots, where, self.docstring())

    def cell(self, program: str, where: str) -> str:
        """The project cell's markdown: what is new in *program*, and how to get the whole file."""
        found = definitions(program)
        missing = [name for name in self.show if name not in found]
        if missing:
            raise SystemExit(f"{where}: the program has no {missing} to show")
        shown = "\n\n\n".join(found[name] for name in self.show)
        if len(shown.splitlines()) > SHOWN_LINES:
            raise SystemExit(f"{where}: shows {len(shown.splitlines())} lines; at most {SHOWN_LINES}")
        return (
            f"The whole program is one file, [`{self.path.name}`](../{self.path.relative_to(ROOT).as_posix()}): "
            f"{len(program.splitlines())} lines that need only Twisted. "
            f"What it adds to the code above:\n\n```python\n{shown}\n```\n\n"
            "Write the file into the current folder, then run it (Ctrl-C stops it):\n\n"
            f"```sh\nwriting-servers export {self.name}\npython {self.path.name}\n```"
        )


def programs(notebooks: list[Notebook]) -> list[tuple[Program, nbformat.NotebookNode, str]]:
    """Each project cell in *notebooks*, with the program it points to and where it is."""
    found = []
    for notebook in notebooks:
        for number, cell in enumerate(notebook.node.cells):
            if PROJECT_TAG not in tags(cell):
                continue
            where = f"{notebook.path.name} cell {number}"
            meta = cell.get("metadata", {}).get("writing_servers", {})
            if (
                cell.cell_type != "markdown"
                or not notebook.module
                or not meta.get("program")
                or not meta.get("name")
            ):
                raise SystemExit(
                    f"{where}: a project cell is a markdown cell in a notebook with a module, and its "
                    "metadata gives the program's definitions (program) and its name (name)"
                )
            program = Program(
                notebook, str(meta["name"]), list(meta["program"]), list(meta.get("show", ["main"]))
            )
            found.append((program, cell, where))
    return found


def sync_programs(notebooks: list[Notebook], check: bool) -> list[str]:
    """Write every program file and project cell (unless *check*); return what differed."""
    changed = []
    wanted = set()
    for program, cell, where in programs(notebooks):
        if program.path in wanted:
            raise SystemExit(f"{where}: another notebook already has a program named {program.name!r}")
        wanted.add(program.path)
        text = program.source(where)
        if not program.path.exists() or program.path.read_text(encoding="utf-8") != text:
            changed.append(f"{program.path.relative_to(ROOT)}: differs from {program.notebook.module}")
            if not check:
                EXAMPLES.mkdir(exist_ok=True)
                program.path.write_text(text, encoding="utf-8")
        new = program.cell(text, where)
        if new != cell.source:
            cell.source = new
            changed.append(f"{where}: project cell out of date")
    for stale in sorted(set(EXAMPLES.glob("*.py")) - wanted):
        changed.append(f"{stale.relative_to(ROOT)}: no notebook's project cell names it")
        if not check:
            stale.unlink()
    return changed


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
            continue  # written by sync_programs
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
    rows = [
        "## The notebooks",
        "",
        "Each notebook is one class period: a lesson to read and run, then exercises (the minutes each",
        "takes are beside its title). Its *Going further* sections are optional: for later, or for the curious.",
        "",
    ]
    for notebook in notebooks[1:]:
        core, exercises = stats.stated_minutes(notebook.node)
        time = f" *({core} + {exercises} minutes)*" if core is not None else ""
        rows.append(f"- [{notebook.title}]({notebook.path.name}){time}: {notebook.summary}")
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
    read_at = {path: path.stat().st_mtime_ns for path in folder.glob("[0-9][0-9]-*.ipynb")}
    notebooks = course(folder)
    before = {notebook.path: nbformat.writes(notebook.node) for notebook in notebooks}
    changed = sync_navigation(notebooks)
    for notebook in notebooks:
        changed += sync_code(notebook)
    if folder == NOTEBOOKS:  # a copy of the course elsewhere (tests) has no program files of its own
        changed += sync_programs(notebooks, check)
    for notebook in notebooks[1:]:
        changed += sync_clean_up(notebook)
    if not check:
        for notebook in notebooks:
            if nbformat.writes(notebook.node) != before[notebook.path]:
                # Someone saved it while we worked (JupyterLab, another sync): theirs wins.
                if notebook.path.stat().st_mtime_ns != read_at.get(notebook.path):
                    changed.append(
                        f"{notebook.path.name}: saved by someone else meanwhile; not written, run again"
                    )
                    continue
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
