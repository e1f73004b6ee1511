"""Plain-text and HTML rendering: side-by-side columns, escaping, wrapping."""

from __future__ import annotations

import re
import unicodedata

import pytest

from writing_servers import render
from writing_servers.render import Line, Renderable, printable, side_by_side


class Column(Renderable):
    """A Renderable made of given lines, so rendering is tested apart from transcripts and traces."""

    def __init__(self, title: str, *lines: Line) -> None:
        self.title = title
        self._lines = list(lines)

    def lines(self) -> list[Line]:
        return self._lines


def received(*texts: str) -> list[Line]:
    return [Line("received", text) for text in texts]


def columns_of(text: str) -> list[int]:
    """Terminal columns at which each "|" (or "+" on the rule) of each row sits; wide characters count 2.

    Computed independently of render.width: the test content uses only ASCII, CJK and emoji.
    """
    positions = []
    for row in text.splitlines():
        column, marks = 0, []
        for ch in row:
            if ch in "|+":
                marks.append(column)
            column += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        positions.append(marks)
    return positions


def test_side_by_side_text_exact() -> None:
    """Titles, a rule, and rows padded to the widest cell, with emoji and CJK counted two columns wide."""
    left = Column("client", Line("note", "[connected]"), Line("typed", "漢字"), *received("😀 hi"))
    right = Column(
        "server", *[Line("event", text) for text in ["#1 connectionMade()", "#1 dataReceived(b'x')"]]
    )
    assert repr(side_by_side(left, right)).splitlines() == [
        "client      | server",
        "------------+----------------------",
        "[connected] | #1 connectionMade()",
        "> 漢字      | #1 dataReceived(b'x')",
        "😀 hi       |",
    ]


@pytest.mark.parametrize(
    "items",
    [
        [Column("a", *received("😀😀😀", "x")), Column("b", *received("y"))],
        [Column("漢字", *received("ab")), Column("😀", *received("漢字漢字", "", "z"))],
        [Column("one", *received("short")), Column("two"), Column("three", *received("😀" * 5, "end"))],
        [Column("t", *received("ascii only")), Column("u", *received("ｆｕｌｌｗｉｄｔｈ"))],
    ],
    ids=["emoji", "cjk-titles", "three-with-empty", "fullwidth"],
)
def test_side_by_side_columns_align(items: list[Column]) -> None:
    """Every row puts its column separators at the same terminal column, whatever the characters' widths."""
    text = repr(side_by_side(*items))
    positions = columns_of(text)
    rule = positions[1]
    assert len(rule) == len(items) - 1
    for row, marks in zip(text.splitlines(), positions, strict=True):
        assert marks == rule, f"misaligned row: {row!r}"
        assert not row.endswith(" "), f"trailing spaces: {row!r}"


def test_side_by_side_pads_short_columns() -> None:
    """A column with fewer lines leaves blank cells, and the other column's rows still line up."""
    text = repr(side_by_side(Column("a", *received("1", "2", "3")), Column("b", *received("only"))))
    rows = text.splitlines()
    assert rows[2:] == ["1 | only", "2 |", "3 |"]


def test_html_escapes_markup_in_lines_and_titles() -> None:
    """<script> in a title or a line is escaped in both a single item's HTML and the side-by-side table."""
    evil = Column("<b>title</b>", Line("typed", "<script>alert(1)</script>"), *received("a & b <i>"))
    for page in (evil._repr_html_(), side_by_side(evil, Column("ok"))._repr_html_()):
        assert "<script>" not in page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "a &amp; b &lt;i&gt;" in page
        assert "<i>" not in page
    table = side_by_side(evil, Column("ok"))._repr_html_()
    assert "&lt;b&gt;title&lt;/b&gt;" in table
    assert "<b>" not in table


def test_html_marks_line_kinds() -> None:
    """Typed text is emphasised in HTML without the text form's "> "; an empty line still takes a row."""
    page = Column("t", Line("typed", "hello"), *received(""), Line("error", "boom"))._repr_html_()
    assert "<em>hello</em>" in page
    assert "&gt; hello" not in page
    assert "&nbsp;" in page
    assert "! boom" not in page and "boom" in page


#: Each line kind's colour: JupyterLab's theme variable, then the colour used outside JupyterLab.
THEME_COLOURS = {
    "typed": "var(--jp-content-link-color,#1a5fb4)",
    "note": "var(--jp-content-font-color2,#6b6b6b)",
    "event": "var(--jp-mirror-editor-keyword-color,#26734d)",
    "good": "var(--jp-mirror-editor-keyword-color,#26734d)",
    "error": "var(--jp-error-color1,#c01c28)",
    "bad": "var(--jp-error-color1,#c01c28)",
}
THEME_VARIABLE = re.compile(r"var\(--jp-[a-z0-9-]+,#[0-9a-f]{3,6}\)")
CSS_COLOUR = re.compile(
    r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?)\(|:\s*(?:black|white|gr[ae]y|red|green|blue)\b"
)


def colours_of(page: str) -> list[str]:
    """The value of every ``color:`` declaration in *page*'s style attributes, in order."""
    return re.findall(r"(?<![-\w])color:([^;\"]+)", page)


@pytest.mark.parametrize("kind", sorted(THEME_COLOURS))
def test_html_colour_of_each_kind_is_a_theme_variable(kind: str) -> None:
    """Each coloured line kind's span takes its JupyterLab theme variable, with today's colour as fallback."""
    page = Column("t", Line(kind, "text"))._repr_html_()  # type: ignore[arg-type]
    assert colours_of(page) == [THEME_COLOURS[kind]]


