"""Case: how long a student waits before the course is ready, against a kernel that only imports Twisted.

* kernel: seconds from asking jupyter_client for a new kernel to the
  execute reply of its first cell: notebook 08's first code cell as stored
  (the course's imports and ``lab.start()``), against a kernel whose first
  cell is ``from twisted.internet import reactor``.  The two take turns.
* imports: the same two cells in a fresh Python (no Jupyter), timed from
  inside: the cell's import statements, then the rest (``lab.start()``),
  and which heavy modules (matplotlib, tqdm, hypothesis, ...) were loaded.

A fresh Python runs a few lines (:data:`TIMED_CELL`) and nothing else
before the cell, so that the harness loads no module the cell would.
"""

from __future__ import annotations

import ast
import time
from typing import Any

import common
from table import Row, judged

KERNEL_ROUNDS, QUICK_KERNEL_ROUNDS = 6, 2
IMPORT_ROUNDS, QUICK_IMPORT_ROUNDS = 10, 3
TARGET = 1.2  # the course over the bare Twisted kernel, at most
KINDS = ("course", "bare")
#: Modules no first cell should pull in: a cell that needs one imports it when it runs.
HEAVY = ("matplotlib", "numpy", "tqdm", "hypothesis", "pandas", "pyinstrument")


def cells() -> dict[str, str]:
    import kernels

    return {"course": kernels.first_cell(), "bare": kernels.BARE_CELL}


#: Runs in a fresh Python that has loaded nothing else: argv[1] the cell's imports, argv[2] the rest.
TIMED_CELL = """\
import json, sys, time
namespace = {}
started = time.perf_counter()
exec(sys.argv[1], namespace)
imported = time.perf_counter()
exec(sys.argv[2], namespace)
finished = time.perf_counter()
heavy = [name for name in sys.argv[3].split(",") if name in sys.modules]
print(json.dumps({"import_s": imported - started, "rest_s": finished - imported,
                  "cell_s": finished - started, "heavy": heavy}), flush=True)
"""


