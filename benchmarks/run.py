"""make bench: run every case, print the table, and record it in benchmarks/RESULTS.md.

    python benchmarks/run.py            # everything, a few minutes; writes RESULTS.md
    python benchmarks/run.py --quick    # smaller and shorter, to check the benchmarks work
    python benchmarks/run.py --only echo,chat,startup,student-memory,make-test

A quick or partial run prints its table but leaves RESULTS.md alone unless
``--results PATH`` says where to write.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

import chat
import common
import echo
import memory
import nbval_suite
import report
import stage_times
import startup
import student_memory
from table import Row, failed, markdown

CASES: dict[str, ModuleType] = {
    "notebooks": nbval_suite,
    "echo": echo,
    "chat": chat,
    "memory": memory,
    "startup": startup,
    "student-memory": student_memory,
    "make-test": stage_times,
}


def stop(signal_number: int, frame: object) -> None:
    """SIGTERM: unwind like Ctrl-C does, so that every child process is ended on the way out."""
    raise SystemExit(128 + signal_number)


def main() -> int:
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and clients, shorter phases")
    parser.add_argument("--only", help=f"comma-separated cases out of: {', '.join(CASES)}")
    parser.add_argument(
        "--results", type=Path, help="where to write the Markdown (default: RESULTS.md on a full run)"
    )
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(CASES)
    unknown = set(chosen) - set(CASES)
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; the cases are {', '.join(CASES)}")
    results_path = args.results
    if results_path is None and not args.quick and not args.only:
        results_path = common.HERE / "RESULTS.md"

    facts = common.machine_facts()
    rows: list[Row] = []
    sections: dict[str, str] = {}
    timings: dict[str, float] = {}
    findings: list[str] = []
    status = 0
    for name in chosen:
        module = CASES[name]
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            results = module.run(args.quick)
            rows += module.rows(results)
            sections[name] = module.report(results)
            findings += module.findings(results)
        except Exception as error:  # one broken case must not hide the others' figures
            status = 1
            rows.append(failed(name, error))
            sections[name] = "Could not be measured:\n\n```\n" + traceback.format_exc() + "```"
            traceback.print_exc()
        timings[name] = time.monotonic() - started
        print(f"bench: {name} took {timings[name]:.0f} s", file=sys.stderr, flush=True)

    print(markdown(rows))
    if results_path is not None:
        report.write(results_path, facts, rows, sections, findings, timings, args.quick)
        print(f"\nwritten to {results_path}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
