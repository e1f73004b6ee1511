"""How long each notebook is, against the budgets that make it one class period.

A section notebook has three parts, told apart by its ``## `` headings:

- the *core path*: everything from the title to ``## On your own``;
- the *exercises*: from ``## On your own`` to the next part;
- optional parts a teacher may skip: each ``## Going further: ...``, then
  ``## Use it in your project``, ``## Clean up`` and ``## Further reading``.

Budgets (issue "Course v2"): the core path has at most 1,500 words of prose,
no code cell over 30 lines, a median code cell of at most 10 lines, and is
stated (in a line under the title, "*About 25 minutes, and 20 for the
exercises.*") to take at most 25 minutes; the exercises at most 20; no
listing shown in a markdown cell is over 40 lines.  The stated times must
not be less than a plain estimate: 150 words of prose a minute, 4 seconds a
line of code and 20 seconds a code cell to run and look at, and for the
exercises 5 minutes an exercise besides their prose (a collapsed hint's words
count in those 5 minutes, not again as prose).

    python tools/stats.py           # print the table
    python tools/stats.py --check   # print it; exit 1 if any row is over a budget
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

CORE_WORDS = 1500
CORE_MINUTES = 25
EXERCISE_MINUTES = 20
LONGEST_CELL = 30
MEDIAN_CELL = 10
LONGEST_LISTING = 40

WORDS_PER_MINUTE = 150
SECONDS_PER_LINE = 4
SECONDS_PER_CELL = 20
MINUTES_PER_EXERCISE = 5

EXERCISES = "## On your own"
OPTIONAL = ("## Going further", "## Use it in your project", "## Clean up", "## Further reading")
STATED = re.compile(r"About (\d+) minutes(?:, and (\d+) for the exercises)?")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HINT = re.compile(r"<details>.*?</details>", re.DOTALL)
NAV_TAG = "navigation"


@dataclass
class Part:
    """Prose words and code cells of one part of a notebook."""

    words: int = 0
    code: list[int] = field(default_factory=list)  # lines per code cell
    exercises: int = 0  # cells tagged "exercise"

    def minutes(self) -> float:
        reading = self.words / WORDS_PER_MINUTE
        running = (sum(self.code) * SECONDS_PER_LINE + len(self.code) * SECONDS_PER_CELL) / 60
        return reading + running + self.exercises * MINUTES_PER_EXERCISE


@dataclass
class Stats:
    name: str
    core: Part
    exercises: Part
    stated_core: int | None
    stated_exercises: int | None
    longest_listing: int
    going_further: int  # how many "Going further" sections

    @property
    def longest_cell(self) -> int:
        return max(self.core.code, default=0)

    @property
    def median_cell(self) -> float:
        return statistics.median(self.core.code) if self.core.code else 0

    def problems(self) -> list[str]:
        found = []
        if self.core.words > CORE_WORDS:
            found.append(f"core prose {self.core.words} words > {CORE_WORDS}")
        if self.longest_cell > LONGEST_CELL:
            found.append(f"a core code cell of {self.longest_cell} lines > {LONGEST_CELL}")
        if self.median_cell > MEDIAN_CELL:
            found.append(f"median core code cell {self.median_cell} lines > {MEDIAN_CELL}")
        if self.longest_listing > LONGEST_LISTING:
            found.append(f"a listing of {self.longest_listing} lines > {LONGEST_LISTING}")
        if self.stated_core is None or self.stated_exercises is None:
            found.append('no "About N minutes, and M for the exercises" line under the title')
            return found
        if self.stated_core > CORE_MINUTES:
            found.append(f"states {self.stated_core} minutes > {CORE_MINUTES}")
        if self.stated_exercises > EXERCISE_MINUTES:
            found.append(f"states {self.stated_exercises} minutes of exercises > {EXERCISE_MINUTES}")
        if self.stated_core < round(self.core.minutes()):
            found.append(f"states {self.stated_core} minutes, estimate {self.core.minutes():.0f}")
        if self.stated_exercises < round(self.exercises.minutes()):
            found.append(
                f"states {self.stated_exercises} minutes of exercises, estimate {self.exercises.minutes():.0f}"
            )
        return found


def _tags(cell: nbformat.NotebookNode) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _headings(source: str) -> list[str]:
    return [line for line in source.splitlines() if line.startswith("## ")]


def _listing_lengths(markdown: str) -> list[int]:
    return [block.count("\n") - 1 for block in FENCE.findall(markdown)]


def stated_minutes(node: nbformat.NotebookNode) -> tuple[int | None, int | None]:
    """The minutes the line under the title states for the core path and the exercises."""
    for cell in node.cells:
        if cell.cell_type == "markdown" and NAV_TAG not in _tags(cell):
            found = STATED.search(cell.source)
            if found is None:
                return None, None
            core, exercises = found.groups()
            return int(core), int(exercises) if exercises else 0
    return None, None


def measure(path: Path) -> Stats:
    node = nbformat.read(path, as_version=4)
    core, exercises, optional = Part(), Part(), Part()
    part = core
    going_further = 0
    longest_listing = 0
    for cell in node.cells:
        if NAV_TAG in _tags(cell):
            continue
        if cell.cell_type == "markdown":
            for heading in _headings(cell.source):
                if heading.startswith(EXERCISES):
                    part = exercises
                elif heading.startswith(OPTIONAL):
                    part = optional
                    going_further += heading.startswith(OPTIONAL[0])
            longest_listing = max([longest_listing, *_listing_lengths(cell.source)])
            # A collapsed hint is read only when stuck: the minutes an exercise takes include it.
            part.words += len(HINT.sub("", FENCE.sub("", cell.source)).split())
        elif cell.cell_type == "code":
            part.code.append(len(cell.source.splitlines()))
            part.exercises += "exercise" in _tags(cell)
    stated_core, stated_exercises = stated_minutes(node)
    return Stats(path.stem, core, exercises, stated_core, stated_exercises, longest_listing, going_further)


def sections(folder: Path = NOTEBOOKS) -> list[Path]:
    """The section notebooks (every numbered notebook but the index)."""
    return [path for path in sorted(folder.glob("[0-9][0-9]-*.ipynb")) if not path.name.startswith("00-")]


def table(rows: list[Stats]) -> str:
    header = (
        "| notebook | core words | stated min | estimate | exercises min | estimate | code cells "
        "| longest | median | longest listing | going further | within budget |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for row in rows:
        problems = row.problems()
        lines.append(
            f"| {row.name} | {row.core.words} | {row.stated_core} | {row.core.minutes():.0f} "
            f"| {row.stated_exercises} | {row.exercises.minutes():.0f} | {len(row.core.code)} "
            f"| {row.longest_cell} | {row.median_cell:g} | {row.longest_listing} | {row.going_further} "
            f"| {'yes' if not problems else 'NO: ' + '; '.join(problems)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any notebook is over a budget")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every section notebook")
    args = parser.parse_args()
    rows = [measure(path) for path in (args.notebooks or sections())]
    print(table(rows))
    return 1 if args.check and any(row.problems() for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
