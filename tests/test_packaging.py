"""The set-up files agree with each other."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # the test extra installs tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _name(spec: str) -> str:
    """PEP 503 name of a pip or conda requirement: ``service_identity>=21`` -> ``service-identity``."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec.strip())
    assert match, spec
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _course_requirements() -> set[str]:
    """Names from pyproject: dependencies (extras expanded) plus the lab and test extras."""
    project = _pyproject()["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["lab"]
    specs += project["optional-dependencies"]["test"]
    names = set()
    for spec in specs:
        requirement = Requirement(spec)
        names.add(_name(requirement.name))
        for extra in requirement.extras:
            for dependency in requires(requirement.name) or []:
                parsed = Requirement(dependency)
                if parsed.marker is not None and parsed.marker.evaluate({"extra": extra}):
                    names.add(_name(parsed.name))
    return names


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def test_environment_names_the_same_dependencies_as_pyproject() -> None:
    """environment.yml's conda packages are exactly pyproject's dependencies, lab and test extras."""
    conda = {_name(spec) for spec in _environment()["dependencies"] if isinstance(spec, str)}
    conda -= {"python", "pip"}
    assert conda == _course_requirements()


def test_environment_installs_the_course_itself_from_conda_forge() -> None:
    """Binder and conda users get the package (editable) on a supported Python, from conda-forge."""
    environment = _environment()
    assert environment["channels"] == ["conda-forge"]
    pip_section = next(spec["pip"] for spec in environment["dependencies"] if isinstance(spec, dict))
    assert pip_section == ["-e ."]
    python = next(spec for spec in environment["dependencies"] if str(spec).startswith("python"))
    assert python == "python" + _pyproject()["project"]["requires-python"]


def _locks() -> list[Path]:
    return sorted((ROOT / "constraints").glob("py3.*.txt"))


def test_every_lock_pins_every_course_requirement() -> None:
    """Each constraints/py3.X.txt pins each dependency `make install` asks for that applies on 3.X (all extras)."""
    assert _locks(), "no constraints/py3.X.txt: make lock"
    project = _pyproject()["project"]
    for lock in _locks():
        minor = lock.stem.removeprefix("py")
        wanted = set()
        for spec in project["dependencies"] + project["optional-dependencies"]["lab"]:
            wanted.add(_name(Requirement(spec).name))
        extras = project["optional-dependencies"]
        for spec in extras["test"] + extras["dev"] + extras["site"]:  # what `make install` installs
            requirement = Requirement(spec)
            if requirement.marker is None or requirement.marker.evaluate({"python_version": minor}):
                wanted.add(_name(requirement.name))
        pinned = {
            _name(line.split("==")[0])
            for line in lock.read_text().splitlines()
            if "==" in line and not line.startswith("#")
        }
        assert wanted <= pinned, (lock.name, wanted - pinned)


def test_floors_pin_each_declared_minimum() -> None:
    """constraints/floors.txt pins every direct dependency at its declared minimum on the oldest Python,
    and never below it on the others (where the minimum has no wheel, a later release)."""
    project = _pyproject()["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["lab"]
    specs += project["optional-dependencies"]["test"]
    oldest = project["requires-python"].removeprefix(">=")
    lines = (ROOT / "constraints" / "floors.txt").read_text().splitlines()
    pins = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    for spec in specs:
        requirement = Requirement(spec)
        (minimum,) = [s.version for s in requirement.specifier if s.operator == ">="]
        mine = [pin for pin in pins if _name(pin.name) == _name(requirement.name)]
        assert mine, f"{requirement.name} has no floor"
        for pin in mine:
            (pinned,) = [s.version for s in pin.specifier if s.operator == "=="]
            assert Version(pinned) >= Version(minimum), pin
        on_oldest = [
            pin for pin in mine if pin.marker is None or pin.marker.evaluate({"python_version": oldest})
        ]
        assert [str(pin.specifier) for pin in on_oldest] == [f"=={minimum}"], (requirement.name, oldest)


def test_matrix_workflow_covers_every_supported_python() -> None:
    """The fork workflow tests each minor from requires-python's floor to 3.14, and macOS and Windows."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "matrix.yml").read_text())
    floor = _pyproject()["project"]["requires-python"].removeprefix(">=")
    first = int(floor.split(".")[1])
    assert workflow["jobs"]["linux"]["strategy"]["matrix"]["python"] == [f"3.{m}" for m in range(first, 15)]
    assert workflow["jobs"]["desktop"]["strategy"]["matrix"]["os"] == ["macos-latest", "windows-latest"]
    triggers = workflow.get("on", workflow.get(True))
    assert "schedule" in triggers


def test_ci_runs_exactly_make_test() -> None:
    """.ci/run runs `make test` and no other test command."""
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert "make test" in commands
    assert not any("pytest" in command for command in commands)


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first code block is `make lab` and `make test`."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```")[1]
    assert [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()] == [
        "make lab",
        "make test",
    ]


def test_fork_workflow_is_valid_yaml_that_runs_make_test() -> None:
    """The GitHub workflow for forks parses, and its last step is `make test`."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert steps[-1]["run"] == "make test"
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"push", "pull_request"}


def _make_install_plan(tmp_path: Path, python: str) -> str:
    """What `make install` would run for a fresh .venv made with `python` (make -n runs nothing)."""
    if shutil.which("make") is None:
        pytest.skip("no make here")
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "install", f"VENV={tmp_path / 'venv'}", f"PYTHON={python}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_install_uses_the_lock_for_the_interpreters_minor(tmp_path: Path) -> None:
    """PYTHON=... make install pins with constraints/py3.X.txt for that interpreter's minor."""
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    plan = _make_install_plan(tmp_path, sys.executable)
    if (ROOT / "constraints" / f"py{minor}.txt").exists():
        assert f"-c constraints/py{minor}.txt -e" in plan
    else:
        assert f"no lock for Python {minor}" in plan


def test_make_install_says_what_it_does_without_a_lock(tmp_path: Path) -> None:
    """For a minor with no lock, make says so and installs the newest releases, unpinned."""
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.99\n")
    fake.chmod(0o755)
    plan = _make_install_plan(tmp_path, str(fake))
    assert "NOTE: no lock for Python 3.99" in plan
    assert "Installing the newest releases instead" in plan
    assert "-c constraints/" not in plan


# -- pre-commit ------------------------------------------------------------------------------------


def _pre_commit_hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def _make_recipe(target: str) -> list[str]:
    """The commands of a Makefile target, with ``$(BIN)/`` dropped: ``["ruff check .", ...]``."""
    recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert recipe, target
    return [line.strip().replace("$(BIN)/", "") for line in recipe.group(1).splitlines()]


def test_pre_commit_runs_what_make_lint_runs_at_the_locked_ruff() -> None:
    """Every command of `make lint` is a hook, on the whole tree, with the ruff version the locks pin."""
    hooks = _pre_commit_hooks()
    entries = {hook["entry"] for hook in hooks.values()}
    lint = _make_recipe("lint")
    assert lint and set(lint) <= entries
    for hook in hooks.values():
        if hook["entry"].startswith("ruff "):
            assert hook["pass_filenames"] is False  # `ruff check .`, as make lint: not only the staged files
            [pin] = hook["additional_dependencies"]
            for lock in _locks():
                assert f"{pin}\n" in lock.read_text(), (pin, lock.name)


def test_pre_commit_checks_yaml_toml_and_notebook_sync() -> None:
    """check-yaml and check-toml run, and a hook runs the same sync check as tests/test_notebooks.py."""
    hooks = _pre_commit_hooks()
    assert hooks["check-yaml"]["types"] == ["yaml"]
    assert hooks["check-toml"]["types"] == ["toml"]
    sync = hooks["notebooks-match-modules"]
    assert "tools/sync_notebooks.py --check" in sync["entry"]
    assert re.match(sync["files"], "notebooks/01-Protocols.ipynb")
    assert re.match(sync["files"], "src/writing_servers/protocols.py")
    assert not re.match(sync["files"], "README.md")


def test_the_sync_hook_fails_when_a_notebook_cell_drifts(tmp_path: Path) -> None:
    """The hook's own command, run in a copy of the tree whose notebook 01 has an edited Echo, exits 1."""
    copy = tmp_path / "course"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", ".nox", ".classroom", "build"))
    notebook = copy / "notebooks" / "01-Protocols.ipynb"
    text = notebook.read_text()
    assert "self.transport.write(data)" in text
    notebook.write_text(text.replace("self.transport.write(data)", "self.transport.write(data * 2)", 1))
    command = _pre_commit_hooks()["notebooks-match-modules"]["entry"]
    done = subprocess.run(
        command, shell=True, cwd=copy, capture_output=True, text=True, timeout=120, env=_with_venv_python()
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "01-Protocols" in done.stdout + done.stderr


def _with_venv_python() -> dict[str, str]:
    """The environment with this interpreter's folder first on PATH (the copy has no .venv of its own)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
