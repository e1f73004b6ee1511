"""What every benchmark shares: paths, child processes with deadlines, statistics, machine facts.

A benchmark's servers and load generators run in child processes so that
each can be pinned to a core and none of them slows the others down by
holding the GIL.  :class:`Child` starts one, reads its stdout a line at a
time with a deadline, and always ends it, even when the benchmark fails.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
MIB = 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark could not measure what it was meant to; the message says why."""


# -- statistics ---------------------------------------------------------------


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample below which *fraction* of the samples lie (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[rank]


# -- processes ----------------------------------------------------------------


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards *wanted* (up to the hard limit); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def pin(pid: int, cores: set[int]) -> None:
    """Keep process (or thread) *pid* on *cores*, if this machine has them."""
    available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
    if cores <= available:
        os.sched_setaffinity(pid, cores)


def script(name: str) -> str:
    """Path of one of the benchmark scripts, for a child process's command line."""
    return str(HERE / name)


class Child:
    """A child Python process that speaks in lines on stdin/stdout, ended for sure on exit.

    Use it as a context manager: leaving the block closes its stdin (every
    benchmark child exits on EOF), then terminates and finally kills it.
    """

    def __init__(self, args: Sequence[str], name: str) -> None:
        self.name = name
        # stderr goes to a file: a pipe nobody reads would stall a chatty child once it filled.
        self._stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [PYTHON, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=REPO,
        )
        # stdout is read raw, a chunk at a time: a buffered reader could hold a whole line that
        # select() then never reports.
        self._pending = b""
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line.encode() + b"\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise BenchError(f"{self.name} exited early: {self._stderr_text()}") from None

    def readline(self, timeout: float) -> str | None:
        """The next stdout line, or None if none came within *timeout* seconds."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self._selector.select(left):
                return None
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise BenchError(f"{self.name} exited (status {self.process.wait(5)}): {self._stderr_text()}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def expect(self, prefix: str, timeout: float) -> str:
        """Read lines until one starts with *prefix*; return it.  Give up after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            line = self.readline(left)
            if line is not None and line.startswith(prefix):
                return line
        raise BenchError(f"{self.name} did not print {prefix!r} within {timeout:g} s")

    def expect_json(self, timeout: float) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.expect("{", timeout))
        return result

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().strip()
        return text[-2000:] or "(nothing on stderr)"

    def close(self) -> None:
        """Close stdin (the polite stop), then terminate, then kill; wait for it either way."""
        self._selector.close()
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        for stop in (None, self.process.terminate, self.process.kill):
            if stop is not None:
                stop()
            try:
                self.process.wait(5)
                break
            except subprocess.TimeoutExpired:
                continue
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def run_json(args: Sequence[str], name: str, timeout: float) -> dict[str, Any]:
    """Run a benchmark script to completion and return the JSON object it printed last."""
    with Child(args, name) as child:
        return child.expect_json(timeout)


# -- the machine ------------------------------------------------------------------


def machine_facts() -> dict[str, str]:
    """What the figures were measured on."""
    import twisted

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": model,
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "load average": " ".join(f"{load:.2f}" for load in os.getloadavg()),
        "open files (ulimit -n)": f"soft {soft}, hard {hard}",
    }


def git_state(measured: Sequence[str]) -> str:
    """The commit measured, and which of the *measured* paths had uncommitted changes (not, say, RESULTS.md)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", *measured],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = [line[3:] for line in changed if line.strip()]
    return (commit or "unknown") + (f" with uncommitted changes to {', '.join(dirty)}" if dirty else "")