def test_received_lines_keep_the_theme_text_colour() -> None:
    """What the server sent has no colour of its own: it inherits the theme's text colour."""
    assert colours_of(Column("t", *received("reply"))._repr_html_()) == []


def test_blank_typed_line_is_described_in_the_note_colour() -> None:
    """The "(an empty line)" stand-in for a blank typed line uses the note colour, inside the typed one."""
    page = Column("t", Line("typed", ""), Line("typed", "  "))._repr_html_()
    assert colours_of(page) == [THEME_COLOURS["typed"], THEME_COLOURS["note"]] * 2
    assert "(an empty line)" in page and "(a line of 2 blank characters)" in page


def test_side_by_side_rule_is_a_theme_border_colour() -> None:
    """The line between side-by-side columns is JupyterLab's border colour, #ccc outside JupyterLab."""
    table = side_by_side(Column("a", *received("x")), Column("b", *received("y")))._repr_html_()
    assert table.count("border-left:1px solid var(--jp-border-color1,#ccc)") == 2


def test_no_colour_in_html_outside_a_theme_variable() -> None:
    """Every colour in every kind of output, single or side by side, sits inside a JupyterLab theme variable."""
    kinds = ["typed", "received", "note", "event", "error", "good", "bad"]
    lines = [Line(kind, f"{kind} line") for kind in kinds] + [Line("typed", "")]  # type: ignore[arg-type]
    pages = [Column("t", *lines)._repr_html_(), side_by_side(Column("a", *lines), Column("b"))._repr_html_()]
    for page in pages:
        assert THEME_VARIABLE.search(page)
        assert not CSS_COLOUR.search(THEME_VARIABLE.sub("", page))


def test_text_prefixes_by_kind() -> None:
    """Plain text marks typed lines with "> " and errors with "! "; other kinds are shown as they are."""
    kinds = ["typed", "received", "note", "event", "error"]
    item = Column("t", *[Line(kind, text) for kind, text in zip(kinds, "abcde", strict=True)])  # type: ignore[arg-type]
    assert repr(item).splitlines() == ["> a", "b", "c", "d", "! e"]


def _left_cells(text: str) -> list[str]:
    return [row.split("|")[0] for row in text.splitlines()[2:]]


def test_long_lines_wrap_within_the_total_width() -> None:
    """A long line of words wraps onto indented continuation rows, no row is too wide, and no word is lost."""
    words = [f"word{number}" for number in range(60)]
    text = repr(side_by_side(Column("client", *received(" ".join(words))), Column("server", *received("x"))))
    rows = text.splitlines()
    assert len(rows) > 3
    assert max(render.width(row) for row in rows) <= render.TOTAL_WIDTH
    cells = _left_cells(text)
    assert all(cell.startswith("  ") for cell in cells[1:])
    assert " ".join(cells).split() == words
    assert columns_of(text)[2:] == [columns_of(text)[1]] * (len(rows) - 2)


def test_long_unbroken_lines_wrap_too() -> None:
    """A long run with no spaces (a hex dump, say) is broken into pieces that rejoin to the original."""
    blob = "".join(f"{number:02x}" for number in range(150))
    text = repr(side_by_side(Column("a", *received(blob)), Column("b", *received(blob))))
    rows = text.splitlines()
    assert max(render.width(row) for row in rows) <= render.TOTAL_WIDTH
    assert "".join(cell.strip() for cell in _left_cells(text)) == blob


def test_short_lines_do_not_wrap() -> None:
    """Lines that fit are shown unchanged, one row each, even with leading spaces."""
    text = repr(
        side_by_side(Column("a", *received("  indented", "x" * 40)), Column("b", *received("y" * 40)))
    )
    assert _left_cells(text) == ["  indented" + " " * 31, "x" * 40 + " "]


def test_wide_character_lines_wrap_within_the_total_width() -> None:
    """A long line of emoji wraps so that no row is wider than TOTAL_WIDTH terminal columns."""
    text = repr(side_by_side(Column("a", *received("😀" * 80)), Column("b", *received("x"))))
    assert max(render.width(row) for row in text.splitlines()) <= render.TOTAL_WIDTH


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (b"plain text", "plain text"),
        ("café ☃ 漢字 😀".encode(), "café ☃ 漢字 😀"),
        (b"\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
        (b"a\tb", "a\tb"),
        (b"del\x7f nul\x00 bel\x07 cr\r", "del\\x7f nul\\x00 bel\\x07 cr\\x0d"),
        (b"bad \xff\xfe \xc3", "bad \\xff\\xfe \\xc3"),
        ("nel\x85 ls\u2028 bidi\u202e".encode(), "nel\\x85 ls\\u2028 bidi\\u202e"),
    ],
    ids=["ascii", "utf8", "escape-seq", "tab", "c0-controls", "invalid-utf8", "unicode-controls"],
)
def test_printable_escapes_what_could_move_the_cursor(data: bytes, shown: str) -> None:
    """printable() keeps valid text and tabs, and shows controls and invalid UTF-8 as backslash escapes."""
    assert printable(data) == shown


def test_width_counts_wide_characters_twice() -> None:
    """width() gives ASCII 1 column, and CJK, fullwidth and emoji 2 columns each."""
    assert render.width("abc") == 3
    assert render.width("漢字") == 4
    assert render.width("ｆ") == 2
    assert render.width("😀!") == 3
