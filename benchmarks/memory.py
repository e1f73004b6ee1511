"""Case 4: memory.  What the runtime and every course server cost, and what a reader who stops costs.

* runtime: a fresh process imports the course, then starts the background
  reactor (``lab.start()``) and listens with every server of the command
  line's registry (``writing-servers list``) through ``lab.listen``; its
  resident set size (RSS) is read after each step;
* slow reader: a chat server (ours, then the asyncio one) in a process of its
  own; a driver joins 20 clients and one more that never reads again, and the
  20 chat with 600-byte lines.  The server's RSS is sampled every quarter
  second; a bound on what a stalled peer may cost shows as a flat line.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

import common
import psutil
from table import Row

FAST_CLIENTS = 20
SECONDS, QUICK_SECONDS = 10.0, 3.0
WINDOW = 20  # 600-byte messages in flight: 12 KB for each reader that keeps up
SAMPLE_EVERY = 0.25
BOUNDED_GROWTH_MIB = 2.0  # RSS may grow this much over the second half of the run and still count as flat
RSS_CEILING_MIB = 2048  # stop a run whose server grows past this: the answer is already "unbounded"


def rss_mib(pid: int | None = None) -> float:
    return psutil.Process(pid or os.getpid()).memory_info().rss / common.MIB


def runtime_steps() -> dict[str, Any]:
    """In a fresh process: RSS after each step of starting the runtime and every course server."""
    steps = {"python + psutil": rss_mib()}
    from writing_servers import cli, lab

    steps["imported the course (Twisted, every section)"] = rss_mib()
    lab.start()
    steps["lab.start()"] = rss_mib()
    with tempfile.TemporaryDirectory() as scratch:
        args = argparse.Namespace(
            log=os.path.join(scratch, "log.txt"), **{"quote": cli.OPTION_DEFAULTS["quote"]}
        )
        each = {}
        for name, server in cli.SERVERS.items():
            before = rss_mib()
            lab.listen(server.build(args), name=name)
            each[name] = rss_mib() - before
        steps[f"lab.listen() x {len(cli.SERVERS)}"] = rss_mib()
        listening = len(lab.servers())
        threads = psutil.Process().num_threads()
        lab.shutdown()
    return {"steps": steps, "each": each, "servers": listening, "threads": threads}


def slow_reader(kind: str, seconds: float) -> dict[str, Any]:
    """Run the slow-reader load against *kind*'s chat server; sample its RSS as it goes."""
    from chat import SERVERS

    with common.Child([common.script(SERVERS[kind])], f"{kind} chat server") as server:
        port = server.expect("PORT ", timeout=30).split()[1]
        common.pin(server.pid, {0})
        args = [common.script("chat_driver.py"), "--port", port, "--clients", str(FAST_CLIENTS)]
        args += ["--seconds", str(seconds), "--window", str(WINDOW), "--slow-reader"]
        with common.Child(args, "chat driver") as driver:
            common.pin(driver.pid, {1})
            driver.expect("READY", timeout=60)
            before = rss_mib(server.pid)
            started = time.monotonic()
            driver.send("GO")
            samples: list[tuple[float, float]] = []
            result: dict[str, Any] | None = None
            while result is None:
                line = driver.readline(SAMPLE_EVERY)
                samples.append((time.monotonic() - started, rss_mib(server.pid) - before))
                if samples[-1][1] > RSS_CEILING_MIB:
                    raise common.BenchError(f"the {kind} server grew past {RSS_CEILING_MIB} MiB")
                if line is not None and line.startswith("{"):
                    result = json.loads(line)
                elif time.monotonic() - started > seconds + 60:
                    raise common.BenchError("the slow-reader driver did not finish")
    half = samples[-1][0] / 2
    at_half = next(growth for at, growth in samples if at >= half)
    result.update(
        rss_before_mib=before,
        samples=samples,
        growth_mib=samples[-1][1],
        second_half_growth_mib=samples[-1][1] - at_half,
        peak_growth_mib=max(growth for _, growth in samples),
    )
    return result


def run(quick: bool) -> dict[str, Any]:
    seconds = QUICK_SECONDS if quick else SECONDS
    return {
        "runtime": common.run_json([common.script("memory.py"), "runtime"], "runtime memory", timeout=120),
        "slow reader": {kind: slow_reader(kind, seconds) for kind in ("twisted", "asyncio")},
    }


