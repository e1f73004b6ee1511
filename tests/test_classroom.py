"""Notebooks under classroom habits: run twice, restarted, interrupted; nothing left behind.

Each notebook runs in one real kernel: a first cell records what the process
holds once the runtime is up, then every code cell runs, a check cell asserts
that no file descriptor, thread, listening port or child process was added,
and the whole notebook runs again in the same kernel with the same check
(Run All, twice).  Both runs must show what the stored notebook shows, as
nbval compares it.  Restart and Run All is a run in a new process, which the
first run is (and nbval's is); the restart itself, with the runtime busy, is
tested once, as is interrupting the kernel in the middle of a blocking call.
"""

from __future__ import annotations

import configparser
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
#: Per cell, as nbval's --nbval-cell-timeout in the Makefile.
CELL_TIMEOUT = 120
#: For kernel start-up and each message awaited in the interrupt tests.
TIMEOUT = 30.0
#: How long the interrupted calls would block if nothing interrupted them.
BLOCKING = 60

#: Runs first: start the runtime and record what the process holds from then on.
BASELINE = """
import os as _os
import sys as _sys
import threading as _threading

import psutil as _psutil
from twisted.internet.protocol import Factory as _Factory, Protocol as _Protocol

from writing_servers import lab as _lab

_lab.start()
# numpy (which matplotlib imports) starts OpenBLAS's worker threads on import, for
# the life of the process: a library's pool, so start it before taking stock.
import numpy as _numpy  # noqa: F401

# An output message of 64 KiB or more (a big plot) is sent without copying, which starts
# pyzmq's garbage-collector thread and its sockets for the life of the kernel: start it now.
import zmq.utils.garbage as _zmq_garbage

_zmq_garbage.gc.start()

# ipykernel 7.3 (Python 3.10) opens a zmq socket (an eventfd on Linux) for good in the main
# thread and in its IOPub thread the first time a cell's output is sent: send some now
# (flush returns once the IOPub thread has sent it).
print("Taking stock of what the kernel holds.", flush=True)

# The first TCP listen makes Twisted reserve one spare descriptor (/dev/null) for
# the life of the process, to recover from running out of them: part of the runtime.
_lab.listen(_Factory.forProtocol(_Protocol), name="classroom baseline").stop()


def _classroom_holdings():
    process = _psutil.Process()
    fds = {}
    for fd in _os.listdir("/proc/self/fd"):
        try:
            fds[int(fd)] = _os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    if "matplotlib" in _sys.modules:
        # matplotlib's font cache keeps each font file it has drawn with open for good
        # (one per font, not per run): a library cache, not something a cell left open.
        fonts = _sys.modules["matplotlib"].get_data_path()
        fds = {fd: target for fd, target in fds.items() if not target.startswith(fonts)}
    return {
        "file descriptors": {f"{fd} -> {target}" for fd, target in fds.items()},
        "threads": {f"{thread.name} ({thread.ident})" for thread in _threading.enumerate()},
        "OS threads": {f"{thread.id}" for thread in process.threads()},
        "listening ports": {
            f"{c.laddr.ip}:{c.laddr.port}" for c in process.net_connections("inet") if c.status == "LISTEN"
        },
        "child processes": {f"{child.pid} {child.name()}" for child in process.children(recursive=True)},
    }


_classroom_before = _classroom_holdings()
"""

#: Runs after each pass over the notebook: nothing new may remain.
CHECK = """
_classroom_after = _classroom_holdings()
_classroom_left = {
    kind: sorted(_classroom_after[kind] - _classroom_before[kind]) for kind in _classroom_before
}
_classroom_left = {kind: left for kind, left in _classroom_left.items() if left}
assert not _classroom_left, f"left behind after the last cell: {_classroom_left}"
assert _lab.servers() == [], f"still listening: {_lab.servers()}"
print("nothing left behind")
"""


def code_cells(path: Path) -> list[Any]:
    return [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]


def _sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The regex/replace pairs nbval applies (ports, addresses, temporary paths)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tests" / "nbval-sanitize.cfg")
    return [
        (re.compile(config[section]["regex"]), config[section]["replace"]) for section in config.sections()
    ]


SANITIZERS = _sanitizers()


