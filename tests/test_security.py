"""Security defaults: loopback unless asked, JupyterLab with its token, no eval or shell on input."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest
from twisted.internet.protocol import Factory

from writing_servers import lab
from writing_servers.cli import build_parser
from writing_servers.clients import connect
from writing_servers.protocols import Echo
from writing_servers.startup_shutdown import LogfileFactory

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "protocols",
    "closing",
    "serving",
    "helper_protocols",
    "state_machines",
    "simpler_protocol_creation",
    "startup_shutdown",
    "chat",
    "scaling",
]


def test_lab_listens_on_loopback_by_default() -> None:
    """lab.listen binds 127.0.0.1 when nobody names an endpoint."""
    server = lab.listen(Factory.forProtocol(Echo), name="security-default")
    assert server.host == "127.0.0.1"


def test_command_line_serves_loopback_by_default() -> None:
    """`writing-servers serve NAME` listens on 127.0.0.1 unless --host says otherwise."""
    assert build_parser().parse_args(["serve", "chat"]).host == "127.0.0.1"


@pytest.mark.parametrize("section", SECTIONS)
def test_every_standalone_program_defaults_to_loopback(section: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each section's main() (the 'Use it in your project' program) listens on 127.0.0.1 by default."""
    seen: dict[str, object] = {}

    def fake_run_server(factory: object, name: str, port: int, interface: str) -> int:
        seen["interface"] = interface
        return 0

    module = importlib.import_module(f"writing_servers.{section}")
    monkeypatch.setattr(module, "run_server", fake_run_server)
    argv = ["--log", "unused.log"] if section == "startup_shutdown" else []
    assert module.main(argv) == 0
    assert seen["interface"] == "127.0.0.1"


def test_make_lab_binds_loopback_with_its_token_on() -> None:
    """tools/lab.py starts JupyterLab on 127.0.0.1 and never switches its token or password off."""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        lab_tool = importlib.import_module("lab")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    command = lab_tool.command()
    assert "--ServerApp.ip=127.0.0.1" in command
    assert not [arg for arg in command if "token" in arg.lower() or "password" in arg.lower()]
    assert not [arg for arg in command if "0.0.0.0" in arg or "allow_remote" in arg.lower()]


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "system", "popen", "loads"}
SAFE_CALLS = {("json", "loads"), ("re", "compile")}  # data, and a regular expression we wrote


def _risky_calls(path: Path) -> list[str]:
    """Calls that could run input as code or shell: eval/exec, os.system, shell=True, pickle.loads."""
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if name in FORBIDDEN_CALLS and (owner, name) not in SAFE_CALLS:
            found.append(f"{where}:{node.lineno} {owner + '.' if owner else ''}{name}()")
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and not keyword.value.value
            ):
                found.append(f"{where}:{node.lineno} shell=True")
    return found


def test_no_eval_exec_or_shell_anywhere_in_the_course() -> None:
    """No module of the package or its tools evaluates text or starts a shell (json.loads is data only)."""
    files = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    assert len(files) > 20
    assert [call for path in files for call in _risky_calls(path)] == []


def test_the_risky_call_finder_finds_them(tmp_path: Path) -> None:
    """The scan above is not blind: it reports each kind of call it looks for."""
    sample = tmp_path / "risky.py"
    sample.write_text(
        "import os, pickle, subprocess\n"
        "eval(x)\nexec(x)\nos.system(x)\npickle.loads(x)\nsubprocess.run(x, shell=True)\njson.loads(x)\n"
    )
    assert [call.split(" ", 1)[1] for call in _risky_calls(sample)] == [
        "eval()",
        "exec()",
        "os.system()",
        "pickle.loads()",
        "shell=True",
    ]


def test_logfile_server_writes_only_its_own_file(tmp_path: Path) -> None:
    """Paths, NULs and escapes in client lines are logged as bytes; no other file appears anywhere near."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "server.log"
    lines = [b"../../escape.log", b"/tmp/absolute.log", b"name\x00with-nul", b"\x1b[2Jcleared", b"%s%n{0}"]
    server = lab.listen(LogfileFactory(log), name="security-logfile")
    with connect(server, timeout=10) as client:
        client.send(b"".join(line + b"\n" for line in lines))
        client.shutdown_write()
        assert client.read_all() == b""
    server.wait_until_idle()
    server.stop()
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == [
        Path("logs"),
        Path("logs/server.log"),
    ]
    assert log.read_bytes() == b"".join(line + b"\n" for line in lines)
