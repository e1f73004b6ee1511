"""Execute notebooks in place and store their outputs (what ``make notebooks`` runs).

Each notebook runs top to bottom in a fresh kernel of this environment, as
nbval will run it.  Execution counts are renumbered and timing metadata is
left out, so a re-run that changes nothing leaves the file unchanged.

    python tools/run_notebooks.py notebooks/01-Protocols.ipynb [...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT = 120


def run(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.paths:
        began = time.monotonic()
        run(path)
        print(f"ran {path} in {time.monotonic() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
