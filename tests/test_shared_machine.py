"""A shared machine (a classroom JupyterHub): servers on a loopback address of each user's own, kernels
over UNIX sockets, and the hub configuration the course ships."""

from __future__ import annotations

import importlib
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pytest
from jupyter_client import KernelManager
from nbclient import NotebookClient
from traitlets.config import Config, PyFileConfigLoader
from twisted.internet.protocol import Factory

from writing_servers import lab
from writing_servers.clients import Client
from writing_servers.protocols import Echo

ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = ROOT / "jupyterhub_config.py"
TIMEOUT = 10.0
#: Linux routes all of 127.0.0.0/8 to the loopback interface; macOS has only 127.0.0.1 there.
ALL_OF_127_IS_LOOPBACK = sys.platform.startswith("linux")
needs_127_8 = pytest.mark.skipif(
    not ALL_OF_127_IS_LOOPBACK, reason="only Linux routes all of 127.0.0.0/8 to loopback"
)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Start each test as on a machine of one's own: neither variable set."""
    monkeypatch.delenv(lab.LOOPBACK_VARIABLE, raising=False)
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    yield monkeypatch


# -- the address lab.listen binds ------------------------------------------------------


def test_on_a_machine_of_ones_own_servers_bind_127_0_0_1(environment: pytest.MonkeyPatch) -> None:
    """With neither variable set, nothing changes: lab.listen binds 127.0.0.1."""
    assert lab.loopback_host() == "127.0.0.1"
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    assert server.host == "127.0.0.1"


@needs_127_8
def test_each_hub_user_gets_an_address_of_their_own(environment: pytest.MonkeyPatch) -> None:
    """In a JupyterHub session the address comes from the user name: the same every time, not 127.0.0.x."""
    addresses = {}
    for user in ["alice", "bob", "carol", "alice"]:
        environment.setenv("JUPYTERHUB_USER", user)
        addresses[user] = lab.loopback_host()
    assert len(set(addresses.values())) == 3
    for address in addresses.values():
        first, second, _, last = (int(part) for part in address.split("."))
        assert first == 127 and second != 0 and last not in (0, 255)
    environment.setenv("JUPYTERHUB_USER", "alice")
    assert lab.loopback_host() == addresses["alice"]


@needs_127_8
def test_the_variable_names_the_address_and_127_0_0_1_switches_it_off(
    environment: pytest.MonkeyPatch,
) -> None:
    """WRITING_SERVERS_LOOPBACK wins over the user name; set to 127.0.0.1, it turns the choice off."""
    environment.setenv("JUPYTERHUB_USER", "alice")
    environment.setenv(lab.LOOPBACK_VARIABLE, "127.100.0.7")
    assert lab.loopback_host() == "127.100.0.7"
    environment.setenv(lab.LOOPBACK_VARIABLE, "127.0.0.1")
    assert lab.loopback_host() == "127.0.0.1"


@pytest.mark.parametrize("wrong", ["10.0.0.5", "localhost", "127.0.0.0", "127.255.255.255", "::1", "127.1"])
def test_a_wrong_address_is_refused_with_the_variable_named(
    environment: pytest.MonkeyPatch, wrong: str
) -> None:
    """A value that is not one IPv4 address in 127.0.0.0/8 stops listen() with a message that says how to fix it."""
    environment.setenv(lab.LOOPBACK_VARIABLE, wrong)
    with pytest.raises(ValueError, match=f"WRITING_SERVERS_LOOPBACK='{wrong}' is not a loopback address"):
        lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    assert lab.servers() == []


def test_where_the_address_cannot_be_bound_servers_bind_127_0_0_1(environment: pytest.MonkeyPatch) -> None:
    """An address the system will not bind (macOS's 127.0.0.2, or any address not on this machine) falls back."""
    assert not lab._can_bind(
        "192.0.2.1"
    )  # TEST-NET-1: on no interface of this machine, as 127.0.0.2 on macOS
    environment.setattr(lab, "_can_bind", lambda host: host == "127.0.0.1")
    environment.setenv("JUPYTERHUB_USER", "alice")
    assert lab.loopback_host() == "127.0.0.1"
    environment.setenv(lab.LOOPBACK_VARIABLE, "127.100.0.7")
    assert lab.loopback_host() == "127.0.0.1"


