"""The course's chat server as the benchmark runs it: ``ChatFactory`` on Twisted's reactor, in this process.

It listens on a free loopback port and prints ``PORT <n>``.  Commands on
stdin, one per line: ``profile-start`` starts pyinstrument (answer
``PROFILING``); ``profile-stop PATH`` stops it and writes the profile to
PATH as JSON (answer ``PROFILED``).  The end of stdin stops the server.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import common
from twisted.internet import reactor, stdio
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure

from writing_servers.chat import ChatFactory


def self_times(root: Any) -> list[tuple[str, str, float]]:
    """(function, where, seconds spent in it and not in what it called), most first."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    stack = [root]
    while stack:
        frame = stack.pop()
        children = frame.children
        own = frame.time - sum(child.time for child in children)
        named = frame.parent if frame.is_synthetic and frame.parent is not None else frame  # "[self]"
        function = f"{named.class_name}.{named.function}" if named.class_name else named.function
        totals[(function, f"{named.file_path_short}:{named.line_no}")] += own
        stack.extend(children)
    return sorted(((name, where, seconds) for (name, where), seconds in totals.items()), key=lambda t: -t[2])


class Control(LineReceiver):
    """The benchmark's side channel: stdin and stdout."""

    delimiter = b"\n"

    def __init__(self) -> None:
        self.profiler: Any = None

    def lineReceived(self, line: bytes) -> None:
        command, _, argument = line.decode().strip().partition(" ")
        if command == "profile-start":
            from pyinstrument import Profiler

            self.profiler = Profiler(interval=0.001)
            self.profiler.start()
            self.sendLine(b"PROFILING")
        elif command == "profile-stop" and self.profiler is not None:
            session = self.profiler.stop()
            spent = self_times(session.root_frame())
            profile = {
                "duration": session.duration,
                "cpu_time": session.cpu_time,
                "samples": session.sample_count,
                "self_total": sum(seconds for _, _, seconds in spent),
                "self_times": spent[:40],
                "tree": self.profiler.output_text(unicode=True, color=False, show_all=True),
            }
            Path(argument).write_text(json.dumps(profile))
            self.profiler = None
            self.sendLine(b"PROFILED")

    def connectionLost(self, reason: Failure | None = None) -> None:
        if reactor.running:
            reactor.stop()


def serve(factory: Factory) -> None:
    """Serve *factory* on a free loopback port until stdin ends, obeying the commands above."""
    common.raise_fd_limit(4096)
    port = reactor.listenTCP(0, factory, interface=common.LOOPBACK)
    print(f"PORT {port.getHost().port}", flush=True)
    stdio.StandardIO(Control())
    reactor.run()


if __name__ == "__main__":
    serve(ChatFactory())