def shown(cell: Any) -> dict[str, str]:
    """What a reader sees of a cell's outputs, as nbval compares it: stdout, stderr, text, errors."""
    seen: dict[str, str] = {}
    for output in cell.outputs:
        if output.output_type == "stream":
            kind, text = output.name, output.text
        elif output.output_type == "error":
            kind, text = "error", f"{output.ename}: {output.evalue}"
        else:
            kind, text = "text/plain", output.get("data", {}).get("text/plain", "")
        seen[kind] = seen.get(kind, "") + text
    for kind, text in seen.items():
        for pattern, replacement in SANITIZERS:
            text = pattern.sub(replacement, text)
        seen[kind] = text
    return seen


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_run_all_twice_shows_the_same_and_leaves_nothing_behind(path: Path) -> None:
    """Run All twice in one kernel: both runs show the stored outputs, and leave nothing behind."""
    stored = code_cells(path)
    first, second = code_cells(path), code_cells(path)
    notebook = nbformat.v4.new_notebook()
    baseline, check, again = (nbformat.v4.new_code_cell(source) for source in (BASELINE, CHECK, CHECK))
    notebook.cells = [baseline, *first, check, *second, again]
    NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()  # raises CellExecutionError for an error outside cells tagged raises-exception
    for run, cells in (("first", first), ("second", second)):
        for cell, expected in zip(cells, stored, strict=True):
            if "nbval-ignore-output" in cell.metadata.get("tags", []):
                continue  # measurements: nbval does not compare them either
            assert shown(cell) == shown(expected), (
                f"the {run} run differs from the stored output of:\n{cell.source}"
            )
    for cell in (check, again):
        assert shown(cell) == {"stdout": "nothing left behind\n"}


def test_the_check_sees_what_a_cell_leaves_behind() -> None:
    """The check cell fails, naming them, on a socket, a thread and a server a cell left open."""
    leaky = """
import socket, threading
from twisted.internet.protocol import Factory, Protocol
from writing_servers import lab

server = lab.listen(Factory.forProtocol(Protocol), name="forgotten")
sock = socket.create_connection(server.address)
done = threading.Event()
threading.Thread(target=done.wait, name="forgotten thread", daemon=True).start()
"""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in (BASELINE, leaky, CHECK, "done.set()")]
    NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True).execute()
    errors = [output for output in notebook.cells[2].outputs if output.output_type == "error"]
    assert [error.ename for error in errors] == ["AssertionError"]
    left = errors[0].evalue.removeprefix("left behind after the last cell: ")
    descriptors = left.split("'threads': ")[0]
    assert descriptors.count("socket:[") == 3  # the listening socket, the client's, the server's end of it
    assert "forgotten thread" in left.split("'threads': ")[1]
    assert "127.0.0.1:" in left.split("'listening ports': ")[1]


# -- interrupting the kernel ------------------------------------------------------------------


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A fresh python3 kernel of this environment, shut down afterwards."""
    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(ROOT / "notebooks"))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=TIMEOUT)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: BlockingKernelClient, source: str) -> dict[str, str]:
    """Execute *source* as one cell; return its stdout and stderr, and the status of its reply."""
    collected = {"stdout": "", "stderr": ""}

    def keep(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            collected[message["content"]["name"]] += message["content"]["text"]
        elif message["msg_type"] == "error":
            collected["stderr"] += f"{message['content']['ename']}: {message['content']['evalue']}"

    reply = client.execute_interactive(source, timeout=TIMEOUT, output_hook=keep)
    return {**collected, "status": reply["content"]["status"]}


def interrupt_while(manager: KernelManager, client: BlockingKernelClient, source: str) -> dict[str, Any]:
    """Run *source*, which prints ``blocking`` and then blocks; interrupt it; return its reply and timing."""
    message_id = client.execute(source)
    while True:  # wait until the cell says it is about to block
        message = client.get_iopub_msg(timeout=TIMEOUT)
        if message["parent_header"].get("msg_id") != message_id:
            continue
        if message["msg_type"] == "stream" and "blocking" in message["content"]["text"]:
            break
        assert message["msg_type"] not in ("error", "execute_result"), message["content"]
    interrupted = time.monotonic()
    manager.interrupt_kernel()
    while True:
        reply = client.get_shell_msg(timeout=TIMEOUT)
        if reply["parent_header"].get("msg_id") == message_id:
            break
    seconds = time.monotonic() - interrupted
    # After an error ipykernel aborts the requests already queued, until a marker it
    # queues behind them comes round; a request sent right after the reply can beat
    # the marker.  A cell run a moment later is not aborted: wait for that moment.
    deadline = time.monotonic() + TIMEOUT
    while run(client, "pass")["status"] == "aborted" and time.monotonic() < deadline:
        pass
    return {**reply["content"], "seconds": seconds}


SETUP = """
from twisted.internet.protocol import Factory, Protocol

