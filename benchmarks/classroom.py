"""``make classroom``: how many students one machine's JupyterHub holds, measured.

A real JupyterHub (from PyPI) and configurable-http-proxy (from npm), both installed into
``.classroom/``, serve the course's own ``jupyterhub_config.py`` on 127.0.0.1, with two changes that let
one account play a whole class: the dummy authenticator and the simple local process spawner (every
student's server runs as this user, in a home folder of its own under ``/tmp/class/``).

N simulated students, all at once, each start their server through the hub's REST API, open notebook 08
and then notebook 02 as JupyterLab does (a session, then the kernel's websocket), run every code cell
over the kernel protocol, and compare each cell's outputs with the stored ones by nbval's rules (its
markers, its skipped keys, ``tests/nbval-sanitize.cfg``).  A student's time runs from asking for the
server to the last cell of notebook 02.  Memory is the proportional set size (PSS, shared pages split
between the processes sharing them) of the student's server and its two kernels, taken when every
student has finished and before any server stops.

Run ``.venv/bin/python benchmarks/classroom.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import configparser
import datetime
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil
import websocket
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from nbval.plugin import coalesce_streams, find_comment_markers, find_metadata_tags

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, BenchError, git_state, machine_facts, median, percentile

CLASSROOM = REPO / ".classroom"
VENV = CLASSROOM / "venv"
NODE = CLASSROOM / "node"
#: Students' home folders.  Short, as /home/NAME is: kernels talk over UNIX sockets in
#: HOME/.local/share/jupyter/runtime/, and a socket's path must fit in 107 bytes.
HOMES = Path("/tmp/class")
PROXY = NODE / "node_modules" / ".bin" / "configurable-http-proxy"
NOTEBOOKS = [
    REPO / "notebooks" / "08-Putting-It-All-Together.ipynb",
    REPO / "notebooks" / "02-loseConnection-and-abortConnection.ipynb",
]
SANITIZE = REPO / "tests" / "nbval-sanitize.cfg"
SIZES = (1, 5, 10, 20)
#: A class is "within" when its slowest student takes at most this many times one student alone.
WITHIN = 3.0
BUSY_SAMPLE = 5.0  # seconds of CPU use measured before the first class (load_note)
CELL_TIMEOUT = 120.0  # as `make nbval`
SPAWN_TIMEOUT = 300.0
HTTP_TIMEOUT = 60.0
MIB = 1024 * 1024
#: nbval compares every output key but these (its defaults, without nbdime).
SKIP_COMPARE = (
    "metadata",
    "traceback",
    "prompt_number",
    "output_type",
    "name",
    "execution_count",
    "application/vnd.jupyter.widget-view+json",
    "image/png",
    "image/jpeg",
)


# -- installing the hub into .classroom/ --------------------------------------------------------

#: Installed next to the course (the newest releases: the lock does not cover them).
HUB_PACKAGES = ("jupyterhub",)


def lock_file() -> Path:
    return REPO / "constraints" / f"py{sys.version_info.major}.{sys.version_info.minor}.txt"


def install() -> None:
    """JupyterHub, the course and configurable-http-proxy in .classroom/, unless already there."""
    inputs = [REPO / "pyproject.toml"] + ([lock_file()] if lock_file().exists() else [])
    digest = hashlib.sha256(
        b"".join(path.read_bytes() for path in inputs) + repr(HUB_PACKAGES).encode()
    ).hexdigest()
    stamp = CLASSROOM / "installed"
    if stamp.exists() and stamp.read_text() == digest and PROXY.exists():
        return
    CLASSROOM.mkdir(exist_ok=True)
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=600)
    constraints = ["-c", str(lock_file())] if lock_file().exists() else []
    print("Installing jupyterhub and the course into .classroom/venv (pip)...", flush=True)
    subprocess.run(pip + constraints + ["-e", f"{REPO}[lab]", *HUB_PACKAGES], check=True, timeout=1800)
    print("Installing configurable-http-proxy into .classroom/node (npm)...", flush=True)
    subprocess.run(
        ["npm", "install", "--silent", "--prefix", str(NODE), "configurable-http-proxy"],
        check=True,
        timeout=900,
    )
    stamp.write_text(digest)


def installed_versions() -> dict[str, str]:
    python = str(VENV / "bin" / "python")
    hub = subprocess.run(
        [
            python,
            "-c",
            "import jupyterhub, jupyterlab; print(jupyterhub.__version__, jupyterlab.__version__)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    proxy = subprocess.run([str(PROXY), "--version"], capture_output=True, text=True, timeout=60).stdout
    return {"jupyterhub": hub[0], "jupyterlab": hub[1], "configurable-http-proxy": proxy.strip()}


# -- the hub ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Hub:
    """A JupyterHub running the course's config, a service token to drive it, stopped however it ends."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.token = secrets.token_hex(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def config(self) -> str:
        environment_path = f"{VENV / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return f"""\
