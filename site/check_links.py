"""Check that every internal link of the built site resolves: its file exists, and so does its #anchor.

    python site/check_links.py build/site/html

Links with a scheme (https:, mailto:, ...) are external and not checked: Sphinx's linkcheck builder does
those, over the network. Exits 1 and lists each broken link.
"""

from __future__ import annotations

import sys
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINK_ATTRIBUTES = {"href", "src"}


def pages(site: Path) -> list[Path]:
    """The site's HTML pages; _static/ holds theme files, some of them Jinja macros named .html."""
    return sorted(path for path in site.rglob("*.html") if "_static" not in path.relative_to(site).parts)


class _Page(HTMLParser):
    """The links (href and src) and the anchors (id and name) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.anchors: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in LINK_ATTRIBUTES:
                self.links.append(value)
            elif name == "id" or (tag == "a" and name == "name"):
                self.anchors.add(value)


@cache
def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def broken_links(site: Path) -> list[str]:
    """One line per internal link in site/**/*.html whose file or anchor does not exist."""
    site = site.resolve()
    problems = []
    for page_path in pages(site):
        for link in _parse(page_path).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue
            target = page_path if not parts.path else (page_path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page_path.relative_to(site)}: {link}"
            if not target.is_relative_to(site):
                problems.append(f"{where} (outside the site)")
            elif not target.is_file():
                problems.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                if unquote(parts.fragment) not in _parse(target).anchors:
                    problems.append(f"{where} (no such anchor)")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    site = Path(argv[0])
    found = pages(site.resolve())
    if not found:
        print(f"{site}: no HTML pages (build the site first: make site)", file=sys.stderr)
        return 1
    problems = broken_links(site)
    for problem in problems:
        print(problem, file=sys.stderr)
    links = sum(len(_parse(path).links) for path in found)
    print(f"{len(found)} pages, {links} links and resources: {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
