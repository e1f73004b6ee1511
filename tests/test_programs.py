"""Each notebook's "Use it in your project" program runs as a real script that needs only Twisted.

The program is a file in ``writing_servers/examples/`` that
tools/sync_notebooks.py writes from the section module; the notebook's
project cell shows what is new in it and the command that writes it out.
Each test writes the file out with ``writing-servers export`` into an empty
folder and runs it there with ``--port 0``.  The test reads the line
it prints once listening, talks to it over loopback with a plain socket,
then presses Ctrl-C (SIGINT) and expects a clean exit.  Every wait is
bounded; a program still running at the end of a test is killed.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from writing_servers import exports

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import sync_notebooks  # noqa: E402

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT as Ctrl-C does (POSIX)")

START_TIMEOUT = 30.0  # importing Twisted on a slow machine
IO_TIMEOUT = 10.0
EXIT_TIMEOUT = 10.0
ANNOUNCEMENT = re.compile(r"Serving (\w+) on 127\.0\.0\.1 port (\d+); Ctrl-C stops it\.\n")
SECTIONS = sync_notebooks.course()[1:]


def _project_cells() -> list[tuple[str, nbformat.NotebookNode]]:
    found = []
    for notebook in SECTIONS:
        for cell in notebook.node.cells:
            if sync_notebooks.PROJECT_TAG in sync_notebooks.tags(cell):
                found.append((notebook.path.stem, cell))
    return found


PROGRAMS = list(exports.programs())
#: The installed command, as pyproject's [project.scripts] makes it (or `python -m` without it).
SCRIPT = Path(sys.executable).parent / "writing-servers"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "writing_servers"]


# -- a plain socket client ---------------------------------------------------------------------------


class Client:
    """A blocking loopback client with a timeout on every read."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        """The next line, CRLF included; fails after IO_TIMEOUT or at end of stream."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed the connection; got {self.buffer!r}"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line + b"\n"

    def read_all(self) -> bytes:
        """Everything until the server closes the connection."""
        deadline = time.monotonic() + IO_TIMEOUT
        while chunk := self.sock.recv(1 << 20):
            self.buffer += chunk
            assert time.monotonic() < deadline, "the server did not close the connection in time"
        data, self.buffer = self.buffer, b""
        return data

    def close(self) -> None:
        self.sock.close()


@dataclass
class Running:
    """A program started by :func:`run_program`, listening on *port* in *folder*."""

    name: str
    port: int
    folder: Path

    def connect(self) -> Client:
        return Client(self.port)


# -- what each program is asked, and what it must answer ---------------------------------------------


def talk_to_counting_echo(server: Running) -> None:
    client = server.connect()
    assert client.read_line() == b"Welcome! There are currently 1 open connections.\r\n"
    client.send(b"hello\r\n")
    assert client.read_line() == b"hello\r\n"
    client.close()


def talk_to_deadline_big_reply(server: Running) -> None:
    client = server.connect()
    client.send(b"lose\n")
    reply = client.read_all()
    assert len(reply) == 8 * 1024 * 1024, "the whole 8 MiB reply, then a clean close"
    assert reply.startswith(b"All work and no play makes Jack a dull boy.")
    client.close()


def talk_to_qotd(server: Running) -> None:
    client = server.connect()
    assert client.read_all() == b"An apple a day keeps the doctor away\r\n"
    client.close()


def talk_to_answer(server: Running) -> None:
    client = server.connect()
    client.send(b"How are you?\n")  # netcat's bare LF
    assert client.read_line() == b"Fine\r\n"
    client.send(b"What?\r\n")
    assert client.read_line() == b"I don't know what you mean\r\n"
    client.close()


def talk_to_line_chat(server: Running) -> None:
    alice, bob = server.connect(), server.connect()
    assert alice.read_line() == b"What's your name?\r\n"
    alice.send(b"alice\n")
    assert alice.read_line() == b"Welcome, alice!\r\n"
    assert bob.read_line() == b"What's your name?\r\n"
    bob.send(b"bob\r\n")
    assert bob.read_line() == b"Welcome, bob!\r\n"
    assert alice.read_line() == b"* bob has joined\r\n"
    bob.send(b"hi alice\n")
    assert alice.read_line() == b"<bob> hi alice\r\n"
    alice.close()
    bob.close()


