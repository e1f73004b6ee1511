"""A classroom on one machine: the teacher's chat and five students on a LAN of network namespaces.

The teacher's namespace has two networks, as a teacher's laptop often does:
the lab LAN (``eth0``, shared with the students through a bridge) and a
second one holding the default route (``wifi0``, a veth pair with nobody at the other end).  The
teacher runs ``writing-servers serve chat --host 0.0.0.0``; each student, in
a namespace of their own, dials the address the server printed for ``eth0``
with the real ``nc`` or ``telnet``, each in a pseudo-terminal as a person
would run it.  Every line must reach every other student, and each telnet
screen must keep working after "✓ “ ” ă" and Ctrl-C.

Needs root and ``ip`` (iproute2); skipped otherwise.  The namespaces are
deleted however the test ends.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from test_cli import TIMEOUT, Program
from test_terminals import UTF8_LINE, Terminal, type_utf8_and_ctrl_c

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="network namespaces are Linux only"),
    pytest.mark.skipif(os.geteuid() != 0, reason="creating network namespaces needs root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="ip (iproute2) is not installed"),
    pytest.mark.skipif(
        shutil.which("nc") is None or shutil.which("telnet") is None, reason="needs nc and telnet"
    ),
]

LAN = "10.77.0"
TEACHER_ADDRESS = f"{LAN}.1"
PORT = 8000
#: (name, client) for each student: three on nc, two on telnet.
STUDENTS = [("ada", "nc"), ("bo", "telnet"), ("cy", "nc"), ("di", "telnet"), ("ed", "nc")]
LINES_EACH = 4


def ip(*arguments: str) -> None:
    """Run ``ip ARGUMENTS``; fail the test with ip's own message if it fails."""
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)}: {done.stderr.strip()}")


class Classroom:
    """Namespaces for a bridge, the teacher and each student; deleted by :meth:`close`."""

    def __init__(self) -> None:
        prefix = f"ws{os.getpid()}"
        self.bridge = f"{prefix}-lan"
        self.teacher = f"{prefix}-teacher"
        self.students = {name: f"{prefix}-{name}" for name, _ in STUDENTS}
        self.created: list[str] = []

    def build(self) -> None:
        for namespace in [self.bridge, self.teacher, *self.students.values()]:
            ip("netns", "add", namespace)
            self.created.append(namespace)
            ip("-n", namespace, "link", "set", "lo", "up")
        ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
        ip("-n", self.bridge, "link", "set", "br0", "up")
        hosts = [(self.teacher, TEACHER_ADDRESS)]
        hosts += [
            (namespace, f"{LAN}.{11 + index}") for index, namespace in enumerate(self.students.values())
        ]
        for index, (namespace, address) in enumerate(hosts):
            port = f"port{index}"
            ip(
                "-n",
                self.bridge,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
        # The teacher's other network, which holds the default route: students cannot reach it.
        ip("-n", self.teacher, "link", "add", "wifi0", "type", "veth", "peer", "name", "wifi0-peer")
        ip("-n", self.teacher, "addr", "add", "172.30.0.2/24", "dev", "wifi0")
        ip("-n", self.teacher, "link", "set", "wifi0-peer", "up")
        ip("-n", self.teacher, "link", "set", "wifi0", "up")
        ip("-n", self.teacher, "route", "add", "default", "via", "172.30.0.1")

    def close(self) -> None:
        for namespace in reversed(self.created):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=TIMEOUT)

    def run_in(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]


@pytest.fixture
def classroom() -> Iterator[Classroom]:
    room = Classroom()
    try:
        try:
            room.build()
        except RuntimeError as error:  # e.g. a container without CAP_NET_ADMIN
            pytest.skip(f"cannot build network namespaces here: {error}")
        yield room
    finally:
        room.close()


