"""``python -m writing_servers``: the same command line as ``writing-servers``."""

import sys

from writing_servers.cli import main

if __name__ == "__main__":
    sys.exit(main())
