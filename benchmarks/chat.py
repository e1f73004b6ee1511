"""Case 3: chat fan-out and sustained deliveries, 1,000 clients on one thread.

Each server runs in a process of its own on core 0; the load generator
(:mod:`chat_driver`) runs in another on core 1.  Servers:

* ours: the course's ``writing_servers.chat.ChatFactory`` on Twisted's reactor
  (:mod:`twisted_chat`), whatever ``chat.py`` holds at the time of the run;
* bare Twisted: the leanest Twisted chat that says the same bytes
  (:mod:`bare_twisted_chat`), to tell what the course adds from what
  Twisted costs;
* the alternative: the same chat with asyncio streams (:mod:`asyncio_chat`);
* the floor: a bare epoll loop that does nothing but the conversation
  (:mod:`floor_chat`).

A last run profiles the Twisted server with pyinstrument during the
sustained phase only.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import common
import psutil
from table import Row, judged

SERVERS = {
    "twisted": "twisted_chat.py",
    "bare": "bare_twisted_chat.py",
    "asyncio": "asyncio_chat.py",
    "floor": "floor_chat.py",
}
KINDS = tuple(SERVERS)
CLIENTS, QUICK_CLIENTS = 1000, 200
ROUNDS = 2  # each server runs this many times, taking turns with the others
FAN_OUTS, QUICK_FAN_OUTS = 15, 5  # per round
SECONDS, QUICK_SECONDS = 3.0, 1.0  # sustained phase, per round
WINDOW = 200  # messages in flight during the sustained phase: a busy room, 1 in 5 people talking
BURST_SENDERS, BURST_SIZE = 200, 1000  # 200 people press Enter on a 1,000-byte line at once
FAN_OUT_OVER_BARE = 1.1  # ours over the bare Twisted chat, at most
SUSTAINED_OVER_BARE = 0.9  # ours over the bare Twisted chat, at least
SUSTAINED_OVER_ASYNCIO = 4.0  # ours over asyncio, at least


def measure(
    kind: str, clients: int, fan_outs: int, seconds: float, burst: int = 0, profile: Path | None = None
) -> dict[str, Any]:
    """Start *kind*'s server and a driver with *clients*; run the phases; return the driver's figures."""
    common.raise_fd_limit(clients + 200)
    with common.Child([common.script(SERVERS[kind])], f"{kind} chat server") as server:
        port = server.expect("PORT ", timeout=30).split()[1]
        common.pin(server.pid, {0})
        driver_args = [common.script("chat_driver.py"), "--port", port, "--clients", str(clients)]
        driver_args += ["--fan-outs", str(fan_outs), "--seconds", str(seconds), "--window", str(WINDOW)]
        driver_args += ["--burst-senders", str(burst), "--burst-size", str(BURST_SIZE)]
        with common.Child(driver_args, "chat driver") as driver:
            common.pin(driver.pid, {1})
            driver.expect("READY", timeout=180)
            memory = psutil.Process(server.pid).memory_info().rss
            if profile is not None:
                server.send("profile-start")
                server.expect("PROFILING", timeout=10)
            driver.send("GO")
            result = driver.expect_json(timeout=120 + seconds)
            if profile is not None:
                server.send(f"profile-stop {profile}")
                server.expect("PROFILED", timeout=120)
        result["server_rss_mib"] = memory / common.MIB
    return result


def combined(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's rounds as one result: every fan-out, the best sustained rate, the last round's burst."""
    best = max(runs, key=lambda figures: figures["deliveries_per_s"])
    return {
        **runs[-1],
        **{key: best[key] for key in ("messages", "deliveries", "deliveries_per_s", "messages_per_s")},
        "fan_out_ms": [ms for figures in runs for ms in figures["fan_out_ms"]],
        "rates": [figures["deliveries_per_s"] for figures in runs],
    }


def run(quick: bool) -> dict[str, Any]:
    clients = QUICK_CLIENTS if quick else CLIENTS
    fan_outs = QUICK_FAN_OUTS if quick else FAN_OUTS
    seconds = QUICK_SECONDS if quick else SECONDS
    rounds = 1 if quick else ROUNDS
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for number in range(rounds):  # the servers take turns, so that a busy moment hits them all
        for kind in KINDS:
            burst = min(BURST_SENDERS, clients) if number == rounds - 1 else 0
            runs[kind].append(measure(kind, clients, fan_outs, seconds, burst))
    results: dict[str, Any] = {kind: combined(runs[kind]) for kind in KINDS}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "profile.json"
        measure("twisted", clients, 0, seconds, profile=path)
        results["profile"] = json.loads(path.read_text())
    return results


