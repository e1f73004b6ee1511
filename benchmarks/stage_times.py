"""Case: how long each stage of ``make test`` took, as ``tools/timed.py`` recorded it.

Nothing is run here: ``make test`` wraps each stage in ``tools/timed.py``,
which appends ``stage, seconds, exit status, UTC time, commit`` to
``build/make-test-times.tsv``.  This reads the latest line of each stage,
so a stage that has become slow shows in the table beside the time the
same stage took on its run before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import common
from table import Row

STAGES = ("lint", "typecheck", "stats", "unit", "nbval", "nbval-fd-limits", "site", "e2e")
FIELDS = ("stage", "seconds", "status", "when", "commit")


def times_file() -> Path:
    return Path(os.environ.get("MAKE_TEST_TIMES") or common.REPO / "build" / "make-test-times.tsv")


def read(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every recorded run of each stage, oldest first; lines that do not parse are skipped."""
    runs: dict[str, list[dict[str, Any]]] = {}
    text = path.read_text() if path.exists() else ""
    for line in text.splitlines():
        cells = line.split("\t")
        if len(cells) != len(FIELDS):
            continue
        entry: dict[str, Any] = dict(zip(FIELDS, cells, strict=True))
        try:
            entry["seconds"] = float(entry["seconds"])
            entry["status"] = int(entry["status"])
        except ValueError:
            continue
        runs.setdefault(entry["stage"], []).append(entry)
    return runs


def run(quick: bool) -> dict[str, Any]:
    path = times_file()
    return {"path": str(path), "runs": read(path)}


def shown_path(results: dict[str, Any]) -> str:
    path = Path(results["path"])
    return str(path.relative_to(common.REPO)) if path.is_relative_to(common.REPO) else str(path)


def rows(results: dict[str, Any]) -> list[Row]:
    runs = results["runs"]
    if not runs:
        return [
            Row(
                "make test stages",
                f"nothing recorded in {shown_path(results)}: run `make test` first",
                verdict="no data",
            )
        ]
    table = []
    for stage in [*STAGES, *sorted(set(runs) - set(STAGES))]:
        if stage not in runs:
            table.append(Row(f"make test: {stage}", "not recorded", verdict="no data"))
            continue
        latest, *before = reversed(runs[stage])
        previous = before[0] if before else None
        table.append(
            Row(
                f"make test: {stage}",
                f"{latest['seconds']:.1f} s ({latest['when']}, {latest['commit']})",
                floor="—" if previous is None else f"run before {previous['seconds']:.1f} s",
                ratio=None
                if previous is None or previous["seconds"] <= 0
                else latest["seconds"] / previous["seconds"],
                target="reported (over the run before)",
                verdict="info" if latest["status"] == 0 else f"failed (exit {latest['status']})",
            )
        )
    return table


def report(results: dict[str, Any]) -> str:
    runs = results["runs"]
    if not runs:
        return f"No stage recorded yet in `{shown_path(results)}`: run `make test` first."
    lines = [
        "| stage | seconds | exit status | finished (UTC) | commit | runs recorded |",
        "|---|---|---|---|---|---|",
    ]
    for stage, entries in runs.items():
        latest = entries[-1]
        lines.append(
            f"| {stage} | {latest['seconds']:.1f} | {latest['status']} | {latest['when']} | {latest['commit']} "
            f"| {len(entries)} |"
        )
    total = sum(entries[-1]["seconds"] for entries in runs.values())
    lines += [
        "",
        f"The latest run of each stage adds up to {total:.0f} s; read from `{shown_path(results)}`.",
    ]
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    runs = results["runs"]
    if not runs:
        return ["make test: no stage times recorded yet (`make test` records them through tools/timed.py)."]
    slowest = max(runs, key=lambda stage: runs[stage][-1]["seconds"])
    commits = sorted({entries[-1]["commit"] for entries in runs.values()})
    return [
        f"make test: the slowest stage is {slowest} ({runs[slowest][-1]['seconds']:.0f} s); the latest runs are of "
        f"commit {', '.join(commits)}."
    ]