def talk_to_configurable_qotd(server: Running) -> None:
    client = server.connect()
    assert client.read_all() == QUOTE.encode("utf-8") + b"\r\n"
    client.close()


def talk_to_logging_server(server: Running) -> None:
    client = server.connect()
    client.send(b"first line\r\nsecond\n")
    log = server.folder / LOG_NAME
    expected = b"first line\nsecond\n"
    deadline = time.monotonic() + IO_TIMEOUT
    while not (log.exists() and log.read_bytes() == expected):
        assert time.monotonic() < deadline, f"the log holds {log.read_bytes() if log.exists() else None!r}"
        time.sleep(0.02)
    client.close()


def talk_to_chat(server: Running) -> None:
    alice, bob = server.connect(), server.connect()
    assert alice.read_line() == b"What's your name?\r\n"
    alice.send(b"alice\n")
    assert alice.read_line() == b"Welcome, alice!\r\n"
    assert bob.read_line() == b"What's your name?\r\n"
    bob.send(b"bob\r\n")
    assert bob.read_line() == b"Welcome, bob!\r\n"
    bob.send(b"hi alice\n")
    assert alice.read_line() == b"<bob> hi alice\r\n"
    alice.close()
    bob.close()


QUOTE = "Less is more \N{EM DASH} Mies"
LOG_NAME = "x.log"

#: program -> (the name it announces, extra arguments, the conversation that proves it serves)
CONVERSATIONS: dict[str, tuple[str, list[str], Callable[[Running], None]]] = {
    "counting-echo": ("CountingEcho", [], talk_to_counting_echo),
    "deadline-big-reply": ("DeadlineBigReply", [], talk_to_deadline_big_reply),
    "qotd": ("QOTD", [], talk_to_qotd),
    "answer": ("Answer", [], talk_to_answer),
    "line-chat": ("LineChat", [], talk_to_line_chat),
    "configurable-qotd": ("ConfigurableQOTD", ["--quote", QUOTE], talk_to_configurable_qotd),
    "logfile": ("LoggingProtocol", ["--log", LOG_NAME], talk_to_logging_server),
    "chat": ("Chat", [], talk_to_chat),
    "crowded-chat": ("Chat", ["--clients", "100"], talk_to_chat),
}


# -- running a program -----------------------------------------------------------------------------


