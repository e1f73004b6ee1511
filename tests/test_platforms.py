"""What the course does on macOS and Windows, checked here by hiding what those systems lack.

* Nothing POSIX-only runs at import: every module imports with ``resource``,
  ``termios``, ``pwd`` and ``grp`` hidden (Windows has none of them).
* On the select reactor (Twisted's default on macOS and Windows), the room
  for a crowd stops below the descriptors select() can watch, and says so;
  the crowd then keeps every client, where one past that room is dropped.
* The notebook cells that cannot work without UNIX sockets or ``resource``
  say so in one line and skip, and exercise 2 of notebook 3 still checks.
"""

from __future__ import annotations

import io
import socket
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import nbformat
import pytest
from twisted.internet import reactor

from writing_servers import lab, scaling
from writing_servers.clients import connect
from writing_servers.exercises.serving import check_private_unix_endpoint
from writing_servers.scaling import (
    SPARE_DESCRIPTORS,
    open_file_limits,
    raise_open_file_limit,
    room_for_clients,
)
from writing_servers.serving import QOTDFactory, why_no_unix_sockets
from writing_servers.solutions.serving import private_unix_endpoint

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: Modules Windows lacks that Twisted itself does without (fcntl it needs, on POSIX).
WINDOWS_LACKS = ["resource", "termios", "pwd", "grp"]
TIMEOUT = 120


def run_python(script: str) -> str:
    """Run *script* in a fresh interpreter; return its stdout, failing with its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def cell_source(notebook: str, marker: str) -> str:
    """The one code cell of *notebook* whose source holds *marker*."""
    cells = nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
    found = [cell.source for cell in cells if cell.cell_type == "code" and marker in cell.source]
    assert len(found) == 1, f"{notebook}: {len(found)} code cells hold {marker!r}"
    return str(found[0])


def run_cell(source: str, namespace: dict[str, Any]) -> str:
    """Run a cell's source in *namespace*, as the kernel would; return what it printed."""
    printed = io.StringIO()
    with redirect_stdout(printed):
        exec(compile(source, "<cell>", "exec"), namespace)
    return printed.getvalue()


# -- nothing POSIX-only at import -----------------------------------------------------


def test_every_module_and_program_imports_without_what_windows_lacks() -> None:
    """Each module of the package, and each exported program, imports with resource, termios, pwd, grp hidden."""
    shown = run_python(f"""
        import importlib, importlib.util, pkgutil, sys
        from pathlib import Path

        for name in {WINDOWS_LACKS!r}:
            sys.modules[name] = None  # import fails, as on Windows

        import writing_servers

        failed, imported = [], 0
        for info in pkgutil.walk_packages(writing_servers.__path__, "writing_servers."):
            if info.name == "writing_servers.__main__":
                continue  # it runs the command line
            try:
                importlib.import_module(info.name)
                imported += 1
            except ImportError as error:
                failed.append(f"{{info.name}}: {{error}}")
        for program in sorted(Path(writing_servers.__file__).parent.glob("examples/*.py")):
            spec = importlib.util.spec_from_file_location(f"example_{{program.stem}}", program)
            module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look it up
            try:
                spec.loader.exec_module(module)
                imported += 1
            except ImportError as error:
                failed.append(f"{{program.name}}: {{error}}")
        print(imported, failed)
        """)
    imported, failed = shown.split(" ", 1)
    assert failed.strip() == "[]"
    assert int(imported) > 30  # the package's modules and its programs were all tried


def test_without_resource_the_limits_are_none_and_every_connection_fits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a resource module (Windows), there is no limit to show or raise, and room for all."""
    monkeypatch.setitem(sys.modules, "resource", None)
    assert open_file_limits() is None
    assert raise_open_file_limit(50_000) == 50_000
    assert room_for_clients(1000) == scaling.Room(1000, 1000, room_for_clients(1000).reason)


def test_notebook_9s_limits_cell_says_there_are_none_without_resource(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Notebook 9's cell that shows the open-file limits says in one line that there are none, and goes on."""
    source = cell_source("09-How-Far-Does-It-Scale.ipynb", "open_file_limits()")
    with_resource = run_cell(source, {"room_for_clients": room_for_clients})
    assert with_resource.startswith("soft limit ")
    monkeypatch.setitem(sys.modules, "resource", None)
    assert run_cell(source, {"room_for_clients": room_for_clients}) == (
        "no open-file limit here: Room for all 1000 connections.\n"
    )


# -- the select reactor ---------------------------------------------------------------