@needs_127_8
def test_a_classmates_nc_127_0_0_1_does_not_reach_the_server(environment: pytest.MonkeyPatch) -> None:
    """A server on the user's address answers its clients; the same port on 127.0.0.1 does not reach it."""
    environment.setenv(lab.LOOPBACK_VARIABLE, "127.100.0.7")
    server = lab.listen(Factory.forProtocol(Echo), timeout=TIMEOUT)
    assert server.address == ("127.100.0.7", server.port)
    assert repr(server) == f"<Server 'Echo' listening on 127.100.0.7:{server.port}>"
    with Client(server, timeout=TIMEOUT) as client:
        client.send_line("mine")
        assert client.read_line() == "mine"
    assert server.port is not None
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    except ConnectionRefusedError:
        pass  # nothing listens there: the usual case
    lab.call(lambda: None, timeout=TIMEOUT)  # let the reactor accept, had it been reached
    assert server.connections_made == 1
    # A classmate's server may even have the same port number on an address of its own.
    with socket.create_server(("127.100.0.8", server.port)) as classmate:
        assert classmate.getsockname() == ("127.100.0.8", server.port)


# -- kernels over UNIX sockets -------------------------------------------------------------


def test_make_lab_runs_kernels_over_unix_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """tools/lab.py asks for kernels over ipc where ZeroMQ has it (not on Windows) and the socket paths fit."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        lab_tool = importlib.import_module("lab")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/home/student/.local/share/jupyter/runtime")  # a usual one
    assert ("--KernelManager.transport=ipc" in lab_tool.command()) == (os.name == "posix")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/home/" + "x" * 60)  # kernel-<uuid>-ipc-5 would not fit
    assert "--KernelManager.transport=ipc" not in lab_tool.command()


@pytest.mark.skipif(os.name != "posix", reason="ZeroMQ has no ipc transport on Windows")
def test_a_kernel_over_unix_sockets_runs_the_lab(environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A kernel whose channels are UNIX sockets runs a lab server on the address its hub gave it."""
    address = "127.100.0.9" if ALL_OF_127_IS_LOOPBACK else "127.0.0.1"
    environment.setenv(lab.LOOPBACK_VARIABLE, address)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "from twisted.internet.protocol import Factory\n"
            "from writing_servers import lab\n"
            "from writing_servers.clients import connect\n"
            "from writing_servers.protocols import Echo\n"
            "server = lab.listen(Factory.forProtocol(Echo))\n"
            "with connect(server) as client:\n"
            "    client.send_line('over ipc')\n"
            "    print(server.host, client.read_line())\n"
            "print(lab.clean_up())"
        )
    ]
    kernel = KernelManager(
        kernel_name="python3", transport="ipc", connection_file=str(tmp_path / "kernel.json")
    )
    NotebookClient(notebook, km=kernel, timeout=60, startup_timeout=120).execute()
    outputs = "".join(output.get("text", "") for output in notebook.cells[0].outputs)
    assert outputs.splitlines() == [
        f"{address} over ipc",
        "Stopped 1 server: nothing is listening, and no connection to them is left open.",
    ]
    assert (kernel.transport, kernel.ip) == ("ipc", str(tmp_path / "kernel-ipc"))  # not TCP ports


# -- the classroom hub's configuration -------------------------------------------------------


def load_hub_config() -> Config:
    """Load jupyterhub_config.py as JupyterHub does (JupyterHub.load_config_file uses this loader)."""
    return PyFileConfigLoader(HUB_CONFIG.name, path=str(HUB_CONFIG.parent)).load_config()


def fake_spawner(user_id: int) -> Any:
    return SimpleNamespace(user=SimpleNamespace(id=user_id, name=f"student{user_id}"))


