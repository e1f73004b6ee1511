"""Start JupyterLab on the course (what ``make lab`` runs) and say exactly where to open it.

JupyterLab binds to 127.0.0.1 with its token on.  Once it is serving, this
prints one address that opens notebooks/00-Index.ipynb directly, token
included; with a screen attached, the browser opens it too.  Ctrl-C stops
JupyterLab as usual.

Where the system has UNIX sockets, kernels talk to JupyterLab over them
(``--KernelManager.transport=ipc``), in files in the user's own runtime
folder, instead of over five TCP ports on 127.0.0.1.  Jupyter picks those
ports by binding and releasing them, so another program (a notebook's server
on port 0, on a shared machine someone else's) could take one in between.
A socket's path has a length limit, so with a very long runtime folder
kernels stay on TCP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir
from jupyter_server.serverapp import list_running_servers

ROOT = Path(__file__).resolve().parent.parent
START_PAGE = "notebooks/00-Index.ipynb"
WAIT_FOR_SERVER = 60.0
#: A UNIX socket's path holds 104 bytes on macOS, 108 on Linux, its final NUL included.
SOCKET_PATH_MAX = 103


def has_screen() -> bool:
    return sys.platform == "darwin" or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def kernels_over_ipc() -> bool:
    """Whether this system has UNIX sockets for ZeroMQ, and the longest kernel socket path fits."""
    if os.name != "posix":  # ZeroMQ has no ipc transport on Windows
        return False
    longest = os.path.join(jupyter_runtime_dir(), f"kernel-{uuid.uuid4()}-ipc-5")  # five channels, -1 to -5
    return len(os.fsencode(longest)) <= SOCKET_PATH_MAX


def command() -> list[str]:
    args = [sys.executable, "-m", "jupyterlab", "--ServerApp.ip=127.0.0.1", f"--ServerApp.root_dir={ROOT}"]
    if kernels_over_ipc():
        args.append("--KernelManager.transport=ipc")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # JupyterLab refuses root without it; containers and CI run as root
    if has_screen():
        args.append(START_PAGE)  # opens the browser on the index
    else:
        args.append("--no-browser")
    return args


def start_url(pid: int) -> str | None:
    for server in list_running_servers():
        if server.get("pid") == pid:
            return f"{server['url']}lab/tree/{START_PAGE}?token={server['token']}"
    return None


def main() -> int:
    lab = subprocess.Popen(command(), cwd=ROOT)
    deadline = time.monotonic() + WAIT_FOR_SERVER
    try:
        url = None
        while url is None and lab.poll() is None and time.monotonic() < deadline:
            time.sleep(0.25)
            url = start_url(lab.pid)
        if url is not None:
            print(f"\n    The course is open at:\n\n    {url}\n\n    Stop it with Ctrl-C.\n", flush=True)
        elif lab.poll() is None:
            print(f"JupyterLab did not report its address within {WAIT_FOR_SERVER:g} s; see its log above.")
        return lab.wait()
    except KeyboardInterrupt:  # the person asked to stop: a clean exit, not an error
        lab.terminate()
        lab.wait(timeout=30)
        return 0


if __name__ == "__main__":
    sys.exit(main())