def wait_for_all(terminal: Terminal, expected: list[bytes], timeout: float = 2 * TIMEOUT) -> None:
    """Read *terminal* until every line in *expected* has appeared on it, in any order."""
    deadline = time.monotonic() + timeout
    while missing := [line for line in expected if line not in terminal.screen]:
        left = deadline - time.monotonic()
        if left <= 0:
            screen = terminal.screen[-300:]
            raise AssertionError(
                f"never shown: {missing[:5]} ({len(missing)} in all); screen ends {screen!r}"
            )
        if select.select([terminal.fd], [], [], min(left, 0.2))[0]:
            terminal.read()
    terminal.screen = b""


def test_a_class_on_a_lan_chats_through_the_teachers_server(classroom: Classroom) -> None:
    """Five students (nc and telnet, in pseudo-terminals) dial the printed address: every line reaches everyone."""
    started = time.monotonic()
    with ExitStack() as stack:
        serve = [
            sys.executable,
            "-m",
            "writing_servers",
            "serve",
            "chat",
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
        ]
        teacher = Program([*classroom.run_in(classroom.teacher), *serve])
        stack.callback(teacher.kill)
        teacher.stdout.wait_for(r"listening on 0\.0\.0\.0 port 8000")
        lan_line = teacher.stdout.wait_for(r"^  eth0 +Connect with: telnet (\S+) (\d+) ")
        wifi_line = teacher.stdout.wait_for(
            r"^  wifi0 +Connect with: telnet 172\.30\.0\.2 8000 .*\(default route\)$"
        )
        assert "Give students the one on the network they are on" in "\n".join(teacher.stdout.seen)
        address, port = lan_line.group(1), lan_line.group(2)
        assert (address, port) == (TEACHER_ADDRESS, str(PORT)), lan_line.string
        assert wifi_line

        screens: dict[str, Terminal] = {}
        for name, client in STUDENTS:
            terminal = Terminal([*classroom.run_in(classroom.students[name]), client, address, port])
            stack.callback(terminal.close)
            screens[name] = terminal
            terminal.wait_for(b"What's your name\\?\r\n")
            terminal.type(f"{name}\r")
            terminal.wait_for(f"Welcome, {name}!\r\n".encode())
        for name, _ in STUDENTS:
            teacher.stdout.wait_for(rf"10\.77\.0\.\d+:\d+ joined as {name}$")

        def everyone_says(round_name: str) -> int:
            """Each student types LINES_EACH lines; wait until each shows on every other screen."""
            for line_number in range(LINES_EACH):
                for name, _ in STUDENTS:
                    screens[name].type(f"{round_name} {line_number} from {name}\r")
            for reader, _ in STUDENTS:
                expected = [
                    f"<{name}> {round_name} {number} from {name}\r\n".encode()
                    for name, _ in STUDENTS
                    if name != reader
                    for number in range(LINES_EACH)
                ]
                wait_for_all(screens[reader], expected)
            return LINES_EACH * len(STUDENTS) * (len(STUDENTS) - 1)

        delivered = everyone_says("first")
        telnet_students = [name for name, client in STUDENTS if client == "telnet"]
        # One at a time: after Ctrl-C, telnet itself throws away what arrives until the server's answer
        # to its TIMING-MARK (that is what Ctrl-C asks of it), so a line from another student then is
        # not shown.  Each "yes" is shown on every other screen before the next student starts.
        for name in telnet_students:
            type_utf8_and_ctrl_c(screens[name])  # ends with the line "yes"
            for reader, _ in STUDENTS:
                if reader != name:
                    wait_for_all(screens[reader], [f"<{name}> yes\r\n".encode()])
        delivered += everyone_says("after")  # the telnet screens still show, and send, every line

        # nc students' UTF-8 arrives whole: nc passes the bytes as they are.
        screens["ada"].type(UTF8_LINE + "\r")
        wait_for_all(screens["cy"], [f"<ada> {UTF8_LINE}\r\n".encode()])

        teacher.process.send_signal(2)  # Ctrl-C
        assert teacher.wait() == 0
        log = teacher.stdout.all()
    assert delivered == 2 * LINES_EACH * 5 * 4
    assert sum(bool(re.search(r" connected$", line)) for line in log) == len(STUDENTS)
    assert time.monotonic() - started < 60
