"""Sphinx configuration of the course website (`make site`).

The source folder is the repository root, so the notebooks are read where they are and their links to
`../src/...` programs resolve (as downloads); only the notebooks are included, and their stored outputs
are shown, never re-run. The reading order is site/_toc.yml's.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

#: The course's GitHub repository as owner/name: this variable, else the origin remote when on GitHub.
REPOSITORY_VARIABLE = "WRITING_SERVERS_REPOSITORY"
_OWNER_NAME = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?"
_GITHUB_REMOTE = re.compile(rf"(?:https://|ssh://git@|git@)github\.com[/:]({_OWNER_NAME})(?:\.git)?/?")


def github_repository(folder: Path) -> str | None:
    """owner/name for Binder and the clone link, or None when neither the variable nor the remote names one."""
    configured = os.environ.get(REPOSITORY_VARIABLE, "").strip()
    if configured:
        if not re.fullmatch(_OWNER_NAME, configured):
            raise ValueError(f"{REPOSITORY_VARIABLE}={configured!r}: expected owner/name")
        return configured
    try:
        remote = subprocess.run(
            ["git", "-C", str(folder), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _GITHUB_REMOTE.fullmatch(remote)
    return match.group(1) if match else None


ROOT = Path(__file__).resolve().parent.parent

project = "Writing Servers with Twisted"

extensions = ["myst_nb", "sphinx_external_toc"]
external_toc_path = "site/_toc.yml"
include_patterns = ["notebooks/[0-9][0-9]-*.ipynb"]
# Excluded folders are not walked: without this Sphinx lists every file of .venv, for seconds.
exclude_patterns = sorted(path.name for path in ROOT.iterdir() if path.name != "notebooks")
nb_execution_mode = "off"

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["course.css"]
templates_path = ["_templates"]
# navbar_persistent: pydata-sphinx-theme 0.20 (under sphinx-book-theme 1.4) otherwise adds a second search
# field in a bar across the top of every page; the book theme's own is in the sidebar.
html_theme_options = {"home_page_in_toc": True, "navbar_persistent": []}
html_context = {"repository": github_repository(ROOT)}
