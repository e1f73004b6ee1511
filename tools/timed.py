"""Run one stage of ``make test`` and record how long it took.

    python tools/timed.py STAGE -- COMMAND [ARGS...]

Runs COMMAND with this terminal's stdin, stdout and stderr, exits with its
status, and appends one tab-separated line to ``build/make-test-times.tsv``:
stage, seconds, exit status, UTC time, git commit.  ``make bench`` reads the
latest line of each stage.  ``MAKE_TEST_TIMES`` names another file (the
tests use it).  The command runs for as long as it runs: each stage has
timeouts of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TIMES = REPO / "build" / "make-test-times.tsv"
USAGE = "usage: python tools/timed.py STAGE -- COMMAND [ARGS...]"


def times_file() -> Path:
    return Path(os.environ.get("MAKE_TEST_TIMES") or DEFAULT_TIMES)


def commit() -> str:
    """The short commit checked out, with "+changes" when tracked files differ from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+changes" if changed else "")


def record(stage: str, seconds: float, status: int) -> None:
    path = times_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("a") as tsv:
        tsv.write(f"{stage}\t{seconds:.2f}\t{status}\t{when}\t{commit()}\n")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0] or "\t" in argv[0]:
        print(USAGE, file=sys.stderr)
        return 2
    stage, command = argv[0], argv[2:]
    started = time.monotonic()
    try:
        status = subprocess.call(command)
    except OSError as error:  # no such command: recorded as a failed stage, as a shell would say it
        print(f"timed.py: cannot run {command[0]}: {error}", file=sys.stderr)
        status = 127
    except KeyboardInterrupt:  # Ctrl-C reached the command too; record the stage as interrupted
        status = 130
    record(stage, time.monotonic() - started, status)
    # A command killed by a signal has a negative status: exit as a shell would, 128 + the signal.
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