def split_imports(source: str) -> tuple[str, str]:
    """The cell's import statements, and everything else, as two pieces of source in their order."""
    tree = ast.parse(source)
    imports = [node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    rest = [node for node in tree.body if not isinstance(node, ast.Import | ast.ImportFrom)]
    return ast.unparse(imports), ast.unparse(rest)


def in_fresh_python(source: str) -> dict[str, Any]:
    """Run *source* in a new Python process, timing its imports and the rest apart."""
    imports, rest = split_imports(source)
    return common.run_json(["-c", TIMED_CELL, imports, rest, ",".join(HEAVY)], "a first cell", timeout=120)


def kernel_to_first_cell(source: str) -> dict[str, Any]:
    """Seconds from a new kernel to its first cell's reply; the heavy modules loaded by then."""
    import kernels

    started = time.perf_counter()
    with kernels.kernel() as (_, client):
        ready = time.perf_counter()
        kernels.run_cell(client, source)
        seconds = time.perf_counter() - started
        heavy = kernels.loaded(client, HEAVY)
    return {"seconds": seconds, "ready_s": ready - started, "heavy": heavy}


def run(quick: bool) -> dict[str, Any]:
    sources = cells()
    kernel_rounds = QUICK_KERNEL_ROUNDS if quick else KERNEL_ROUNDS
    import_rounds = QUICK_IMPORT_ROUNDS if quick else IMPORT_ROUNDS
    results: dict[str, Any] = {kind: {"kernel": [], "imports": []} for kind in KINDS}
    kernel_to_first_cell(sources["bare"])  # not counted: the first kernel reads cold files
    for number in range(kernel_rounds):
        for kind in KINDS if number % 2 == 0 else reversed(KINDS):  # neither always goes first
            results[kind]["kernel"].append(kernel_to_first_cell(sources[kind]))
    for _ in range(import_rounds):
        for kind in KINDS:
            results[kind]["imports"].append(in_fresh_python(sources[kind]))
    results["cells"] = sources
    return results


def medians(results: dict[str, Any], kind: str) -> dict[str, float]:
    figures = results[kind]
    return {
        "kernel_s": common.median([run["seconds"] for run in figures["kernel"]]),
        "import_s": common.median([run["import_s"] for run in figures["imports"]]),
        "cell_s": common.median([run["cell_s"] for run in figures["imports"]]),
        "rest_s": common.median([run["rest_s"] for run in figures["imports"]]),
        "ready_s": common.median([run["ready_s"] for run in figures["kernel"]]),
    }


def heavy_loaded(results: dict[str, Any], kind: str) -> list[str]:
    found = {name for run in results[kind]["imports"] for name in run["heavy"]}
    return sorted(found)


def rows(results: dict[str, Any]) -> list[Row]:
    course, bare = medians(results, "course"), medians(results, "bare")
    kernel_ratio = course["kernel_s"] / bare["kernel_s"]
    cell_ratio = course["cell_s"] / bare["cell_s"]
    heavy = heavy_loaded(results, "course")
    return [
        judged(
            "start-up: new kernel to the first cell's reply (notebook 08)",
            f"{course['kernel_s']:.2f} s",
            kernel_ratio,
            "≤",
            TARGET,
            "floor",
            floor=f"Twisted-only kernel {bare['kernel_s']:.2f} s",
        ),
        judged(
            "start-up: first cell in a fresh Python (imports + lab.start())",
            f"{course['cell_s'] * 1000:.0f} ms (imports {course['import_s'] * 1000:.0f})",
            cell_ratio,
            "≤",
            TARGET,
            "floor",
            floor=f"import reactor {bare['cell_s'] * 1000:.0f} ms",
        ),
        Row(
            "start-up: heavy modules the first cell loads",
            ", ".join(heavy) if heavy else "none",
            target="none",
            verdict="meets" if not heavy else "misses",
        ),
    ]


def report(results: dict[str, Any]) -> str:
    lines = [
        "| first cell | kernel to reply, s (each) | in a fresh Python: imports ms | the rest ms | whole cell ms |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        figures = medians(results, kind)
        each = ", ".join(f"{run['seconds']:.2f}" for run in results[kind]["kernel"])
        lines.append(
            f"| {kind} | {figures['kernel_s']:.2f} ({each}) | {figures['import_s'] * 1000:.0f} "
            f"| {figures['rest_s'] * 1000:.0f} | {figures['cell_s'] * 1000:.0f} |"
        )
    kernel_heavy = sorted({name for run in results["course"]["kernel"] for name in run["heavy"]})
    bare_heavy = sorted({name for run in results["bare"]["kernel"] for name in run["heavy"]})
    lines += [
        "",
        f"Medians of {len(results['course']['kernel'])} kernel(s) and {len(results['course']['imports'])} fresh "
        "process(es) per cell. The course's first cell:",
        "",
        "```python",
        results["cells"]["course"],
        "```",
        "",
        "Heavy modules loaded after the first cell: in a fresh Python "
        + (", ".join(heavy_loaded(results, "course")) or "none")
        + "; in the course's kernel "
        + (", ".join(kernel_heavy) or "none")
        + " (the Twisted-only kernel: "
        + (", ".join(bare_heavy) or "none")
        + ").",
    ]
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    course, bare = medians(results, "course"), medians(results, "bare")
    return [
        f"Start-up: a new kernel answers the course's first cell after {course['kernel_s']:.2f} s against "
        f"{bare['kernel_s']:.2f} s for one that imports only Twisted's reactor "
        f"({course['kernel_s'] / bare['kernel_s']:.2f} ×), of which {course['ready_s']:.2f} s is the kernel starting "
        f"(its first kernel_info reply). The course's "
        f"imports take {course['import_s'] * 1000:.0f} ms and lab.start() {course['rest_s'] * 1000:.0f} ms "
        f"(Twisted's reactor alone: {bare['cell_s'] * 1000:.0f} ms); heavy modules loaded: "
        + (", ".join(heavy_loaded(results, "course")) or "none")
        + "."
    ]
