"""The headless Chromium both browser tests drive: where it is, how it starts, where screenshots go."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _chromium() -> str | None:
    wanted = os.environ.get("E2E_CHROMIUM")
    if wanted:
        return wanted if Path(wanted).is_file() else shutil.which(wanted)
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


CHROMIUM = _chromium()
#: Every browser test module sets ``pytestmark = needs_chromium``.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason=f"no chromium browser (looked for {os.environ.get('E2E_CHROMIUM') or '/usr/bin/chromium and `chromium` on PATH'}; "
    "E2E_CHROMIUM names another); install it with e.g. `apt-get install chromium`",
)

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (it is in the [test] extra)"
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("E2E_SCREENSHOTS") or ROOT / "tests" / "e2e" / "screenshots")


@contextmanager
def headless_chromium() -> Iterator[Any]:
    """The system Chromium, headless, with a throwaway profile (Playwright never downloads a browser here)."""
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
