"""The course's programs to copy: one file each, written out by ``writing-servers export NAME``.

Each section notebook's "Use it in your project" step points to a complete
program in ``writing_servers/examples/`` (written there from the section
module by ``tools/sync_notebooks.py``).  A program needs only Twisted, so a
person can copy the file into a project of their own.  The first line of its
docstring says which notebook it comes from and what it serves.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import resources
from pathlib import Path

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # importlib.abc's, deprecated from 3.12 and gone in 3.14
    from importlib.abc import Traversable

__all__ = ["ExportError", "describe", "export", "programs"]

#: The first line of a program's docstring, as tools/sync_notebooks.py writes it.
SUMMARY = re.compile(r"Notebook (\d+) \((.*?)\) as a program: (.*?)\.?")


class ExportError(Exception):
    """A program could not be written out; the message says why, in one line."""


def programs() -> dict[str, Traversable]:
    """Every program, by the name ``writing-servers export`` takes (``counting-echo``), in notebook order."""
    files = [entry for entry in resources.files("writing_servers").joinpath("examples").iterdir()]
    found = {
        entry.name.removesuffix(".py").replace("_", "-"): entry
        for entry in files
        if entry.name.endswith(".py")
    }
    return dict(sorted(found.items(), key=lambda item: (describe(item[1])[0], item[0])))


def describe(program: Traversable) -> tuple[int, str]:
    """The notebook *program* comes from, and what it serves (from its docstring's first line)."""
    docstring = ast.get_docstring(ast.parse(program.read_text(encoding="utf-8"))) or ""
    found = SUMMARY.fullmatch(docstring.partition("\n")[0])
    if found is None:
        raise ValueError(f"{program.name} does not start with 'Notebook N (Title) as a program: ...'")
    return int(found[1]), found[3]


def export(name: str, folder: Path, force: bool = False) -> Path:
    """Write the program called *name* into *folder*; return the file written.

    An existing file is left alone unless *force*: it may be the reader's own edited copy.
    """
    available = programs()
    program = available.get(name)
    if program is None:
        raise ExportError(f"no program named {name!r}; the programs are: {', '.join(available)}")
    target = folder / program.name
    if target.exists() and not force:
        raise ExportError(f"{target} already exists; keep it, or write over it with --force")
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder")
    target.write_text(program.read_text(encoding="utf-8"), encoding="utf-8")
    return target
