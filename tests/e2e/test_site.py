"""End to end: the course website (`make site`) in headless Chromium, in light and dark mode.

The site is built into a temporary folder (site/build.py, as `make site` does) and served on 127.0.0.1.
Three pages are opened: the index, notebook 2 and notebook 8. On each, the test finds the transcripts
and, on notebook 2, the chart (loaded); opens a hint; then, in the book theme's light and dark modes,
measures the contrast of the transcripts' four colours against the background behind them (WCAG AA asks
4.5:1 for text). Screenshots (the window: each page's top, a transcript, the chart, an open hint) go to
tests/e2e/screenshots/site-*.png, the figures to site-contrast.txt.

    .venv/bin/pytest tests/e2e/test_site.py -p no:cacheprovider
"""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import SCREENSHOTS, headless_chromium, needs_chromium

pytestmark = needs_chromium

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "index": "notebooks/00-Index.html",
    "02": "notebooks/02-loseConnection-and-abortConnection.html",
    "08": "notebooks/08-Putting-It-All-Together.html",
}
#: The CSS variables render.py colours transcripts with: typed text, notes, events and ✓, errors and ✗.
COLOURS = [
    "--jp-content-link-color",
    "--jp-content-font-color2",
    "--jp-mirror-editor-keyword-color",
    "--jp-error-color1",
]
WCAG_AA = 4.5
WIDTH, HEIGHT = 1280, 900
BUILD_TIMEOUT = 600

