"""The results table: one row per measured case, printed and written as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("case", "ours", "alternative", "floor", "ratio", "target", "verdict")


@dataclass
class Row:
    """One case.  *ratio* is ours over what the target names (the alternative, or the floor)."""

    case: str
    ours: str
    alternative: str = "—"
    floor: str = "—"
    ratio: float | None = None
    target: str = "—"
    verdict: str = "info"

    def cells(self) -> tuple[str, ...]:
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f} ×"
        return (self.case, self.ours, self.alternative, self.floor, ratio, self.target, self.verdict)


def at_most(ratio: float, limit: float) -> str:
    return "meets" if ratio <= limit else "misses"


def at_least(ratio: float, limit: float) -> str:
    return "meets" if ratio >= limit else "misses"


def judged(
    case: str,
    ours: str,
    ratio: float,
    bound: str,
    limit: float,
    over: str,
    *,
    alternative: str = "—",
    floor: str = "—",
) -> Row:
    """A row whose verdict is *ratio* against *limit*: *bound* is "≤" (at most) or "≥" (at least)."""
    verdict = at_most(ratio, limit) if bound == "≤" else at_least(ratio, limit)
    return Row(case, ours, alternative, floor, ratio, f"{bound} {limit:g} × {over}", verdict)


def failed(case: str, error: BaseException) -> Row:
    """The row for a case that could not be measured."""
    return Row(case, f"could not measure: {type(error).__name__}: {error}"[:160], verdict="error")


def markdown(rows: Sequence[Row]) -> str:
    """A Markdown table, padded so that it also reads well in a terminal."""
    lines = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(COLUMNS))]

    def render(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([render(COLUMNS), rule, *(render(cells) for cells in lines[1:])])