def test_hub_config_binds_loopback_and_runs_kernels_over_ipc() -> None:
    """The hub listens on 127.0.0.1, spawns local processes, and gives each server ipc kernels and a kernel culler."""
    config = load_hub_config()
    assert config.JupyterHub.bind_url == "http://127.0.0.1:8000"
    assert config.JupyterHub.hub_ip == "127.0.0.1"
    assert config.JupyterHub.spawner_class == "localprocess"
    assert config.Authenticator.allow_all is True  # else JupyterHub 5+ lets no student in
    assert "--KernelManager.transport=ipc" in config.Spawner.args
    assert "--MappingKernelManager.cull_idle_timeout=3600" in config.Spawner.args
    assert config.Spawner.mem_limit == "1G"
    assert config.Spawner.cpu_limit == 1.0


def test_hub_config_gives_every_user_an_address_the_lab_accepts(environment: pytest.MonkeyPatch) -> None:
    """Hub user ids 1, 2, ... get 127.100.0.1, 127.100.0.2, ...: all different, and each one lab.listen binds."""
    student_loopback = load_hub_config().Spawner.environment[lab.LOOPBACK_VARIABLE]
    ids = [*range(1, 301), 65_535, 65_536, 1_000_000]
    addresses = [student_loopback(fake_spawner(user_id)) for user_id in ids]
    assert addresses[:3] == ["127.100.0.1", "127.100.0.2", "127.100.0.3"]
    assert addresses[-1] == "127.115.66.64"
    assert len(set(addresses)) == len(ids)
    for address in [*addresses[:3], *addresses[-3:]]:
        environment.setenv(lab.LOOPBACK_VARIABLE, address)
        assert lab.loopback_host() == (address if ALL_OF_127_IS_LOOPBACK else "127.0.0.1")


def test_hub_config_gives_tcp_kernels_to_a_user_whose_home_is_too_deep(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ipc stays for /home/ann; a home too long for a kernel's socket path gets TCP, and the hub's log says why."""
    config = load_hub_config()
    hook = config.Spawner.pre_spawn_hook
    log = logging.getLogger("hub")

    def spawner(home: str) -> Any:
        return SimpleNamespace(
            user=SimpleNamespace(name="ann"), home_dir=home, args=list(config.Spawner.args), log=log
        )

    longest_home = 28 if sys.platform == "linux" else 24  # what fits in 108 (Linux) or 104 bytes
    usual = spawner("/home/" + "a" * (longest_home - len("/home/")))
    hook(usual)
    assert usual.args == config.Spawner.args
    deep = spawner("/home/students/class-of-2027/ann.the.longest.name")
    with caplog.at_level(logging.WARNING, logger="hub"):
        hook(deep)
    assert "--KernelManager.transport=ipc" not in deep.args
    assert "--MappingKernelManager.cull_idle_timeout=3600" in deep.args  # only ipc is dropped
    assert "ann: kernels over TCP on 127.0.0.1, not UNIX sockets" in caplog.text
    assert "/home/students/class-of-2027/ann.the.longest.name is too deep" in caplog.text


def test_hub_config_loads_in_jupyterhub(environment: pytest.MonkeyPatch) -> None:
    """JupyterHub itself loads the file, and its spawner puts the user's address into the server's environment."""
    app_module = pytest.importorskip(
        "jupyterhub.app", reason="pip install jupyterhub to load it in JupyterHub too"
    )
    from jupyterhub.spawner import LocalProcessSpawner

    hub = app_module.JupyterHub()
    hub.load_config_file(HUB_CONFIG.name, path=[str(HUB_CONFIG.parent)])
    assert hub.bind_url == "http://127.0.0.1:8000"
    assert hub.hub_ip == "127.0.0.1"
    assert hub.spawner_class is LocalProcessSpawner
    assert hub.authenticator_class(config=hub.config).allow_all
    spawner = LocalProcessSpawner(config=hub.config, user=fake_spawner(7).user, hub=SimpleNamespace())
    assert spawner.environment[lab.LOOPBACK_VARIABLE](spawner) == "127.100.0.7"
    assert "--KernelManager.transport=ipc" in spawner.args
    assert spawner.pre_spawn_hook is not None
    assert spawner.mem_limit == 1024**3
