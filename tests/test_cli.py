"""The command line runs every server of the course for real, and stops cleanly.

Servers run as real subprocesses (``python -m writing_servers serve NAME
--port 0``) on the real reactor.  Every read from a pipe or a socket and
every wait for a process has a timeout, and a process still running when a
test ends is killed.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pytest

from writing_servers import cli, exports
from writing_servers.clients import connect
from writing_servers.closing import REPLY_SIZE

#: Seconds any one wait may take: a line from a pipe, a reply, a process's exit.
TIMEOUT = 10.0
LISTENING = re.compile(r"^(\S+) \(notebook \d+\) listening on (\S+) port (\d+)\. Ctrl-C stops it\.$")
GOODBYE = re.compile(r"^Stopped \S+\. Goodbye\.$")
SERVE = [sys.executable, "-m", "writing_servers", "serve"]

needs_nc = pytest.mark.skipif(shutil.which("nc") is None, reason="nc (netcat) is not installed")
needs_telnet = pytest.mark.skipif(shutil.which("telnet") is None, reason="telnet is not installed")

Address = tuple[str, int]


# -- running programs ------------------------------------------------------------------------------


class Lines:
    """The lines of a program's output, read on a thread so that a test can wait for one with a timeout."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._ended = False
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe: IO[bytes]) -> None:
        with pipe:
            for raw in pipe:
                self._queue.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self._queue.put(None)

    def _next(self, deadline: float, waiting_for: str) -> str | None:
        try:
            line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise AssertionError(f"timed out waiting for {waiting_for}; output so far: {self.seen}") from None
        if line is None:
            self._ended = True
        else:
            self.seen.append(line)
        return line

    def wait_for(self, pattern: str | re.Pattern[str]) -> re.Match[str]:
        """Wait for the next line that *pattern* matches (with re.search) and return the match."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT
        while not self._ended:
            line = self._next(deadline, repr(compiled.pattern))
            if line is not None and (match := compiled.search(line)):
                return match
        raise AssertionError(f"the output ended without {compiled.pattern!r}: {self.seen}")

    def all(self) -> list[str]:
        """Every line, once the output has ended."""
        deadline = time.monotonic() + TIMEOUT
        while not self._ended:
            self._next(deadline, "the end of the output")
        return self.seen


class Program:
    """A running subprocess whose stdout and stderr are read line by line, with timeouts."""

    def __init__(self, command: list[str], cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = Lines(self.process.stdout)
        self.stderr = Lines(self.process.stderr)

    def type(self, text: str) -> None:
        """Write *text* to the program's stdin, as someone typing into it would."""
        assert self.process.stdin is not None
        self.process.stdin.write(text.encode("utf-8"))
        self.process.stdin.flush()

    def end_input(self) -> None:
        """Close the program's stdin (Ctrl-D)."""
        assert self.process.stdin is not None
        self.process.stdin.close()

    def wait(self) -> int:
        """Wait for the program to exit; return its exit status."""
        return self.process.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        """Kill -9 the program if it still runs, and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()


@contextmanager
def program(command: list[str], cwd: Path | None = None) -> Iterator[Program]:
    """Run *command*; kill it on the way out if it has not exited by then."""
    running = Program(command, cwd)
    try:
        yield running
    finally:
        running.kill()


class Server(Program):
    """``writing-servers serve NAME --port 0`` in a subprocess, once it says where it listens."""

    def __init__(self, name: str, *options: str, cwd: Path | None = None) -> None:
        super().__init__([*SERVE, name, "--port", "0", *options], cwd)
        try:
            listening = self.stdout.wait_for(LISTENING)
        except BaseException:
            self.kill()
            raise
        assert listening.group(1) == name
        self.host = listening.group(2)
        self.address: Address = ("127.0.0.1", int(listening.group(3)))

    def stop(self, signal_number: int = signal.SIGINT) -> None:
        """Send *signal_number*; the server must exit 0 with its goodbye, and nothing on stderr."""
        self.process.send_signal(signal_number)
        assert self.wait() == 0, self.stderr.all()
        assert GOODBYE.match(self.stdout.all()[-1]), self.stdout.all()
        assert self.stderr.all() == []


@contextmanager
def server(name: str, *options: str, cwd: Path | None = None) -> Iterator[Server]:
    """Serve *name* on a free loopback port; kill -9 it on the way out if it still runs."""
    running = Server(name, *options, cwd=cwd)
    try:
        yield running
    finally:
        running.kill()


def wait_for_file(path: Path, expected: bytes) -> None:
    """Wait until *path* holds exactly *expected* (the server writes it on its own time)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes() == expected:
            return
        time.sleep(0.02)
    found = path.read_bytes() if path.exists() else "no file"
    raise AssertionError(f"{path} never held {expected!r}; it holds {found!r}")


