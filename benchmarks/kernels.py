"""Jupyter kernels for the start-up and memory cases: started, fed cells, measured, always shut down.

A kernel here is what a student's notebook gets: ipykernel started by
jupyter_client's ``KernelManager`` in this Python, its working directory
``notebooks/``.  Every wait has a timeout.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import common
import nbformat
import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

NOTEBOOKS = common.REPO / "notebooks"
STUDENT_NOTEBOOK = NOTEBOOKS / "08-Putting-It-All-Together.ipynb"
#: What a kernel that "only imports Twisted's reactor" runs as its first cell.
BARE_CELL = "from twisted.internet import reactor"
READY_TIMEOUT = 120.0  # a kernel's start, on a loaded machine
CELL_TIMEOUT = 120.0


def first_cell(path: Any = STUDENT_NOTEBOOK) -> str:
    """The source of the notebook's first code cell, as stored."""
    notebook = nbformat.read(path, as_version=4)
    return next(str(cell.source) for cell in notebook.cells if cell.cell_type == "code")


@contextmanager
def kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    """A new kernel and a client whose channels are open; shut down (at once) on the way out.

    Its sockets are UNIX sockets in a scratch directory (``transport="ipc"``), as on the
    course's classroom hub: nothing listens on TCP, and the kernel says nothing about it.
    """
    with tempfile.TemporaryDirectory(prefix="bench-kernel-") as scratch:
        manager = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(scratch) / "kernel"))
        manager.start_kernel(cwd=str(NOTEBOOKS))
        client = manager.client()
        try:
            client.start_channels()
            client.wait_for_ready(timeout=READY_TIMEOUT)
            yield manager, client
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)


def run_cell(client: BlockingKernelClient, code: str, timeout: float = CELL_TIMEOUT) -> str:
    """Run *code* in the kernel and return what it printed; a cell that raises fails the benchmark."""
    printed: list[str] = []

    def collect(message: dict[str, Any]) -> None:
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    reply = client.execute_interactive(code, timeout=timeout, output_hook=collect, allow_stdin=False)
    content = reply["content"]
    if content["status"] != "ok":
        raise common.BenchError(f"the kernel's cell failed: {content.get('ename')}: {content.get('evalue')}")
    return "".join(printed)


def loaded(client: BlockingKernelClient, modules: Sequence[str]) -> list[str]:
    """Which of *modules* the kernel has imported so far."""
    code = f"import sys as _sys\nprint(','.join(m for m in {tuple(modules)!r} if m in _sys.modules))"
    return [name for name in run_cell(client, code).strip().split(",") if name]


def memory(manager: KernelManager) -> dict[str, float]:
    """The kernel process's RSS, PSS and USS in MiB (PSS shares each shared page among its users)."""
    pid = manager.provisioner.pid if manager.provisioner is not None else None
    if pid is None:
        raise common.BenchError("the kernel manager does not know its kernel's process id")
    full = psutil.Process(pid).memory_full_info()
    return {
        "rss_mib": full.rss / common.MIB,
        "pss_mib": getattr(full, "pss", full.rss) / common.MIB,
        "uss_mib": full.uss / common.MIB,
    }
