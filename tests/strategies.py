"""Hypothesis settings and byte-stream strategies for the property tests.

The ``ci`` profile is the default: a fixed number of examples, derived from
each test's own source (``derandomize``) and no example database, so every
run on every machine tries exactly the same inputs and nothing can flake.
``WS_HYPOTHESIS_PROFILE=explore`` searches twenty times longer, with fresh
random inputs each run, for a person hunting bugs by hand.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

settings.register_profile(
    "properties-ci",
    max_examples=100,
    deadline=None,  # a slow CI machine must not turn a passing example into a failure
    derandomize=True,
    database=None,
    print_blob=False,
    # too_slow is the one health check that depends on the machine's speed;
    # function_scoped_fixture: tmp_path is shared by a test's examples on purpose (one file each).
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile("properties-explore", settings.get_profile("properties-ci"), derandomize=False)

PROFILE = "properties-" + os.environ.get("WS_HYPOTHESIS_PROFILE", "ci")
_SCALE = 20 if PROFILE == "properties-explore" else 1


def budget(examples: int) -> settings:
    """The chosen profile with *examples* examples (times twenty when exploring)."""
    return settings(settings.get_profile(PROFILE), max_examples=examples * _SCALE)


# -- pieces of streams -----------------------------------------------------------------------------

#: The two line endings clients send: telnet's CRLF and netcat's bare LF.
ENDINGS = st.sampled_from([b"\r\n", b"\n"])

#: Byte sequences that are not UTF-8: a lone continuation byte, a truncated sequence, an overlong
#: "/", an encoded surrogate, a code point past U+10FFFF, bytes that never occur in UTF-8.
INVALID_UTF8 = st.sampled_from(
    [
        b"\x80",
        b"\xc3",
        b"\xe2\x82",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xff\xfe",
        b"caf\xe9",
    ]
)

#: Characters that can steer a terminal or hide text: C0 controls, ANSI/OSC escape sequences,
#: DEL, a C1 control, bidirectional overrides, zero-width and line-separator characters.
CONTROLS = st.sampled_from(
    [
        "\x00",
        "\x07",
        "\x08",
        "\t",
        "\r",
        "\x1b[2J",
        "\x1b[1A\x1b[2K",
        "\x1b]0;title\x07",
        "\x7f",
        "\x85",
        "\u202e",
        "\u200b",
        "\u2028",
        "\ufeff",
    ]
)


def text_without_newline(max_size: int = 20) -> st.SearchStrategy[str]:
    """Any text that fits on one line (it may hold a CR or control characters, never an LF)."""
    text = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=max_size)
    return st.tuples(text, st.lists(CONTROLS, max_size=2), text).map(
        lambda parts: "".join(parts[1]).join(parts[::2])
    )


def line_of(text: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    """One line: *text* in UTF-8 and a CRLF or LF ending."""
    return st.tuples(text, ENDINGS).map(lambda pair: pair[0].encode("utf-8") + pair[1])


def lines_of(text: st.SearchStrategy[str], max_lines: int = 8) -> st.SearchStrategy[bytes]:
    """Several lines of *text*, each with its own ending, as one stream."""
    return st.lists(line_of(text), max_size=max_lines).map(b"".join)


def long_lines(max_length: int, delimiter: bytes = b"\n") -> st.SearchStrategy[bytes]:
    """Lines around and past *max_length*, ended or not: where line receivers draw their limit."""
    sizes = st.sampled_from([max_length - 1, max_length, max_length + 1, max_length + 2, 2 * max_length + 7])
    ended = st.tuples(sizes, st.sampled_from([delimiter, b"\r" + delimiter])).map(
        lambda pair: b"x" * pair[0] + pair[1]
    )
    endless = sizes.map(lambda size: b"y" * size)
    return st.one_of(ended, endless)


def junk(
    valid: st.SearchStrategy[bytes],
    max_length: int = 1024,
    delimiter: bytes = b"\n",
    max_parts: int = 6,
) -> st.SearchStrategy[bytes]:
    """Hostile input: valid pieces mixed with random bytes, invalid UTF-8, control characters, long lines."""
    part = st.one_of(
        valid,
        st.binary(max_size=48),
        st.tuples(INVALID_UTF8, ENDINGS).map(b"".join),
        st.tuples(st.lists(CONTROLS, min_size=1, max_size=3), ENDINGS).map(
            lambda pair: "".join(pair[0]).encode("utf-8") + pair[1]
        ),
        long_lines(max_length, delimiter),
    )
    return st.lists(part, max_size=max_parts).map(b"".join)


# -- ways to cut a stream --------------------------------------------------------------------------


def pieces_at(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """*data* cut at the positions in *cuts*: non-empty pieces that join back to *data*."""
    bounds = [0, *sorted(set(cut for cut in cuts if 0 < cut < len(data))), len(data)]
    return [data[start:end] for start, end in itertools.pairwise(bounds) if end > start]


@st.composite
def cut(draw: st.DrawFn, data: bytes, max_cuts: int = 16) -> list[bytes]:
    """*data* split at positions Hypothesis chooses (none, one, or many; one-byte pieces included)."""
    if len(data) < 2:
        return pieces_at(data, [])
    positions = draw(st.lists(st.integers(1, len(data) - 1), max_size=max_cuts))
    return pieces_at(data, positions)


@st.composite
def stream_and_pieces(draw: st.DrawFn, streams: st.SearchStrategy[bytes]) -> tuple[bytes, list[bytes]]:
    """A stream from *streams*, and the same stream cut at chosen places."""
    data = draw(streams)
    return data, draw(cut(data))
