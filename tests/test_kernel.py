"""The runtime inside a real Jupyter kernel: output lands in the right cell, re-runs don't leak."""

from __future__ import annotations

from typing import Any

import nbformat
from nbclient import NotebookClient

CELL_TIMEOUT = 60


def run_cells(*sources: str) -> list[Any]:
    """Execute *sources* as the cells of one notebook in a fresh kernel; return the cells."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    NotebookClient(notebook, timeout=CELL_TIMEOUT, kernel_name="python3").execute()
    return list(notebook.cells)


def stream(cell: Any, name: str) -> str:
    return "".join(output.text for output in cell.outputs if output.get("name") == name)


SETUP = """
from twisted.internet.protocol import Factory, Protocol
from writing_servers import lab
from writing_servers.clients import connect
from writing_servers.protocols import Echo

class Divider(Protocol):
    def dataReceived(self, data):
        self.transport.write(b"%d\\r\\n" % (100 // int(data)))
"""


def test_server_error_is_printed_in_the_cell_that_caused_it() -> None:
    """An exception in dataReceived shows once, readably, on the stderr of the cell whose client caused it."""
    cells = run_cells(
        SETUP,
        """
server = lab.listen(Factory.forProtocol(Divider))
with connect(server) as client:
    client.send(b"0")
    client.read_all()
print("connection ended:", client.ended)
""",
        "print('next cell')",
    )
    error_cell, next_cell = cells[1], cells[2]
    assert stream(error_cell, "stdout") == "connection ended: eof\n"
    # line 8 of the cell as IPython runs it (it drops the cell's leading blank line)
    assert stream(error_cell, "stderr") == (
        "Server error: Divider.dataReceived, line 8: ZeroDivisionError: integer division or modulo by zero\n"
    )
    assert stream(next_cell, "stderr") == ""
    assert stream(next_cell, "stdout") == "next cell\n"


def test_rerunning_a_listen_cell_replaces_the_server() -> None:
    """Running one listen cell three times leaves one server; the earlier ports refuse connections."""
    listen_cell = "server = lab.listen(Factory.forProtocol(Echo)); ports.append(server.port)"
    cells = run_cells(
        SETUP + "\nports = []",
        listen_cell,
        listen_cell,
        listen_cell,
        """
import socket
refused = []
for port in ports[:-1]:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        refused.append(port)
print(len(lab.servers()), refused == ports[:-1], len(set(ports)))
""",
    )
    assert stream(cells[-1], "stdout") == "1 True 3\n"


def test_start_twice_and_threads() -> None:
    """Two start() calls make one daemon reactor thread; the cell's own output stays in its cell."""
    cells = run_cells(
        SETUP,
        """
import threading
lab.start(); lab.start()
reactors = [t for t in threading.enumerate() if t.name == "twisted-reactor"]
print(len(reactors), reactors[0].daemon)
""",
    )
    assert stream(cells[1], "stdout") == "1 True\n"
    assert stream(cells[1], "stderr") == ""