def bounded(figures: dict[str, Any]) -> bool:
    return bool(figures["second_half_growth_mib"] <= BOUNDED_GROWTH_MIB)


def rows(results: dict[str, Any]) -> list[Row]:
    steps = list(results["runtime"]["steps"].items())
    imported, listening = steps[1][1], steps[-1][1]
    twisted, asyncio_ = results["slow reader"]["twisted"], results["slow reader"]["asyncio"]

    def slow(figures: dict[str, Any]) -> str:
        return f"+{figures['growth_mib']:.1f} MiB (2nd half {figures['second_half_growth_mib']:+.1f})"

    return [
        Row(
            f"memory: lab.start() + {results['runtime']['servers']} course servers",
            f"+{listening - imported:.1f} MiB RSS",
            floor=f"{imported:.1f} MiB after imports",
            target="none set (reported)",
        ),
        Row(
            f"memory: chat server, 1 of {FAST_CLIENTS + 1} clients stops reading",
            slow(twisted)
            + (
                ""
                if twisted["dropped_after_s"] is None
                else f", cut off at {twisted['dropped_after_s']:.1f} s"
            ),
            "asyncio " + slow(asyncio_),
            target="bounded (flat 2nd half)",
            verdict="meets" if bounded(twisted) else "misses",
        ),
    ]


def report(results: dict[str, Any]) -> str:
    runtime = results["runtime"]
    lines = ["| step | RSS (MiB) | growth (MiB) |", "|---|---|---|"]
    previous = None
    for step, value in runtime["steps"].items():
        growth = "" if previous is None else f"{value - previous:+.1f}"
        lines.append(f"| {step} | {value:.1f} | {growth} |")
        previous = value
    costly = sorted(runtime["each"].items(), key=lambda item: -item[1])[:3]
    lines += [
        "",
        f"{runtime['servers']} servers listening on one reactor thread; the process had {runtime['threads']} threads. "
        "Costliest listens: " + ", ".join(f"{name} {growth:+.1f} MiB" for name, growth in costly) + ".",
        "",
        "Slow reader: server RSS growth (MiB) since the load started, once a second:",
        "",
    ]
    slow = results["slow reader"]
    seconds = int(max(figures["samples"][-1][0] for figures in slow.values()))
    lines += ["| server | " + " | ".join(f"{s} s" for s in range(1, seconds + 1)) + " | end |"]
    lines += ["|---|" + "---|" * (seconds + 1)]
    for kind, figures in slow.items():
        cells = []
        for second in range(1, seconds + 1):
            growth = next((g for at, g in figures["samples"] if at >= second), figures["samples"][-1][1])
            cells.append(f"{growth:+.1f}")
        lines.append(f"| {kind} | " + " | ".join(cells) + f" | {figures['growth_mib']:+.1f} |")
    lines.append("")
    for kind, figures in slow.items():
        cut = figures["dropped_after_s"]
        when = "never cut off" if cut is None else f"cut off after {cut:.2f} s"
        lines.append(
            f"- {kind}: {figures['messages']:,} messages of {figures['message_bytes']} bytes sent; the slow reader was "
            f"{when} and at the end was "
            f"{figures['slow_reader']}; RSS peak +{figures['peak_growth_mib']:.1f} MiB, "
            f"{'bounded' if bounded(figures) else 'still growing'} over the second half."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["runtime"])
    parser.parse_args()
    print(json.dumps(runtime_steps()), flush=True)


if __name__ == "__main__":
    main()


def findings(results: dict[str, Any]) -> list[str]:
    steps = list(results["runtime"]["steps"].items())
    name, costliest = max(results["runtime"]["each"].items(), key=lambda item: item[1])
    twisted = results["slow reader"]["twisted"]
    cut = twisted["dropped_after_s"]
    return [
        f"Memory: the runtime and {results['runtime']['servers']} servers add {steps[-1][1] - steps[1][1]:.1f} MiB to a "
        f"process that already holds {steps[1][1]:.1f} MiB after importing the course; the costliest is {name} "
        f"({costliest:+.1f} MiB).",
        f"Memory, slow reader: the chat server grew {twisted['growth_mib']:+.1f} MiB over the run "
        f"({twisted['second_half_growth_mib']:+.1f} in its second half) and "
        + (f"cut the reader off after {cut:.1f} s" if cut is not None else "never cut the reader off")
        + "; until then the kernel's socket buffers absorb what it does not read.",
    ]
