"""Render conversations and event traces as plain text and HTML.

A rendered item is a list of :class:`Line` objects, each with a *kind* that
says who produced it: what the person typed, what the server sent, a note
about the connection, or a server-side event.  Plain text marks typed lines
with ``> `` (like a terminal prompt); HTML emphasises them, like the howto's
sample session.  Nothing here knows about sockets, Twisted or the course.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Line", "Renderable", "Rendered", "SideBySide", "printable", "side_by_side"]

Kind = Literal["typed", "received", "note", "event", "error", "good", "bad"]

#: How wide side-by-side plain text may grow before the widest columns wrap.
TOTAL_WIDTH = 100
#: No column is wrapped narrower than this.
MIN_COLUMN = 24

_TEXT_PREFIX = {"typed": "> ", "received": "", "note": "", "event": "", "error": "! ", "good": "", "bad": ""}
# Colours are JupyterLab theme variables, so they keep their contrast in Light and Dark;
# a page without the variables uses the fallback after the comma.  JupyterLab drops var()
# colours from an untrusted notebook's stored outputs: those show in the theme's text colour.
TYPED_COLOUR = "var(--jp-content-link-color,#1a5fb4)"
NOTE_COLOUR = "var(--jp-content-font-color2,#6b6b6b)"
GOOD_COLOUR = "var(--jp-mirror-editor-keyword-color,#26734d)"
BAD_COLOUR = "var(--jp-error-color1,#c01c28)"
RULE_COLOUR = "var(--jp-border-color1,#ccc)"
_HTML_STYLE = {
    "typed": f"font-weight:bold;color:{TYPED_COLOUR}",
    "received": "",
    "note": f"font-style:italic;color:{NOTE_COLOUR}",
    "event": f"color:{GOOD_COLOUR}",
    "error": f"font-weight:bold;color:{BAD_COLOUR}",
    "good": f"color:{GOOD_COLOUR}",
    "bad": f"font-weight:bold;color:{BAD_COLOUR}",
}


# JupyterLab gives output tables a fixed layout and <pre> word-break:break-all,
# which cuts transcript words in half; these undo that for our outputs.
_PRE_STYLE = (
    "margin:0;white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;line-height:1.35;"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,13px)"
)


@dataclass(frozen=True)
class Line:
    """One rendered line and who it came from."""

    kind: Kind
    text: str

    def as_text(self) -> str:
        return _TEXT_PREFIX[self.kind] + self.text


def printable(data: bytes) -> str:
    """Decode *data* for display: UTF-8 where valid, escapes for the rest.

    Control characters other than tab are shown escaped (``\\x1b``), so a
    transcript can never move the reader's cursor or recolour their screen.
    """
    text = data.decode("utf-8", "backslashreplace")
    return "".join(ch if ch == "\t" or (ch.isprintable() and ch != "\x7f") else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class Rendered(Protocol):
    """Anything with a title and lines: transcripts, traces, error lists."""

    @property
    def title(self) -> str: ...

    def lines(self) -> list[Line]: ...


def text_block(lines: Iterable[Line]) -> str:
    return "\n".join(line.as_text() for line in lines)


def html_block(lines: Iterable[Line]) -> str:
    rows = []
    for line in lines:
        style = _HTML_STYLE[line.kind]
        content = html.escape(line.text) or "&nbsp;"
        if line.kind == "typed":
            # An empty or all-blank typed line would be invisible: say what was sent.
            content = f"<em>{content}</em>" if line.text.strip() else _blank_typed(line.text)
        rows.append(f'<span style="{style}">{content}</span>' if style else content)
    body = "\n".join(rows)
    return f'<pre style="{_PRE_STYLE}">{body}</pre>'


def _blank_typed(text: str) -> str:
    what = (
        "an empty line"
        if not text
        else f"a line of {len(text)} blank character{'s' if len(text) > 1 else ''}"
    )
    return f'<span style="color:{NOTE_COLOUR}">({what})</span>'


class Renderable:
    """Base for items with a title and lines; gives them Jupyter's text and HTML forms."""

    title: str = ""

    def lines(self) -> list[Line]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return text_block(self.lines())

    def _repr_html_(self) -> str:
        return html_block(self.lines())


