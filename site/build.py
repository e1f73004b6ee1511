"""Build the course website, warnings as errors, then check its internal links (`make site`).

    python site/build.py build/site     # the pages in build/site/html, Sphinx's cache in build/site/doctrees

The notebooks' stored outputs are shown as they are (nothing is executed). Exits non-zero when Sphinx
warns or fails, or when a link is broken.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
ROOT = SITE.parent
#: Far beyond the few seconds a build takes, even on a loaded machine.
BUILD_TIMEOUT = 600


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    folder = Path(argv[0]).resolve()
    # -W --keep-going: every warning is an error, all reported; -n: so is a reference to nothing.
    sphinx = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-c", str(SITE)]
    sphinx += ["-d", str(folder / "doctrees"), str(ROOT), str(folder / "html")]
    built = subprocess.run(sphinx, timeout=BUILD_TIMEOUT, check=False)
    if built.returncode:
        return built.returncode
    checked = subprocess.run(
        [sys.executable, str(SITE / "check_links.py"), str(folder / "html")],
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    if not checked.returncode:
        print(f"The site is in {folder / 'html'}: open {folder / 'html' / 'index.html'}")
    return checked.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