# Written by benchmarks/classroom.py: the course's classroom config, played by one account.
load_subconfig({str(REPO / "jupyterhub_config.py")!r})
c.JupyterHub.bind_url = {self.url!r}
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{str(PROXY)!r}]
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {str(HOMES) + "/{username}"!r}
c.Spawner.cmd = [{str(VENV / "bin" / "jupyterhub-singleuser")!r}]
c.Spawner.environment.update({{"PATH": {environment_path!r}}})
# Every student's server runs as this account; Jupyter refuses root unless told.
c.Spawner.args = c.Spawner.args + {["--allow-root"] if os.geteuid() == 0 else []!r}
c.JupyterHub.db_url = "sqlite:///{self.run_dir / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(self.run_dir / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.run_dir / "jupyterhub.pid")!r}
c.JupyterHub.cleanup_servers = True
c.JupyterHub.services = [{{"name": "classroom", "api_token": {self.token!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "classroom", "services": ["classroom"],
      "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}},
]
"""

    def start(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)  # a fresh hub database: no users, no servers
        self.run_dir.mkdir(parents=True)
        config = self.run_dir / "jupyterhub_config.py"
        config.write_text(self.config())
        log = (self.run_dir / "hub.log").open("wb")
        self.process = subprocess.Popen(
            [str(VENV / "bin" / "jupyterhub"), "-f", str(config)],
            cwd=self.run_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the hub, its proxy and every student's server: one group to stop
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"jupyterhub exited with {self.process.returncode}; see {self.run_dir}/hub.log"
                )
            try:
                self.api("GET", "/hub/api/")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        raise BenchError(f"jupyterhub did not answer in 120 s; see {self.run_dir}/hub.log")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"token {self.token}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
            text = response.read()
        return json.loads(text) if text else None

    def processes_of(self, user: str) -> list[psutil.Process]:
        """The user's server and everything it started (kernels), found by JUPYTERHUB_USER."""
        assert self.process is not None
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if child.environ().get("JUPYTERHUB_USER") == user:
                    found.append(child)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found


# -- one student --------------------------------------------------------------------------------


@dataclass
class NotebookRun:
    name: str
    kernel_start: float = 0.0  # session asked for -> kernel_info_reply
    round_trip: float = 0.0  # an empty cell: browser-side socket -> proxy -> server -> kernel and back
    cells: list[tuple[str, float, float]] = field(default_factory=list)  # (source, wall s, kernel CPU s)
    mismatches: list[str] = field(default_factory=list)
    seconds: float = 0.0
    kernel_id: str = ""
    binary: bool = False  # the server agreed to JupyterLab's v1 binary framing


@dataclass
class Student:
    name: str
    spawn: float = 0.0
    runs: list[NotebookRun] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    memory: dict[str, float] = field(default_factory=dict)  # server / kernels: MiB PSS
    cpu: dict[str, float] = field(default_factory=dict)  # server / kernels: CPU seconds used in all
    unnoticed: float = 0.0  # the server was running, the hub had not yet polled it
    cpu_before: float = 0.0  # CPU seconds its server had used when the clock started (servers ready)

    @property
    def passed(self) -> bool:
        return (
            not self.error and len(self.runs) == len(NOTEBOOKS) and not any(r.mismatches for r in self.runs)
        )


def sanitize_patterns() -> list[tuple[str, str]]:
    parser = configparser.ConfigParser()
    parser.read(SANITIZE)
    return [(parser[section]["regex"], parser[section]["replace"]) for section in parser.sections()]


PATTERNS = sanitize_patterns()


def sanitized(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for regex, replacement in PATTERNS:
        value = re.sub(regex, replacement, value)
    return value


def comparable(outputs: list[Any]) -> dict[str, list[Any]]:
    """Outputs as nbval compares them: streams merged, every key but the skipped ones, by key."""
    by_key: dict[str, list[Any]] = {}
    for output in coalesce_streams([nbformat.from_dict(output) for output in outputs]):
        if output.output_type == "stream":
            output = {"output_type": "stream", output.name: output.text}
        for key, value in output.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP_COMPARE:
                        by_key.setdefault(mime, []).append(sanitized(content))
            else:
                by_key.setdefault(key, []).append(sanitized(value))
    return by_key


def options(cell: Any) -> dict[str, bool]:
    found = {"check": True, "check_exception": False, "skip": False}
    found.update(dict(find_comment_markers(cell.source)))
    found.update(dict(find_metadata_tags(cell.metadata)))
    return found


class KernelSocket:
    """One kernel's channels over the single-user server's websocket, the way JupyterLab talks to it."""

    #: JupyterLab's binary framing: the server passes kernel messages through without re-encoding them.
    SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"

    def __init__(self, url: str, token: str) -> None:
        self.session = uuid.uuid4().hex
        self.socket = websocket.create_connection(
            url,
            header=[f"Authorization: token {token}"],
            subprotocols=[self.SUBPROTOCOL],
            timeout=HTTP_TIMEOUT,
        )
        self.binary = self.socket.getsubprotocol() == self.SUBPROTOCOL

    def close(self) -> None:
        self.socket.close()

    def send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": "student",
            "session": self.session,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "version": "5.3",
        }
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content}
        if self.binary:
            self.socket.send_binary(
                serialize_msg_to_ws_v1(message, "shell", lambda part: json.dumps(part).encode())
            )
        else:
            self.socket.send(json.dumps({**message, "channel": "shell"}))
        return msg_id

    def replies(self, msg_id: str, deadline: float) -> Iterator[dict[str, Any]]:
        """Every message answering *msg_id*, until the deadline."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the kernel in time")
            self.socket.settimeout(left)
            raw = self.socket.recv()
            if isinstance(raw, bytes):
                channel, parts = deserialize_msg_from_ws_v1(raw)
                keys = ("header", "parent_header", "metadata", "content")
                message = {key: json.loads(part) for key, part in zip(keys, parts[:4], strict=True)}
                message["channel"] = channel
            else:
                message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") == msg_id:
                yield message

    def wait_ready(self, timeout: float) -> None:
        msg_id = self.send("kernel_info_request", {})
        for message in self.replies(msg_id, time.monotonic() + timeout):
            if message["header"]["msg_type"] == "kernel_info_reply":
                return

    def execute(self, code: str, timeout: float) -> list[dict[str, Any]]:
        """Run *code*; its outputs as a notebook stores them, once the kernel is idle and has replied."""
        msg_id = self.send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )
        outputs: list[dict[str, Any]] = []
        idle = replied = False
        for message in self.replies(msg_id, time.monotonic() + timeout):
            kind, content = message["header"]["msg_type"], message["content"]
            if kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
            elif kind == "stream":
                outputs.append({"output_type": "stream", "name": content["name"], "text": content["text"]})
            elif kind in ("display_data", "execute_result"):
                output = {"output_type": kind, "data": content["data"], "metadata": content["metadata"]}
                if kind == "execute_result":
                    output["execution_count"] = content["execution_count"]
                outputs.append(output)
            elif kind == "error":
                outputs.append({"output_type": "error", **content})
            if idle and replied:
                return outputs
        raise AssertionError("unreachable")


def kernel_process(hub: Hub, user: str, kernel_id: str) -> psutil.Process | None:
    """The kernel's process (its command line names its connection file, which holds its id)."""
    for process in hub.processes_of(user):
        try:
            if any(kernel_id in part for part in process.cmdline()):
                return process
        except psutil.NoSuchProcess:
            pass
    return None


def cpu_seconds(process: psutil.Process | None) -> float:
    """CPU seconds (user + system) *process* has used so far; 0 if it is gone or was never found."""
    try:
        times = process.cpu_times() if process is not None else None
    except psutil.NoSuchProcess:
        times = None
    return float(times.user + times.system) if times is not None else 0.0


def run_notebook(hub: Hub, student: str, path: Path) -> NotebookRun:
    run = NotebookRun(path.stem)
    started = time.monotonic()
    base = f"/user/{student}/api"
    session = hub.api(
        "POST",
        base + "/sessions",
        {
            "path": f"notebooks/{path.name}",
            "type": "notebook",
            "name": path.name,
            "kernel": {"name": "python3"},
        },
    )
    run.kernel_id = session["kernel"]["id"]
    kernel = KernelSocket(
        f"ws://127.0.0.1:{hub.port}{base}/kernels/{run.kernel_id}/channels?session_id={uuid.uuid4().hex}",
        hub.token,
    )
    run.binary = kernel.binary
    try:
        kernel.wait_ready(SPAWN_TIMEOUT)
        run.kernel_start = time.monotonic() - started
        # Found once: looking it up costs CPU that the students would then be measured with.
        process = kernel_process(hub, student, run.kernel_id)
        round_trip_started = time.monotonic()
        kernel.execute("pass", CELL_TIMEOUT)
        run.round_trip = time.monotonic() - round_trip_started
        notebook = nbformat.read(path, as_version=4)
        for number, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
            how = options(cell)
            if how["skip"]:
                continue
            cpu_before = cpu_seconds(process)
            cell_started = time.monotonic()
            outputs = kernel.execute(cell.source, CELL_TIMEOUT)
            wall = time.monotonic() - cell_started
            run.cells.append((cell.source, wall, cpu_seconds(process) - cpu_before))
            errors = [o for o in outputs if o["output_type"] == "error"]
            if errors and not how["check_exception"]:
                run.mismatches.append(f"cell {number}: {errors[0]['ename']}: {errors[0]['evalue']}")
                break  # nbval would go on, but a kernel that raised unexpectedly makes the rest noise
            if how["check"] and cell.execution_count is not None:
                if comparable(outputs) != comparable(cell.outputs):
                    run.mismatches.append(f"cell {number}: outputs differ")
    finally:
        kernel.close()
    run.seconds = time.monotonic() - started
    return run


def wait_for_server(hub: Hub, student: str) -> None:
    """Follow the hub's progress events for the spawn, as the spawn page in a browser does.

    (Polling the user model instead, every 0.2 s for 20 students, took CPU from the servers starting.)"""
    request = urllib.request.Request(f"{hub.url}/hub/api/users/{student}/server/progress")
    request.add_header("Authorization", f"token {hub.token}")
    request.add_header("Accept", "text/event-stream")
    with urllib.request.urlopen(request, timeout=SPAWN_TIMEOUT) as events:
        for line in events:
            if not line.startswith(b"data:"):
                continue
            event = json.loads(line[len(b"data:") :])
            if event.get("ready"):
                return
            if event.get("failed"):
                raise RuntimeError(f"{student}'s server failed to start: {event.get('message')}")
    raise RuntimeError(f"{student}'s spawn progress ended without the server ready")


def run_student(hub: Hub, name: str, start: threading.Event, ready: threading.Barrier | None) -> Student:
    """One student's run; with *ready*, the server starts before the clock (every student waits there)."""
    student = Student(name)
    home = HOMES / name
    shutil.rmtree(home, ignore_errors=True)
    (home / "notebooks").mkdir(parents=True)
    for path in NOTEBOOKS:
        shutil.copy(path, home / "notebooks" / path.name)
    start.wait(timeout=60)
    try:
        if ready is not None:
            spawned = time.monotonic()
            start_server(hub, name)
            student.spawn = time.monotonic() - spawned
            ready.wait(timeout=SPAWN_TIMEOUT)  # the lesson starts once every server runs
            student.cpu_before = sum(cpu_seconds(p) for p in hub.processes_of(name))
    except Exception as error:
        student.error = f"{type(error).__name__}: {error}"
        if ready is not None:
            ready.abort()
        return student
    started = time.monotonic()
    try:
        if ready is None:
            start_server(hub, name)
            student.spawn = time.monotonic() - started
        for path in NOTEBOOKS:
            student.runs.append(run_notebook(hub, name, path))
    except Exception as error:  # one student's failure is a result, not the end of the run
        student.error = f"{type(error).__name__}: {error}"
    student.seconds = time.monotonic() - started
    return student


def start_server(hub: Hub, student: str) -> None:
    hub.api("POST", f"/hub/api/users/{student}/server", {})
    wait_for_server(hub, student)


def pss_mib(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total / MIB


def measure_memory(hub: Hub, student: Student) -> None:
    processes = hub.processes_of(student.name)
    kernels = [p for p in processes if any("ipykernel" in part for part in p.cmdline())]
    server = [p for p in processes if p not in kernels]
    student.memory = {"server": pss_mib(server), "kernels": pss_mib(kernels), "kernel count": len(kernels)}
    student.cpu = {
        "server": sum(cpu_seconds(p) for p in server) - student.cpu_before,  # kernels start in the run
        "kernels": sum(cpu_seconds(p) for p in kernels),
    }


def run_class(size: int, run_dir: Path, servers_ready: bool = False) -> dict[str, Any]:
    """*size* students at once on a fresh hub; their results, the hub's own memory and the load.

    With *servers_ready*, every student's server is started (all at once, as the hub admin page's
    "Start All" does) before the clock starts; then the class runs its notebooks together.
    """
    hub = Hub(run_dir)
    try:
        hub.start()
        names = [f"student{n:02d}" for n in range(1, size + 1)]
        hub.api("POST", "/hub/api/users", {"usernames": names})
        start = threading.Event()
        ready = threading.Barrier(size + 1) if servers_ready else None
        load_before = os.getloadavg()[0]
        with concurrent.futures.ThreadPoolExecutor(max_workers=size) as pool:
            futures = [pool.submit(run_student, hub, name, start, ready) for name in names]
            start.set()
            if ready is not None:
                try:
                    ready.wait(timeout=SPAWN_TIMEOUT + 60)
                except threading.BrokenBarrierError:
                    pass  # a server failed to start: its student's error says why
                load_before = os.getloadavg()[0]
            class_started = time.monotonic()
            students = [future.result(timeout=SPAWN_TIMEOUT + 2 * CELL_TIMEOUT * 80) for future in futures]
            wall = time.monotonic() - class_started
        unnoticed = unnoticed_seconds(run_dir / "hub.log")
        for student in students:
            measure_memory(hub, student)
            student.unnoticed = unnoticed.get(student.name, float("nan"))
        assert hub.process is not None
        hub_processes = [psutil.Process(hub.process.pid)] + [
            p
            for p in psutil.Process(hub.process.pid).children()
            if "configurable-http-proxy" in " ".join(p.cmdline()) or "node" in p.name()
        ]
        return {
            "size": size,
            "servers ready": servers_ready,
            "students": students,
            "hub MiB": pss_mib(hub_processes),
            "hub cpu": sum(cpu_seconds(p) for p in hub_processes),
            "wall": wall,
            "load": (load_before, os.getloadavg()[0]),
        }
    finally:
        hub.stop()


def alone(runs: int, servers_ready: bool = False) -> dict[str, Any]:
    """One student at a time, *runs* times, each on a fresh hub: the baseline the classes are held to."""
    folder = "ready-n1" if servers_ready else "n1"
    results = [
        run_class(1, CLASSROOM / "runs" / f"{folder}-{run}", servers_ready) for run in range(1, runs + 1)
    ]
    return {
        "size": 1,
        "servers ready": servers_ready,
        "students": [student for result in results for student in result["students"]],
        "hub MiB": median([result["hub MiB"] for result in results]),
        "hub cpu": median([result["hub cpu"] for result in results]),
        "wall": median([result["wall"] for result in results]),
        "load": (results[0]["load"][0], results[-1]["load"][1]),
    }


# -- where the time goes ------------------------------------------------------------------------


def import_seconds(statement: str, repeats: int = 3) -> float:
    """Median wall seconds for a fresh Python of the classroom venv to run *statement*."""
    samples = []
    for _ in range(repeats):
        started = time.monotonic()
        subprocess.run([str(VENV / "bin" / "python"), "-c", statement], check=True, timeout=300)
        samples.append(time.monotonic() - started)
    return median(samples)


def import_costs() -> dict[str, float]:
    """What a kernel imports before the first cell, and what the first cells add, each on its own."""
    bare = import_seconds("pass")
    kernel = import_seconds("import ipykernel.kernelapp")
    course = import_seconds(
        "import ipykernel.kernelapp; from writing_servers import lab; from writing_servers.clients import connect"
    )
    charts = import_seconds("import ipykernel.kernelapp; import matplotlib.pyplot")
    return {
        "python": bare,
        "ipykernel": kernel - bare,
        "course (lab, clients, twisted)": course - kernel,
        "matplotlib.pyplot": charts - kernel,
    }


#: What a student's server loads, and with part of it switched off (the same flags a hub could pass).
SERVER_VARIANTS = {
    "JupyterLab, as the hub starts it": [],
    "without jupyter_lsp (its language-server scan)": [
        '--ServerApp.jpserver_extensions={"jupyter_lsp": False}'
    ],
    "jupyter_server alone (no JupyterLab, no lsp, no terminals)": [
        '--ServerApp.jpserver_extensions={"jupyter_lsp": False, "jupyterlab": False,'
        ' "jupyter_server_terminals": False, "notebook_shim": False}'
    ],
}


def server_start_cpu(extra: list[str], home: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds for a Jupyter server of the classroom venv to answer its API, started alone,
    and its CPU seconds 3 s later (extensions go on starting after the server answers)."""
    port = free_port()
    command = [
        str(VENV / "bin" / "jupyter-lab"),
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
    ]
    command += ["--IdentityProvider.token=", "--KernelManager.transport=ipc", *extra]
    command += ["--allow-root"] if os.geteuid() == 0 else []
    environment = {**os.environ, "HOME": str(home), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    started = time.monotonic()
    server = subprocess.Popen(
        command, cwd=home, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        process = psutil.Process(server.pid)
        while time.monotonic() - started < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=5):
                    answered, cpu = time.monotonic() - started, cpu_seconds(process)
                time.sleep(3)
                return answered, cpu, cpu_seconds(process)
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
        raise BenchError("a Jupyter server did not answer in 120 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def server_start_costs(repeats: int = 3) -> dict[str, tuple[float, float, float]]:
    """Median (wall, CPU, CPU 3 s later) seconds to a server answering, for each of SERVER_VARIANTS."""
    home = HOMES / "server-start"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    costs = {}
    for name, extra in SERVER_VARIANTS.items():
        samples = [server_start_cpu(extra, home) for _ in range(repeats)]
        costs[name] = (
            median([wall for wall, _, _ in samples]),
            median([cpu for _, cpu, _ in samples]),
            median([later for _, _, later in samples]),
        )
    return costs


# -- the report ---------------------------------------------------------------------------------


def seconds_of(students: list[Student]) -> list[float]:
    return [s.seconds for s in students if s.passed]


def alone_seconds(classes: list[dict[str, Any]]) -> float:
    """One student alone: the median of the solo runs (the hub's start-up polling makes one run noisy)."""
    return median(seconds_of(classes[0]["students"]) or [float("nan")])


def summary_rows(classes: list[dict[str, Any]]) -> tuple[list[list[str]], int]:
    alone = alone_seconds(classes)
    within = 0
    stopped = False
    rows = []
    for result in classes:
        students: list[Student] = result["students"]
        done = seconds_of(students)
        server = median([s.memory["server"] for s in students]) if students else 0.0
        kernels = median([s.memory["kernels"] for s in students]) if students else 0.0
        server_cpu = median([s.cpu["server"] for s in students]) if students else 0.0
        kernels_cpu = median([s.cpu["kernels"] for s in students]) if students else 0.0
        every_one_within = bool(done) and len(done) == len(students) and max(done) <= WITHIN * alone
        size = f"1 ({len(students)} runs, one at a time)" if result["size"] == 1 else str(result["size"])
        if every_one_within and not stopped:
            within = result["size"]
        stopped = stopped or not every_one_within  # the largest N with every smaller class within too
        rows.append(
            [
                size,
                f"{len(done)} of {len(students)}",
                f"{median(done):.1f}" if done else "—",
                f"{percentile(done, 0.95):.1f}" if done else "—",
                f"{max(done):.1f}" if done else "—",
                f"{max(done) / alone:.2f} ×" if done else "—",  # for N = 1: the slowest solo run
                f"{server + kernels:.0f} (server {server:.0f}, kernels {kernels:.0f})",
                f"{server_cpu + kernels_cpu:.1f} (server {server_cpu:.1f}, kernels {kernels_cpu:.1f})",
                f"{result['load'][0]:.1f} → {result['load'][1]:.1f}",
            ]
        )
    return rows, within


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        for row in [header, *rows]
    ]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def first_line(source: str) -> str:
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    text = lines[0].strip() if lines else ""
    return (text[:60] + "…") if len(text) > 60 else text


LOG_TIME = r"\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)"


def unnoticed_seconds(hub_log: Path) -> dict[str, float]:
    """Per student: from their server saying it runs to the hub saying it started (the hub polls it)."""
    text = hub_log.read_text(errors="replace") if hub_log.exists() else ""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    running = {
        name: datetime.datetime.strptime(stamp, fmt)
        for stamp, name in re.findall(
            LOG_TIME + r" ServerApp\] Serving notebooks from local directory: \S+/(\w+)", text
        )
    }
    noticed = {
        name: datetime.datetime.strptime(stamp, fmt)
        for stamp, name in re.findall(LOG_TIME + r" JupyterHub base:\d+\] User (\w+) took", text)
    }
    return {name: (noticed[name] - running[name]).total_seconds() for name in running if name in noticed}


def phases(students: list[Student], servers_ready: bool = False) -> dict[str, float]:
    """Median seconds per student in each phase of its run."""
    done = [s for s in students if s.passed]
    if not done:
        return {}

    def each(pick: Any) -> float:
        return median([pick(s) for s in done])

    spawn = "server start (REST API to ready" + (
        ", before the clock: not in the whole run)" if servers_ready else ")"
    )
    return {
        spawn: each(lambda s: s.spawn),
        "  of which its server said it was running, the hub not yet polled it (backoff)": each(
            lambda s: s.unnoticed
        ),
        "kernel start (session to kernel_info_reply), both notebooks": each(
            lambda s: sum(r.kernel_start for r in s.runs)
        ),
        "first cell (imports, lab.start()), both notebooks": each(
            lambda s: sum(r.cells[0][1] for r in s.runs)
        ),
        "an empty cell, once per notebook (the round trip)": each(
            lambda s: sum(r.round_trip for r in s.runs)
        ),
        "other cells: kernel on CPU": each(lambda s: sum(c[2] for r in s.runs for c in r.cells[1:])),
        "other cells: kernel waiting (sockets, timers, sleeps, CPU queue)": each(
            lambda s: sum(c[1] - c[2] for r in s.runs for c in r.cells[1:])
        ),
        "  of which in cells that mostly wait (wall ≥ 0.15 s, kernel CPU < 0.05 s)": each(
            lambda s: sum(c[1] - c[2] for r in s.runs for c in r.cells[1:] if c[1] >= 0.15 and c[2] < 0.05)
        ),
        "whole run": each(lambda s: s.seconds),
    }


def slowest_cells(student: Student, count: int) -> list[list[str]]:
    cells = [(run.name[:2], index, cell) for run in student.runs for index, cell in enumerate(run.cells)]
    cells.sort(key=lambda item: -item[2][1])
    return [
        [f"{notebook} #{index}", f"{wall:.2f}", f"{cpu:.2f}", f"{wall - cpu:.2f}", first_line(source)]
        for notebook, index, (source, wall, cpu) in cells[:count]
    ]


def report(
    classes: list[dict[str, Any]],
    costs: dict[str, float],
    servers: dict[str, tuple[float, float, float]],
    facts: dict[str, str],
) -> str:
    rows, within = summary_rows(classes)
    ready = bool(classes[0].get("servers ready"))
    every_run = [run for result in classes for student in result["students"] for run in student.runs]
    binary, runs = sum(run.binary for run in every_run), len(every_run)
    header = [
        "students",
        "completed",
        "median s",
        "p95 s",
        "max s",
        "max / alone",
        "PSS MiB per student",
        "CPU s per student",
        "load avg 1 min (before → after)",
    ]
    lines = [
        section_title(ready),
        "",
        "Generated by `make classroom` (`benchmarks/classroom.py`); run it again rather than editing by hand.",
        f"A real JupyterHub {facts['jupyterhub']} with configurable-http-proxy {facts['configurable-http-proxy']}"
        f" and JupyterLab {facts['jupyterlab']} on 127.0.0.1, the course's `jupyterhub_config.py` (kernels over",
        "ipc, a loopback address per student) with the dummy authenticator and the simple spawner. Each",
        "student, all at once, starts a server through the REST API, then runs notebook 08 and then 02 over the",
        "kernel protocol (a session and its websocket, as JupyterLab does), every cell compared with the stored",
        "outputs by nbval's rules and `tests/nbval-sanitize.cfg`. *Completed*: every cell matched. Seconds run",
        "from asking for the server to notebook 02's last cell. Memory: PSS of the student's server and its two",
        "kernels, with every student finished and every kernel still running.",
        *(SERVERS_READY_NOTE if ready else []),
        "",
        load_note(float(facts["busy at start"]), facts["cores"]),
        "",
        f"| | |\n|---|---|\n| date | {facts['date']} |\n| cpu | {facts['cpu']} |\n| cores | {facts['cores']} |"
        f"\n| python | {facts['python']} |\n| code | {facts['code']} |",
        "",
        markdown_table(header, rows),
        "",
        f"Kernel websockets on JupyterLab's binary v1 framing: {binary} of {runs}. "
        f"The hub and its proxy: {classes[-1]['hub MiB']:.0f} MiB PSS with {classes[-1]['size']} students"
        f" ({classes[0]['hub MiB']:.0f} with one). *max / alone*: the slowest student over the median solo"
        f" run ({alone_seconds(classes):.1f} s).",
        "",
        f"Largest class whose every student finished within {WITHIN:g} × one student alone: "
        + (f"**{within}**." if within else "**none** (not even one student completed)."),
        "",
        "### Where a student's time goes",
        "",
    ]
    biggest = classes[-1]
    phase_rows = []
    small, large = phases(classes[0]["students"], ready), phases(biggest["students"], ready)
    for name in small:
        phase_rows.append([name, f"{small[name]:.1f}", f"{large[name]:.1f}" if name in large else "—"])
    lines += [
        markdown_table(["median per student, s", "alone", f"{biggest['size']} at once"], phase_rows),
        "",
        "What a fresh Python of the classroom venv takes to import, alone, median of 3 (the kernel imports the",
        "first two before it answers; a notebook's first cell the third; notebook 02's chart the fourth):",
        "",
        markdown_table(["import", "s"], [[name, f"{seconds:.2f}"] for name, seconds in costs.items()]),
        "",
        "A student's server started on its own (no hub), median of 3: its CPU until it answers, and what",
        "switching parts of it off saves:",
        "",
        markdown_table(
            ["server", "wall s to answer", "CPU s to answer", "CPU s 3 s later"],
            [
                [name, f"{wall:.1f}", f"{cpu:.1f}", f"{later:.1f}"]
                for name, (wall, cpu, later) in servers.items()
            ],
        ),
        "",
        "The slowest cells of the one student alone (wall, the kernel's CPU, and the rest, which is waiting):",
        "",
        markdown_table(
            ["cell", "wall s", "kernel CPU s", "waiting s", "starts with"],
            slowest_cells(classes[0]["students"][0], 8) if classes[0]["students"][0].runs else [],
        ),
    ]
    lines += ["", "### What bounds the class", "", *cpu_findings(classes)]
    failures = [
        f"- N = {result['size']}, {s.name}: {s.error or '; '.join(m for r in s.runs for m in r.mismatches)}"
        for result in classes
        for s in result["students"]
        if not s.passed
    ]
    if failures:
        lines += ["", "Students who did not complete:", "", *failures[:20]]
    return "\n".join(lines) + "\n"


def cpu_findings(classes: list[dict[str, Any]]) -> list[str]:
    """The CPU arithmetic: what each student costs, what the class got, and what 3 × alone would need."""
    alone = alone_seconds(classes)
    lines = []
    for result in classes[1:]:
        students = [s for s in result["students"] if s.cpu]
        if not students:
            continue
        per_student = median([s.cpu["server"] + s.cpu["kernels"] for s in students])
        used = sum(s.cpu["server"] + s.cpu["kernels"] for s in students) + result["hub cpu"]
        cores = used / result["wall"]
        budget = WITHIN * alone * cores / result["size"]
        needed = used / (WITHIN * alone)  # cores that would do the class's CPU work within the budget
        lines.append(
            f"- N = {result['size']}: the students' servers and kernels and the hub used {used:.0f} CPU-seconds"
            f" in {result['wall']:.0f} s: {cores:.2f} of the {os.cpu_count()} cores on average. A student"
            f" costs {per_student:.1f} CPU-seconds; for all of them to finish within {WITHIN:g} × alone"
            f" ({WITHIN * alone:.0f} s) on as many cores, each could use {budget:.1f}. The same work within"
            f" {WITHIN:g} × alone needs about {needed:.1f} cores."
        )
    lines.append(
        f"- The benchmark itself (its {max(r['size'] for r in classes)} client threads, outputs compared as"
        f" they arrive) used {classes[0].get('driver cpu', '?')} CPU-seconds over the whole run."
    )
    return lines


def load_note(busy_percent: float, cores: str) -> str:
    """What else the machine was doing: how busy its CPUs were over a few seconds before the first class.

    (Not the load average, which still counts for a minute work that has already stopped.)
    """
    if busy_percent < 10:
        return f"The machine was otherwise idle when this started (its CPUs {busy_percent:.0f}% busy; {cores} cores)."
    return (
        f"**Other work was running on the machine** (its CPUs {busy_percent:.0f}% busy just before the first class;"
        f" {cores} cores): the figures are for a machine already busy, not an idle one. Load averages are in the table."
    )


SERVERS_READY_NOTE = [
    "",
    "**Servers started before class** (`make classroom ARGS=--servers-ready`): every student's server is",
    "started first, all at once (as the hub admin page's *Start All* does, or students logging in before the",
    "lesson), and the clock starts when every one is ready. Seconds run from opening notebook 08 to notebook",
    "02's last cell; *CPU s per student* counts the server's CPU from then on, and the kernels' in full.",
]


def section_title(servers_ready: bool) -> str:
    return "## Classroom, servers started before class" if servers_ready else "## Classroom"


def write_results(section: str) -> None:
    """Replace (or add) this section (by its title line) of benchmarks/RESULTS.md, leaving the rest as it is."""
    results = REPO / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    title = section.splitlines()[0]
    start = text.find(f"\n{title}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[: start + 1] + section + (text[end:] if end != -1 else "")
    results.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="class sizes to run, first alone"
    )
    parser.add_argument("--alone-runs", type=int, default=3, help="solo runs whose median is 'alone'")
    parser.add_argument("--no-write", action="store_true", help="print the report, leave RESULTS.md alone")
    parser.add_argument(
        "--servers-ready",
        action="store_true",
        help="start every student's server before the clock (a teacher's Start All), then time the lesson",
    )
    arguments = parser.parse_args()
    # Stopped with SIGTERM, still stop the hub and every student's server (Hub.stop, in a finally).
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    install()
    # What runs in the class (not RESULTS.md, which the last run rewrote): changed since the commit?
    code = git_state(
        ["src", "notebooks", "jupyterhub_config.py", "benchmarks/classroom.py", "pyproject.toml"]
    )
    facts = {
        **machine_facts(),
        **installed_versions(),
        "code": code,
        "busy at start": f"{psutil.cpu_percent(interval=BUSY_SAMPLE)}",
    }
    classes = []
    for size in arguments.sizes:
        print(f"{size} student(s)...", flush=True)
        if size == 1:
            result = alone(arguments.alone_runs, arguments.servers_ready)
        else:
            folder = f"ready-n{size}" if arguments.servers_ready else f"n{size}"
            result = run_class(size, CLASSROOM / "runs" / folder, arguments.servers_ready)
        done = seconds_of(result["students"])
        print(
            f"  {len(done)} of {len(result['students'])} completed; max {max(done) if done else float('nan'):.1f} s",
            flush=True,
        )
        classes.append(result)
    driver = psutil.Process().cpu_times()
    classes[0]["driver cpu"] = f"{driver.user + driver.system:.0f}"
    costs = import_costs()
    servers = server_start_costs()
    section = report(classes, costs, servers, facts)
    print(section)
    if not arguments.no_write:
        write_results(section)
        print("Wrote the Classroom section of benchmarks/RESULTS.md.")


if __name__ == "__main__":
    main()