#: For each element of the page whose inline style uses *variable*: its colour and the background
#: colours from the element out to <html>, each as the browser computed it.
COLOURS_JS = """
(variable) => [...document.querySelectorAll(`div.cell_output [style*="${variable}"]`)]
  .filter(element => element.textContent.trim())
  .map(element => {
    const backgrounds = [];
    for (let node = element; node; node = node.parentElement) {
      backgrounds.push(getComputedStyle(node).backgroundColor);
    }
    return {color: getComputedStyle(element).color, backgrounds, text: element.textContent.trim().slice(0, 40)};
  })
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site, built into a temporary folder and served over HTTP on 127.0.0.1 until the tests end."""
    folder = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, str(ROOT / "site" / "build.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert built.returncode == 0, f"site/build.py failed:\n{built.stdout}\n{built.stderr}"
    handler = functools.partial(_QuietHandler, directory=str(folder / "html"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(site_url: str) -> Iterator[Any]:
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose system colour scheme is light; requests that failed are collected."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.missing = []
    page.on("response", lambda response: response.status >= 400 and page.missing.append(response.url))
    try:
        yield page
    finally:
        context.close()


def _rgba(css: str) -> tuple[float, float, float, float]:
    numbers = [float(number) for number in re.findall(r"[\d.]+", css)]
    if len(numbers) == 3:
        numbers.append(1.0)
    assert css.startswith("rgb") and len(numbers) == 4, f"unexpected colour {css!r}"
    red, green, blue, alpha = numbers
    return red, green, blue, alpha


def _over(
    top: tuple[float, float, float, float], below: tuple[float, float, float]
) -> tuple[float, float, float]:
    *rgb, alpha = top
    return (
        rgb[0] * alpha + below[0] * (1 - alpha),
        rgb[1] * alpha + below[1] * (1 - alpha),
        rgb[2] * alpha + below[2] * (1 - alpha),
    )


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.04045 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(value) for value in rgb)
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(color: str, backgrounds: list[str]) -> tuple[float, tuple[float, float, float]]:
    """WCAG contrast of *color* over the stacked *backgrounds* (innermost first, over a white canvas)."""
    background = (255.0, 255.0, 255.0)
    for layer in reversed(backgrounds):
        background = _over(_rgba(layer), background)
    text = _over(_rgba(color), background)
    lighter, darker = sorted((_luminance(text), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05), background


def test_contrast_arithmetic() -> None:
    """The contrast function gives WCAG's figures: 21:1 for black on white, 4.54:1 for #767676 on white."""
    assert contrast("rgb(0, 0, 0)", ["rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"])[0] == pytest.approx(21)
    assert contrast("rgb(118, 118, 118)", ["rgba(0, 0, 0, 0)"])[0] == pytest.approx(4.54, abs=0.01)
    # 70 % white over #121212 is grey 183.9 (0.7 * 255 + 0.3 * 18) over grey 18
    assert contrast("rgba(255, 255, 255, 0.7)", ["rgb(18, 18, 18)"])[0] == pytest.approx(9.43, abs=0.01)


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("article.bd-article h1")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"


def switch_mode(page: Any, mode: str) -> None:
    """Choose *mode* in the theme's colour-mode menu (or cycle its button, in older themes), as a reader does."""
    for _ in range(3):
        if page.evaluate("document.documentElement.dataset.theme") == mode:
            return
        page.locator("button.theme-switch-button:visible").first.click()
        choice = page.locator(f"button.theme-change-button[data-mode='{mode}']:visible")
        if choice.count():
            choice.first.click()
    page.wait_for_function(f"document.documentElement.dataset.theme === '{mode}'")


def screenshot(page: Any, name: str, target: Any = None) -> Path:
    """The window, at the top of the page or with *target* in the middle, as screenshots/site-<name>.png.

    Whole-page pictures of these pages are over 14,000 pixels tall and lose the theme's sidebars.
    """
    if target is None:
        page.evaluate("window.scrollTo(0, 0)")
    else:
        target.evaluate("element => element.scrollIntoView({block: 'center'})")
    page.wait_for_timeout(300)  # let the theme's scroll handlers settle
    path = SCREENSHOTS / f"site-{name}.png"
    page.screenshot(path=str(path))
    return path


def measure(page: Any) -> dict[str, list[tuple[float, str, str]]]:
    """For each of the four colours: (contrast, text, background) of every transcript element using it."""
    found: dict[str, list[tuple[float, str, str]]] = {}
    for variable in COLOURS:
        for element in page.evaluate(COLOURS_JS, variable):
            ratio, background = contrast(element["color"], element["backgrounds"])
            shown = "rgb({:.0f}, {:.0f}, {:.0f})".format(*background)
            found.setdefault(variable, []).append((ratio, element["text"], f"{element['color']} on {shown}"))
    return found


def check_contrast(page: Any, name: str, mode: str, figures: list[str]) -> set[str]:
    """Assert every transcript colour on the page is at least 4.5:1; note the lowest per colour in *figures*."""
    found = measure(page)
    for variable, elements in found.items():
        ratio, _text, colours = min(elements)
        figures.append(
            f"{name:5} {mode:5} {variable:34} lowest {ratio:5.2f}:1 of {len(elements):3}  {colours}"
        )
        low = [element for element in elements if element[0] < WCAG_AA]
        assert not low, f"{name} ({mode}): {variable} below {WCAG_AA}:1: {low[:3]}"
    return set(found)


@pytest.fixture(scope="module")
def figures() -> Iterator[list[str]]:
    """Contrast lines collected by the tests, written to site-contrast.txt and printed at the end."""
    lines: list[str] = []
    yield lines
    if lines:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "site-contrast.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


@pytest.mark.parametrize("name", list(PAGES))
def test_page_in_light_and_dark(page: Any, site_url: str, name: str, figures: list[str]) -> None:
    """Transcripts (and notebook 2's chart) render; a hint opens; transcript text is 4.5:1 in both modes."""
    open_page(page, site_url + PAGES[name])
    article = page.locator("article.bd-article")
    if name == "index":
        assert article.locator("table").count() >= 1  # the course's contents
        assert article.locator("div.cell_output").count() >= 1  # the runtime check's output
    else:
        assert article.locator("div.cell_output table").count() >= 1, "no transcript table"
    if name == "02":
        chart = article.locator("div.cell_output img")
        assert chart.count() == 1
        chart.scroll_into_view_if_needed()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=chart.element_handle(), timeout=30_000
        )

    hints = article.locator("details")
    if name != "index":  # the index has no exercises
        hint = hints.first
        body = hint.locator(":scope > :not(summary)").first
        assert not body.is_visible()
        hint.locator("summary").click()
        assert hint.evaluate("details => details.open") and body.is_visible()
        screenshot(page, f"{name}-hint", hint)

    seen = set()
    for mode in ("light", "dark"):
        switch_mode(page, mode)
        page.mouse.move(0, 0)
        seen |= check_contrast(page, name, mode, figures)
        screenshot(page, f"{name}-{mode}")
        if name != "index":
            screenshot(page, f"{name}-{mode}-transcript", article.locator("div.cell_output table").first)
        if name == "02":
            screenshot(page, f"02-{mode}-chart", article.locator("div.cell_output img"))
    if name == "02":  # it shows all four: typed text, notes, events and ✓, errors and ✗
        assert seen == set(COLOURS)
    elif name == "08":
        assert seen, "no transcript colours found"
    # The browser asks for /favicon.ico on its own; the site has none.
    assert [url for url in page.missing if not url.endswith("/favicon.ico")] == []


def test_search_finds_a_notebook(page: Any, site_url: str) -> None:
    """Sphinx's search, in the browser, finds notebook 2 for "abortConnection"."""
    page.goto(site_url + "search.html?q=abortConnection")
    results = page.locator("#search-results ul.search li a")
    results.first.wait_for()
    hrefs = [results.nth(index).get_attribute("href") for index in range(results.count())]
    assert any("02-loseConnection-and-abortConnection.html" in href for href in hrefs), hrefs
    screenshot(page, "search")