# -- one conversation per server -------------------------------------------------------------------


def talk_echo(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"Hello, CRLF\r\n")
        assert client.read_until(b"\n") == b"Hello, CRLF\r\n"
        client.send(b"Hello, LF\n")
        assert client.read_until(b"\n") == b"Hello, LF\n"


def talk_qotd(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        assert client.read_all() == b"An apple a day keeps the doctor away\r\n"
        assert client.ended == "eof"


def talk_counting_echo(address: Address, workdir: Path) -> None:
    with connect(address) as first, connect(address) as second:
        assert first.read_line() == "Welcome! There are currently 1 open connections."
        assert second.read_line() == "Welcome! There are currently 2 open connections."
        second.send(b"still here\n")
        assert second.read_until(b"\n") == b"still here\n"


def talk_big_reply(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"lose\n")
        assert len(client.read_all()) == REPLY_SIZE
        assert client.ended == "eof"
    with connect(address) as client:
        client.send(b"hello\r\n")
        assert client.read_all() == b"say lose or abort\r\n"


def talk_countdown(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        assert client.read_all() == b"3\r\n2\r\n1\r\nliftoff!\r\n"


def talk_bytes_answer(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"How are you?\r\n")
        assert client.read_line() == "Fine"
        client.send(b"What?\r\n")
        assert client.read_line() == "I don't know what you mean"


def talk_answer(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"How are you?\r\n")
        assert client.read_line() == "Fine"
        client.send(b"How are you?\n")
        assert client.read_line() == "Fine"
        client.send(b"What?\n")
        assert client.read_line() == "I don't know what you mean"


def talk_upload(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"SEND 5\r\nab\ncdTOTAL\n")
        assert client.read_line() == "OK 5 bytes: b'ab\\ncd'"
        assert client.read_line() == "TOTAL 5 bytes in 1 upload(s)"


def talk_netstring(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"12:How are you?,")
        assert client.read_until(b",") == b"4:Fine,"


def talk_int32(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(struct.pack(">I", 12) + b"How are you?")
        assert client.read_until(b"Fine") == b"\x00\x00\x00\x04Fine"


def talk_line_chat(address: Address, workdir: Path) -> None:
    with connect(address) as ann, connect(address) as bob:
        assert ann.read_line() == "What's your name?"
        ann.send(b"ann\r\n")
        assert ann.read_line() == "Welcome, ann!"
        assert bob.read_line() == "What's your name?"
        bob.send(b"bob\n")
        assert bob.read_line() == "Welcome, bob!"
        assert ann.read_line() == "* bob has joined"
        bob.send(b"hi ann\n")
        assert ann.read_line() == "<bob> hi ann"


def talk_json_chat(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b'{"join": "ann"}\n')
        assert json.loads(client.read_line()) == {"text": "Welcome, ann!"}
        client.send(b'{"who": ""}\r\n')
        assert json.loads(client.read_line()) == {"who": ["ann"]}


QUOTE = "Ünïcode travels as UTF-8"


def talk_quote(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        assert client.read_all() == QUOTE.encode("utf-8") + b"\r\n"


def talk_logfile(address: Address, workdir: Path) -> None:
    with connect(address) as client:
        client.send(b"first line\r\nsecond line\n")
        wait_for_file(workdir / cli.DEFAULT_LOG, b"first line\nsecond line\n")


def talk_chat(address: Address, workdir: Path) -> None:
    with connect(address) as ann, connect(address) as bob:
        assert ann.read_line() == "What's your name?"
        ann.send(b"ann\r\n")
        assert ann.read_line() == "Welcome, ann!"
        assert bob.read_line() == "What's your name?"
        bob.send(b"bob\n")
        assert bob.read_line() == "Welcome, bob!"
        bob.send(b"hi ann\n")
        assert ann.read_line() == "<bob> hi ann"
        ann.send(b"hi bob\r\n")
        assert bob.read_line() == "<ann> hi bob"


#: For each server: the options it is started with, and a conversation that checks what it says.
CONVERSATIONS: dict[str, tuple[list[str], Callable[[Address, Path], None]]] = {
    "echo": ([], talk_echo),
    "qotd": ([], talk_qotd),
    "counting-echo": ([], talk_counting_echo),
    "big-reply": ([], talk_big_reply),
    "countdown": ([], talk_countdown),
    "bytes-answer": ([], talk_bytes_answer),
    "answer": ([], talk_answer),
    "upload": ([], talk_upload),
    "netstring": ([], talk_netstring),
    "int32": ([], talk_int32),
    "line-chat": ([], talk_line_chat),
    "json-chat": ([], talk_json_chat),
    "quote": (["--quote", QUOTE], talk_quote),
    "logfile": ([], talk_logfile),
    "chat": ([], talk_chat),
}


# -- serving ---------------------------------------------------------------------------------------


def test_every_registered_server_has_a_conversation_here() -> None:
    """The parametrized test below covers exactly the servers the command line registers."""
    assert set(CONVERSATIONS) == set(cli.SERVERS)


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_server_listens_on_loopback_answers_and_stops_on_sigint(name: str, tmp_path: Path) -> None:
    """Each server listens on 127.0.0.1, says how to connect, answers over a socket, and exits 0 on Ctrl-C."""
    options, conversation = CONVERSATIONS[name]
    with server(name, *options, cwd=tmp_path) as running:
        assert running.host == "127.0.0.1"
        host, port = running.address
        how = running.stdout.wait_for("^Connect with").string
        if cli.SERVERS[name].terminal:
            assert how == f"Connect with: telnet {host} {port}   or: nc {host} {port}"
        else:
            assert how.startswith("Connect with a program, not a terminal")
        running.stdout.wait_for("^Try it: ")
        conversation(running.address, tmp_path)
        running.stop(signal.SIGINT)


def test_sigterm_stops_the_server_and_closes_open_connections(tmp_path: Path) -> None:
    """SIGTERM stops the chat with a client still in it: the client sees the end, the server exits 0."""
    with server("chat", cwd=tmp_path) as chat, connect(chat.address) as ann:
        assert ann.read_line() == "What's your name?"
        ann.send(b"ann\n")
        assert ann.read_line() == "Welcome, ann!"
        chat.stop(signal.SIGTERM)
        assert ann.read_all() == b""
        assert ann.ended in ("eof", "reset")


def test_logfile_writes_only_into_the_file_given(tmp_path: Path) -> None:
    """With --log, the lines go to that file and nothing appears in the server's working directory."""
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    log = tmp_path / "class.log"
    with server("logfile", "--log", str(log), cwd=workdir) as logfile:
        logfile.stdout.wait_for(re.escape(str(log)))
        with connect(logfile.address) as client:
            client.send(b"../../etc/passwd\r\nhello\n")
            wait_for_file(log, b"../../etc/passwd\nhello\n")
        logfile.stop()
    assert list(workdir.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["class.log", "workdir"]


def test_host_0_0_0_0_warns_that_anyone_on_the_network_can_connect(tmp_path: Path) -> None:
    """--host 0.0.0.0 listens on every address, says so on stderr, names each address, and answers on loopback."""
    import psutil

    with server("echo", "--host", "0.0.0.0", cwd=tmp_path) as echo:
        assert echo.host == "0.0.0.0"
        port = echo.address[1]
        warning = echo.stderr.wait_for(r"^warning: ")
        assert "anyone on the network can connect" in warning.string
        with connect(echo.address) as client:
            client.send(b"ping\n")
            assert client.read_until(b"\n") == b"ping\n"
        echo.process.send_signal(signal.SIGINT)
        assert echo.wait() == 0
        output = "\n".join(echo.stdout.all())
        assert len(echo.stderr.all()) == 1
    up = {name for name, stats in psutil.net_if_stats().items() if stats.isup}
    expected = {
        (name, entry.address)
        for name, entries in psutil.net_if_addrs().items()
        for entry in entries
        if name in up and entry.family == socket.AF_INET and not entry.address.startswith("127.")
    }
    lines = output.splitlines()
    for name, address in expected:  # every interface by name, on the line with the command for its address
        command = f"Connect with: telnet {address} {port} "
        assert [line for line in lines if command in line and re.search(rf"\b{re.escape(name)}\b", line)], (
            output
        )
    assert "0.0.0.0" not in output.split("listening on 0.0.0.0", 1)[1]  # never an address to dial
    assert "Only this machine can connect" not in output


def test_the_default_host_says_only_this_machine_can_connect(tmp_path: Path) -> None:
    """Without --host the banner says plainly that only this machine can connect, and how to open it."""
    with server("answer", cwd=tmp_path) as answer:
        line = answer.stdout.wait_for("^Only this machine can connect").string
        assert "--host 0.0.0.0" in line
        answer.stop()


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (
            [],
            [
                "no network address besides loopback",
                "Connect with: telnet 127.0.0.1 8000   or: nc 127.0.0.1 8000",
            ],
        ),
        (
            [("eth0", "10.0.0.5")],
            ["Connect with: telnet 10.0.0.5 8000   or: nc 10.0.0.5 8000   (give students"],
        ),
        (
            [("eth0", "10.0.0.5"), ("wlan0", "192.168.1.23")],
            [
                "This machine has 2 addresses. Give students the one on the network they are on:",
                "  eth0   Connect with: telnet 10.0.0.5 8000   or: nc 10.0.0.5 8000",
                "  wlan0  Connect with: telnet 192.168.1.23 8000   or: nc 192.168.1.23 8000   (default route)",
            ],
        ),
    ],
    ids=["no-network", "one-network", "lab-lan-and-wifi"],
)
def test_every_network_address_is_listed_by_interface(
    addresses: list[tuple[str, str]], expected: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no network, one, or a lab LAN beside Wi-Fi (the default route), the banner says what to give students."""
    monkeypatch.setattr(cli, "network_addresses", lambda ipv6=False: addresses)
    monkeypatch.setattr(cli, "default_route_address", lambda: "192.168.1.23")
    lines = cli.how_to_connect("0.0.0.0", 8000)
    assert len(lines) == len(expected)
    for line, start in zip(lines, expected, strict=True):
        assert start in line, (line, start)


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    """A taken port ends the command with status 1 and one line saying so: no traceback, no banner."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        with program([*SERVE, "echo", "--port", port], cwd=tmp_path) as echo:
            assert echo.wait() == 1
            assert echo.stdout.all() == []
            [message] = echo.stderr.all()
    assert message.startswith("writing-servers: ")
    assert f"port {port} on 127.0.0.1 is already in use" in message
    assert "--port" in message


# -- real clients ----------------------------------------------------------------------------------


@needs_nc
@pytest.mark.parametrize(
    ("name", "line", "reply"),
    [("echo", "Hello from nc", "Hello from nc"), ("answer", "How are you?", "Fine")],
)
def test_nc_talks_to_a_line_server(name: str, line: str, reply: str, tmp_path: Path) -> None:
    """The real nc, which ends lines with a bare LF, gets its answer, and exits once its input ends."""
    with server(name, cwd=tmp_path) as running:
        host, port = running.address
        with program(["nc", "-N", host, str(port)]) as nc:
            nc.type(line + "\n")
            nc.stdout.wait_for(f"^{re.escape(reply)}$")
            nc.end_input()  # -N: nc half-closes, the server hangs up, nc exits
            assert nc.wait() == 0
        running.stop()


@needs_telnet
@pytest.mark.parametrize(
    ("name", "line", "reply"),
    [
        ("echo", "Hello from telnet", "Hello from telnet"),
        ("answer", "How are you?", "Fine"),
        # Only a CRLF ends a line for the howto's bytes Answer: an answer proves telnet sends CRLF.
        ("bytes-answer", "How are you?", "Fine"),
    ],
)
def test_telnet_talks_to_a_line_server(name: str, line: str, reply: str, tmp_path: Path) -> None:
    """The real telnet, which ends lines with CRLF, gets its answer, and exits once its input ends."""
    with server(name, cwd=tmp_path) as running:
        host, port = running.address
        with program(["telnet", host, str(port)]) as telnet:
            telnet.stdout.wait_for(f"^Connected to {re.escape(host)}")
            telnet.type(line + "\n")
            telnet.stdout.wait_for(f"^{re.escape(reply)}$")
            telnet.end_input()
            assert telnet.wait() == 0
        running.stop()


@pytest.mark.parametrize(
    ("command", "bob_ending"),
    [
        # A person on nc (LF) chats with bob on CRLF; a person on telnet (CRLF) with bob on LF.
        pytest.param(["nc", "-N"], b"\r\n", marks=needs_nc, id="nc"),
        pytest.param(["telnet"], b"\n", marks=needs_telnet, id="telnet"),
    ],
)
def test_real_client_chats(command: list[str], bob_ending: bytes, tmp_path: Path) -> None:
    """A person on a real terminal client and one on a socket talk to each other through the chat."""
    who = command[0]
    with server("chat", cwd=tmp_path) as chat:
        host, port = chat.address
        with program([*command, host, str(port)]) as person, connect(chat.address) as bob:
            person.stdout.wait_for("^What's your name\\?$")
            person.type("ann\n")
            person.stdout.wait_for("^Welcome, ann!$")
            assert bob.read_line() == "What's your name?"
            bob.send(b"bob" + bob_ending)
            assert bob.read_line() == "Welcome, bob!"
            bob.send(b"hello from bob" + bob_ending)
            person.stdout.wait_for("^<bob> hello from bob$")
            person.type(f"hello from {who}\n")
            assert bob.read_line() == f"<ann> hello from {who}"
            person.end_input()
            assert person.wait() == 0
        chat.stop()


# -- the rest of the command line ------------------------------------------------------------------


def test_list_names_every_server_and_every_program_on_a_line_of_its_own() -> None:
    """`writing-servers list` prints a line per server (name, notebook, description), then a line per program."""
    script = Path(sys.executable).parent / "writing-servers"  # what pyproject's [project.scripts] installs
    command = [str(script)] if script.exists() else [sys.executable, "-m", "writing_servers"]
    with program([*command, "list"]) as listing:
        assert listing.wait() == 0
        lines = listing.stdout.all()
        assert listing.stderr.all() == []
    programs = exports.programs()
    assert len(lines) == 1 + len(cli.SERVERS) + 2 + len(programs)
    assert lines[0] == "Servers (writing-servers serve NAME):"
    for line, (name, entry) in zip(lines[1:], cli.SERVERS.items(), strict=False):
        assert line.split()[:3] == [name, "notebook", str(entry.notebook)]
        assert line.endswith(entry.description)
    assert lines[len(cli.SERVERS) + 1 : len(cli.SERVERS) + 3] == [
        "",
        "Programs to copy, each one file that needs only Twisted (writing-servers export NAME):",
    ]
    for line, (name, path) in zip(lines[len(cli.SERVERS) + 3 :], programs.items(), strict=True):
        notebook, what = exports.describe(path)
        assert line.split()[:4] == [name, "notebook", str(notebook), f"{path.name}:"]
        assert line.endswith(what)


def test_importing_the_cli_touches_no_reactor_and_no_notebook_runtime() -> None:
    """Importing writing_servers.cli installs no reactor and imports neither lab, clients nor render."""
    code = (
        "import sys, writing_servers.cli\n"
        "print(sorted(m for m in ('twisted.internet.reactor', 'writing_servers.lab',"
        " 'writing_servers.clients', 'writing_servers.render') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_an_unknown_name_is_a_one_line_error_that_suggests_and_lists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`serve ecoh` exits 2 with one line that suggests echo and names every server."""
    assert cli.main(["serve", "ecoh"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert "no server named 'ecoh'" in line
    assert "did you mean 'echo'?" in line
    assert all(name in line for name in cli.SERVERS)


def test_an_option_for_another_server_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """--log belongs to logfile and --quote to quote: given to echo, each is a one-line error."""
    assert cli.main(["serve", "echo", "--log", "x.log"]) == 2
    assert cli.main(["serve", "echo", "--quote", "hi"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "writing-servers: --log is for logfile only, not echo",
        "writing-servers: --quote is for quote only, not echo",
    ]


@pytest.mark.parametrize("port", ["-1", "65536", "eighty"])
def test_a_bad_port_is_an_argparse_error(port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A port outside 0..65535, or not a number, is refused before anything listens (status 2)."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "echo", "--port", port])
    assert exited.value.code == 2
    assert "argument --port" in capsys.readouterr().err


def test_defaults_are_loopback_and_port_8000() -> None:
    """Without options a server listens on 127.0.0.1, port 8000, and logfile writes writing-servers.log."""
    args = cli.build_parser().parse_args(["serve", "echo"])
    assert (args.host, args.port) == ("127.0.0.1", 8000)
    assert cli.DEFAULT_LOG == "writing-servers.log"


# -- half-close ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "greeting"),
    [("echo", b""), ("counting-echo", b"Welcome! There are currently 1 open connections.\r\n")],
)
def test_a_half_close_still_gets_the_echo(name: str, greeting: bytes, tmp_path: Path) -> None:
    """A socket that sends 300 kB and shuts down its write side gets all of it back, then the end of the connection."""
    sent = b"hi\n" * 100_000  # more than the server can echo before it reads the end of the input
    with server(name, cwd=tmp_path) as running:
        with socket.create_connection(running.address, timeout=TIMEOUT) as client:
            client.sendall(sent)
            client.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := client.recv(4096):  # until the server closes (timeout: TIMEOUT)
                received += chunk
        assert received == greeting + sent
        running.stop()


@needs_nc
@pytest.mark.parametrize("flag", ["-N", "-q1"])
def test_a_pipe_into_nc_gets_the_echo(flag: str, tmp_path: Path) -> None:
    """`printf 'hi\\n' | nc -N HOST PORT` and `nc -q 1` (both half-close at the end of input) print the echo."""
    with server("echo", cwd=tmp_path) as running:
        host, port = running.address
        done = subprocess.run(
            ["nc", flag, host, str(port)], input=b"hi\n", capture_output=True, timeout=TIMEOUT
        )
        assert done.stdout == b"hi\n"
        running.stop()


# -- what the teacher sees -------------------------------------------------------------------------

TIME = r"^\d\d:\d\d:\d\d "


@pytest.mark.parametrize("name", ["chat", "line-chat"])
def test_the_teacher_sees_connections_joins_clashes_and_leaves(name: str, tmp_path: Path) -> None:
    """`serve chat` (and notebook 5's line-chat) prints a timed line per connection, join, clash, leave, disconnection."""
    with server(name, cwd=tmp_path) as chat:
        with connect(chat.address) as ann, connect(chat.address) as other:
            assert ann.read_line() == "What's your name?"
            ann.send(b"ann\n")
            assert ann.read_line() == "Welcome, ann!"
            assert other.read_line() == "What's your name?"
            other.send(b"Ann\n")
            assert other.read_line() == "Name taken, please choose another."
            other.send(b"bob\n")
            assert other.read_line() == "Welcome, bob!"
        peer = r"127\.0\.0\.1:\d+"
        for pattern in (
            f"{TIME}{peer} connected$",
            f"{TIME}{peer} joined as ann$",
            f"{TIME}{peer} asked for 'Ann', already taken$",
            f"{TIME}{peer} joined as bob$",
            f"{TIME}(ann|bob) left \\({peer}\\)$",
            f"{TIME}{peer} disconnected \\(closed\\)$",
        ):
            chat.stdout.wait_for(pattern)
        chat.stop()


def test_quiet_prints_no_line_per_connection(tmp_path: Path) -> None:
    """With --quiet, a join and a leave print nothing: the banner, then the goodbye."""
    with server("chat", "--quiet", cwd=tmp_path) as chat:
        with connect(chat.address) as ann:
            assert ann.read_line() == "What's your name?"
            ann.send(b"ann\n")
            assert ann.read_line() == "Welcome, ann!"
        with connect(chat.address) as last:  # once this one is answered, ann's leaving has been handled
            assert last.read_line() == "What's your name?"
        chat.stop()
        assert not [line for line in chat.stdout.all() if re.match(TIME, line)]


def test_the_teacher_sees_a_reader_cut_off(tmp_path: Path) -> None:
    """A chat member who stops reading is cut off once 1 MiB waits for them, and the terminal says who and why."""
    with server("chat", "--quiet", cwd=tmp_path) as chat:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so that the server's buffer fills
        stalled.settimeout(TIMEOUT)
        stalled.connect(chat.address)
        with stalled, connect(chat.address) as talker:
            stalled.sendall(b"ann\n")
            assert talker.read_line() == "What's your name?"
            talker.send(b"bob\n")
            assert talker.read_line() == "Welcome, bob!"
            line = b"x" * 1000 + b"\n"
            for _ in range(40):  # up to 4 MB, sent until the cut-off shows
                talker.send(line * 100)
                if any("stopped reading" in seen for seen in chat.stderr.seen):
                    break
            cut_off = chat.stderr.wait_for("stopped reading").string
        assert re.match(rf"{TIME}ann \(127\.0\.0\.1:\d+\) stopped reading: more than 1048576 bytes", cut_off)
        chat.process.send_signal(signal.SIGINT)
        assert chat.wait() == 0


def test_the_teacher_sees_an_error_in_one_line(tmp_path: Path) -> None:
    """A byte sequence telnet's parser rejects (IAC then "A") is an error: one timed line, and the others carry on."""
    with server("echo", cwd=tmp_path) as echo:
        with socket.create_connection(echo.address, timeout=TIMEOUT) as client:
            client.sendall(b"\xffA")
            assert client.recv(100) == b""  # the server dropped that connection
        error = echo.stderr.wait_for("error").string
        assert re.match(rf"{TIME}error in Echo\S*: ValueError: \('Stumped', b'A'\)$", error), error
        with connect(echo.address) as client:
            client.send(b"still up\n")
            assert client.read_until(b"\n") == b"still up\n"
        echo.process.send_signal(signal.SIGINT)
        assert echo.wait() == 0
        assert echo.stderr.all() == [error]