def export(name: str, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``writing-servers export NAME --to FOLDER`` as a person would."""
    return subprocess.run(
        [*COMMAND, "export", name, "--to", str(folder), *options],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )


def start_program(name: str, folder: Path, arguments: list[str]) -> subprocess.Popen[bytes]:
    """Export program *name* into *folder* and start it there, with nothing of this course importable."""
    exported = export(name, folder)
    assert exported.returncode == 0, exported.stderr
    path = folder / exports.programs()[name].name
    # The script's folder comes first on sys.path, so this stand-in hides the installed package.
    (folder / "writing_servers").mkdir()
    (folder / "writing_servers" / "__init__.py").write_text(
        "raise ImportError('a project program must not need writing_servers')\n"
    )
    env = {**os.environ, "PYTHONPATH": ""}
    env.pop("PYTHONSAFEPATH", None)
    # A child inherits an ignored SIGINT (pytest run as a shell's background job), and a program
    # that ignores SIGINT never hears Ctrl-C. A handled SIGINT is reset to the default in the child.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, str(path), *arguments],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def read_announcement(process: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line the program prints, waiting at most *timeout* seconds (not past its exit)."""
    assert process.stdout is not None
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in received:
            left = deadline - time.monotonic()
            assert left > 0, f"no line within {timeout} s; got {received!r}"
            if selector.select(left):
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    break  # the program exited (or closed stdout) before a whole line
                received += chunk
    return received.decode("utf-8", "replace")


@pytest.fixture
def kill_at_end() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Programs appended to this list are killed if a test leaves them running."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=EXIT_TIMEOUT)


# -- the tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("notebook", SECTIONS, ids=[notebook.path.stem for notebook in SECTIONS])
def test_each_section_has_one_program(notebook: sync_notebooks.Notebook) -> None:
    """Every section notebook has one project cell: markdown, at most 40 lines of code, and the export command."""
    cells = [cell for cell in notebook.node.cells if sync_notebooks.PROJECT_TAG in sync_notebooks.tags(cell)]
    assert len(cells) == 1, f"{notebook.path.name} has {len(cells)} project cells"
    cell = cells[0]
    assert cell.cell_type == "markdown", "a code cell would run the server inside the kernel"
    name = cell.metadata["writing_servers"]["name"]
    assert name in PROGRAMS
    assert f"writing-servers export {name}\n" in cell.source
    shown = cell.source.split("```python\n")[1].split("```")[0]
    assert len(shown.splitlines()) <= sync_notebooks.SHOWN_LINES


def test_every_program_belongs_to_a_notebook_and_has_a_conversation() -> None:
    """The program files are exactly the notebooks' programs, and each is talked to below."""
    assert sorted(cell.metadata["writing_servers"]["name"] for _, cell in _project_cells()) == sorted(
        PROGRAMS
    )
    assert sorted(CONVERSATIONS) == sorted(PROGRAMS), "add a conversation for each program"


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_serves_and_stops_on_ctrl_c(
    name: str, tmp_path: Path, kill_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """The exported program needs only Twisted, announces its port, serves a real client, and exits 0 on SIGINT."""
    announced, arguments, conversation = CONVERSATIONS[name]
    process = start_program(name, tmp_path, ["--port", "0", *arguments])
    kill_at_end.append(process)

    line = read_announcement(process, START_TIMEOUT)
    match = ANNOUNCEMENT.fullmatch(line)
    if match is None:
        process.kill()
        _, stderr = process.communicate(timeout=EXIT_TIMEOUT)
        pytest.fail(f"unexpected first line {line!r}; stderr:\n{stderr.decode(errors='replace')}")
    assert match[1] == announced
    conversation(Running(announced, int(match[2]), tmp_path))

    # A reply arrived, so the reactor is running and its SIGINT handler is installed.
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=EXIT_TIMEOUT)
    assert (process.returncode, stdout, stderr) == (0, b"", b""), "Ctrl-C stops it cleanly and quietly"


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_exits_1_when_its_port_is_taken(
    name: str, tmp_path: Path, kill_at_end: list[subprocess.Popen[bytes]]
) -> None:
    """A program whose port is in use says so on stderr, prints no announcement, and exits 1."""
    _, arguments, _ = CONVERSATIONS[name]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        process = start_program(name, tmp_path, ["--port", str(port), *arguments])
        kill_at_end.append(process)
        stdout, stderr = process.communicate(timeout=START_TIMEOUT)
    assert process.returncode == 1
    assert stdout == b""
    message = stderr.decode()
    assert message.startswith("Cannot listen: ") and "already in use" in message, message
    assert message.count("\n") == 1, f"one line, no traceback: {message!r}"
    assert not (tmp_path / LOG_NAME).exists(), "no log file is opened for a server that never listened"


def test_export_keeps_an_existing_file_unless_forced(tmp_path: Path) -> None:
    """A second export refuses to write over the reader's copy; --force does, with the program's text."""
    first = export("chat", tmp_path)
    assert first.returncode == 0 and first.stdout.startswith(f"Wrote {tmp_path / 'chat.py'}."), first
    (tmp_path / "chat.py").write_text("# my edits\n")
    again = export("chat", tmp_path)
    assert (again.returncode, again.stdout) == (2, "")
    assert (
        again.stderr
        == f"writing-servers: {tmp_path / 'chat.py'} already exists; keep it, or write over it with --force\n"
    )
    assert (tmp_path / "chat.py").read_text() == "# my edits\n"
    forced = export("chat", tmp_path, "--force")
    assert forced.returncode == 0
    assert (tmp_path / "chat.py").read_text() == exports.programs()["chat"].read_text()


def test_export_of_an_unknown_name_lists_the_programs(tmp_path: Path) -> None:
    """An unknown name is a one-line error naming every program, and writes nothing."""
    result = export("chatt", tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"writing-servers: no program named 'chatt'; the programs are: {', '.join(PROGRAMS)}\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("notebook", SECTIONS, ids=[notebook.path.stem for notebook in SECTIONS])
def test_importing_the_section_module_starts_nothing(notebook: sync_notebooks.Notebook) -> None:
    """Importing a section module (which now has a main()) does not import, let alone run, the reactor."""
    code = f"import sys, {notebook.module}; print('twisted.internet.reactor' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
