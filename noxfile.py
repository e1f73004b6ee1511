"""`make matrix`: unit tests and nbval on every supported Python here x {pinned, newest, floors}.

    nox                                         # every combination, then the table
    nox -s matrix -k "floors"                   # one column of it; `nox -s table` prints what ran
    nox -s "matrix(3.12.1, config='floors')"    # one cell (`nox -l` lists them)
    MATRIX_PYTHONS="/usr/bin/python3 /opt/python3.14/bin/python3" nox   # these interpreters only

pinned installs the lock for the interpreter's minor (constraints/py3.X.txt), newest installs
whatever pip resolves today, floors installs every direct dependency at its declared minimum
(constraints/floors.txt).  Each combination gets a fresh venv under .nox/matrix/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tools"))
from lock import CONSTRAINTS, interpreters, version_of  # noqa: E402

VENVS = ROOT / ".nox" / "matrix"
RESULTS = ROOT / ".nox" / "matrix-results"
CONFIGS = ["pinned", "newest", "floors"]
INSTALL_TIMEOUT = 1800  # seconds; floors may build an old release from source
UNIT_TIMEOUT = 2400
NBVAL_TIMEOUT = 1800
NOTEBOOKS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
UNIT = ["-m", "pytest", "tests", "--ignore=tests/e2e", "--ignore=tests/soak", "-p", "no:cacheprovider", "-q"]
NBVAL = [
    *("-m", "pytest", "-n", "2", "--dist", "loadfile", "--nbval", "--nbval-current-env"),
    *("--nbval-sanitize-with", "tests/nbval-sanitize.cfg", "--nbval-cell-timeout", "120"),
    *("-p", "no:cacheprovider", "-q", *NOTEBOOKS),
]

nox.options.sessions = ["matrix", "table"]


def _pythons() -> dict[str, str]:
    """{version: path} from MATRIX_PYTHONS, else every supported interpreter found here."""
    chosen = os.environ.get("MATRIX_PYTHONS", "").split()
    if not chosen:
        return interpreters()
    found: dict[str, str] = {}
    for python in chosen:
        found[version_of(python)] = python
    return found


PYTHONS = _pythons()


def _run(session: nox.Session, command: list[str], timeout: float) -> int:
    session.log(" ".join(command))
    try:
        return subprocess.run(command, cwd=ROOT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        session.warn(f"timed out after {timeout:g} s")
        return -1


def _junit_counts(report: Path) -> dict[str, int]:
    if not report.exists():
        return {}
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _install(session: nox.Session, python: str, minor: str, config: str, venv: Path) -> str | None:
    """Install the course into a fresh venv; None when done, else why not."""
    constraints = {"pinned": CONSTRAINTS / f"py{minor}.txt", "floors": CONSTRAINTS / "floors.txt"}.get(config)
    if constraints is not None and not constraints.exists():
        return f"no {constraints.relative_to(ROOT)} (make lock)"
    shutil.rmtree(venv, ignore_errors=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    steps = [
        [python, "-m", "venv", str(venv)],
        [*pip, "--upgrade", "pip"],
        [*pip, *(["-c", str(constraints)] if constraints else []), "-e", ".[lab,test,site]"],
        [str(venv / "bin" / "python"), "-c", "import matplotlib.pyplot"],  # font cache, outside nbval
    ]
    for step in steps:
        if _run(session, step, INSTALL_TIMEOUT) != 0:
            return "install failed"
    return None


@nox.session(python=False)
@nox.parametrize("config", CONFIGS)
@nox.parametrize("python", [nox.param(path, id=version) for version, path in PYTHONS.items()])
def matrix(session: nox.Session, python: str, config: str) -> None:
    """Install one configuration on one interpreter in a fresh venv, then run unit tests and nbval."""
    version = next(version for version, path in PYTHONS.items() if path == python)
    minor = version.rsplit(".", 1)[0]
    name = f"{version}-{config}"
    venv = VENVS / name
    RESULTS.mkdir(parents=True, exist_ok=True)
    result: dict[str, object] = {"python": version, "config": config}
    failed = []
    started = time.monotonic()
    problem = _install(session, python, minor, config, venv)
    result["install_seconds"] = round(time.monotonic() - started)
    if problem is None:
        versions = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        (RESULTS / f"{name}.freeze.txt").write_text(versions)
        for part, args, timeout in (("unit", UNIT, UNIT_TIMEOUT), ("nbval", NBVAL, NBVAL_TIMEOUT)):
            report = RESULTS / f"{name}.{part}.xml"
            report.unlink(missing_ok=True)
            started = time.monotonic()
            code = _run(session, [str(venv / "bin" / "python"), *args, f"--junitxml={report}"], timeout)
            result[part] = {
                "exit": code,
                "seconds": round(time.monotonic() - started),
                **_junit_counts(report),
            }
            if code != 0:
                failed.append(f"{part} failed")
    else:
        result["problem"] = problem
        failed.append(problem)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    if failed:
        session.error(f"{name}: {', '.join(failed)}")


def _cell(part: object) -> str:
    if not isinstance(part, dict):
        return "-"
    verdict = "pass" if part["exit"] == 0 else ("TIMEOUT" if part["exit"] == -1 else "FAIL")
    counts = f"{part.get('passed', '?')}/{part.get('tests', '?')}"
    failed = part.get("failures", 0) + part.get("errors", 0)
    extra = f", {failed} failed" if failed else ""
    extra += f", {part['skipped']} skipped" if part.get("skipped") else ""
    return f"{verdict} {counts} passed{extra}, {part['seconds']} s"


@nox.session(python=False)
def table(session: nox.Session) -> None:
    """Print (and write to .nox/matrix-results/table.md) the results the matrix sessions left."""
    rows = []
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        rows.append(
            (
                [int(part) for part in result["python"].split(".")],
                CONFIGS.index(result["config"]),
                result["python"],
                result["config"],
                f"{result['install_seconds']} s" if "problem" not in result else result["problem"],
                _cell(result.get("unit")),
                _cell(result.get("nbval")),
            )
        )
    if not rows:
        session.error(f"no results in {RESULTS.relative_to(ROOT)}: run `nox -s matrix` first")
    lines = [
        "| Python | config | install | unit | nbval |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {' | '.join(row[2:])} |" for row in sorted(rows)),
    ]
    (RESULTS / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