def test_on_the_select_reactor_the_room_stays_below_what_select_can_watch() -> None:
    """With selectreactor installed first, room_for_clients stops below descriptor 1024, and says why.

    The crowd then joins in full; a crowd SPARE_DESCRIPTORS + 10 larger would
    reach descriptor 1024, and the reactor drops those clients (the server
    hangs up on them) without a single error in the lab's log.
    """
    shown = run_python(f"""
        from twisted.internet import selectreactor
        selectreactor.install()  # before anything imports the reactor, as on macOS and Windows

        import os
        from writing_servers import lab
        from writing_servers.chat import ChatFactory
        from writing_servers.scaling import CrowdProcess, open_descriptors, room_for_clients, select_limit

        lab.start()
        server = lab.listen(ChatFactory(), name="chat", trace=False)
        # Hold descriptors up to 900, so the room left below 1024 is small and quick to fill.
        held = [os.open(os.devnull, os.O_RDONLY) for _ in range(900 - open_descriptors())]
        room = room_for_clients(1000)
        print(select_limit(), room.clients, open_descriptors())
        print(room)
        with CrowdProcess(server.address, timeout=10) as crowd:
            crowd.grow_to(room.clients)
            joined = lab.call(lambda: len(server.factory.users))
            crowd.broadcast()  # everyone else hears it, or this raises
            print(joined)
            try:
                crowd.grow_to(room.clients + {SPARE_DESCRIPTORS} + 10)
                print("no loss past the room")
            except ConnectionError as error:
                print("past the room:", error)
        print(lab.errors().take_new())
        """)
    numbers, sentence, joined, past, errors = shown.splitlines()
    limit, room, in_use = (int(number) for number in numbers.split())
    assert limit == 1024
    assert room == 1024 - in_use - SPARE_DESCRIPTORS
    assert 0 < room < 100
    assert sentence == (
        f"Room for {room} of 1000 connections: this reactor, SelectReactor, watches sockets with select(), "
        "which cannot take descriptors numbered 1024 or more; those connections are dropped, without an error."
    )
    assert int(joined) == room
    assert past.startswith("past the room: ") and "the server hung up" in past
    assert errors == "[]"  # what the course's room prevents: nothing in the lab's log says why


def test_windows_select_limit_is_512_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """On Windows the room stops below 512 sockets at once, and the sentence names Windows' limit."""
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(scaling, "select_limit", lambda: 512)
    monkeypatch.setattr(scaling, "open_descriptors", lambda: 0)  # Windows does not say
    room = room_for_clients(1000)
    assert room.clients == 512 - SPARE_DESCRIPTORS
    assert str(room).startswith(f"Room for {512 - SPARE_DESCRIPTORS} of 1000 connections: this reactor, ")
    assert "at most 512 sockets at once on Windows; past that, nobody is served" in str(room)


# -- UNIX sockets ---------------------------------------------------------------------


def test_why_no_unix_sockets_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """None where UNIX sockets work; otherwise whether Python or the reactor lacks them."""
    assert why_no_unix_sockets(reactor) is None
    assert why_no_unix_sockets(object()) == "this reactor (object) cannot listen on UNIX sockets"
    monkeypatch.delattr(socket, "AF_UNIX")
    assert why_no_unix_sockets(reactor) == f"Python has no UNIX sockets on this system ({sys.platform})"


def unix_cell_namespace(shown: list[object]) -> dict[str, Any]:
    lab.start()
    return {
        "lab": lab,
        "connect": connect,
        "factory": QOTDFactory(),
        "reactor": reactor,
        "display": shown.append,
    }


def test_notebook_3s_unix_cell_serves_where_there_are_unix_sockets() -> None:
    """Where UNIX sockets work, the cell serves the quote over one and shows the conversation."""
    shown: list[object] = []
    source = cell_source("03-Using-the-Protocol.ipynb", "why_no_unix_sockets(reactor)")
    assert run_cell(source, unix_cell_namespace(shown)) == ""
    assert len(shown) == 1
    assert "An apple a day keeps the doctor away" in str(shown[0])


def test_notebook_3s_unix_cell_says_it_skips_without_unix_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without AF_UNIX (Windows) the cell prints one line, listens on nothing and shows nothing."""
    shown: list[object] = []
    namespace = unix_cell_namespace(shown)
    monkeypatch.delattr(socket, "AF_UNIX")
    monkeypatch.setattr(lab, "listen", lambda *args, **kwargs: pytest.fail("it listened"))
    source = cell_source("03-Using-the-Protocol.ipynb", "why_no_unix_sockets(reactor)")
    assert (
        run_cell(source, namespace)
        == f"Skipped: Python has no UNIX sockets on this system ({sys.platform}).\n"
    )
    assert shown == []


@pytest.mark.parametrize(
    ("endpoint", "verdict"),
    [
        (private_unix_endpoint, "All checks passed."),
        (
            lambda folder: private_unix_endpoint(folder).replace("mode=600", "mode=644"),
            "1 of 4 checks failed",
        ),
        (
            lambda folder: private_unix_endpoint(folder).replace("qotd.sock", "quote.sock"),
            "1 of 4 checks failed",
        ),
    ],
)
def test_exercise_2_checks_the_description_without_unix_sockets(
    monkeypatch: pytest.MonkeyPatch, endpoint: Any, verdict: str
) -> None:
    """Without UNIX sockets the check says so in its title, serves nothing, and still tells right from wrong."""
    lab.start()
    monkeypatch.delattr(socket, "AF_UNIX")
    monkeypatch.setattr(lab, "listen", lambda *args, **kwargs: pytest.fail("the check listened"))
    text = str(check_private_unix_endpoint(endpoint))
    assert text.splitlines()[0] == (
        "Checking: private_unix_endpoint describes qotd.sock in the folder, mode 600 "
        f"(not served: Python has no UNIX sockets on this system ({sys.platform}))"
    )
    assert text.splitlines()[-1].startswith(verdict), text