@dataclass(frozen=True)
class SideBySide:
    """Several rendered items shown as columns, each under its title."""

    items: Sequence[Rendered]

    def __repr__(self) -> str:
        natural = [[line.as_text() for line in item.lines()] for item in self.items]
        limits = _column_limits([[item.title, *rows] for item, rows in zip(self.items, natural, strict=True)])
        columns = [_wrap(rows, limit) for rows, limit in zip(natural, limits, strict=True)]
        widths = [
            max([width(item.title)] + [width(row) for row in col])
            for item, col in zip(self.items, columns, strict=True)
        ]
        height = max(len(col) for col in columns)
        rows = [
            " | ".join(
                _pad(item.title, size) for item, size in zip(self.items, widths, strict=True)
            ).rstrip(),
            "-+-".join("-" * size for size in widths),
        ]
        for index in range(height):
            cells = [
                _pad(col[index] if index < len(col) else "", size)
                for col, size in zip(columns, widths, strict=True)
            ]
            rows.append(" | ".join(cells).rstrip())
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        heads = "".join(
            f'<th style="text-align:left;padding:2px 12px">{html.escape(item.title)}</th>'
            for item in self.items
        )
        cells = "".join(
            f'<td style="vertical-align:top;text-align:left;padding:2px 12px;'
            f'border-left:1px solid {RULE_COLOUR}">{html_block(item.lines())}</td>'
            for item in self.items
        )
        return (
            f'<table style="table-layout:auto"><thead><tr>{heads}</tr></thead>'
            f"<tbody><tr>{cells}</tr></tbody></table>"
        )


def width(text: str) -> int:
    """Columns *text* takes in a terminal: wide (East Asian, emoji) characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, size: int) -> str:
    return text + " " * (size - width(text))


def _column_limits(columns: list[list[str]]) -> list[int]:
    """Widths for *columns* that fit TOTAL_WIDTH, narrowing the widest first."""
    limits = [max(width(row) for row in rows) for rows in columns]
    available = TOTAL_WIDTH - 3 * (len(columns) - 1)
    while sum(limits) > available and max(limits) > MIN_COLUMN:
        widest = limits.index(max(limits))
        limits[widest] -= 1
    return limits


def _wrap(rows: list[str], limit: int) -> list[str]:
    wrapped: list[str] = []
    for row in rows:
        wrapped.extend(_wrap_row(row, limit) if width(row) > limit else [row])
    return wrapped


def _wrap_row(row: str, limit: int) -> list[str]:
    """Break *row* into pieces of at most *limit* display columns, at spaces where possible.

    Continuation pieces are indented two columns.  Widths are display widths,
    so a row of emoji wraps where a terminal would need it to.
    """
    pieces: list[str] = []
    current = ""
    for word in re.split(r"(?<= )", row):  # keep each space with the word before it
        while word:
            room = limit - width(current)
            if width(word) <= room:
                current, word = current + word, ""
            elif current.strip() and width(word) <= limit - 2:  # fits on the next line: break before it
                pieces.append(current)
                current = "  "
            else:  # wider than any line: fill this one and cut
                cut = _fit(word, room)
                pieces.append(current + word[:cut])
                current, word = "  ", word[cut:]
    if current.strip():
        pieces.append(current)
    return pieces


def _fit(text: str, room: int) -> int:
    """How many leading characters of *text* fit in *room* columns (at least one)."""
    used = 0
    for index, ch in enumerate(text):
        used += width(ch)
        if used > room:
            return max(index, 1)
    return len(text)


def side_by_side(*items: Rendered) -> SideBySide:
    """Show transcripts and traces next to each other, one column each."""
    return SideBySide(items)
