"""Write the pinned sets `make install` chooses from (what ``make lock`` runs).

    python tools/lock.py floors                 # constraints/floors.txt from pyproject's minimums
    python tools/lock.py /usr/bin/python3 ...   # constraints/py3.X.txt for each interpreter
    python tools/lock.py oldest                 # the oldest patch release of each minor found here
    python tools/lock.py --keep oldest          # keep every pin; only add what a new requirement needs

A lock is what pip resolves, newest first, for ``.[lab,test,dev,site]`` in a fresh venv of
that interpreter, frozen.  One lock per Python minor, resolved on the oldest patch
release at hand (packages may require e.g. >= 3.11.5), because a single set cannot
serve every minor: wheels and Requires-Python differ between them.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints"
EXTRAS = ".[lab,test,dev,site]"
PIP_TIMEOUT = 1800  # seconds for one resolve and install; a cold pip cache takes a few minutes
SUPPORTED_MINORS = range(10, 15)  # Python 3.10 to 3.14, as Twisted 26.10


def interpreters() -> dict[str, str]:
    """Supported interpreters on this machine, one per patch release: {"3.11.2": "/usr/bin/python3"}.

    Looks on PATH, in /usr/bin and /usr/local/bin (a distribution's own Python), and in
    pyenv's versions folder (whose shims on PATH would only find pyenv's current one).
    """
    names = ["python3", *(f"python3.{minor}" for minor in SUPPORTED_MINORS)]
    candidates = [shutil.which(name) for name in names]
    candidates += [f"{folder}/{name}" for folder in ("/usr/bin", "/usr/local/bin") for name in names]
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/3.*/bin/python3"))
    found: dict[str, str] = {}
    for candidate in candidates:
        if candidate is None or not os.access(candidate, os.X_OK) or "/shims/" in candidate:
            continue
        try:
            version = version_of(candidate)
        except (OSError, subprocess.SubprocessError):
            continue
        major, minor, _ = (int(part) for part in version.split("."))
        if major == 3 and minor in SUPPORTED_MINORS:
            found.setdefault(version, candidate)
    return dict(sorted(found.items(), key=lambda item: [int(part) for part in item[0].split(".")]))


def oldest_per_minor() -> list[str]:
    """The oldest patch release of each minor: a lock resolved there installs on later patches too."""
    oldest: dict[str, str] = {}
    for version, path in interpreters().items():
        oldest.setdefault(version.rsplit(".", 1)[0], path)
    return list(oldest.values())


def version_of(python: str) -> str:
    """The full version (3.12.1) of the interpreter at *python*."""
    return subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def _lowest_with_wheels(name: str, floor: str, minor: str) -> str:
    """The lowest release >= floor that installs from wheels alone on Python `minor`, dependencies too.

    Dependencies count: playwright 1.45 pins greenlet 3.0.3, which has no wheel for 3.13.
    """
    from packaging.version import Version

    pip = [sys.executable, "-m", "pip"]
    target = [f"--python-version={minor}", "--only-binary=:all:"]
    listing = subprocess.run(
        [*pip, "index", "versions", name, *target], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    match = re.search(r"^Available versions: (.+)$", listing, re.MULTILINE)
    found = sorted(Version(v) for v in match.group(1).split(", ")) if match else []
    for version in [version for version in found if version >= Version(floor)]:
        dry_run = [
            *pip,
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            *target,
            f"{name}=={version}",
        ]
        if subprocess.run(dry_run, capture_output=True, timeout=300).returncode == 0:
            return floor if version == Version(floor) else str(version)
    raise SystemExit(f"{name}>={floor}: no release installs from wheels on Python {minor}")


def floors() -> str:
    """Every direct requirement (dependencies, lab and test extras) pinned to its declared minimum.

    Where the minimum has no wheel for a newer Python (matplotlib 3.8 on 3.13), or a dependency it
    pins has none, that Python's floor is the lowest release that installs from wheels: students
    install wheels, not compilers.
    """
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    minors = [f"3.{minor}" for minor in SUPPORTED_MINORS]
    lines = [
        "# Each direct dependency at its declared minimum or, on a Python where that release does not",
        "# install from wheels, the lowest release that does (tools/lock.py floors; do not edit).",
    ]
    for spec in project["dependencies"] + extras["lab"] + extras["test"]:
        requirement, _, marker = spec.partition(";")
        match = re.fullmatch(r"\s*([A-Za-z0-9._-]+)(\[[^]]*\])?\s*>=\s*([^,\s]+)\s*", requirement)
        if match is None:
            raise SystemExit(f"{spec!r}: a floor needs exactly one `>=` bound")
        name, floor = match.group(1), match.group(3)
        if marker:  # a backport for old Pythons only (tomli): pure Python, one floor
            lines.append(f"{name}=={floor}; {marker.strip()}")
            continue
        by_minor = {minor: _lowest_with_wheels(name, floor, minor) for minor in minors}
        if len(set(by_minor.values())) == 1:
            lines.append(f"{name}=={floor}")
            continue
        for version in dict.fromkeys(by_minor.values()):
            applies = [minor for minor in minors if by_minor[minor] == version]
            first, last = applies[0], applies[-1]
            where = f'== "{first}"' if first == last else f'>= "{first}" and python_version <= "{last}"'
            lines.append(f"{name}=={version}; python_version {where}")
    return "\n".join(lines) + "\n"


def lock(python: str, keep: bool = False) -> Path:
    """Resolve and write the lock for *python*'s minor; with *keep*, its current pins constrain the resolve.

    Keeping the pins adds a new requirement (and what it needs) without moving any library the stored
    notebook outputs were made with; pip fails if the new requirement cannot live with them.
    """
    version = version_of(python)
    minor = ".".join(version.split(".")[:2])
    target = CONSTRAINTS / f"py{minor}.txt"
    constraints = ["-c", str(target)] if keep and target.exists() else []
    with tempfile.TemporaryDirectory(prefix="lock-") as venv:
        subprocess.run([python, "-m", "venv", venv], check=True, timeout=300)
        pip = [f"{venv}/bin/python", "-m", "pip"]
        subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True, timeout=PIP_TIMEOUT)
        install = [*pip, "install", "--quiet", *constraints, "-e", EXTRAS]
        subprocess.run(install, cwd=ROOT, check=True, timeout=PIP_TIMEOUT)
        frozen = subprocess.run(
            [*pip, "freeze", "--exclude-editable"], capture_output=True, text=True, check=True, timeout=120
        ).stdout
    header = (
        f"# Exact versions `make install` uses on Python {minor}, so every machine runs the notebooks on the\n"
        f"# libraries their stored outputs came from. Resolved on Python {version}: `make lock`, do not edit.\n"
    )
    target.write_text(header + "".join(sorted(frozen.splitlines(keepends=True), key=str.lower)))
    return target


def main(args: list[str]) -> int:
    if not args:
        print(__doc__)
        return 2
    CONSTRAINTS.mkdir(exist_ok=True)
    keep = "--keep" in args
    args = [arg for arg in args if arg != "--keep"]
    expanded = [python for arg in args for python in (oldest_per_minor() if arg == "oldest" else [arg])]
    for arg in expanded:
        if arg == "floors":
            (CONSTRAINTS / "floors.txt").write_text(floors())
            print("wrote constraints/floors.txt")
        else:
            print(f"wrote {lock(arg, keep).relative_to(ROOT)} with {arg}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