from writing_servers import lab
from writing_servers.clients import connect
from writing_servers.protocols import Echo

lab.start()
"""

#: A cell a student re-runs after the interrupt: the same server name, now a working one.
RECOVER = """
old = server
server = lab.listen(Factory.forProtocol(Echo), name="silent")
with connect(server) as fresh:
    fresh.send_line("ping")
    print("round trip:", fresh.read_line())
old.wait_for_event("connectionLost")
print("old server listening:", old.listening, "| servers:", [s.name for s in lab.servers()])
print("old connection:", old.trace.events()[-1])
print("interrupted client:", client.read_all(timeout=5) == b"", client.ended)
client.close()
"""
#: What it shows: the runtime works, the interrupted conversation was dropped, nothing was logged.
RECOVERED = {
    "stdout": (
        "round trip: ping\n"
        "old server listening: False | servers: ['silent']\n"
        "old connection: #1 connectionLost(ConnectionAborted)\n"
        "interrupted client: True reset\n"
    ),
    "stderr": "",
    "status": "ok",
}


BLOCKING_CELLS = {
    # Kernel > Interrupt during client.read_line() on a server that accepts and never answers.
    "read_line": f"""
server = lab.listen(Factory.forProtocol(Protocol), name="silent")
client = connect(server, timeout={BLOCKING})
print("blocking", flush=True)
client.read_line()
""",
    # ... and during server.wait_until_idle() while its client never leaves: the wait is cancelled.
    "wait_until_idle": f"""
server = lab.listen(Factory.forProtocol(Protocol), name="silent")
client = connect(server)
print("blocking", flush=True)
server.wait_until_idle(timeout={BLOCKING})
""",
}


@pytest.mark.parametrize("blocking", sorted(BLOCKING_CELLS))
def test_interrupting_a_blocking_call_leaves_the_runtime_usable(
    kernel: tuple[KernelManager, BlockingKernelClient], blocking: str
) -> None:
    """Kernel > Interrupt during a blocking client or server call stops it at once; the next cell works."""
    manager, client = kernel
    assert run(client, SETUP)["status"] == "ok"
    reply = interrupt_while(manager, client, BLOCKING_CELLS[blocking])
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    assert reply["seconds"] < BLOCKING / 2
    assert run(client, RECOVER) == RECOVERED
    # Nothing still waits on the reactor for the interrupted call, and nothing was logged.
    waiting = run(client, "print(lab.call(lambda: len(old._tracer._waiters)), len(lab.errors().take_new()))")
    assert waiting == {"stdout": "0 0\n", "stderr": "", "status": "ok"}


def test_restart_with_servers_and_clients_open_then_run_all(
    kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    """Kernel > Restart with a server mid-conversation shuts down by itself; Run All then works as stored."""
    manager, client = kernel
    busy = run(
        client,
        SETUP
        + """
from writing_servers.closing import BigReplyFactory

talking = connect(lab.listen(Factory.forProtocol(Echo)))
talking.send_line("hello")
stuck = connect(lab.listen(BigReplyFactory()))
stuck.send_line("lose")  # 8 MiB that nobody reads: the server is still writing
print(talking.read_line(), len(lab.servers()))
""",
    )
    assert busy == {"stdout": "hello 2\n", "stderr": "", "status": "ok"}
    # Past half its shutdown_wait_time (JupyterLab's: 5 s) a kernel that has not exited is sent
    # SIGTERM.  A loaded machine can stretch a clean exit past 2.5 s, so wait long, and check
    # how the old kernel ended rather than how long it took: exit status 0, not killed.
    manager.shutdown_wait_time = 2 * TIMEOUT
    assert isinstance(manager.provisioner, LocalProvisioner)
    old_kernel = manager.provisioner.process
    assert old_kernel is not None
    manager.restart_kernel()  # graceful, as JupyterLab's Kernel > Restart Kernel
    client.wait_for_ready(timeout=TIMEOUT)
    assert old_kernel.wait(timeout=TIMEOUT) == 0
    index = ROOT / "notebooks" / "00-Index.ipynb"
    for cell in code_cells(index):
        stored = "".join(output.get("text", "") for output in cell.outputs)
        assert run(client, cell.source) == {"stdout": stored, "stderr": "", "status": "ok"}
