"""Case: what one student's kernel costs the machine, and the course's share of it.

* course: a new kernel runs notebook 08 top to bottom (nbclient, as
  ``make nbval`` and the grader do; a quick run stops after its first
  :data:`QUICK_CELLS` code cells); its RSS and PSS with every server it
  started stopped by the notebook's last cell and the kernel still running;
* floor: a new kernel that has run ``from twisted.internet import reactor``
  and nothing else.

The difference is what the course adds to a kernel: its own modules, the
background reactor thread, what the notebook's cells kept.  PSS counts each
page shared with other processes (libraries mapped by both kernels) in
part, so it is the fair share of a machine full of students.
"""

from __future__ import annotations

from typing import Any

from table import Row, at_most

TARGET_MIB = 30.0  # what the course may add to a kernel, at most
QUICK_CELLS = 6


def course_kernel(cells: int | None) -> dict[str, Any]:
    """Run notebook 08 (its first *cells* code cells, or all) in a new kernel; its memory at the end."""
    import kernels
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(kernels.STUDENT_NOTEBOOK, as_version=4)
    if cells is not None:
        code = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
        if len(code) > cells:
            notebook.cells = notebook.cells[: code[cells]]
    with kernels.kernel() as (manager, client):
        runner = NotebookClient(notebook, km=manager, timeout=kernels.CELL_TIMEOUT)
        runner.kc = client
        for index, cell in enumerate(notebook.cells):
            runner.execute_cell(cell, index)  # raises on an error a cell is not tagged to raise
        figures = kernels.memory(manager)
    ran = sum(cell.cell_type == "code" for cell in notebook.cells)
    return {**figures, "cells": ran}


def bare_kernel() -> dict[str, Any]:
    import kernels

    with kernels.kernel() as (manager, client):
        kernels.run_cell(client, kernels.BARE_CELL)
        return kernels.memory(manager)


def run(quick: bool) -> dict[str, Any]:
    return {"bare": bare_kernel(), "course": course_kernel(QUICK_CELLS if quick else None)}


def added(results: dict[str, Any], measure: str) -> float:
    return float(results["course"][measure] - results["bare"][measure])


def rows(results: dict[str, Any]) -> list[Row]:
    course, bare = results["course"], results["bare"]
    extra = added(results, "rss_mib")
    return [
        Row(
            f"memory per student: kernel after notebook 08 ({course['cells']} cells)",
            f"RSS {course['rss_mib']:.0f} MiB, PSS {course['pss_mib']:.0f}",
            floor=f"Twisted-only kernel RSS {bare['rss_mib']:.0f}, PSS {bare['pss_mib']:.0f}",
            ratio=course["rss_mib"] / bare["rss_mib"],
            target=f"course adds ≤ {TARGET_MIB:g} MiB",
            verdict=at_most(extra, TARGET_MIB),
        ),
    ]


def report(results: dict[str, Any]) -> str:
    course, bare = results["course"], results["bare"]
    lines = ["| kernel | RSS MiB | PSS MiB | USS MiB |", "|---|---|---|---|"]
    for label, figures in (
        (f"notebook 08, {course['cells']} code cells run", course),
        ("`from twisted.internet import reactor` only", bare),
    ):
        lines.append(
            f"| {label} | {figures['rss_mib']:.1f} | {figures['pss_mib']:.1f} | {figures['uss_mib']:.1f} |"
        )
    lines += [
        "",
        f"The course adds {added(results, 'rss_mib'):+.1f} MiB RSS ({added(results, 'pss_mib'):+.1f} MiB PSS) to a "
        f"kernel: {added(results, 'rss_mib') / course['rss_mib']:.0%} of the course kernel's RSS.",
    ]
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    course = results["course"]
    return [
        f"Memory per student: after notebook 08 ({course['cells']} code cells) a kernel holds {course['rss_mib']:.0f} MiB RSS "
        f"({course['pss_mib']:.0f} MiB PSS); the course's share, over a kernel that imported only Twisted's "
        f"reactor, is {added(results, 'rss_mib'):+.1f} MiB RSS ({added(results, 'pss_mib'):+.1f} MiB PSS)."
    ]