def rows(results: dict[str, Any]) -> list[Row]:
    twisted, bare, asyncio_, floor = (results[kind] for kind in KINDS)
    clients = twisted["clients"]

    def fan_out(figures: dict[str, Any]) -> str:
        return f"{common.median(figures['fan_out_ms']):.1f} ms"

    def sustained(figures: dict[str, Any]) -> str:
        return f"{figures['deliveries_per_s'] / 1e6:.2f} M/s"

    fan_outs = {kind: common.median(results[kind]["fan_out_ms"]) for kind in KINDS}
    rates = {kind: results[kind]["deliveries_per_s"] for kind in KINDS}
    others = {"alternative": "asyncio " + sustained(asyncio_), "floor": "bare Twisted " + sustained(bare)}
    return [
        judged(
            f"chat fan-out, {clients:,} clients (median), over bare Twisted",
            fan_out(twisted),
            fan_outs["twisted"] / fan_outs["bare"],
            "≤",
            FAN_OUT_OVER_BARE,
            "bare Twisted",
            alternative="asyncio " + fan_out(asyncio_),
            floor="bare Twisted " + fan_out(bare),
        ),
        judged(
            f"chat sustained deliveries, {clients:,} clients, over bare Twisted",
            sustained(twisted),
            rates["twisted"] / rates["bare"],
            "≥",
            SUSTAINED_OVER_BARE,
            "bare Twisted",
            **others,
        ),
        judged(
            f"chat sustained deliveries, {clients:,} clients, over asyncio",
            sustained(twisted),
            rates["twisted"] / rates["asyncio"],
            "≥",
            SUSTAINED_OVER_ASYNCIO,
            "asyncio",
            **others,
        ),
        Row(
            f"chat fan-out, {clients:,} clients (median), over asyncio",
            fan_out(twisted),
            "asyncio " + fan_out(asyncio_),
            "epoll " + fan_out(floor),
            fan_outs["twisted"] / fan_outs["asyncio"],
            "reported (Twisted's design)",
            "info",
        ),
        Row(
            f"chat burst: {twisted['burst_senders']} send {twisted['burst_size']:,} B at once, readers cut off",
            cut_off(twisted),
            "asyncio " + cut_off(asyncio_),
            "epoll " + cut_off(floor),
            target="0 (every client reads)",
            verdict="meets" if twisted["burst_dropped"] == 0 else "misses",
        ),
    ]


def cut_off(figures: dict[str, Any]) -> str:
    return f"{figures['burst_dropped']} of {figures['clients']:,}"


#: Where time goes in the Twisted chat server, by the file a function lives in.
AREAS = {
    "twisted/internet/epollreactor.py": "reactor: epoll and dispatch",
    "twisted/internet/posixbase.py": "reactor: epoll and dispatch",
    "twisted/internet/base.py": "reactor: epoll and dispatch",
    "twisted/python/log.py": "reactor: epoll and dispatch",
    "twisted/python/context.py": "reactor: epoll and dispatch",
    "twisted/internet/abstract.py": "Twisted write buffering (FileDescriptor.write/doWrite)",
    "twisted/internet/tcp.py": "Twisted TCP transport (send/recv calls)",
    "twisted/internet/_newtls.py": "Twisted TCP transport (send/recv calls)",
    "twisted/protocols/basic.py": "LineReceiver: splitting lines",
    "writing_servers/chat.py": "course code: chat.py",
    "writing_servers/helper_protocols.py": "course code: TextLineReceiver",
}


def area(where: str) -> str:
    for marker, name in AREAS.items():
        if marker in where:
            return name
    if where.startswith("<built-in>"):
        return "built-ins (send, recv, epoll, join, ...)"
    return "other"


def profile_report(profile: dict[str, Any]) -> str:
    total = profile["self_total"] or 1.0
    by_area: dict[str, float] = defaultdict(float)
    for _, where, seconds in profile["self_times"]:
        by_area[area(where)] += seconds
    lines = [
        f"pyinstrument, {profile['samples']:,} samples over {profile['duration']:.1f} s of sustained load "
        f"(CPU {profile['cpu_time']:.1f} s). Time spent *in* each function, not in what it calls:",
        "",
        "| share | seconds | function | where |",
        "|---|---|---|---|",
    ]
    for function, where, seconds in profile["self_times"][:15]:
        lines.append(f"| {seconds / total:.0%} | {seconds:.2f} | `{function}` | `{where}` |")
    lines += [
        "",
        "Grouped by where the code lives (the 40 costliest functions):",
        "",
        "| share | area |",
        "|---|---|",
    ]
    for name, seconds in sorted(by_area.items(), key=lambda item: -item[1]):
        lines.append(f"| {seconds / total:.0%} | {name} |")
    tree = "\n".join(profile["tree"].splitlines()[:70])
    lines += [
        "",
        "<details><summary>The call tree (first 70 lines)</summary>",
        "",
        "```",
        tree,
        "```",
        "</details>",
    ]
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    lines = [
        "| server | join all (s) | fan-out median ms | min | max | deliveries/s (best) | each round | messages/s "
        "| RSS joined (MiB) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in KINDS:
        figures = results[kind]
        times = figures["fan_out_ms"]
        rates = ", ".join(f"{rate:,.0f}" for rate in figures["rates"])
        lines.append(
            f"| {kind} | {figures['join_s']:.2f} | {common.median(times):.1f} | {min(times):.1f} | {max(times):.1f} "
            f"| {figures['deliveries_per_s']:,.0f} | {rates} | {figures['messages_per_s']:,.0f} "
            f"| {figures['server_rss_mib']:.1f} |"
        )
    twisted = results["twisted"]
    lines += [
        "",
        f"{twisted['clients']:,} clients; {len(twisted['rates'])} round(s) per server, the servers taking turns; "
        f"{len(twisted['fan_out_ms'])} fan-outs per server in all (each round after 3 to warm up), then "
        f"{WINDOW} messages in flight for the sustained phase ({twisted['messages']:,} messages, "
        f"{twisted['deliveries']:,} deliveries in Twisted's best round, every one counted).",
        "",
        f"Burst, last: {twisted['burst_senders']} clients each send one {twisted['burst_size']:,}-byte line at the "
        f"same moment while every client reads as fast as it can. Lines delivered afterwards: "
        + ", ".join(f"{kind} {results[kind]['burst_lines']:,}" for kind in KINDS)
        + f" of {twisted['burst_senders'] * (twisted['clients'] - 1):,} (a client cut off takes its own line "
        "down with it if the server had not read it yet).",
        "",
        "### Where the Twisted chat server spends its time",
        "",
        profile_report(results["profile"]),
    ]
    return "\n".join(lines)


def findings(results: dict[str, Any]) -> list[str]:
    twisted, bare, asyncio_ = results["twisted"], results["bare"], results["asyncio"]
    fan_out_over_bare = common.median(twisted["fan_out_ms"]) / common.median(bare["fan_out_ms"])
    profile = results["profile"]
    total = profile["self_total"] or 1.0
    by_area: dict[str, float] = defaultdict(float)
    for _, where, seconds in profile["self_times"]:
        by_area[area(where)] += seconds
    ours = sum(seconds for name, seconds in by_area.items() if name.startswith("course code"))
    write_path = by_area["Twisted write buffering (FileDescriptor.write/doWrite)"]
    return [
        f"Chat, what the course adds: fan-out to {twisted['clients']:,} takes "
        f"{common.median(twisted['fan_out_ms']):.1f} ms against {common.median(bare['fan_out_ms']):.1f} ms for a bare "
        f"LineReceiver room on the same reactor ({fan_out_over_bare:.2f} ×); sustained deliveries "
        f"{twisted['deliveries_per_s'] / bare['deliveries_per_s']:.2f} × the bare room's.",
        f"Chat against asyncio: fan-out {common.median(twisted['fan_out_ms']):.1f} ms against "
        f"{common.median(asyncio_['fan_out_ms']):.1f} ms ({common.median(twisted['fan_out_ms']) / common.median(asyncio_['fan_out_ms']):.2f} ×), "
        f"sustained deliveries {twisted['deliveries_per_s'] / asyncio_['deliveries_per_s']:.1f} × asyncio's. The fan-out "
        "ratio is reported, not judged: it is Twisted's, not the course's (the bare room's fan-out is "
        f"{common.median(bare['fan_out_ms']) / common.median(asyncio_['fan_out_ms']):.2f} × asyncio's), as each "
        "transport.write is queued, and costs an epoll_ctl to start writing and one to stop once sent.",
        f"Chat profile (sustained load): {write_path / total:.0%} of the server's time is Twisted's per-write "
        f"bookkeeping (FileDescriptor.write, startWriting/addWriter, producer checks), {ours / total:.0%} the "
        "course's broadcast loop and send_bytes, once per recipient per message; socket calls are a small share "
        "because Twisted sends each connection's queue in one send() per reactor pass.",
        f"Chat burst: when {twisted['burst_senders']} of {twisted['clients']:,} clients send a "
        f"{twisted['burst_size']:,}-byte line at once, the server cuts off {twisted['burst_dropped']} readers that "
        f"were all reading (asyncio: {asyncio_['burst_dropped']})."
        + (
            " Twisted queues a whole reactor pass of writes before sending any, so its buffer passes bufferSize "
            "(64 KiB) and MAX_UNSENT within one pass: the bound counts a burst as a stalled reader."
            if twisted["burst_dropped"]
            else " A whole reactor pass of writes (200 kB for each reader) fits within MAX_UNSENT (1 MiB)."
        ),
    ]
